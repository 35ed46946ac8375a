#!/usr/bin/env bash
# `make wheels-test`: each wheel in dist/ installed into a fresh virtual
# environment of its own CPython, with NumPy from PyPI (through the wheel's
# `numpy` extra) and pytest, then tests/smoke run there.
#
#   bash scripts/wheel_smoke.sh [WHEEL ...]     default: dist/dlbridge-*.whl
#
# NumPy is the newest release of the minor that interpreter gets (2.4.x on
# 3.11, 2.5.x on 3.12 and later); SMOKE_NUMPY=SPEC overrides it for every
# wheel (e.g. SMOKE_NUMPY='numpy' for whatever is newest).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pythons.sh
wheels=("$@")
[ $# -gt 0 ] || wheels=(dist/dlbridge-*.whl)
[ -e "${wheels[0]}" ] || { echo "wheel_smoke: no wheels in dist/ (run make wheels)" >&2; exit 1; }
work=$PWD/target/wheels
start=$SECONDS
for wheel in "${wheels[@]}"; do
    t0=$SECONDS
    tag=$(basename "$wheel" | cut -d- -f3)            # cp312
    v=${tag:2:1}.${tag:3}                             # 3.12
    py=$(find_python "$v")
    case $v in 3.11) numpy='numpy==2.4.*' ;; *) numpy='numpy==2.5.*' ;; esac
    numpy=${SMOKE_NUMPY:-$numpy}
    env=$work/smoke-$tag
    rm -rf "$env"
    "$py" -m venv "$env"
    "$env/bin/python" -m pip install -q "$(realpath "$wheel")[numpy]" "$numpy" pytest
    echo "wheel_smoke: $(basename "$wheel") on $("$env/bin/python" -V), numpy $("$env/bin/python" -c 'import numpy; print(numpy.__version__)')"
    # From a directory outside the source tree, so `dlbridge` can only be the
    # installed one (the test asserts it came from site-packages).
    (cd "$work" && DLBRIDGE_SMOKE_WHEEL=1 "$env/bin/python" -m pytest -q -W error -p no:cacheprovider \
        -c /dev/null --rootdir "$work" "$OLDPWD/tests/smoke")
    echo "wheel_smoke: $tag ok in $((SECONDS - t0)) s"
done
echo "wheel_smoke: ${#wheels[@]} wheels in $((SECONDS - start)) s"
