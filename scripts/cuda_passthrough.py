"""DLPack pass-through with real CUDA tensors (run on a GPU machine; CI has none).

dlbridge never touches device memory: a CUDA tensor must come in and go out
through DLPack with its device, pointer and strides unchanged, every
host-only protocol must refuse it with BufferError, and the producer's memory
must be released once the last view is gone. Prints one line per check and
exits non-zero if any fails; then times the exchanges beside torch's own.
"""

from __future__ import annotations

import statistics
import sys
import timeit

import torch

import dlbridge

FAILURES: list[str] = []


def check(label: str, ok: bool, detail: str = "") -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {label}{': ' + detail if detail else ''}")
    if not ok:
        FAILURES.append(label)


def refuses(func) -> str | None:
    try:
        func()
    except BufferError as exc:
        return f"BufferError: {exc}"
    except Exception as exc:  # noqa: BLE001 - report whatever it was
        return f"{type(exc).__name__} (expected BufferError): {exc}"
    return None


def main() -> int:
    assert torch.cuda.is_available(), "needs a CUDA device"
    print(f"dlbridge {dlbridge.__version__}, torch {torch.__version__}, {torch.cuda.get_device_name()}")
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    x = torch.arange(12, dtype=torch.float32, device="cuda").reshape(3, 4)
    t = dlbridge.asarray(x)
    check("device kept", t.device == (2, 0) and t.__dlpack_device__() == (2, 0), repr(t))
    check("pointer kept", t.data_ptr == x.data_ptr(), hex(t.data_ptr))
    y = torch.from_dlpack(t)
    check("torch.from_dlpack(t) shares memory", y.data_ptr() == x.data_ptr() and y.device == x.device)
    y[1, 2] = -1
    torch.cuda.synchronize()
    check("write through the round trip", x[1, 2].item() == -1.0)
    v = x.t()[::2]
    tv = dlbridge.from_dlpack(v)
    check("strided view keeps strides", tv.strides == tuple(s * 4 for s in v.stride()), f"{tv.strides}")
    w = torch.from_dlpack(tv)
    check("strided view back to torch", w.data_ptr() == v.data_ptr() and w.stride() == v.stride())
    for dtype in (torch.bfloat16, torch.float16, torch.int8, torch.bool, torch.complex64, torch.float8_e4m3fn):
        z = torch.zeros(5, dtype=dtype, device="cuda")
        tz = dlbridge.asarray(z)
        back = torch.from_dlpack(tz)
        check(f"{dtype} round trip", back.dtype == dtype and back.data_ptr() == z.data_ptr(), tz.dtype)
        del z, tz, back
    for label, func in {
        # `t=t` binds the tensor now: the name is deleted further down.
        "memoryview": lambda t=t: memoryview(t),
        "__array_interface__": lambda t=t: t.__array_interface__,
        "__array_struct__": lambda t=t: t.__array_struct__,
        "copy()": lambda t=t: t.copy(),
        "numpy()": lambda t=t: t.numpy(),
        "__dlpack__(dl_device=(1, 0))": lambda t=t: t.__dlpack__(dl_device=(1, 0)),
    }.items():
        refusal = refuses(func)
        check(f"{label} refused", refusal is not None and refusal.startswith("BufferError"), str(refusal))
    try:
        import numpy as np

        refusal = None
        np.from_dlpack(t)
    except Exception as exc:  # noqa: BLE001
        refusal = f"{type(exc).__name__}: {exc}"
    check("np.from_dlpack(cuda t) refused by NumPy", refusal is not None, str(refusal))
    try:
        import cupy

        c = cupy.from_dlpack(t)
        check("cupy.from_dlpack(t) shares memory", c.data.ptr == x.data_ptr(), f"{c.data.ptr:#x}")
        tc = dlbridge.asarray(c)
        check("dlbridge.asarray(cupy) keeps pointer", tc.data_ptr == x.data_ptr() and tc.device == (2, 0))
        del c, tc
    except ImportError:
        print("  (cupy not installed)")

    big = torch.empty(64 << 20, dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()
    with_big = torch.cuda.memory_allocated()
    tb = dlbridge.asarray(big)
    yb = torch.from_dlpack(tb)
    del big
    torch.cuda.synchronize()
    check("producer dropped first: memory still held", torch.cuda.memory_allocated() == with_big)
    del tb
    check("one consumer left: memory still held", torch.cuda.memory_allocated() == with_big)
    del yb
    torch.cuda.synchronize()
    check("last view gone: memory released", torch.cuda.memory_allocated() < with_big)

    rounds = []
    xs = torch.ones(4, 4, device="cuda")
    ts = dlbridge.asarray(xs)
    for stmt_ours, stmt_theirs in [("dlbridge.asarray(xs)", "torch.from_dlpack(xs)"),
                                   ("torch.from_dlpack(ts)", "torch.from_dlpack(xs)")]:
        env = {"dlbridge": dlbridge, "torch": torch, "xs": xs, "ts": ts}
        ours = [timeit.timeit(stmt_ours, globals=env, number=20000) / 20000 * 1e9 for _ in range(7)]
        theirs = [timeit.timeit(stmt_theirs, globals=env, number=20000) / 20000 * 1e9 for _ in range(7)]
        rounds.append((stmt_ours, statistics.median(ours), stmt_theirs, statistics.median(theirs)))
    print("\nCUDA tensor exchange, median ns/call (7 rounds x 20k calls)")
    for a, m, b, n in rounds:
        print(f"  {a:<24}{m:>8.0f}   vs {b:<24}{n:>8.0f}   ratio {m / n:.2f}")
    del x, t, y, tv, v, w, xs, ts, env
    torch.cuda.synchronize()
    check("all memory back to the start", torch.cuda.memory_allocated() == base,
          f"{torch.cuda.memory_allocated()} vs {base}")
    print(f"\n{len(FAILURES)} failures")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
