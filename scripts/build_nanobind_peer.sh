#!/usr/bin/env bash
# Builds benches/nanobind_peer (the nanobind twin of examples/extension) into
# target/nanobind-peer/, for examples/extension/bench.py. Benchmark only:
# `make bench-extension` runs it, `make test` never does.
#
# Everything comes from the pinned .venv (nanobind, cmake, ninja) and the
# system C++ compiler, so it works offline. Idempotent: cmake and ninja
# rebuild only what changed, and a configured tree is reused.
#
#   bash scripts/build_nanobind_peer.sh        # prints the module's directory
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
py=${PYTHON:-$root/.venv/bin/python}
bin=$(dirname "$py")
build=$root/target/nanobind-peer
mkdir -p "$root/target"
export PATH="$bin:$PATH"
for tool in cmake ninja; do
    command -v "$tool" >/dev/null || { echo "build_nanobind_peer: $tool not found in $bin (requirements-dev.txt)" >&2; exit 1; }
done
nanobind_dir=$("$py" -m nanobind --cmake_dir) || { echo "build_nanobind_peer: nanobind is not installed in $py's environment" >&2; exit 1; }
# A tree configured for another interpreter is rebuilt from scratch.
if [ ! -f "$build/build.ninja" ] || [ "$(cat "$build/.python" 2>/dev/null)" != "$py" ]; then
    rm -rf "$build"
    cmake -S benches/nanobind_peer -B "$build" -G Ninja -Wno-dev \
        -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_MAKE_PROGRAM="$bin/ninja" \
        -DPython_EXECUTABLE="$py" \
        -Dnanobind_DIR="$nanobind_dir" >"$build.configure.log" 2>&1 \
        || { cat "$build.configure.log" >&2; rm -rf "$build"; exit 1; }
    echo "$py" >"$build/.python"
fi
cmake --build "$build" -- --quiet >&2
echo "$build"
