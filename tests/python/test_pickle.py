"""Pickling (protocol 5 out of band, zero-copy; in band; protocols 0-4),
`copy.copy` / `copy.deepcopy`, and the reconstructor's checks."""

from __future__ import annotations

import copy
import ctypes
import gc
import os
import pickle
import sys

import ml_dtypes
import numpy as np
import pytest
import torch

import dlbridge
from dlbridge._native import _rebuild_tensor
from dlpack_structs import capsule
from framework_versions import float8_param
from pickle_error_cases import strided_exporter

# Every dtype dlbridge names, and two vector dtypes only DLPack can say.
NAMES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16",
         "float32", "float64", "bfloat16", "complex32", "complex64", "complex128", "float8_e3m4",
         "float8_e4m3", "float8_e4m3b11fnuz", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
         "float8_e5m2fnuz", "float8_e8m0fnu", "float6_e2m3fn", "float6_e3m2fn", "float4_e2m1fn", "void16"]
VECTORS = {"float64_x8": (2, 64, 8), "float4_e2m1fn_x2": (17, 4, 2)}


def tensor_of(dtype: str, shape=(3, 5)) -> dlbridge.Tensor:
    """A Rust-owned tensor of `dtype` filled with random bytes."""
    if dtype in VECTORS:
        t = dlbridge.from_dlpack(capsule(shape=shape, dtype=VECTORS[dtype])).copy()
    else:
        t = dlbridge.empty(shape, dtype=dtype)
    ctypes.memmove(t.data_ptr, os.urandom(t.nbytes), t.nbytes)
    return t


def raw(t: dlbridge.Tensor) -> bytes:
    """The bytes of a C- or F-contiguous tensor, as they lie in memory."""
    return ctypes.string_at(t.data_ptr, t.nbytes)


def out_of_band(t):
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(t, protocol=5, buffer_callback=buffers.append)
    return data, buffers


@pytest.mark.parametrize("dtype", NAMES + list(VECTORS))
@pytest.mark.parametrize("protocol", [0, 2, 4, 5, "5-oob"])
def test_every_dtype_round_trips(dtype, protocol):
    t = tensor_of(dtype)
    if protocol == "5-oob":
        data, buffers = out_of_band(t)
        assert len(buffers) == 1
        u = pickle.loads(data, buffers=buffers)
        assert u.data_ptr == t.data_ptr  # the very same memory
    else:
        u = pickle.loads(pickle.dumps(t, protocol=protocol))
        assert u.data_ptr != t.data_ptr
    assert (u.dtype, u.shape, u.strides, u.readonly, u.device) == (t.dtype, t.shape, t.strides, False, (1, 0))
    assert raw(u) == raw(t)


def test_out_of_band_is_one_uncopied_buffer_of_plain_bytes():
    t = tensor_of("float32", (256, 1024))
    data, (buffer,) = out_of_band(t)
    assert len(data) < 200  # the description only; the megabyte is not in it
    view = buffer.raw()
    assert (view.format, view.nbytes, view.readonly) == ("B", t.nbytes, False)
    assert np.frombuffer(view, np.uint8).ctypes.data == t.data_ptr
    u = pickle.loads(data, buffers=[buffer])
    np.asarray(u)[0, 0] = 42.0  # one memory: a write through the copy is seen by the original
    assert np.asarray(t)[0, 0] == 42.0


def test_out_of_band_owner_lives_until_the_last_view_and_is_freed_once():
    gc.collect()
    before = dlbridge.live_buffers()
    t = tensor_of("int64", (1000,))
    expected = raw(t)
    data, buffers = out_of_band(t)
    del t
    u = pickle.loads(data, buffers=buffers)
    del buffers
    gc.collect()
    assert dlbridge.live_buffers() == before + 1  # the Rust block, kept alive by the unpickled view
    assert raw(u) == expected
    del u
    gc.collect()
    assert dlbridge.live_buffers() == before


