"""DLPack and CUDA array interface pass-through with real CUDA tensors (run on
a GPU machine; CI has none).

dlbridge never touches device memory: a CUDA tensor must come in and go out
through DLPack and `__cuda_array_interface__` with its device, pointer and
strides unchanged, every host-only protocol must refuse it with BufferError,
streams must be ordered as docs/cuda.md says, and the producer's memory must
be released once the last view is gone. PyTorch, CuPy (`cupy-cuda12x`) and
Numba (`numba-cuda`) are the producers and consumers, each both ways; CuPy
and Numba are optional (reported when missing). Prints one line per check
and exits non-zero if any fails (2 without a CUDA device); then times the
exchanges beside torch's own. A check the environment cannot run (a
library that cannot compile kernels under the installed NumPy, say) is
reported as skipped, with the reason, never as dlbridge's failure.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import timeit
import traceback

import torch

import dlbridge

FAILURES: list[str] = []
SKIPS: list[str] = []


def check(label: str, ok: bool, detail: str = "") -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {label}{': ' + detail if detail else ''}")
    if not ok:
        FAILURES.append(label)


def skip(label: str, reason: str) -> None:
    print(f"  skip {label}: {reason}")
    SKIPS.append(label)


def refuses(func) -> str | None:
    try:
        func()
    except BufferError as exc:
        return f"BufferError: {exc}"
    except Exception as exc:  # noqa: BLE001 - report whatever it was
        return f"{type(exc).__name__} (expected BufferError): {exc}"
    return None


@contextlib.contextmanager
def section(name: str):
    """One group of checks: a missing optional library is reported, any other
    exception is a failure of the group (the run goes on)."""
    print(f"-- {name}")
    try:
        yield
    except ImportError as exc:
        print(f"  (skipped: {exc})")
    except Exception as exc:  # noqa: BLE001 - report whatever it was, go on
        traceback.print_exc()
        check(f"{name} ran to the end", False, f"{type(exc).__name__}: {exc}")


def spin(stream) -> None:
    """Keeps `stream` busy for a while (~50 ms), so work queued behind it is
    still pending when the other side looks: an unordered read would see the
    old values."""
    with torch.cuda.stream(stream):
        torch.cuda._sleep(100_000_000)


def cuda_array_interface_checks() -> None:
    """torch, CuPy and Numba to dlbridge and back through __cuda_array_interface__."""
    device = torch.cuda.current_device()
    with section("torch <-> dlbridge through __cuda_array_interface__"):
        x = torch.arange(12, dtype=torch.float32, device="cuda").reshape(3, 4)
        t = dlbridge.from_cuda_array_interface(x)  # torch's interface is version 2
        check("torch -> dlbridge: pointer, device, strides",
              t.data_ptr == x.data_ptr() and t.device == (2, device) and t.strides == (16, 4)
              and t.source == "cuda_array_interface", repr(t))
        interface = t.__cuda_array_interface__
        check("export: version 3, stream 1, same pointer",
              interface["version"] == 3 and interface["stream"] == 1 and interface["data"] == (x.data_ptr(), False),
              str(interface))
        y = torch.as_tensor(t, device="cuda")  # torch reads __cuda_array_interface__
        check("dlbridge -> torch: same memory", y.data_ptr() == x.data_ptr(), f"{y.data_ptr():#x}")
        y.mul_(2)  # a kernel writing through one view ...
        torch.cuda.synchronize()
        check("kernel write through torch's view read through the producer", x[2, 3].item() == 22.0)
        v = x.t()
        tv = dlbridge.from_cuda_array_interface(v)
        check("transposed view: strides kept", tv.strides == (4, 16) and tv.data_ptr == v.data_ptr(), str(tv.strides))
        check("CPU tensor declines", not hasattr(dlbridge.zeros(2), "__cuda_array_interface__"))
        del x, t, y, v, tv
    with section("CuPy <-> dlbridge"):
        import cupy

        c = cupy.arange(10, dtype=cupy.float64)
        tc = dlbridge.from_cuda_array_interface(c)
        check("cupy -> dlbridge (interface): pointer", tc.data_ptr == c.data.ptr and tc.device == (2, device))
        ta = dlbridge.asarray(c)
        check("cupy -> dlbridge (asarray): pointer", ta.data_ptr == c.data.ptr, ta.source)
        back = cupy.asarray(tc)  # CuPy reads __cuda_array_interface__
        check("dlbridge -> cupy: same memory", back.data.ptr == c.data.ptr)
        back += 1  # a CuPy kernel through the round trip
        cupy.cuda.Device().synchronize()
        check("CuPy kernel write read through the producer", float(c[3]) == 4.0)
        x = torch.zeros(8, device="cuda")
        cx = cupy.asarray(dlbridge.asarray(x))
        cx[:] = 5
        cupy.cuda.Device().synchronize()
        check("torch -> dlbridge -> cupy: a CuPy write seen by torch", x.sum().item() == 40.0)
        del c, tc, ta, back, x, cx
    with section("Numba <-> dlbridge"):
        import numpy as np
        from numba import cuda as ncuda

        # Both ways without a kernel first: what dlbridge does, whatever
        # Numba's compiler can do on this machine.
        x = torch.zeros(64, device="cuda")
        nd = ncuda.as_cuda_array(dlbridge.asarray(x))  # Numba reads __cuda_array_interface__ (stream 1)
        check("dlbridge -> numba: same memory", nd.__cuda_array_interface__["data"][0] == x.data_ptr())
        x.fill_(2)
        torch.cuda.synchronize()
        check("a torch write read through Numba's view", list(nd.copy_to_host()) == [2.0] * 64)
        n = ncuda.to_device(np.arange(6, dtype=np.int32))
        tn = dlbridge.from_cuda_array_interface(n)
        check("numba -> dlbridge: pointer", tn.data_ptr == n.__cuda_array_interface__["data"][0] and tn.dtype == "int32")
        yn = torch.from_dlpack(tn)
        yn += 10
        torch.cuda.synchronize()
        check("numba -> dlbridge -> torch: a torch write seen by Numba", list(n.copy_to_host()) == list(range(10, 16)))
        try:
            @ncuda.jit
            def add_one(a):
                i = ncuda.grid(1)
                if i < a.size:
                    a[i] += 1

            add_one[1, 64](nd)
        except Exception as exc:  # noqa: BLE001 - Numba's compiler, not dlbridge: the environment's problem
            skip("Numba kernel write read through torch",
                 f"numba-cuda cannot compile a kernel here (numba-cuda with NumPy {np.__version__}): "
                 f"{type(exc).__name__}: {exc}")
        else:
            ncuda.synchronize()
            check("Numba kernel write read through torch", x.sum().item() == 3.0 * 64)
        del x, nd, n, tn, yn


def stream_checks() -> None:
    """Non-default streams: dlbridge waits on a CUDA array interface producer's
    stream, and makes a DLPack consumer's stream wait."""
    with section("streams"):
        producer = torch.cuda.Stream()
        z = torch.zeros(1 << 20, device="cuda")
        torch.cuda.synchronize()
        spin(producer)
        with torch.cuda.stream(producer):
            z.fill_(3)  # queued behind the spin

        class OnStream:
            # torch's interface (version 2) names no stream: this one does.
            __cuda_array_interface__ = {**z.__cuda_array_interface__, "version": 3, "stream": producer.cuda_stream}

        tz = dlbridge.from_cuda_array_interface(OnStream())
        check("import waited on the producer's stream", producer.query(), "the stream still had work queued")
        spin(producer)
        with torch.cuda.stream(producer):
            z.fill_(4)
        dlbridge.from_cuda_array_interface(OnStream(), sync=False)
        check("sync=False does not wait", not producer.query())
        producer.synchronize()

        consumer = torch.cuda.Stream()
        w = torch.zeros(1 << 20, device="cuda")
        tw = dlbridge.asarray(w)
        legacy = torch.cuda.default_stream()
        spin(legacy)
        with torch.cuda.stream(legacy):
            w.fill_(7)  # queued on the legacy default stream, where dlbridge's tensors are ready
        cap = tw.__dlpack__(stream=consumer.cuda_stream, max_version=(1, 0))
        with torch.cuda.stream(consumer):
            seen = torch.from_dlpack(cap).sum()
        consumer.synchronize()
        check("__dlpack__(stream=s): s waited for the legacy default stream", seen.item() == 7.0 * (1 << 20), str(seen.item()))
        for value in (None, 1, -1, 2):
            tw.__dlpack__(stream=value)
        check("__dlpack__ stream values None, 1, -1, 2 accepted", True)
        del z, tz, w, tw, cap, seen


