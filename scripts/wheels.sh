#!/usr/bin/env bash
# `make wheels`: the sdist, then one wheel per CPython version built *from that
# sdist* (so a wheel proves the sdist builds), into dist/.
#
#   bash scripts/wheels.sh [VERSION ...]     default: 3.11 3.12 3.13
#
# Per-version wheels (cp311, cp312, cp313): the fast paths use CPython's
# non-limited API, so no abi3 wheel. Linked with zig (PyPI's ziglang) against
# glibc 2.28 symbols, so the tag is manylinux_2_28 whatever this machine's
# glibc is; `auditwheel show` prints what each wheel needs. Each version has its
# own cargo target directory under target/wheels/, so a rerun rebuilds only what
# changed (the crate itself: unpacking the sdist gives it fresh timestamps).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pythons.sh
VENV=${VENV:-.venv}
bin=$(cd "$VENV/bin" && pwd)
versions=("$@")
[ $# -gt 0 ] || versions=(3.11 3.12 3.13)
compat=${MANYLINUX:-manylinux_2_28}
work=$PWD/target/wheels
mkdir -p dist "$work"

start=$SECONDS
rm -f dist/dlbridge-*.tar.gz dist/dlbridge-*.whl
"$bin/maturin" sdist -o dist
sdist=$(ls dist/dlbridge-*.tar.gz)
echo "wheels: $sdist ($(du -k "$sdist" | cut -f1) KiB, $((SECONDS - start)) s)"
rm -rf "$work/sdist"
mkdir -p "$work/sdist"
# --touch: the sdist stores one fixed mtime for reproducibility; cargo must see
# edited sources as new.
tar xzf "$sdist" -C "$work/sdist" --strip-components=1 --touch

for v in "${versions[@]}"; do
    py=$(find_python "$v")
    tag=cp${v/./}
    t0=$SECONDS
    # maturin finds zig through `python -m ziglang` of the venv it runs from.
    # Make exports PYO3_PYTHON and VIRTUAL_ENV for .venv: not this build's.
    (cd "$work/sdist" && env -u PYO3_PYTHON -u VIRTUAL_ENV CARGO_TARGET_DIR="$work/cargo-$tag" PATH="$bin:$PATH" \
        maturin build -q --release --locked --strip --zig --compatibility "$compat" \
        --interpreter "$py" --out "$OLDPWD/dist")
    wheel=$(ls dist/dlbridge-*-"$tag"-"$tag"-*.whl)
    echo "wheels: $wheel ($(du -k "$wheel" | cut -f1) KiB, $((SECONDS - t0)) s)"
done
# auditwheel reads the ELF: the policy it finds must be the wheel's own tag
# (maturin's claim), and no library outside the manylinux set may be needed.
for wheel in dist/dlbridge-*.whl; do
    plat=$(basename "$wheel" .whl | cut -d- -f5)
    report=$("$bin/auditwheel" show "$wheel" | tr '\n' ' ' | sed 's/  */ /g')
    echo "wheels: auditwheel: $report"
    grep -q "consistent with the following platform tag: \"$plat\"" <<<"$report" ||
        { echo "wheels: $wheel: auditwheel does not confirm $plat" >&2; exit 1; }
    if grep -q "external shared libraries are required" <<<"$report"; then
        echo "wheels: $wheel needs libraries outside the manylinux policy" >&2
        exit 1
    fi
done
echo "wheels: done in $((SECONDS - start)) s"
ls -l dist
