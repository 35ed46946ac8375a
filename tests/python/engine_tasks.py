"""Tasks that run in other processes (multiprocessing, Dask and Ray workers).

A module of its own, importing only dlbridge and NumPy, so that a worker
that unpickles a task by reference imports nothing heavy (not pytest, not
the engines)."""

from __future__ import annotations

import ctypes
import gc
from multiprocessing import shared_memory

import numpy as np

import dlbridge


def received(t: dlbridge.Tensor) -> tuple[str, tuple[int, ...], bool, str, bytes]:
    """What arrived: dtype, shape, readonly, source and the bytes (of a C-contiguous tensor)."""
    return t.dtype, t.shape, t.readonly, t.source, ctypes.string_at(t.data_ptr, t.nbytes)


def doubled(t: dlbridge.Tensor) -> tuple[tuple, str, dlbridge.Tensor]:
    """Reports what arrived and returns a new Rust-owned tensor of twice
    its values (float32), with the source it had in this process."""
    out = dlbridge.empty(t.shape, dtype="float32")
    np.asarray(out)[...] = t.numpy().astype(np.float32) * 2
    return received(t), out.source, out


def in_shared_memory(name: str, shape: tuple[int, ...], dtype: str) -> float:
    """Attaches to a shared segment, views it with no copy, doubles its
    values in place, and returns their sum."""
    shm = shared_memory.SharedMemory(name=name)
    view = dlbridge.from_buffer(shm.buf, dtype=dtype, shape=shape)
    assert view.data_ptr == np.frombuffer(shm.buf, np.uint8).ctypes.data
    values = np.asarray(view)
    values *= 2
    total = float(values.sum())
    del values, view  # the view keeps the segment's buffer exported: close() would refuse
    gc.collect()
    shm.close()
    return total
