"""Instructions per call of the extension benchmark's accept and return paths (callgrind).

Wall-clock medians move with the machine's load; instruction counts do not,
so these are the stable targets beside examples/extension/bench.py. Each
case runs twice under `valgrind --tool=callgrind`: a warm-up and a loop of N
calls of one function on a float64[16] array, and the warm-up alone. The
figure is the difference of the two runs' inclusive instruction counts of
the C function the interpreter calls for it, over N, so one-time costs
(imports, lazy initialisation, the first call) cancel out.

The C function counted (inclusive) is pyo3's `__pyfunction_<name>` trampoline for the Rust functions (dlbridge
and rust-numpy), the outermost `nb_func_vectorcall_*` (the function object's
own vectorcall) for the nanobind peer. That is the level where the two
compare: CPython 3.11's specialised CALL calls a pyo3 function's C entry
straight from the eval loop (it is a `builtin_function_or_method` with
METH_FASTCALL | METH_KEYWORDS), and nanobind's through `PyObject_Vectorcall`
(inline, a few instructions); the interpreter's own share is left out of both.
The process's total is not used: it moves by millions from run to run
(start-up), more than the loop's whole cost.

    PYTHONPATH=target/ext-site:python .venv/bin/python scripts/callgrind_extension.py [-n 20000] [CASE ...]

Needs valgrind, the example extension importable, and the nanobind peer
built (scripts/build_nanobind_peer.sh; its module keeps its symbols).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_DIR = ROOT / "target" / "nanobind-peer"
WARMUP = 100

NANOBIND_ENTRY = "nanobind::detail::nb_func_vectorcall_"

# name: (module, function, the entry function's name or, for nanobind,
# prefix, the call's arguments)
CASES = {
    "nanobind.sum": ("nanobind_peer", "sum", NANOBIND_ENTRY, "a"),
    "nanobind.sum_f64": ("nanobind_peer", "sum_f64", NANOBIND_ENTRY, "a"),
    "nanobind.sum_ro": ("nanobind_peer", "sum_ro", NANOBIND_ENTRY, "a"),
    "nanobind.sum_f64_ro": ("nanobind_peer", "sum_f64_ro", NANOBIND_ENTRY, "a"),
    "rust-numpy.np_sum": ("dlbridge_example", "np_sum", "dlbridge_example::__pyfunction_np_sum", "a"),
    "dlbridge.sum": ("dlbridge_example", "sum", "dlbridge_example::__pyfunction_sum", "a"),
    "dlbridge.sum_f64": ("dlbridge_example", "sum_f64", "dlbridge_example::__pyfunction_sum_f64", "a"),
    # Writes in place (dlbridge: a tracked exclusive borrow, the lent path).
    "nanobind.add_one": ("nanobind_peer", "add_one", NANOBIND_ENTRY, "a"),
    "rust-numpy.np_add_one_inplace": (
        "dlbridge_example", "np_add_one_inplace", "dlbridge_example::__pyfunction_np_add_one_inplace", "a",
    ),
    "dlbridge.add_one": ("dlbridge_example", "add_one", "dlbridge_example::__pyfunction_add_one", "a"),
    # Returns: a new ndarray over Rust memory, and accept-compute-return.
    "rust-numpy.np_arange": ("dlbridge_example", "np_arange", "dlbridge_example::__pyfunction_np_arange", "16"),
    "dlbridge.arange_numpy": (
        "dlbridge_example", "arange_numpy", "dlbridge_example::__pyfunction_arange_numpy", "16",
    ),
    "rust-numpy.np_scale": ("dlbridge_example", "np_scale", "dlbridge_example::__pyfunction_np_scale", "a, 2.0"),
    "dlbridge.scale_like": (
        "dlbridge_example", "scale_like", "dlbridge_example::__pyfunction_scale_like", "a, 2.0",
    ),
}

PROGRAM = """
import sys
sys.path.insert(0, {peer!r})
import numpy as np
import {module} as m
f = m.{function}
a = np.arange(16, dtype=np.float64)
for _ in range({warmup}):
    f({args})
for _ in range({n}):
    f({args})
"""

# callgrind_annotate --inclusive=yes: "  95,175 ( 0.02%)  file:function [object]"
LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+\S*?:(.*?)(?: \[[^\]]*\])?$")


def inclusive(module: str, function: str, args: str, n: int) -> dict[str, int]:
    """Inclusive instruction counts by function name, for a run of n calls."""
    program = PROGRAM.format(peer=str(PEER_DIR), module=module, function=function, args=args, warmup=WARMUP, n=n)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        env = dict(os.environ, PYTHONHASHSEED="0")
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", program],
            check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        report = subprocess.run(
            ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)],
            check=True, capture_output=True, text=True,
        ).stdout
    counts: dict[str, int] = {}
    for line in report.splitlines():
        m = LINE.match(line)
        if m:
            name = m.group(2).split("(")[0] if m.group(2).startswith("nanobind::") else m.group(2)
            # One function may be listed under two files (inlined code): the
            # larger is the whole.
            counts[name] = max(counts.get(name, 0), int(m.group(1).replace(",", "")))
    return counts


def count(case: str, n: int) -> tuple[float, str]:
    """(the entry's instructions per call, the entry's name)."""
    module, function, entry, call_args = CASES[case]
    loop, base = inclusive(module, function, call_args, n), inclusive(module, function, call_args, 0)

    def per_call(name: str) -> float:
        return (loop.get(name, 0) - base.get(name, 0)) / n

    if entry == NANOBIND_ENTRY:
        # The outermost of nanobind's vectorcalls is the one with the most.
        entry = max((k for k in loop if k.startswith(NANOBIND_ENTRY)), key=per_call)
    return per_call(entry), entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=20_000, help="calls in the timed loop (default 20,000)")
    parser.add_argument("cases", nargs="*", default=list(CASES), help=f"default: all of {', '.join(CASES)}")
    args = parser.parse_args()
    print(f"Instructions per call (callgrind; {args.n:,} calls, warm-up subtracted), float64[16] input\n")
    print("| call | instructions per call | entry function (inclusive) |")
    print("|---|---:|---|")
    for case in args.cases:
        per_call, entry = count(case, args.n)
        print(f"| `{case}({CASES[case][3]})` | {per_call:,.0f} | `{entry}` |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