def test_readonly_is_kept_out_of_band_and_in_band():
    a = np.arange(6.0)
    a.flags.writeable = False
    t = dlbridge.asarray(a)
    data, (buffer,) = out_of_band(t)
    assert buffer.raw().readonly
    u = pickle.loads(data, buffers=[buffer])
    assert u.readonly and u.data_ptr == a.ctypes.data
    for protocol in range(6):
        u = pickle.loads(pickle.dumps(t, protocol=protocol))
        assert u.readonly
        np.testing.assert_array_equal(np.asarray(u), a)
    assert memoryview(u).readonly and not np.asarray(u).flags.writeable  # readonly all the way down


def test_readonly_follows_the_buffer_pickle_gives():
    # In band, protocol 5 writes a writable PickleBuffer as a bytearray and
    # a readonly one as bytes; out of band, the transport chooses the buffer.
    t = tensor_of("uint8", (8,))
    data, (buffer,) = out_of_band(t)
    readonly_bytes = bytes(buffer.raw())
    u = pickle.loads(data, buffers=[readonly_bytes])
    assert u.readonly and raw(u) == raw(t)
    assert u.data_ptr == np.frombuffer(readonly_bytes, np.uint8).ctypes.data  # over the bytes, no copy
    fresh = bytearray(buffer.raw())
    u = pickle.loads(data, buffers=[fresh])
    assert not u.readonly and u.data_ptr == np.frombuffer(fresh, np.uint8).ctypes.data
    np.asarray(u)[0] = 7
    assert fresh[0] == 7
    # The reconstructor itself: the flag or a readonly buffer makes it readonly.
    assert _rebuild_tensor(bytearray(4), 1, 8, 1, (4,), "C", False).readonly is False
    assert _rebuild_tensor(bytearray(4), 1, 8, 1, (4,), "C", True).readonly is True
    assert _rebuild_tensor(b"abcd", 1, 8, 1, (4,), "C", False).readonly is True


@pytest.mark.parametrize("protocol", [4, 5])
def test_in_band_copies_once_and_keeps_writability(protocol):
    t = tensor_of("float64", (4, 4))
    u = pickle.loads(pickle.dumps(t, protocol=protocol))
    assert not u.readonly and u.data_ptr != t.data_ptr and raw(u) == raw(t)
    np.asarray(u)[0, 0] = 1.5
    assert np.asarray(u)[0, 0] == 1.5


def test_fortran_order_travels_as_is():
    a = np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4))
    t = dlbridge.asarray(a)
    data, (buffer,) = out_of_band(t)
    u = pickle.loads(data, buffers=[buffer])
    assert u.strides == a.strides and u.data_ptr == a.ctypes.data
    np.testing.assert_array_equal(np.asarray(u), a)
    u = pickle.loads(pickle.dumps(t, protocol=2))
    assert u.strides == a.strides
    np.testing.assert_array_equal(np.asarray(u), a)


@pytest.mark.parametrize("view", [
    lambda a: a[:, ::2],
    lambda a: a[::-1],
    lambda a: a.transpose(1, 0, 2),
    lambda a: np.broadcast_to(a[:1], a.shape),
])
@pytest.mark.parametrize("protocol", [2, 5])
def test_strided_tensors_are_made_contiguous_once(view, protocol):
    a = np.arange(4 * 6 * 2, dtype=np.float32).reshape(4, 6, 2)
    v = view(a)
    t = dlbridge.asarray(v)
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(t, protocol=protocol, buffer_callback=buffers.append if protocol == 5 else None)
    if protocol == 5:
        assert buffers[0].raw().nbytes == v.nbytes  # only the elements travel
    u = pickle.loads(data, buffers=buffers)
    assert u.strides == np.ascontiguousarray(v).strides
    np.testing.assert_array_equal(np.asarray(u), v)


@pytest.mark.parametrize("shape", [(), (0,), (0, 3), (3, 0, 2), (1, 1)])
def test_scalars_and_empty_tensors(shape):
    t = tensor_of("float32", shape)
    for protocol in (2, 5):
        u = pickle.loads(pickle.dumps(t, protocol=protocol))
        assert (u.shape, u.dtype, u.strides) == (t.shape, t.dtype, t.strides)
        assert raw(u) == raw(t)
    data, buffers = out_of_band(t)
    assert pickle.loads(data, buffers=buffers).shape == shape


