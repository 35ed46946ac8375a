#!/usr/bin/env bash
# `make test-oldest`: the oldest end of the supported range (README's
# Compatibility): the core of the Python suite, the framework-native returns
# of the example extension and the Arrow/polars/pandas consumers, on the
# oldest CPython, against the oldest release of each framework
# (requirements-oldest.txt), and against the wheel built for that CPython
# (dist/, `make wheels`). `make test-matrix` is the newest end.
#
# The environment is cached like .venv (scripts/venv.sh, linked as
# .venv-oldest). The dlbridge wheel and the example extension's (built here,
# for the same interpreter as .venv, so cargo reuses `make
# develop-extension`'s build) are unpacked under target/wheels/site-oldest and
# put on PYTHONPATH, so the cached environment itself never changes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pythons.sh
v=3.11
tag=cp${v/./}
CORE=(tests/python/test_dlpack.py tests/python/test_buffer.py tests/python/test_array_interface.py
      tests/python/test_fidelity.py
      tests/python/test_pickle.py tests/python/test_shared_memory.py
      tests/python/test_extension_returns.py)
start=$SECONDS
PYTHON=$(find_python "$v") REQUIREMENTS=requirements-oldest.txt LINK=.venv-oldest bash scripts/venv.sh
wheel=$(ls dist/dlbridge-*-"$tag"-"$tag"-*.whl 2>/dev/null) ||
    { echo "test_oldest: no $tag wheel in dist/ (run make wheels)" >&2; exit 1; }
site=$PWD/target/wheels/site-oldest
rm -rf "$site" target/wheels/example
.venv-oldest/bin/python -m zipfile -e "$wheel" "$site"
# The example extension: dlbridge::Native's returns (torch's negative-stride
# refusal among them) are reachable only from Rust.
CARGO_TARGET_DIR=$PWD/target .venv/bin/maturin build --release -q --compatibility linux \
    -i "$PWD/.venv/bin/python" -m examples/extension/Cargo.toml -o target/wheels/example
.venv-oldest/bin/python -m zipfile -e target/wheels/example/dlbridge_example-*-"$tag"-*.whl "$site"
.venv-oldest/bin/python -c 'import sys, numpy, ml_dtypes, torch, jax, pyarrow, polars, pandas; print(f"test_oldest: {sys.version.split()[0]}, numpy {numpy.__version__}, ml_dtypes {ml_dtypes.__version__}, torch {torch.__version__}, jax {jax.__version__}, pyarrow {pyarrow.__version__}, polars {polars.__version__}, pandas {pandas.__version__}")'
PYTHONPATH=$site .venv-oldest/bin/python -m pytest -q -W error -p no:cacheprovider "${CORE[@]}"
# The consumers' own semantics that the suite pins for JAX (jnp.asarray as a
# snapshot, tracing) are newer JAX's: only the Arrow, polars and pandas parts.
PYTHONPATH=$site .venv-oldest/bin/python -m pytest -q -W error -p no:cacheprovider tests/python/test_frameworks.py -k 'not jax'
echo "test_oldest: $v ok in $((SECONDS - start)) s"
