#!/usr/bin/env bash
# `make test-matrix`: the core of the Python suite on the other CPython
# versions, against the newest NumPy and PyTorch each gets, and against the
# wheel built for it (dist/, `make wheels`): what a user installs, not a
# develop build.
#
#   bash scripts/test_matrix.sh [VERSION ...]     default: 3.12 3.13
#
# Each version's environment is pinned by requirements-py<VERSION>.txt and
# cached like .venv (scripts/venv.sh, linked as .venv-<VERSION>). The wheel is
# unpacked under target/wheels/site-<tag> and put on PYTHONPATH, so the cached
# environment itself never changes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pythons.sh
versions=("$@")
[ $# -gt 0 ] || versions=(3.12 3.13)
# (tests/smoke runs against each wheel in its own fresh venv: make wheels-test.)
CORE=(tests/python/test_dlpack.py tests/python/test_buffer.py tests/python/test_array_interface.py
      tests/python/test_fidelity.py
      tests/python/test_pickle.py tests/python/test_shared_memory.py)
work=$PWD/target/wheels
start=$SECONDS
for v in "${versions[@]}"; do
    t0=$SECONDS
    tag=cp${v/./}
    PYTHON=$(find_python "$v") REQUIREMENTS=requirements-py$v.txt LINK=.venv-$v bash scripts/venv.sh
    wheel=$(ls dist/dlbridge-*-"$tag"-"$tag"-*.whl 2>/dev/null) ||
        { echo "test_matrix: no $tag wheel in dist/ (run make wheels)" >&2; exit 1; }
    site=$work/site-$tag
    rm -rf "$site"
    ".venv-$v/bin/python" -m zipfile -e "$wheel" "$site"
    ".venv-$v/bin/python" -c 'import sys, numpy, torch, jax; print(f"test_matrix: {sys.version.split()[0]}, numpy {numpy.__version__}, torch {torch.__version__}, jax {jax.__version__}")'
    PYTHONPATH=$site ".venv-$v/bin/python" -m pytest -q -W error -p no:cacheprovider "${CORE[@]}"
    echo "test_matrix: $v ok in $((SECONDS - t0)) s"
done
echo "test_matrix: ${versions[*]} in $((SECONDS - start)) s"