@pytest.mark.parametrize("dtype", [torch.bfloat16, float8_param(torch.float8_e4m3fn), float8_param(torch.float8_e5m2)])
def test_torch_dtypes_numpy_cannot_say(dtype):
    x = torch.randn(4, 3).to(dtype)
    t = dlbridge.asarray(x)
    data, buffers = out_of_band(t)
    back = torch.from_dlpack(pickle.loads(data, buffers=buffers))
    assert back.dtype == dtype and back.data_ptr() == x.data_ptr()
    copied = torch.from_dlpack(pickle.loads(pickle.dumps(t, protocol=3)))
    assert copied.dtype == dtype and torch.equal(copied.view(torch.uint8), x.view(torch.uint8))


def test_numpy_reads_an_unpickled_bfloat16():
    a = np.arange(6, dtype=np.float32).astype(ml_dtypes.bfloat16)
    t = dlbridge.asarray(torch.from_numpy(a.view(np.uint16)).view(torch.bfloat16))
    u = pickle.loads(pickle.dumps(t, protocol=5))
    assert u.numpy().dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(u.numpy(), a)


def test_non_cpu_tensors_are_refused():
    t = dlbridge.from_dlpack(capsule(device=(2, 0), data=0x10000))
    for protocol in (2, 5):
        with pytest.raises(BufferError, match="pickling needs CPU memory, but the tensor is on device cuda:0"):
            pickle.dumps(t, protocol=protocol)
    assert copy.copy(t).device == (2, 0)  # a view needs no memory access
    with pytest.raises(BufferError, match="needs CPU memory"):
        copy.deepcopy(t)


def test_copy_is_a_new_view_of_the_same_memory():
    a = np.arange(6.0)
    t = dlbridge.asarray(a)
    c = copy.copy(t)
    assert c is not t and c.data_ptr == t.data_ptr == a.ctypes.data
    assert (c.shape, c.strides, c.dtype, c.readonly, c.source) == (t.shape, t.strides, t.dtype, False, t.source)
    np.asarray(c)[1] = 9.0
    assert a[1] == 9.0
    a.flags.writeable = False
    assert copy.copy(dlbridge.asarray(a)).readonly


def test_deepcopy_is_a_rust_owned_copy():
    a = np.arange(12.0).reshape(3, 4)[:, ::2]
    a.flags.writeable = False
    t = dlbridge.asarray(a)
    d = copy.deepcopy(t)
    assert d.source == "rust" and d.data_ptr != t.data_ptr and not d.readonly
    assert d.strides == (16, 8)
    np.testing.assert_array_equal(np.asarray(d), a)
    pair = copy.deepcopy([t, t])  # deepcopy's memo keeps shared references shared
    assert pair[0] is pair[1] and pair[0].data_ptr != t.data_ptr


def reduced(t, protocol=5):
    function, args = t.__reduce_ex__(protocol)
    assert function is _rebuild_tensor
    return args


def test_reduce_names_the_module_level_reconstructor():
    t = tensor_of("bfloat16", (2, 3))
    data, code, bits, lanes, shape, order, readonly = reduced(t)
    assert isinstance(data, pickle.PickleBuffer)
    assert (code, bits, lanes, shape, order, readonly) == (4, 16, 1, (2, 3), "C", False)
    assert _rebuild_tensor.__module__ == "dlbridge._native"
    assert type(reduced(t, 4)[0]) is bytearray
    assert type(reduced(t.copy().__copy__(), 4)[0]) is bytearray


GOOD = (bytearray(24), 2, 32, 1, (2, 3), "C", False)


def rebuild(**changes):
    names = ["data", "code", "bits", "lanes", "shape", "order", "readonly"]
    args = dict(zip(names, GOOD))
    args.update(changes)
    return _rebuild_tensor(*args.values())


