# Sourced by the release scripts: `find_python 3.12` prints an interpreter of
# that CPython minor version, or fails saying where it looked.
#   PYTHON3_12=/path/to/python   an explicit choice wins;
#   python3.12 on PATH           if it runs (a pyenv shim for a version that is
#                                not selected does not);
#   $PYENV_ROOT/versions/3.12.*  pyenv's installs, newest patch first.
find_python() {
    local v=$1 var="PYTHON${1/./_}" cand
    if [ -n "${!var:-}" ]; then
        echo "${!var}"
        return
    fi
    for cand in "python$v" $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$v".*/bin/python"$v" 2>/dev/null | sort -rV); do
        # The interpreter itself, not a shim in front of it.
        if "$cand" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$v'.split('.'))); print(sys.executable)" 2>/dev/null; then
            return
        fi
    done
    echo "no CPython $v found: set $var=/path/to/python$v (looked for python$v on PATH and in ${PYENV_ROOT:-$HOME/.pyenv}/versions)" >&2
    return 1
}
