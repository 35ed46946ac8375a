"""Framework consumers and producers users meet first: pyarrow, polars,
pandas, JAX (issue 14, item 8's named consumers).

 1  `Tensor.__arrow_c_array__`: the Arrow PyCapsule interface, zero-copy
      test_arrow_primitive, test_arrow_float16, test_arrow_write_through,
      test_arrow_nd_is_nested_fixed_size_lists, test_arrow_empty,
      test_arrow_readonly_tensor, test_arrow_numpy_producer_released_once,
      test_arrow_rust_owner_released_once, test_arrow_unconsumed_capsules_release,
      test_arrow_consumed_capsules_do_not_release_again, test_arrow_child_outlives_parent,
      test_arrow_requested_schema_honoured, test_arrow_requested_schema_refused,
      test_arrow_refusals_release_nothing, test_arrow_table_column
 2  polars takes the capsules: test_polars_series, test_polars_series_nd,
      test_polars_series_releases_the_producer
 3  JAX: `jnp.asarray(t)` through `__jax_array__`, a copy as for an ndarray
      test_jax_asarray_values_and_dtypes, test_jax_asarray_is_a_snapshot,
      test_jax_asarray_readonly_tensor, test_jax_asarray_arguments,
      test_jax_traced_functions_refuse_a_tensor
 4  pandas takes a tensor through `__array__` (`__iter__` makes it list-like)
      test_iter, test_pandas_series_shares_memory, test_pandas_series_copy,
      test_pandas_dataframe
 5  pandas and polars as producers for `dlbridge.asarray`
      test_asarray_pandas_series, test_asarray_pandas_series_that_must_copy,
      test_asarray_pandas_dataframe, test_asarray_polars_series,
      test_asarray_polars_series_that_must_copy
"""

from __future__ import annotations

import ctypes
import gc
import re
import sys

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import dlbridge
from dlpack_structs import capsule

try:  # optional: the tests that need polars skip without it
    import polars as pl
except ImportError:
    pl = None
needs_polars = pytest.mark.skipif(pl is None, reason="polars is not installed")

_is_valid = ctypes.pythonapi.PyCapsule_IsValid
_is_valid.argtypes = [ctypes.py_object, ctypes.c_char_p]
_is_valid.restype = ctypes.c_int


def released(check):
    """Runs `check` after a collection (pyarrow and polars free on refcount,
    but an earlier test's garbage must not be counted either way)."""
    gc.collect()
    return check()


# ------------------------------------------------------------------ 1: Arrow --

PRIMITIVES = [
    ("int8", pa.int8()), ("uint8", pa.uint8()), ("int16", pa.int16()), ("uint16", pa.uint16()),
    ("int32", pa.int32()), ("uint32", pa.uint32()), ("int64", pa.int64()), ("uint64", pa.uint64()),
    ("float32", pa.float32()), ("float64", pa.float64()),
]


@pytest.mark.parametrize(("dtype", "arrow_type"), PRIMITIVES, ids=[p[0] for p in PRIMITIVES])
def test_arrow_primitive(dtype, arrow_type):
    a = np.arange(7).astype(dtype)
    t = dlbridge.asarray(a)
    arr = pa.array(t)
    assert arr.type == arrow_type and arr.null_count == 0
    assert arr.to_pylist() == a.tolist()
    assert arr.buffers()[0] is None  # no validity bitmap
    assert arr.buffers()[1].address == t.data_ptr == a.ctypes.data


def test_arrow_float16():
    a = np.array([0.5, -2.0, 65504.0], dtype=np.float16)
    arr = pa.array(dlbridge.asarray(a))
    assert arr.type == pa.float16() and arr.buffers()[1].address == a.ctypes.data
    assert arr.to_numpy(zero_copy_only=True).tolist() == a.tolist()