@pytest.mark.parametrize("changes, exception, message", [
    ({"data": 3}, TypeError, "pickled tensor: its data must support the buffer protocol, got 3"),
    ({"data": bytearray(20)}, ValueError, "needs 24 bytes, but its data has 20"),
    ({"data": bytearray(28)}, ValueError, "needs 24 bytes, but its data has 28"),
    # One exception for non-contiguous data, whatever the exporter would say.
    ({"data": memoryview(bytearray(48))[::2]}, ValueError, "is not a contiguous buffer"),
    ({"data": np.zeros(12, np.float32)[::2]}, ValueError, "is not a contiguous buffer"),
    ({"data": strided_exporter()}, ValueError, "is not a contiguous buffer"),
    ({"code": 99}, ValueError, "pickled tensor has an invalid dtype: unsupported DLPack dtype"),
    ({"code": 256}, ValueError, "dtype code 256 is outside [0, 255]"),
    ({"code": -1}, ValueError, "dtype code -1 is outside [0, 255]"),
    ({"code": "2"}, TypeError, "dtype code must be an int, got '2'"),
    ({"code": True}, TypeError, "dtype code must be an int, got True"),
    ({"bits": 2**70}, ValueError, "dtype bits 1180591620717411303424 is outside [0, 255]"),
    ({"bits": 24}, ValueError, "no dtype with this code and bit width"),
    ({"lanes": 0}, ValueError, "zero lanes"),
    ({"lanes": 2**16}, ValueError, "dtype lanes 65536 is outside [0, 65535]"),
    ({"code": 17, "bits": 4, "lanes": 3}, ValueError, "packed sub-byte"),
    ({"shape": [2, 3]}, TypeError, "pickled tensor shape must be a tuple of ints, got [2, 3]"),
    ({"shape": (2, "3")}, TypeError, "pickled tensor shape must be a tuple of ints, got (2, '3')"),
    ({"shape": (2, -3)}, ValueError, "shape has a negative extent -3 on axis 1"),
    ({"shape": (2**64, 1)}, ValueError, "has an entry that is not an int in range"),
    ({"shape": (0, 2**64 - 1)}, ValueError, "has an entry that is not an int in range"),
    ({"shape": (2**62, 2**2)}, ValueError, "does not fit in isize"),
    ({"shape": (1,) * 65}, ValueError, "pickled tensor shape has 65 entries, more than the maximum of 64"),
    ({"order": "A"}, ValueError, "order must be \"C\" or \"F\", got \"A\""),
    ({"order": b"C"}, TypeError, "order must be \"C\" or \"F\", got b'C'"),
    ({"readonly": 0}, TypeError, "readonly must be a bool, got 0"),
])
def test_the_reconstructor_refuses_hostile_arguments(changes, exception, message):
    with pytest.raises(exception) as info:
        rebuild(**changes)
    assert type(info.value) is exception
    assert message in str(info.value)


def test_the_reconstructor_releases_a_refused_buffer():
    data = bytearray(20)
    with pytest.raises(ValueError):
        rebuild(data=data)
    data.extend(b"1234")  # a bytearray with a live export could not be resized
    assert rebuild(data=data).shape == (2, 3)


def test_the_reconstructor_orders():
    data = bytes(range(24))
    c = rebuild(data=data, code=1, bits=8, shape=(2, 3, 4))
    f = rebuild(data=data, code=1, bits=8, shape=(2, 3, 4), order="F")
    assert (c.strides, f.strides) == ((12, 4, 1), (1, 2, 6))
    np.testing.assert_array_equal(np.asarray(f), np.frombuffer(data, np.uint8).reshape(2, 3, 4, order="F"))
    assert rebuild(data=b"", code=1, bits=8, shape=(0, 5), order="F").strides == (5, 1)


def test_producers_are_released_when_the_last_view_goes():
    a = np.arange(100.0)
    data = bytearray(800)
    before = sys.getrefcount(a), sys.getrefcount(data)
    t = dlbridge.asarray(a)
    pickled, buffers = out_of_band(t)
    del t  # the producer's owner now lives in the PickleBuffer ...
    u = pickle.loads(pickled, buffers=buffers)
    del buffers  # ... and then in the unpickled view
    assert sys.getrefcount(a) > before[0]
    v = _rebuild_tensor(data, 2, 64, 1, (100,), "C", False)
    assert sys.getrefcount(data) > before[1]
    np.testing.assert_array_equal(np.asarray(u), a)
    del u, v
    gc.collect()
    assert (sys.getrefcount(a), sys.getrefcount(data)) == before
    data.extend(b"x")  # no export left: a bytearray with one could not resize
