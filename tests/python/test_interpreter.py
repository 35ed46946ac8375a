"""Interpreter edge cases: shutdown with live tensors, deleters on foreign
threads without the GIL, producers that misbehave."""

from __future__ import annotations

import ctypes
import gc
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import dlbridge
from cbuild import load


@pytest.fixture(scope="module")
def consumer():
    lib = load("dlpack_consumer")
    lib.take.argtypes = [ctypes.py_object]
    lib.take.restype = ctypes.c_size_t
    lib.read_f64.argtypes = [ctypes.c_size_t, ctypes.c_int64]
    lib.read_f64.restype = ctypes.c_double
    lib.delete_in_thread.argtypes = [ctypes.c_size_t]
    lib.delete_in_thread.restype = ctypes.c_int
    return lib


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-X", "dev", "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_tensors_alive_at_shutdown_exit_cleanly():
    result = run_python(
        """
        import mmap, numpy as np, torch, dlbridge
        a = np.arange(6.0)
        t = dlbridge.asarray(a)                        # DLPack owner
        view = np.from_dlpack(t)                       # export alive at exit
        r = dlbridge.zeros((1024,))                    # Rust owner
        x = torch.from_dlpack(r)
        m = mmap.mmap(-1, 64)
        b = dlbridge.from_buffer(m, dtype="float64")   # Py_buffer owner
        mv = memoryview(b)
        unconsumed = t.__dlpack__(max_version=(1, 0))  # capsule never consumed
        legacy = r.__dlpack__()
        print("ok", view.sum(), float(x.sum()), len(mv))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok 15.0 0.0 8")
    assert "Exception ignored" not in result.stderr and "Fatal" not in result.stderr, result.stderr


def test_deleter_from_a_foreign_thread_without_the_gil(consumer):
    start = dlbridge.live_buffers()
    t = dlbridge.asarray(np.arange(4.0) + 10)
    r = dlbridge.zeros(8, dtype="float64")
    taken = [consumer.take(x.__dlpack__(max_version=(1, 0))) for x in (t, r)]
    assert consumer.read_f64(taken[0], 3) == 13.0
    del t, r
    gc.collect()
    assert dlbridge.live_buffers() == start + 1, "the foreign consumer still holds the Rust buffer"
    for managed in taken:
        assert consumer.delete_in_thread(managed) == 0
    assert dlbridge.live_buffers() == start


def test_buffer_owner_released_from_a_foreign_thread(consumer):
    class Exporter(bytearray):
        pass

    source = Exporter(b"\x00" * 64)
    base = sys.getrefcount(source)
    t = dlbridge.from_buffer(source, dtype="float64")
    managed = consumer.take(t.__dlpack__(max_version=(1, 0)))
    del t
    gc.collect()
    with pytest.raises(BufferError):
        source.extend(b"x")  # still exported: the foreign consumer holds the view
    assert consumer.delete_in_thread(managed) == 0  # releases the Py_buffer, attaching to the interpreter
    gc.collect()
    assert sys.getrefcount(source) == base
    source.extend(b"x")  # released: resizable again


def test_consumed_capsule_cannot_be_consumed_again_nor_double_freed():
    start = dlbridge.live_buffers()
    cap = dlbridge.zeros(4).__dlpack__(max_version=(1, 0))
    first = dlbridge.from_dlpack(cap)
    with pytest.raises(ValueError, match="already been consumed"):
        dlbridge.from_dlpack(cap)
    with pytest.raises((ValueError, RuntimeError, AttributeError)):
        np.from_dlpack(cap)  # NumPy wants a producer, not a capsule (AttributeError)
    del cap, first
    gc.collect()
    assert dlbridge.live_buffers() == start


class Broken:
    def __init__(self, result):
        self.result = result

    def __dlpack__(self, **kwargs):
        if isinstance(self.result, BaseException):
            # A fresh instance: raising the stored one would tie its
            # traceback (and this frame's `self`) to the producer.
            raise type(self.result)(*self.result.args)
        return self.result


@pytest.mark.parametrize(
    "result, error",
    [
        (RuntimeError("producer exploded"), RuntimeError),
        (BufferError("cannot export"), BufferError),
        (None, TypeError),
        (b"dltensor", TypeError),
        (object(), TypeError),
    ],
)
def test_misbehaving_producers_raise_cleanly(result, error):
    producer = Broken(result)
    base = sys.getrefcount(producer)
    with pytest.raises(error) as info:
        dlbridge.from_dlpack(producer)
    del info  # its traceback holds the producer's frame
    gc.collect()
    assert sys.getrefcount(producer) == base


def test_producer_returning_an_unrelated_capsule():
    from dlpack_structs import capsule

    foreign = capsule(name=b"foo")
    with pytest.raises(TypeError, match="not a DLPack capsule"):
        dlbridge.from_dlpack(Broken(foreign))