def test_arrow_write_through():
    t = dlbridge.zeros(5, dtype="int64")
    arr = pa.array(t)
    np.asarray(t)[:] = [5, 4, 3, 2, 1]  # the tensor is writable; Arrow reads the same bytes
    assert arr.to_pylist() == [5, 4, 3, 2, 1]
    view = arr.to_numpy(zero_copy_only=True)
    assert view.ctypes.data == t.data_ptr and not view.flags.writeable  # Arrow's side is read-only


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4), (4, 1), (1, 5)])
def test_arrow_nd_is_nested_fixed_size_lists(shape):
    a = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    t = dlbridge.asarray(a)
    arr = pa.array(t)
    expected = pa.float32()
    for extent in reversed(shape[1:]):
        expected = pa.list_(expected, extent)
    assert arr.type == expected and len(arr) == shape[0]
    assert arr.to_pylist() == a.tolist()
    leaves = arr
    while pa.types.is_fixed_size_list(leaves.type):
        leaves = leaves.values
    assert leaves.buffers()[1].address == a.ctypes.data and len(leaves) == a.size


def test_arrow_empty():
    for shape in ((0,), (0, 3), (3, 0)):
        arr = pa.array(dlbridge.zeros(shape))
        assert len(arr) == shape[0] and arr.to_pylist() == np.zeros(shape).tolist()
        arr.validate(full=True)


def test_arrow_readonly_tensor():
    a = np.arange(4.0)
    a.flags.writeable = False
    t = dlbridge.asarray(a)
    assert t.readonly
    arr = pa.array(t)  # Arrow arrays are immutable: a readonly tensor exports as any other
    assert arr.buffers()[1].address == a.ctypes.data and arr.to_pylist() == [0.0, 1.0, 2.0, 3.0]


def test_arrow_numpy_producer_released_once():
    a = np.arange(6, dtype=np.float64)
    before = sys.getrefcount(a)
    t = dlbridge.asarray(a)
    arr = pa.array(t)
    del t
    gc.collect()
    assert sys.getrefcount(a) > before  # the Arrow array alone keeps the ndarray alive
    assert arr.to_pylist() == a.tolist() and arr.buffers()[1].address == a.ctypes.data
    del arr
    assert released(lambda: sys.getrefcount(a)) == before


def test_arrow_rust_owner_released_once():
    live = released(dlbridge.live_buffers)
    t = dlbridge.zeros((3, 2), dtype="int32")
    np.asarray(t)[...] = [[1, 2], [3, 4], [5, 6]]
    arr = pa.array(t)
    del t
    assert released(dlbridge.live_buffers) == live + 1
    assert arr.to_pylist() == [[1, 2], [3, 4], [5, 6]]
    del arr
    assert released(dlbridge.live_buffers) == live


def test_arrow_unconsumed_capsules_release():
    live = released(dlbridge.live_buffers)
    t = dlbridge.zeros(4)
    schema, array = t.__arrow_c_array__()
    assert _is_valid(schema, b"arrow_schema") == 1 and _is_valid(array, b"arrow_array") == 1
    del t
    assert released(dlbridge.live_buffers) == live + 1  # the capsule holds the memory
    del schema, array  # never consumed: their destructors call release
    assert released(dlbridge.live_buffers) == live


def test_arrow_consumed_capsules_do_not_release_again():
    a = np.arange(3, dtype=np.int32)
    before = sys.getrefcount(a)
    schema, array = dlbridge.asarray(a).__arrow_c_array__()
    arr = pa.Array._import_from_c_capsule(schema, array)  # moves both structs out
    del schema, array  # release is NULL in both: the destructors free the structs only
    gc.collect()
    assert arr.to_pylist() == [0, 1, 2] and sys.getrefcount(a) == before + 1
    del arr
    assert released(lambda: sys.getrefcount(a)) == before


def test_arrow_child_outlives_parent():
    a = np.arange(12, dtype=np.int16).reshape(3, 4)
    before = sys.getrefcount(a)
    arr = pa.array(dlbridge.asarray(a))
    values = arr.values
    del arr
    gc.collect()
    assert values.to_pylist() == list(range(12)) and values.buffers()[1].address == a.ctypes.data
    del values
    assert released(lambda: sys.getrefcount(a)) == before


