"""Exchange benchmark: dlbridge beside the best anchor for the same exchange.

Each row times dlbridge and its anchor in the same process, interleaved over
several rounds (alternating which goes first), and reports the median
nanoseconds per call of each and the ratio of medians (dlbridge / anchor).
Machines here are shared and noisy: read ratios, not absolute numbers.

    python benches/exchange.py            # full run
    python benches/exchange.py --quick    # under a minute, for CI (reports, never fails)
    python benches/exchange.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import timeit

import numpy as np
import pyarrow as pa
import torch

import dlbridge

try:
    import tvm_ffi
except ImportError:  # benchmark-only anchor
    tvm_ffi = None


class StructOnly:
    """Forwards only `__array_struct__`, so np.asarray must use it."""

    def __init__(self, source):
        self._source = source

    @property
    def __array_struct__(self):
        return self._source.__array_struct__


class InterfaceOnly:
    """Forwards only `__array_interface__`, so both importers must read the dict."""

    def __init__(self, source):
        self._source = source

    @property
    def __array_interface__(self):
        return self._source.__array_interface__


def rows(big: bool):
    small = np.ones((4, 4), dtype=np.float32)  # 64 bytes
    t = dlbridge.asarray(small)
    x = torch.ones(4, 4)
    mv = memoryview(np.ones((4, 4), dtype=np.float32))
    out = [
        ("np.from_dlpack(t)", "np.from_dlpack(t)", "np.from_dlpack(a)", 1.0),
        ("torch.from_dlpack(t)", "torch.from_dlpack(t)", "torch.from_dlpack(a)", 1.0),
        ("memoryview(t)", "memoryview(t)", "memoryview(a)", 1.0),
        ("np.asarray(struct-only t)", "np.asarray(st)", "np.asarray(sa)", 1.0),
        ("t.__array_interface__", "t.__array_interface__", "a.__array_interface__", 0.5),
        ("dlbridge.asarray(ndarray)", "dlbridge.asarray(a)", "np.from_dlpack(a)", 1.0),
        ("dlbridge.asarray(memoryview)", "dlbridge.asarray(mv)", "np.asarray(mv)", 1.0),
        ("dlbridge.asarray(struct-only)", "dlbridge.asarray(sa)", "np.asarray(sa)", 1.0),
        ("dlbridge.asarray(interface-only)", "dlbridge.asarray(ia)", "np.asarray(ia)", 1.0),
        ("dlbridge.zeros((256,256))", "dlbridge.zeros((256, 256))", "np.zeros((256, 256), np.float32)", 1.0),
        ("dlbridge.empty((256,256))", "dlbridge.empty((256, 256))", "np.empty((256, 256), np.float32)", 1.0),
        # Arrow in: a primitive pyarrow array (np.asarray is its zero-copy
        # to_numpy), and a table's FixedSizeList column (a one-chunk
        # ChunkedArray: the __arrow_c_stream__ path) beside NumPy's view of
        # its values, reshaped (np.asarray of it is an object array).
        ("dlbridge.asarray(pa.array)", "dlbridge.asarray(arrow)", "np.asarray(arrow)", 1.0),
        ("dlbridge.asarray(FixedSizeList col)", "dlbridge.asarray(column)",
         "column.chunk(0).values.to_numpy().reshape(4, 4)", 1.2),
    ]
    env = {
        "np": np,
        "torch": torch,
        "dlbridge": dlbridge,
        "t": t,
        "a": small,
        "x": x,
        "mv": mv,
        "st": StructOnly(t),
        "sa": StructOnly(small),
        "ia": InterfaceOnly(small),
        "arrow": pa.array(small.ravel()),
        "column": pa.chunked_array([pa.FixedSizeListArray.from_arrays(small.ravel(), 4)]),
    }
    if tvm_ffi is not None:
        env["tvm_ffi"] = tvm_ffi
        env["v"] = tvm_ffi.from_dlpack(x)
        out += [
            ("dlbridge.asarray(torch)", "dlbridge.asarray(x)", "tvm_ffi.from_dlpack(x)", 1.0),
            ("torch.from_dlpack(t) vs tvm", "torch.from_dlpack(t)", "torch.from_dlpack(v)", 1.0),
        ]
    if big:
        env["huge"] = np.ones(256 * 1024 * 1024 // 4, dtype=np.float32)  # 256 MiB
        out += [
            ("asarray: 256 MiB vs 64 B", "dlbridge.asarray(huge)", "dlbridge.asarray(a)", 1.1),
            ("memoryview: 256 MiB vs 64 B", "memoryview(dlbridge.asarray(huge))", "memoryview(dlbridge.asarray(a))", 1.1),
        ]
    return out, env


def measure(stmt: str, env: dict, number: int) -> float:
    return timeit.Timer(stmt, globals=env).timeit(number) / number * 1e9


def run(rounds: int, number: int, big: bool) -> list[dict]:
    table, env = rows(big)
    results = []
    for label, ours, anchor, target in table:
        mine, theirs = [], []
        for r in range(rounds):
            pair = [(ours, mine), (anchor, theirs)]
            for stmt, sink in pair if r % 2 == 0 else reversed(pair):
                sink.append(measure(stmt, env, number))
        m, a = statistics.median(mine), statistics.median(theirs)
        results.append(
            {"exchange": label, "dlbridge": ours, "anchor": anchor, "dlbridge_ns": m, "anchor_ns": a,
             "ratio": m / a, "target": target, "meets": m / a <= target}
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds; under a minute")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    rounds, number = (5, 2000) if args.quick else (15, 20000)
    results = run(rounds, number, big=not args.quick)
    print(f"dlbridge {dlbridge.__version__} | numpy {np.__version__} | torch {torch.__version__} | "
          f"tvm_ffi {getattr(tvm_ffi, '__version__', 'absent')} | Python {platform.python_version()} | "
          f"{platform.machine()} | {rounds} rounds x {number} calls, median ns/call")
    print(f"{'exchange':<30}{'dlbridge':>10}{'anchor':>10}{'ratio':>8}{'target':>8}")
    for r in results:
        flag = "" if r["meets"] else "  (over target)"
        print(f"{r['exchange']:<30}{r['dlbridge_ns']:>10.0f}{r['anchor_ns']:>10.0f}{r['ratio']:>8.2f}{r['target']:>8.1f}{flag}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rounds": rounds, "number": number, "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
