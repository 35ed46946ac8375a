"""Property tests (hypothesis, bounded and derandomized for CI).

Arbitrary NumPy layouts travel through every protocol and come back with the
same values, strides and data pointer; arbitrary array-interface dicts and
typestrs are imported or refused with one of the three documented exceptions,
never a crash, and an accepted layout never reaches outside its buffer.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dlbridge

BOUNDED = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
REFUSALS = (TypeError, ValueError, BufferError)
DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "complex64", "complex128"]


class InterfaceOnly:
    def __init__(self, source, interface=None):
        self.source = source
        self.__array_interface__ = source.__array_interface__ if interface is None else interface


class StructOnly:
    def __init__(self, source):
        self.source = source

    @property
    def __array_struct__(self):
        return self.source.__array_struct__


@st.composite
def layouts(draw):
    """A NumPy view with arbitrary rank, extents, steps (negative too) and order."""
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.lists(st.integers(0, 5), min_size=0, max_size=4))
    base = np.arange(int(np.prod(shape, dtype=np.int64)) * 4 or 1).astype(dtype)
    base = base[: int(np.prod(shape, dtype=np.int64))].reshape(shape)
    if draw(st.booleans()):
        base = np.asfortranarray(base)
    index = tuple(slice(None, None, draw(st.sampled_from([1, 2, -1, -2]))) for _ in shape)
    view = base[index] if index else base[...]  # base[()] would be a scalar
    if view.ndim >= 2 and draw(st.booleans()):
        view = view.swapaxes(0, -1)
    return view


def same_view(a: np.ndarray, t: dlbridge.Tensor) -> None:
    assert t.shape == a.shape
    assert t.dtype == a.dtype.name
    if a.size:
        assert t.data_ptr == a.ctypes.data
        # A stride on an axis of extent 1 is never used; exporters normalise it.
        used = [(n, s) for n, s, m in zip(t.shape, t.strides, a.strides) if n > 1]
        assert used == [(n, m) for n, s, m in zip(t.shape, t.strides, a.strides) if n > 1]


@BOUNDED
@given(layouts())
def test_every_protocol_round_trips_any_layout(a):
    importers = {
        "dlpack": lambda: dlbridge.from_dlpack(a),
        "buffer": lambda: dlbridge.from_buffer(a),
        "array_struct": lambda: dlbridge.from_array_interface(StructOnly(a)),
        "array_interface": lambda: dlbridge.from_array_interface(InterfaceOnly(a)),
    }
    for source, importer in importers.items():
        t = importer()
        # An exact ndarray's DLPack import reads its fields (source "ndarray").
        assert t.source == source or (source, t.source) == ("dlpack", "ndarray")
        same_view(a, t)
        for exported in (np.from_dlpack(t), np.asarray(t), np.asarray(StructOnly(t)), np.asarray(InterfaceOnly(t))):
            np.testing.assert_array_equal(exported, a)
            if a.size:
                assert exported.ctypes.data == a.ctypes.data


@BOUNDED
@given(st.text(max_size=12) | st.sampled_from(["<f4", "|b1", ">i8", "<c16", "|V2", "<M8[s]", "=u2", "f8", "<f16"]))
def test_any_typestr_imports_or_is_refused_cleanly(typestr):
    data = np.zeros(16, np.uint8)
    interface = {"version": 3, "typestr": typestr, "shape": (1,), "data": (data.ctypes.data, False)}
    try:
        t = dlbridge.from_array_interface(InterfaceOnly(data, interface))
    except REFUSALS:
        return
    assert t.itemsize <= 16, f"{typestr!r} imported as {t.dtype}, wider than any dtype dlbridge knows"


@BOUNDED
@given(
    shape=st.lists(st.integers(-2, 6), max_size=4),
    strides=st.none() | st.lists(st.integers(-64, 64), max_size=4),
    offset=st.integers(-2, 80),
    typestr=st.sampled_from(["|u1", "<i2", "<f4", "<f8"]),
)
def test_any_buffer_backed_dict_stays_inside_its_buffer(shape, strides, offset, typestr):
    data = bytearray(range(64))
    interface = {"version": 3, "typestr": typestr, "shape": tuple(shape), "data": data, "offset": offset}
    if strides is not None:
        interface["strides"] = tuple(strides)
    try:
        t = dlbridge.from_array_interface(InterfaceOnly(np.zeros(1), interface))
    except REFUSALS:
        return
    base = np.frombuffer(data, np.uint8).ctypes.data
    if t.size:
        low = t.data_ptr + sum(min(0, (n - 1) * s) for n, s in zip(t.shape, t.strides))
        high = t.data_ptr + t.itemsize + sum(max(0, (n - 1) * s) for n, s in zip(t.shape, t.strides))
        assert base <= low and high <= base + len(data)
        np.testing.assert_array_equal(np.asarray(t).reshape(-1)[:1], np.asarray(t).reshape(-1)[:1])
    del t
    data.append(0)  # the buffer was released: the bytearray can resize again
