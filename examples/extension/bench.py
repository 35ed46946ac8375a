"""Per-call timings of the example extension against its NumPy-only baseline.

`make bench-extension` (after `make develop-extension`). The same Rust work
on both sides: `sum`/`sum_f64` vs `np_sum` (accept one array), `arange` vs
`np_arange` (return one Rust-owned array, no copy on either side), `scale` vs
`np_scale` (both). The baseline is rust-numpy, which takes only NumPy arrays;
the rows below the table are inputs only dlbridge takes.

Median of REPEAT runs of NUMBER calls each, in nanoseconds per call, all
from one process.
"""

from __future__ import annotations

import platform
import statistics
import timeit

import numpy as np
import torch

import dlbridge
import dlbridge_example as ex

NUMBER = 20_000
REPEAT = 15


def per_call_ns(stmt: str, **names) -> float:
    timer = timeit.Timer(stmt, globals=names)
    timer.timeit(NUMBER // 10)  # warm up
    runs = timer.repeat(repeat=REPEAT, number=NUMBER)
    return statistics.median(runs) / NUMBER * 1e9


class ArrayInterfaceOnly:
    def __init__(self, base):
        self.base = base
        self.__array_interface__ = base.__array_interface__


def main() -> None:
    a = np.arange(16, dtype=np.float64)
    pairs = [
        ("accept one array: sum(x), x = float64[16]", "f(a)", ex.sum, ex.np_sum),
        ("accept one array, typed: sum_f64(x)", "f(a)", ex.sum_f64, ex.np_sum),
        ("accept one array: data_ptr(x)", "f(a)", ex.data_ptr, ex.np_data_ptr),
        ("return one array: arange(16)", "f(16)", ex.arange, ex.np_arange),
        ("accept and return: scale(x, 2.0)", "f(a, 2.0)", ex.scale, ex.np_scale),
    ]
    print(f"# dlbridge_example vs rust-numpy baseline ({platform.machine()}, "
          f"Python {platform.python_version()}, NumPy {np.__version__}, "
          f"torch {torch.__version__}); median of {REPEAT} x {NUMBER} calls\n")
    print("| call | dlbridge ns/call | rust-numpy ns/call | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for label, stmt, ours, baseline in pairs:
        mine = per_call_ns(stmt, f=ours, a=a)
        theirs = per_call_ns(stmt, f=baseline, a=a)
        print(f"| {label} | {mine:.0f} | {theirs:.0f} | {mine / theirs:.2f}x |")

    others = {
        "torch.Tensor float64[16]": torch.arange(16, dtype=torch.float64),
        "memoryview of float64[16]": memoryview(a),
        "dlbridge.Tensor float64[16]": dlbridge.asarray(a),
        "__array_interface__ only": ArrayInterfaceOnly(a),
    }
    print("\nInputs only dlbridge takes (rust-numpy: TypeError):\n")
    print("| sum(x) with x = | dlbridge ns/call |")
    print("| --- | ---: |")
    for label, x in others.items():
        try:
            ex.sum(x)
        except TypeError as err:  # a spoke not built in yet
            print(f"| {label} | n/a ({err}) |")
            continue
        print(f"| {label} | {per_call_ns('f(x)', f=ex.sum, x=x):.0f} |")


if __name__ == "__main__":
    main()
