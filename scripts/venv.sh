#!/usr/bin/env bash
# Make `.venv` usable: a virtual environment under ~/.cache keyed by the hash of
# the pinned requirements, linked as .venv, so clones on one machine share it
# (PyTorch is ~5 GB) while a bare machine still builds it from nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
key=$( (cat requirements-dev.txt; "$PY" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)
cache=${DLBRIDGE_VENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dlbridge-venv}
venv="$cache/$key"
mkdir -p "$cache"
# One builder at a time per machine (parallel clones, parallel make runs).
exec 9>"$cache/.lock"
flock 9
if [ ! -f "$venv/.complete" ]; then
    echo "venv: building $venv (first run on this machine; PyTorch is large)" >&2
    rm -rf "$venv.tmp"
    mkdir -p "$cache"
    "$PY" -m venv "$venv.tmp"
    "$venv.tmp/bin/python" -m pip install --quiet --upgrade pip
    "$venv.tmp/bin/python" -m pip install --quiet -r requirements-dev.txt
    rm -rf "$venv"
    mv "$venv.tmp" "$venv"
    # A venv's scripts record its path; rebuild them for the final location.
    grep -lI "$venv.tmp" "$venv"/bin/* | xargs -r sed -i "s#$venv.tmp#$venv#g"
    touch "$venv/.complete"
fi
if [ "$(readlink .venv 2>/dev/null)" != "$venv" ]; then
    rm -rf .venv
    ln -s "$venv" .venv
fi