def test_arrow_requested_schema_honoured():
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    t = dlbridge.asarray(a)
    arr = pa.array(t, type=pa.list_(pa.int32(), 3))
    assert arr.to_pylist() == a.tolist() and arr.values.buffers()[1].address == a.ctypes.data
    flat = dlbridge.asarray(a.ravel())
    assert pa.array(flat, type=pa.int32()).buffers()[1].address == a.ctypes.data
    # Names, nullability and metadata are not the data: the formats decide.
    field = pa.field("x", pa.int32(), nullable=False, metadata={"k": "v"})
    schema, _ = flat.__arrow_c_array__(field.__arrow_c_schema__())
    assert pa.DataType._import_from_c_capsule(schema) == pa.int32()


@pytest.mark.parametrize(("tensor", "requested", "shown"), [
    (lambda: dlbridge.zeros(3, dtype="float64"), pa.float32(), '"f"'),
    (lambda: dlbridge.zeros(3, dtype="int64"), pa.list_(pa.int64(), 3), '"+w:3 of l"'),
    (lambda: dlbridge.zeros((2, 3), dtype="int64"), pa.list_(pa.int64(), 2), '"+w:2 of l"'),
    (lambda: dlbridge.zeros((2, 3), dtype="int64"), pa.list_(pa.int64()), '"+l of l"'),
    (lambda: dlbridge.zeros(2, dtype="int8"), pa.struct([("a", pa.int8()), ("b", pa.int8())]), "of another structure"),
])
def test_arrow_requested_schema_refused(tensor, requested, shown):
    live = released(dlbridge.live_buffers)
    t = tensor()
    with pytest.raises(BufferError, match=re.escape(f"requested_schema asks for Arrow type {shown}")):
        pa.array(t, type=requested)
    del t
    assert released(dlbridge.live_buffers) == live


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda: dlbridge.zeros(3, dtype="bool"), "a bool tensor cannot be exported to Arrow"),
    (lambda: dlbridge.zeros(3, dtype="bfloat16"), "a bfloat16 tensor cannot be exported to Arrow"),
    (lambda: dlbridge.zeros(3, dtype="float8_e4m3fn"), "a float8_e4m3fn tensor cannot be exported"),
    (lambda: dlbridge.zeros(3, dtype="complex128"), "a complex128 tensor cannot be exported"),
    (lambda: dlbridge.zeros(3, dtype="V2"), "a void16 tensor cannot be exported"),
    (lambda: dlbridge.zeros(()), "a 0-d tensor cannot be exported to Arrow"),
    (lambda: dlbridge.asarray(np.zeros((3, 4), order="F")), "Arrow needs C-contiguous memory"),
    (lambda: dlbridge.from_dlpack(capsule(device=(2, 0), data=0x10000)), "needs CPU memory"),
])
def test_arrow_refusals_release_nothing(make, fragment):
    live = released(dlbridge.live_buffers)
    t = make()
    with pytest.raises(BufferError, match=fragment):
        pa.array(t)
    with pytest.raises(BufferError, match=fragment):
        t.__arrow_c_array__()
    del t
    assert released(dlbridge.live_buffers) == live


def test_arrow_table_column():
    t = dlbridge.asarray(np.arange(4, dtype=np.int64))
    table = pa.table({"x": t})
    assert table.column("x").chunk(0).buffers()[1].address == t.data_ptr


# ----------------------------------------------------------------- 2: polars --


@needs_polars
def test_polars_series():
    a = np.arange(5, dtype=np.float32)
    s = pl.Series(dlbridge.asarray(a))
    assert s.dtype == pl.Float32 and s.to_list() == a.tolist()
    assert s.to_numpy().ctypes.data == a.ctypes.data  # polars kept the exported buffer
    a[0] = 42  # and so sees writes through the producer
    assert s[0] == 42


