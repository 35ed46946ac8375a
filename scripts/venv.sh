#!/usr/bin/env bash
# Make `.venv` usable: a virtual environment under ~/.cache keyed by the hash of
# the pinned requirements, linked as .venv, so clones on one machine share it
# (PyTorch is ~5 GB) while a bare machine still builds it from nothing.
#
# The CI matrix reuses this for its other interpreters:
#   PYTHON=python3.12 REQUIREMENTS=requirements-py3.12.txt LINK=.venv-3.12 bash scripts/venv.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
REQ=${REQUIREMENTS:-requirements-dev.txt}
LINK=${LINK:-.venv}
key=$( (cat "$REQ"; "$PY" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)
cache=${DLBRIDGE_VENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dlbridge-venv}
venv="$cache/$key"
mkdir -p "$cache"
# One builder at a time per machine (parallel clones, parallel make runs).
exec 9>"$cache/.lock"
flock 9
if [ ! -f "$venv/.complete" ]; then
    echo "venv: building $venv from $REQ with $("$PY" -V) (first run on this machine; PyTorch is large)" >&2
    start=$SECONDS
    rm -rf "$venv.tmp"
    mkdir -p "$cache"
    "$PY" -m venv "$venv.tmp"
    "$venv.tmp/bin/python" -m pip install --quiet --upgrade pip
    "$venv.tmp/bin/python" -m pip install --quiet -r "$REQ"
    rm -rf "$venv"
    mv "$venv.tmp" "$venv"
    # A venv's scripts record its path; rebuild them for the final location.
    grep -lI --directories=skip "$venv.tmp" "$venv"/bin/* | xargs -r sed -i "s#$venv.tmp#$venv#g"
    touch "$venv/.complete"
    echo "venv: built $venv in $((SECONDS - start)) s" >&2
fi
if [ "$(readlink "$LINK" 2>/dev/null)" != "$venv" ]; then
    rm -rf "$LINK"
    ln -s "$venv" "$LINK"
fi
