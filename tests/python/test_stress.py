"""Bounded stress: many exchanges through every protocol, from many threads,
with memory, refcounts and live buffers back where they started."""

from __future__ import annotations

import gc
import sys
import threading

import numpy as np
import torch

import dlbridge
from array_interface_structs import PyArrayInterface
from dlpack_structs import capsule_pointer

MIB = 1 << 20


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


def exchange_round(a: np.ndarray, mv: memoryview) -> None:
    t = dlbridge.asarray(a)                       # DLPack in
    assert np.from_dlpack(t).ctypes.data == a.ctypes.data   # DLPack out to NumPy
    assert torch.from_dlpack(t).data_ptr() == a.ctypes.data  # ... to PyTorch
    with memoryview(t) as view:                   # buffer out
        assert view.nbytes == MIB
    b = dlbridge.from_buffer(a)                   # buffer in
    assert b.data_ptr == a.ctypes.data
    c = dlbridge.asarray(mv)                      # memoryview in
    assert c.data_ptr == a.ctypes.data
    assert np.asarray(t).ctypes.data == a.ctypes.data        # NumPy's own discovery
    assert t.__array_interface__["data"] == (a.ctypes.data, False)  # array interface out
    capsule = t.__array_struct__                  # kept alive while its struct is read
    assert PyArrayInterface.from_address(capsule_pointer(capsule, None)).data == a.ctypes.data


def test_twenty_thousand_rounds_leak_nothing():
    a = np.ones(MIB // 8)
    base_refs, base_live = sys.getrefcount(a), dlbridge.live_buffers()
    mv = memoryview(a)
    for _ in range(500):  # warm caches and allocator pools
        exchange_round(a, mv)
    gc.collect()
    before = rss_bytes()
    for i in range(20_000):
        exchange_round(a, mv)
        if i % 1000 == 0:
            copy = dlbridge.asarray(a, copy=True)  # Rust-owned 1 MiB, freed each time
            assert np.from_dlpack(copy).sum() == a.size
            del copy
    gc.collect()
    growth = rss_bytes() - before
    assert growth < 8 * MIB, f"RSS grew by {growth / MIB:.1f} MiB"
    del mv
    gc.collect()
    assert sys.getrefcount(a) == base_refs
    assert dlbridge.live_buffers() == base_live


def test_eight_threads_share_one_array():
    shared = np.arange(MIB // 8, dtype=np.float64)
    base_refs, base_live = sys.getrefcount(shared), dlbridge.live_buffers()
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(seed: int) -> None:
        try:
            barrier.wait()
            for i in range(3000):
                t = dlbridge.asarray(shared)
                if i % 3 == 0:
                    assert np.from_dlpack(t)[seed] == seed
                elif i % 3 == 1:
                    assert torch.from_dlpack(t)[seed].item() == seed
                else:
                    with memoryview(t) as view:
                        assert view[seed] == seed
                r = dlbridge.zeros(4) if i % 100 == 0 else None
                del t, r
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    gc.collect()
    assert sys.getrefcount(shared) == base_refs
    assert dlbridge.live_buffers() == base_live


def test_rust_owned_tensors_released_on_other_threads():
    base = dlbridge.live_buffers()
    tensors = [dlbridge.zeros((16, 16)) for _ in range(400)]
    views = [np.from_dlpack(t) for t in tensors]
    assert dlbridge.live_buffers() == base + 400
    del tensors  # the NumPy views keep every buffer alive
    gc.collect()
    assert dlbridge.live_buffers() == base + 400
    chunks = [views[k::4] for k in range(4)]
    del views
    errors: list[BaseException] = []

    def drop(chunk: list) -> None:
        try:  # an assertion in a thread would not fail the test: report it to the main thread
            assert all(v.sum() == 0 for v in chunk)
        except BaseException as exc:
            errors.append(exc)
        chunk.clear()

    threads = [threading.Thread(target=drop, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    del chunks
    gc.collect()
    assert dlbridge.live_buffers() == base