@needs_polars
def test_polars_series_nd():
    a = np.arange(6, dtype=np.int64).reshape(2, 3)
    s = pl.Series(dlbridge.asarray(a))
    assert s.dtype == pl.Array(pl.Int64, 3) and s.to_list() == a.tolist()


@needs_polars
def test_polars_series_releases_the_producer():
    a = np.arange(4, dtype=np.uint16)
    before = sys.getrefcount(a)
    s = pl.Series(dlbridge.asarray(a))
    gc.collect()
    assert sys.getrefcount(a) == before + 1 and s.to_list() == [0, 1, 2, 3]
    del s
    assert released(lambda: sys.getrefcount(a)) == before


# -------------------------------------------------------------------- 3: JAX --


@pytest.mark.parametrize("dtype", ["float32", "float16", "int32", "uint8", "bool", "complex64",
                                   ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2])
def test_jax_asarray_values_and_dtypes(dtype):
    a = np.arange(6).reshape(2, 3).astype(dtype)
    t = dlbridge.asarray(a)
    j = jnp.asarray(t)
    assert isinstance(j, jax.Array) and j.dtype == a.dtype and j.shape == (2, 3)
    np.testing.assert_array_equal(np.asarray(j), a)
    assert t.dtype == a.dtype.name  # the contract: Tensor.dtype stays a str
    assert isinstance(t.dtype, str)


def test_jax_asarray_is_a_snapshot():
    # JAX copies every ndarray it is given on CPU (its arrays are immutable);
    # a tensor is given the same treatment. jnp.from_dlpack is the shared route.
    t = dlbridge.zeros((4, 16), dtype="float32")  # 64-byte aligned, as jnp.from_dlpack needs to share
    a = np.asarray(t)
    assert jnp.asarray(a).unsafe_buffer_pointer() != a.ctypes.data  # JAX's own behaviour
    j = jnp.asarray(t)
    assert j.unsafe_buffer_pointer() != t.data_ptr
    np.asarray(t)[0, 0] = 7
    assert float(j[0, 0]) == 0.0
    shared = jnp.from_dlpack(t)
    assert shared.unsafe_buffer_pointer() == t.data_ptr and float(shared[0, 0]) == 7.0


def test_jax_asarray_readonly_tensor():
    a = np.arange(3.0, dtype=np.float32)
    a.flags.writeable = False
    t = dlbridge.asarray(a)
    assert t.readonly
    np.testing.assert_array_equal(np.asarray(jnp.asarray(t)), a)
    assert not a.flags.writeable  # nothing was made writable on the way


def test_jax_asarray_arguments():
    t = dlbridge.asarray(np.arange(4, dtype=np.float32))
    assert jnp.asarray(t, dtype=jnp.float16).dtype == jnp.float16
    assert jnp.array(t).dtype == jnp.float32
    assert jnp.asarray(t, copy=True).tolist() == [0.0, 1.0, 2.0, 3.0]
    # Without x64, JAX narrows 64-bit values as it does for an ndarray.
    wide = dlbridge.asarray(np.arange(3, dtype=np.int64))
    assert jnp.asarray(wide).dtype == jnp.asarray(np.arange(3, dtype=np.int64)).dtype


def test_jax_traced_functions_refuse_a_tensor():
    # JAX 0.10.2 calls __jax_array__ only in jnp.asarray/jnp.array; a traced
    # function (jit, ufuncs) refuses objects that define it. Convert first.
    t = dlbridge.zeros(3)
    with pytest.raises(ValueError, match="__jax_array__"):
        jax.jit(lambda x: x * 2)(t)
    assert jax.jit(lambda x: x * 2)(jnp.asarray(t)).tolist() == [0.0, 0.0, 0.0]


# ----------------------------------------------------------------- 4: pandas --


def test_iter():
    a = np.arange(6, dtype=np.int32).reshape(3, 2)
    t = dlbridge.asarray(a)
    rows = list(t)
    assert [r.tolist() for r in rows] == a.tolist()
    assert rows[1].ctypes.data == a.ctypes.data + 8  # NumPy's sub-array views, zero-copy
    assert list(dlbridge.asarray(a[:, 0])) == [0, 2, 4]
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(dlbridge.zeros(()))