def lifetime_checks() -> None:
    """Memory freed after the last view, through the CUDA array interface."""
    with section("lifetime through __cuda_array_interface__"):
        big = torch.empty(64 << 20, dtype=torch.uint8, device="cuda")
        torch.cuda.synchronize()
        with_big = torch.cuda.memory_allocated()
        tb = dlbridge.from_cuda_array_interface(big)
        view = torch.as_tensor(tb, device="cuda")
        del big
        check("producer dropped first: memory still held", torch.cuda.memory_allocated() == with_big)
        del tb
        check("dlbridge tensor dropped: still held by torch's view", torch.cuda.memory_allocated() == with_big)
        del view
        torch.cuda.synchronize()
        check("last view gone: memory released", torch.cuda.memory_allocated() < with_big)


def host_refusal_checks(t) -> None:
    """Every host-only path refuses a CUDA tensor. A function of its own:
    the lambdas (and a loop variable holding the last of them) die with its
    frame, so they keep no tensor alive past the memory check at the end."""
    for label, func in {
        "memoryview": lambda: memoryview(t),
        "__array_interface__": lambda: t.__array_interface__,
        "__array_struct__": lambda: t.__array_struct__,
        "copy()": lambda: t.copy(),
        "numpy()": lambda: t.numpy(),
        "__dlpack__(dl_device=(1, 0))": lambda: t.__dlpack__(dl_device=(1, 0)),
    }.items():
        refusal = refuses(func)
        check(f"{label} refused", refusal is not None and refusal.startswith("BufferError"), str(refusal))


def main() -> int:
    if not torch.cuda.is_available():
        print("cuda_passthrough.py needs a CUDA device and a CUDA build of torch; none here "
              f"(torch {torch.__version__}, torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
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
    host_refusal_checks(t)
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

    cuda_array_interface_checks()
    stream_checks()
    lifetime_checks()
    torch.cuda.synchronize()

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
    print(f"\n{len(FAILURES)} failures, {len(SKIPS)} skipped (the environment could not run them)")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
