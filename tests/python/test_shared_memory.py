"""A tensor in `multiprocessing.shared_memory`, viewed from another process
with no copy, and the segment's lifetime rules (README, "Across processes")."""

from __future__ import annotations

import gc
import multiprocessing
from multiprocessing import shared_memory

import numpy as np
import pytest

import dlbridge
import engine_tasks

TIMEOUT = 120  # seconds: a bound on a hung worker, not a speed test


@pytest.fixture
def segment():
    shm = shared_memory.SharedMemory(create=True, size=4 * 1000)
    yield shm
    gc.collect()  # the views first: close() refuses while one exists
    shm.close()
    try:
        shm.unlink()
    except FileNotFoundError:  # the test unlinked it already
        pass


def test_another_process_views_and_writes_the_same_memory(segment):
    t = dlbridge.asarray(np.arange(1000, dtype=np.float32))
    view = dlbridge.from_buffer(segment.buf, dtype="float32", shape=(1000,))
    assert view.data_ptr == np.frombuffer(segment.buf, np.uint8).ctypes.data and not view.readonly
    np.asarray(view)[...] = np.asarray(t)  # the one copy: into the segment
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        total = pool.apply_async(engine_tasks.in_shared_memory, (segment.name, (1000,), "float32")).get(TIMEOUT)
    assert total == 2 * np.arange(1000).sum()
    np.testing.assert_array_equal(np.asarray(view), 2 * np.asarray(t))  # the child's writes, seen here


def test_a_view_keeps_the_segment_mapped(segment):
    view = dlbridge.from_buffer(segment.buf, dtype="int32")
    np.asarray(view)[...] = 7
    # close() must unmap, and the exporter refuses while dlbridge holds the buffer.
    with pytest.raises(BufferError, match="memoryview has 1 exported buffer"):
        segment.close()
    # unlink() only removes the name: the mapping, and the view, stay valid ...
    segment.unlink()
    with pytest.raises(FileNotFoundError):
        shared_memory.SharedMemory(name=segment.name)  # ... but nobody new can attach
    assert (np.asarray(view) == 7).all()
    np.asarray(view)[0] = 8
    assert bytes(segment.buf[:4]) == np.int32(8).tobytes()
    del view
    gc.collect()
    segment.close()  # with the view gone the segment unmaps


def test_a_slice_of_the_buffer_holds_the_mapping_itself(segment):
    view = dlbridge.from_buffer(segment.buf[:400], dtype="float32")
    # The slice is a memoryview of its own: the segment's memoryview releases,
    # and the mmap under both refuses to close.
    with pytest.raises(BufferError, match="cannot close exported pointers exist"):
        segment.close()
    np.asarray(view)[...] = 1.0
    assert float(np.asarray(view).sum()) == 100.0
    del view
    gc.collect()