def test_pandas_series_shares_memory():
    a = np.arange(5, dtype=np.float64)
    t = dlbridge.asarray(a)
    s = pd.Series(t)
    assert len(s) == 5 and s.dtype == np.float64 and s.tolist() == a.tolist()
    assert s.to_numpy().ctypes.data == a.ctypes.data  # pandas asked __array__, and kept the view
    np.asarray(t)[0] = 9.0
    assert s[0] == 9.0


def test_pandas_series_copy():
    a = np.arange(3, dtype=np.int16)
    s = pd.Series(dlbridge.asarray(a), copy=True)
    assert s.dtype == np.int16 and s.to_numpy().ctypes.data != a.ctypes.data
    with pytest.raises(ValueError, match="Data must be 1-dimensional"):
        pd.Series(dlbridge.zeros((2, 2)))


def test_pandas_dataframe():
    a = np.arange(12, dtype=np.int64).reshape(3, 4)
    t = dlbridge.asarray(a)
    df = pd.DataFrame(t)
    assert df.shape == (3, 4) and list(df.dtypes) == [np.int64] * 4
    np.testing.assert_array_equal(df.to_numpy(), a)
    assert not np.shares_memory(df.to_numpy(), a)  # pandas 3 copies a 2-D array by default
    shared = pd.DataFrame(t, copy=False)
    assert np.shares_memory(shared.to_numpy(), a)


# ------------------------------------------------------ 5: asarray producers --


def test_asarray_pandas_series():
    s = pd.Series(np.arange(5.0))
    memory = s.to_numpy()
    for copy in (None, False):
        t = dlbridge.asarray(s, copy=copy)
        # pandas 3 (copy-on-write) hands out a read-only view of its memory.
        assert (t.data_ptr, t.readonly, t.dtype, t.shape) == (memory.ctypes.data, True, "float64", (5,))
    c = dlbridge.asarray(s, copy=True)
    assert c.data_ptr != memory.ctypes.data and not c.readonly and np.asarray(c).tolist() == s.tolist()


def test_asarray_pandas_series_that_must_copy():
    s = pd.Series([1, None, 3], dtype="Int64")  # a masked extension array
    t = dlbridge.asarray(s)
    assert np.asarray(t).tolist()[::2] == [1.0, 3.0] and np.isnan(np.asarray(t)[1])
    with pytest.raises(ValueError, match="Series.__array__ cannot avoid a copy"):
        dlbridge.asarray(s, copy=False)


def test_asarray_pandas_dataframe():
    df = pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]})
    for t in (dlbridge.asarray(df), dlbridge.asarray(df.to_numpy())):
        assert t.shape == (2, 2) and np.asarray(t).tolist() == [[1.0, 3.0], [2.0, 4.0]]
    n = df.to_numpy()
    assert dlbridge.asarray(n).data_ptr == n.ctypes.data


@needs_polars
def test_asarray_polars_series():
    s = pl.Series([1.0, 2.0, 3.0])
    memory = s.to_numpy()
    for copy in (None, False):
        t = dlbridge.asarray(s, copy=copy)
        assert (t.data_ptr, t.readonly, t.dtype) == (memory.ctypes.data, True, "float64")
    assert dlbridge.asarray(s, copy=True).data_ptr != memory.ctypes.data


@needs_polars
def test_asarray_polars_series_that_must_copy():
    s = pl.Series([1.0, None, 3.0])
    assert np.isnan(np.asarray(dlbridge.asarray(s))[1])
    # polars refuses copy=False with RuntimeError (NumPy 2 says ValueError);
    # dlbridge lets a producer's own error through unchanged, as np.asarray does.
    with pytest.raises(RuntimeError, match="copy not allowed"):
        dlbridge.asarray(s, copy=False)
    with pytest.raises(RuntimeError, match="copy not allowed"):
        np.asarray(s, copy=False)
