"""dlbridge demo: one block of memory passed NumPy -> dlbridge -> PyTorch -> NumPy.

Run with `make demo`. Prints the data pointer at every hop (they are all the
same address: nothing is copied), shows a write travelling back, and times the
exchanges beside NumPy's own (medians of interleaved rounds, same process).
"""

from __future__ import annotations

import statistics
import time

import ml_dtypes
import numpy as np
import torch

import dlbridge


class StructOnly:
    """Speaks only `__array_struct__`, so NumPy must use it."""

    def __init__(self, source):
        self.source = source

    @property
    def __array_struct__(self):
        return self.source.__array_struct__


class InterfaceOnly:
    """Speaks only `__array_interface__`."""

    def __init__(self, source):
        self.source = source
        self.__array_interface__ = source.__array_interface__


def hop(label: str, ptr: int, origin: int) -> None:
    print(f"  {label:<38} data_ptr={ptr:#x}  {'same' if ptr == origin else 'COPIED'}")


def exchanges() -> None:
    print(f"dlbridge {dlbridge.__version__}, numpy {np.__version__}, torch {torch.__version__}\n")
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    origin = a.ctypes.data
    print("NumPy -> dlbridge -> PyTorch -> NumPy")
    hop("numpy.ndarray", origin, origin)
    t = dlbridge.asarray(a)
    hop("dlbridge.asarray(a)", t.data_ptr, origin)
    x = torch.from_dlpack(t)
    hop("torch.from_dlpack(t)", x.data_ptr(), origin)
    b = np.from_dlpack(dlbridge.asarray(x))
    hop("np.from_dlpack(dlbridge.asarray(x))", b.ctypes.data, origin)
    x[1, 2] = -1.0
    print(f"  write through torch: x[1, 2] = -1  ->  a[1, 2] = {a[1, 2]}, b[1, 2] = {b[1, 2]}\n")

    print("Non-contiguous and readonly views keep their layout and flags")
    v = a[::-1, ::2]
    tv = dlbridge.asarray(v)
    print(f"  a[::-1, ::2]: numpy strides {v.strides}, dlbridge strides {tv.strides}, torch rejects negative strides:")
    try:
        torch.from_dlpack(tv)
    except (BufferError, RuntimeError) as exc:
        print(f"    {type(exc).__name__}: {str(exc)[:70]}")
    ro = a.copy()
    ro.flags.writeable = False
    tro = dlbridge.asarray(ro)
    print(f"  readonly numpy -> {tro!r}")
    print(f"  np.from_dlpack(t).flags.writeable = {np.from_dlpack(tro).flags.writeable}\n")

    print("PyTorch dtypes NumPy lacks travel through dlbridge untouched")
    for dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2):
        src = torch.ones(4, dtype=dtype)
        back = torch.from_dlpack(dlbridge.asarray(src))
        print(f"  {str(dtype):<22} -> {dlbridge.asarray(src).dtype:<14} round trip same ptr: {back.data_ptr() == src.data_ptr()}")
    print("\nEvery protocol, both ways, one address")
    hop("memoryview(t)  (buffer protocol)", np.frombuffer(memoryview(t), np.uint8).ctypes.data, origin)
    hop("np.asarray(struct-only wrapper of t)", np.asarray(StructOnly(t)).ctypes.data, origin)
    hop("np.asarray(interface-only wrapper)", np.asarray(InterfaceOnly(t)).ctypes.data, origin)
    hop("dlbridge.asarray(memoryview(a))", dlbridge.asarray(memoryview(a)).data_ptr, origin)
    hop("dlbridge.from_array_interface(a)", dlbridge.from_array_interface(a).data_ptr, origin)
    bf = np.arange(4, dtype=ml_dtypes.bfloat16)
    tb = torch.from_dlpack(dlbridge.asarray(bf))
    print(f"  ml_dtypes bfloat16 ndarray -> torch {tb.dtype}, same ptr: {tb.data_ptr() == bf.ctypes.data}; "
          f"back: {dlbridge.asarray(tb).numpy().dtype}")
    r = dlbridge.zeros((2, 3), dtype="float64")
    live = dlbridge.live_buffers()
    n = np.from_dlpack(r)
    del r
    print(f"\nRust-owned memory outlives its Tensor while NumPy views it: live_buffers={live}, view sum={n.sum()}")
    del n
    print(f"  after the view is gone: live_buffers={dlbridge.live_buffers()}\n")


def per_call_ns(fn, number: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(number):
        fn()
    return (time.perf_counter_ns() - start) / number


def timings(rounds: int = 15, number: int = 20000) -> None:
    a = np.ones((256, 256), dtype=np.float32)
    t = dlbridge.asarray(a)
    x = torch.ones(256, 256)
    rows = [
        ("np.from_dlpack(t)", lambda: np.from_dlpack(t), "np.from_dlpack(ndarray)", lambda: np.from_dlpack(a)),
        ("torch.from_dlpack(t)", lambda: torch.from_dlpack(t), "torch.from_dlpack(ndarray)", lambda: torch.from_dlpack(a)),
        ("dlbridge.asarray(ndarray)", lambda: dlbridge.asarray(a), "np.from_dlpack(ndarray)", lambda: np.from_dlpack(a)),
        ("dlbridge.asarray(torch)", lambda: dlbridge.asarray(x), "np.from_dlpack(torch)", lambda: np.from_dlpack(x)),
        ("t.__dlpack__()", lambda: t.__dlpack__(), "ndarray.__dlpack__()", lambda: a.__dlpack__()),
        ("memoryview(t)", lambda: memoryview(t), "memoryview(ndarray)", lambda: memoryview(a)),
        ("t.__array_interface__", lambda: t.__array_interface__, "ndarray.__array_interface__",
         lambda: a.__array_interface__),
    ]
    print(f"Timings: median of {rounds} interleaved rounds x {number} calls, ns per call")
    print(f"  {'dlbridge':<28}{'ns':>8}   {'anchor':<28}{'ns':>8}   ratio")
    for ours_label, ours, anchor_label, anchor in rows:
        mine, theirs = [], []
        for _ in range(rounds):
            mine.append(per_call_ns(ours, number))
            theirs.append(per_call_ns(anchor, number))
        m, o = statistics.median(mine), statistics.median(theirs)
        print(f"  {ours_label:<28}{m:>8.0f}   {anchor_label:<28}{o:>8.0f}   {m / o:5.2f}")


if __name__ == "__main__":
    exchanges()
    timings()
