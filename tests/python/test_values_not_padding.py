"""Dtypes the buffer format and the typestr cannot name reach NumPy as values.

NumPy's coercion (``np.asarray``, ``np.array``, pandas) asks the buffer
protocol, then ``__array_struct__``/``__array_interface__``, then
``__array__``. A bfloat16 tensor exported as PEP 3118 ``"2x"`` or typestr
``|V2`` reads as a record of padding (``[() () ()]``); so those exports are
refused for such dtypes and NumPy reaches ``__array__``, which gives the
``ml_dtypes`` dtype. Vector dtypes (lanes > 1) show their lanes as a
trailing axis; packed sub-byte lanes are refused.
"""

import ml_dtypes
import numpy as np
import pandas as pd
import pytest

import dlbridge
from dlbridge._native import _rebuild_tensor

ML_DTYPES = [
    name
    for name in [
        "bfloat16",
        "float8_e3m4",
        "float8_e4m3",
        "float8_e4m3b11fnuz",
        "float8_e4m3fn",
        "float8_e4m3fnuz",
        "float8_e5m2",
        "float8_e5m2fnuz",
        "float8_e8m0fnu",
        "float6_e2m3fn",
        "float6_e3m2fn",
        "float4_e2m1fn",
    ]
    if hasattr(ml_dtypes, name)
]


def values(name: str) -> np.ndarray:
    # Values every one of these formats holds exactly (e8m0 has no zero).
    return np.array([1.0, 2.0, 4.0, 0.5, 1.0, 2.0], dtype=getattr(ml_dtypes, name)).reshape(2, 3)


@pytest.fixture(params=ML_DTYPES)
def source(request):
    return values(request.param)


def test_every_ml_dtype_is_covered():
    # ml_dtypes 0.6 has all twelve DLPack knows; an older one fewer.
    assert {"bfloat16", "float8_e4m3fn", "float8_e5m2", "float4_e2m1fn"} <= set(ML_DTYPES)


@pytest.mark.parametrize("coerce", ["asarray", "array", "__array__", "numpy"])
def test_values_not_padding(source, coerce):
    t = dlbridge.asarray(source)
    assert t.dtype == source.dtype.name
    out = {
        "asarray": np.asarray,
        "array": np.array,
        "__array__": lambda t: t.__array__(),
        "numpy": lambda t: t.numpy(),
    }[coerce](t)
    assert out.dtype == source.dtype, out.dtype
    assert out.dtype.names is None
    np.testing.assert_array_equal(out.astype(np.float32), source.astype(np.float32))
    if coerce in ("asarray", "__array__", "numpy"):
        # Zero-copy: the same address, and a write through the tensor's
        # source is seen through NumPy's array.
        assert out.ctypes.data == source.ctypes.data
        source[0, 0] = source.dtype.type(2.0)
        assert float(out[0, 0]) == 2.0
    elif coerce == "array":
        assert out.ctypes.data != source.ctypes.data


def test_pandas_series_of_a_1d_tensor(source):
    t = dlbridge.asarray(source.ravel())
    s = pd.Series(t)
    assert s.dtype == source.dtype
    np.testing.assert_array_equal(s.to_numpy().astype(np.float32), source.ravel().astype(np.float32))


def test_strided_and_readonly_keep_their_values():
    a = values("bfloat16")
    a.flags.writeable = False
    t = dlbridge.asarray(a[:, ::2])
    out = np.asarray(t)
    assert out.dtype == ml_dtypes.bfloat16 and not out.flags.writeable
    np.testing.assert_array_equal(out, a[:, ::2])
    assert out.ctypes.data == a.ctypes.data


def test_interfaces_absent_and_formatted_buffer_refused():
    t = dlbridge.asarray(values("bfloat16"))
    for name in ("__array_interface__", "__array_struct__"):
        assert not hasattr(t, name)
        with pytest.raises(AttributeError, match=r"dtype bfloat16 has no __array_"):
            getattr(t, name)
    with pytest.raises(BufferError, match=r"dtype bfloat16 has no PEP 3118 format"):
        memoryview(t)


def test_bytes_route_stays():
    a = values("bfloat16")
    t = dlbridge.asarray(a)
    as_bytes = t.view("uint8")
    assert as_bytes.shape == (2, 6)
    np.testing.assert_array_equal(np.asarray(as_bytes), a.view(np.uint8))
    assert memoryview(t.view("uint16")).format == "H"


def test_opaque_bytes_are_v_not_padding():
    raw = np.arange(8, dtype=np.uint8)
    t = dlbridge.asarray(raw).view("void16")
    out = np.asarray(t)
    assert out.dtype == np.dtype("V2") and out.dtype.names is None
    assert out.tobytes() == raw.tobytes()
    assert out.ctypes.data == raw.ctypes.data


def vector(lanes: int = 4) -> tuple[np.ndarray, dlbridge.Tensor]:
    flat = np.arange(12, dtype=np.float32)
    return flat, _rebuild_tensor(flat, 2, 32, lanes, (12 // lanes,), "C", False)


@pytest.mark.parametrize("coerce", [np.asarray, np.array, lambda t: t.numpy(), lambda t: t.__array__()])
def test_vector_lanes_are_a_trailing_axis(coerce):
    flat, t = vector()
    assert t.dtype == "float32_x4"
    out = coerce(t)
    assert out.shape == (3, 4) and out.dtype == np.float32
    np.testing.assert_array_equal(out, flat.reshape(3, 4))


def test_vector_iteration_and_jax():
    jnp = pytest.importorskip("jax.numpy")
    flat, t = vector(2)
    rows = list(t)
    assert len(rows) == 6
    np.testing.assert_array_equal(rows[1], [2.0, 3.0])
    np.testing.assert_array_equal(np.asarray(jnp.asarray(t)), flat.reshape(6, 2))


def test_vector_interfaces_absent():
    _, t = vector()
    assert not hasattr(t, "__array_interface__")
    with pytest.raises(BufferError, match="float32_x4 has no PEP 3118 format"):
        memoryview(t)


def test_packed_sub_byte_lanes_refused():
    t = _rebuild_tensor(bytearray(4), 17, 4, 2, (4,), "C", False)
    assert t.dtype == "float4_e2m1fn_x2"
    for coerce in (np.asarray, lambda t: t.numpy(), list):
        with pytest.raises(BufferError, match="float4_e2m1fn_x2 packs 2 lanes of 4 bits"):
            coerce(t)
