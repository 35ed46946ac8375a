"""GPU checks: DLPack conformance and the CUDA import through torch's C
exchange table, on a real CUDA device (`make test-gpu`).

Skipped where no CUDA device is found (torch's CPU builds, machines without
a GPU); tests/python/test_cuda_dlpack.py checks the same logic there with a
stand-in producer and driver. Run against an installed dlbridge (a wheel),
not a build tree. scripts/cuda_passthrough.py (run by `make test-gpu` after
this file) covers the protocols' pass-through, CuPy, Numba and lifetimes.
"""

from __future__ import annotations

import ctypes
import gc

import pytest

import torch

import dlbridge

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason=f"no CUDA device (torch {torch.__version__}: torch.cuda.is_available() is False)",
)


def counts():
    return dlbridge._native._testing.fast_path_counts()


def spin(stream) -> None:
    """Keeps `stream` busy for a while (~50 ms): work queued behind it is
    still pending when another stream looks."""
    with torch.cuda.stream(stream):
        torch.cuda._sleep(100_000_000)


class Recorder:
    """A torch CUDA tensor behind a Python `__dlpack__`: records the keywords."""

    def __init__(self, x):
        self.x = x
        self.calls = []

    def __dlpack__(self, **kwargs):
        self.calls.append(kwargs)
        return self.x.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.x.__dlpack_device__()


def test_copy_true_makes_a_same_device_copy():
    x = torch.arange(8.0, device="cuda")
    t = dlbridge.from_dlpack(x, copy=True)
    assert t.device == (2, x.device.index) and t.data_ptr != x.data_ptr()
    y = torch.from_dlpack(t)
    assert torch.equal(y, x)
    y.fill_(-1)
    torch.cuda.synchronize()
    assert x[3].item() == 3.0  # a copy: writes do not reach the producer


@pytest.mark.parametrize("device", [None, "cuda", "cuda:0", (2, 0), torch.device("cuda:0"), torch.device("cuda")],
                         ids=repr)
def test_device_values(device):
    x = torch.ones(4, device="cuda:0")
    assert dlbridge.from_dlpack(x, device=device).data_ptr == x.data_ptr()


def test_device_cpu_asks_torch_for_a_host_copy():
    x = torch.arange(4.0, device="cuda")
    t = dlbridge.from_dlpack(x, device="cpu")
    assert t.device == (1, 0) and list(t.numpy()) == [0.0, 1.0, 2.0, 3.0]


def test_the_consumer_names_stream_1():
    r = Recorder(torch.ones(4, device="cuda"))
    dlbridge.from_dlpack(r)
    assert r.calls == [{"max_version": (1, 3), "stream": 1}]


def test_torch_cuda_import_takes_the_exchange_table():
    x = torch.arange(6.0, device="cuda")
    before = counts()["exchange_api"]
    t = dlbridge.asarray(x)
    assert (t.data_ptr, t.device) == (x.data_ptr(), (2, x.device.index))
    assert counts()["exchange_api"] == before + 1


def test_exchange_import_orders_a_producer_stream():
    """torch writes on a non-default stream behind a long kernel; dlbridge's
    import must make the legacy default stream wait for it."""
    producer = torch.cuda.Stream()
    z = torch.zeros(1 << 20, device="cuda")
    torch.cuda.synchronize()
    spin(producer)
    with torch.cuda.stream(producer):
        z.fill_(3)
        t = dlbridge.asarray(z)  # current_work_stream is `producer` here
    with torch.cuda.stream(torch.cuda.default_stream()):
        total = torch.from_dlpack(t).sum()  # read on the legacy default stream
    torch.cuda.synchronize()
    assert total.item() == 3.0 * (1 << 20)


def test_own_table_names_the_legacy_default_stream():
    cap = type(dlbridge.zeros(1)).__dlpack_c_exchange_api__
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    table = get(cap, b"dlpack_exchange_api")
    fn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int32, ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p))(
        ctypes.c_void_p.from_address(table + 48).value)
    out = ctypes.c_void_p()
    assert fn(2, 0, ctypes.byref(out)) == 0 and out.value == 1


def test_round_trips_leave_memory_flat():
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    x = torch.empty(1 << 20, device="cuda")
    for _ in range(2000):
        torch.from_dlpack(dlbridge.asarray(x))
    del x
    gc.collect()
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == base
