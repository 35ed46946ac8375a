"""Arrow in (issue 23): `dlbridge.asarray` of Arrow PyCapsule producers
(`__arrow_c_array__`, one-chunk `__arrow_c_stream__`), read-only, zero-copy.

 1  mappings: primitives (test_primitive_dtypes, test_offset_is_honoured,
      test_validity_bitmap_without_nulls), FixedSizeList -> N-d
      (test_fixed_size_list_is_nd, test_fixed_size_list_slice),
      arrow.fixed_shape_tensor (test_fixed_shape_tensor,
      test_fixed_shape_tensor_permutation)
 2  real producers: test_pyarrow_chunked_array_of_one_chunk,
      test_a_pyarrow_chunked_array_skips_its_copying_view_counted,
      test_pyarrow_record_batch_column, test_polars_array_series,
      test_polars_series_with_nulls_still_converts, test_duckdb_embeddings,
      test_duckdb_relation_is_a_table, test_nanoarrow, test_round_trip_keeps_the_pointer,
      test_torch_shares_an_arrow_column
 3  discovery: test_order (Arrow after DLPack, before __array__),
      test_pyarrow_nulls_are_a_buffer_error
 4  refusals: test_types_without_a_tensor, test_several_chunks_refused
 5  the owner (helpers/arrow_producer.c, counting release callbacks):
      test_released_once_when_the_last_view_goes, test_stream_released_once,
      test_hostile_pairs_refused_and_released, test_hostile_streams
"""

from __future__ import annotations

import datetime
import decimal
import gc

import numpy as np
import pyarrow as pa
import pytest
import torch

import dlbridge
from cbuild import arrow_producer


class ArrowOnly:
    """Speaks the Arrow PyCapsule interface and nothing else (pyarrow's
    arrays also speak DLPack, which discovery asks first)."""

    def __init__(self, inner, stream=False):
        self.inner = inner
        if stream:
            self.__class__ = ArrowStreamOnly

    def __arrow_c_array__(self, requested_schema=None):
        return self.inner.__arrow_c_array__(requested_schema)


class ArrowStreamOnly:
    def __arrow_c_stream__(self, requested_schema=None):
        return self.inner.__arrow_c_stream__(requested_schema)


def values_address(arr):
    """The address of an Arrow array's primitive values (its offset not applied)."""
    while pa.types.is_fixed_size_list(arr.type) or isinstance(arr.type, pa.BaseExtensionType):
        arr = arr.storage if isinstance(arr.type, pa.BaseExtensionType) else arr.values
    return arr.buffers()[1].address


# ---------------------------------------------------------------- 1: mappings --

PRIMITIVES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float16", "float32", "float64"]


@pytest.mark.parametrize("dtype", PRIMITIVES)
def test_primitive_dtypes(dtype):
    values = np.arange(5).astype(dtype)
    arr = pa.array(values)
    t = dlbridge.asarray(ArrowOnly(arr))
    assert (t.source, t.dtype, t.shape, t.readonly) == ("arrow", dtype, (5,), True)
    assert t.data_ptr == arr.buffers()[1].address
    assert np.asarray(t).tolist() == values.tolist()


def test_offset_is_honoured():
    arr = pa.array(np.arange(10, dtype=np.int32)).slice(3, 4)
    t = dlbridge.asarray(ArrowOnly(arr))
    assert t.data_ptr == arr.buffers()[1].address + 3 * 4
    assert np.asarray(t).tolist() == [3, 4, 5, 6]


def test_validity_bitmap_without_nulls():
    # A slice of an array with nulls keeps the bitmap; its null_count is
    # unknown (-1) to the C interface: dlbridge counts the bits it imports.
    arr = pa.array([1.0, 2.0, None, 4.0]).slice(0, 2)
    assert arr.buffers()[0] is not None
    t = dlbridge.asarray(ArrowOnly(arr))
    assert np.asarray(t).tolist() == [1.0, 2.0]
    with pytest.raises(BufferError, match=r"has 1 null\(s\)"):
        dlbridge.asarray(ArrowOnly(pa.array([1.0, 2.0, None, 4.0]).slice(1, 2)))


def test_fixed_size_list_is_nd():
    values = np.arange(24, dtype=np.int16)
    arr = pa.FixedSizeListArray.from_arrays(pa.FixedSizeListArray.from_arrays(values, 3), 2)
    t = dlbridge.asarray(arr)  # pyarrow's __dlpack__ refuses lists: Arrow answers
    assert (t.source, t.shape, t.strides, t.readonly) == ("arrow", (4, 2, 3), (12, 6, 2), True)
    assert t.data_ptr == values_address(arr) == values.ctypes.data
    assert np.array_equal(np.asarray(t), values.reshape(4, 2, 3))


def test_fixed_size_list_slice():
    values = np.arange(12, dtype=np.float32)
    arr = pa.FixedSizeListArray.from_arrays(values, 3).slice(1, 2)
    t = dlbridge.asarray(arr)
    assert t.shape == (2, 3) and t.data_ptr == values.ctypes.data + 3 * 4
    assert np.asarray(t).tolist() == [[3, 4, 5], [6, 7, 8]]


def test_fixed_shape_tensor():
    tensors = np.arange(24, dtype=np.float32).reshape(4, 2, 3)
    arr = pa.FixedShapeTensorArray.from_numpy_ndarray(tensors)
    t = dlbridge.asarray(arr)
    assert t.shape == (4, 2, 3) and t.data_ptr == values_address(arr)
    assert np.array_equal(np.asarray(t), tensors)


def test_fixed_shape_tensor_permutation():
    kind = pa.fixed_shape_tensor(pa.int32(), (2, 3), permutation=[1, 0])
    storage = pa.array([list(range(6)), list(range(6, 12))], pa.list_(pa.int32(), 6))
    arr = pa.ExtensionArray.from_storage(kind, storage)
    t = dlbridge.asarray(arr)
    expected = arr.to_numpy_ndarray()  # pyarrow's own reading of the permutation
    assert (t.shape, t.strides) == (expected.shape, expected.strides) == ((2, 3, 2), (24, 4, 12))
    assert np.array_equal(np.asarray(t), expected) and t.data_ptr == values_address(arr)


# ----------------------------------------------------------- 2: real producers --


def test_pyarrow_chunked_array_of_one_chunk():
    fsl = pa.FixedSizeListArray.from_arrays(np.arange(6.0), 2)
    chunked = pa.chunked_array([fsl])
    t = dlbridge.asarray(chunked)
    assert t.shape == (3, 2) and t.data_ptr == values_address(fsl)


def test_pyarrow_record_batch_column():
    fsl = pa.FixedSizeListArray.from_arrays(np.arange(8, dtype=np.int64), 4)
    batch = pa.record_batch({"e": fsl, "i": pa.array([1, 2])})
    t = dlbridge.asarray(batch.column("e"))
    assert t.shape == (2, 4) and t.data_ptr == values_address(fsl)


def test_polars_array_series():
    pl = pytest.importorskip("polars")
    s = pl.Series([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=pl.Array(pl.Float32, 2))
    t = dlbridge.asarray(s)
    # polars' own zero-copy view (`__array__(copy=False)`) is asked before
    # its stream, which would build an Arrow table per call; the same buffer.
    assert (t.source, t.shape, t.dtype, t.readonly) == ("ndarray", (3, 2), "float32", True)
    assert t.data_ptr == values_address(s.to_arrow())  # polars' own buffer, shared
    assert np.asarray(t).tolist() == s.to_list()


def test_stream_producers_with_a_view_give_the_view_first():
    # A ChunkedArray cannot give a view (pyarrow copies it): its stream.
    # Recognised by identity, it is not asked for the view at all: counted
    # as `chunked_array_stream`.
    counts = dlbridge._native._testing.fast_path_counts
    fsl = pa.FixedSizeListArray.from_arrays(np.arange(8, dtype=np.int64), 4)
    before = counts()["chunked_array_stream"]
    t = dlbridge.asarray(pa.chunked_array([fsl]))
    assert (t.source, t.shape) == ("arrow", (2, 4)) and t.data_ptr == values_address(fsl)
    assert counts()["chunked_array_stream"] == before + 1
    # A pandas Series speaks __arrow_c_stream__ (a pyarrow table built per
    # call) and __array__: its zero-copy view answers, as before Arrow in.
    pd = pytest.importorskip("pandas")
    base = np.arange(6.0)
    t = dlbridge.asarray(pd.Series(base, copy=False))
    assert t.source == "ndarray" and t.data_ptr == base.ctypes.data


def test_a_chunked_array_look_alike_is_asked_for_its_view_uncounted():
    """An object that merely looks like a pyarrow ChunkedArray (pyarrow's
    module and name) is asked for a view, as any stream-only producer, and
    the identity skip is not counted."""
    counts = dlbridge._native._testing.fast_path_counts
    fsl = pa.FixedSizeListArray.from_arrays(np.arange(8, dtype=np.int64), 4)
    before = counts()["chunked_array_stream"]
    asked = []

    class ChunkedArray(ArrowStreamOnly):
        def __init__(self, inner):
            self.inner = inner

        def __array__(self, dtype=None, copy=None):
            asked.append(copy)
            raise ValueError("a copy is needed")

    ChunkedArray.__module__ = "pyarrow.lib"
    ChunkedArray.__qualname__ = "ChunkedArray"
    lookalike = ChunkedArray(pa.chunked_array([fsl]))
    t = dlbridge.asarray(lookalike)
    assert (t.source, t.shape) == ("arrow", (2, 4)) and t.data_ptr == values_address(fsl)
    assert asked == [False]  # asked for a view first, as any stream-only producer
    assert counts()["chunked_array_stream"] == before


def test_polars_series_with_nulls_still_converts():
    # Arrow refuses the nulls; polars' own __array__ answers (NaN, a copy).
    pl = pytest.importorskip("polars")
    t = dlbridge.asarray(pl.Series([1.0, None]))
    assert t.source != "arrow" and np.isnan(np.asarray(t)[1])


def test_duckdb_embeddings():
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    result = con.sql("SELECT [i, i + 0.5, i + 1]::FLOAT[3] AS e, i FROM range(5) t(i)").to_arrow_table()
    column = result.column("e")
    assert column.num_chunks == 1 and column.type == pa.list_(pa.float32(), 3)
    t = dlbridge.asarray(column)
    assert (t.shape, t.dtype, t.readonly) == ((5, 3), "float32", True)
    assert t.data_ptr == values_address(column.chunk(0))
    assert np.asarray(t)[2].tolist() == [2.0, 2.5, 3.0]


def test_duckdb_relation_is_a_table():
    duckdb = pytest.importorskip("duckdb")
    relation = duckdb.connect().sql("SELECT [1, 2]::FLOAT[2] AS e")
    with pytest.raises(BufferError, match=r'type "\+s" has no zero-copy tensor: a struct is a record of columns'):
        dlbridge.asarray(relation)


def test_nanoarrow():
    na = pytest.importorskip("nanoarrow")
    for arr in (na.Array([1, 2, 3], na.int32()), na.c_array([1, 2, 3], na.int64())):
        t = dlbridge.asarray(arr)
        assert t.source == "arrow" and np.asarray(t).tolist() == [1, 2, 3]
    nested = na.c_array(pa.FixedSizeListArray.from_arrays(np.arange(6, dtype=np.uint16), 3))
    t = dlbridge.asarray(nested)
    assert t.shape == (2, 3) and t.dtype == "uint16"


def test_round_trip_keeps_the_pointer():
    for shape in [(6,), (2, 3), (2, 1, 3)]:
        t = dlbridge.asarray(np.arange(6, dtype=np.float64).reshape(shape))
        back = dlbridge.asarray(pa.array(t))
        assert back.data_ptr == t.data_ptr and back.shape == shape and back.readonly


def test_torch_shares_an_arrow_column():
    fsl = pa.FixedSizeListArray.from_arrays(np.arange(8, dtype=np.float32), 4)
    x = torch.from_dlpack(dlbridge.asarray(fsl))
    assert x.shape == (2, 4) and x.data_ptr() == values_address(fsl)


# ---------------------------------------------------------------- 3: discovery --


def test_order():
    # A primitive pyarrow array speaks DLPack first; a tensor keeps DLPack too.
    assert dlbridge.asarray(pa.array([1.0, 2.0])).source == "dlpack"
    # Arrow before __array__ (which would copy a list column into objects).
    class Both(ArrowOnly):
        def __array__(self, dtype=None, copy=None):
            raise AssertionError("__array__ asked before Arrow")
    assert dlbridge.asarray(Both(pa.array([1, 2]))).source == "arrow"


def test_pyarrow_nulls_are_a_buffer_error():
    with pytest.raises(BufferError, match=r"ArrowTypeError: Can only use DLPack on arrays with no nulls.*has 1 null"):
        dlbridge.asarray(pa.array([1.0, None]))


# ----------------------------------------------------------------- 4: refusals --

NO_TENSOR = [
    (pa.array([True, False]), "bit-packed"),
    (pa.array(["a"]), "strings are variable-length"),
    (pa.array([b"a"]), "binary values are variable-length"),
    (pa.array(["a", "a"]).dictionary_encode(), "dictionary-encoded"),
    (pa.array([decimal.Decimal("1.5")]), "decimals have no DLPack dtype"),
    (pa.array([datetime.datetime(2020, 1, 1)]), "temporal types"),
    (pa.array([datetime.date(2020, 1, 1)]), "temporal types"),
    (pa.array([[1, 2]]), "list slots are variable-length"),
    (pa.array([{"a": 1}]), "a struct is a record of columns"),
    (pa.array([1, None], pa.int64()), r"has 1 null\(s\)"),
    (pa.FixedSizeListArray.from_arrays(pa.array([1, None, 3, 4]), 2), r"has 1 null\(s\)"),
    (pa.ExtensionArray.from_storage(pa.bool8(), pa.array([1, 0], pa.int8())), 'extension type "arrow.bool8"'),
]


@pytest.mark.parametrize(("arr", "fragment"), NO_TENSOR, ids=[str(a.type) for a, _ in NO_TENSOR])
def test_types_without_a_tensor(arr, fragment):
    with pytest.raises(BufferError, match=fragment):
        dlbridge.asarray(ArrowOnly(arr))
    with pytest.raises(BufferError, match=fragment):
        dlbridge.asarray(ArrowOnly(pa.chunked_array([arr]), stream=True))


def test_several_chunks_refused():
    chunked = pa.chunked_array([pa.array([1, 2]), pa.array([3])])
    with pytest.raises(BufferError, match="more than one chunk"):
        dlbridge.asarray(ArrowOnly(chunked, stream=True))


# ------------------------------------------------------------------- 5: owner --


def counts(lib):
    gc.collect()
    return lib.schema_releases(), lib.array_releases()


class Pair:
    def __init__(self, lib, fmt=b"i", list_size=0, lie=0):
        self.args = (lib, fmt, list_size, lie)

    def __arrow_c_array__(self, requested_schema=None):
        lib, fmt, list_size, lie = self.args
        return lib.make_pair(fmt, list_size, lie)


def test_released_once_when_the_last_view_goes():
    lib = arrow_producer()
    before = counts(lib)
    t = dlbridge.asarray(Pair(lib, b"i", 4))
    assert t.shape == (4, 4) and np.asarray(t)[3].tolist() == [12, 13, 14, 15]
    n = np.from_dlpack(t)
    x = torch.from_dlpack(t)
    del t
    assert counts(lib) == before
    del n
    assert counts(lib) == before
    assert x[1, 1].item() == 5
    del x
    assert counts(lib) == (before[0] + 1, before[1] + 1)


def test_stream_released_once():
    lib = arrow_producer()

    class Stream:
        def __arrow_c_stream__(self, requested_schema=None):
            return lib.make_stream(1, 0)

    before = counts(lib), lib.stream_releases()
    t = dlbridge.asarray(Stream())
    assert np.asarray(t).tolist() == list(range(16))
    assert lib.stream_releases() == before[1] + 1  # the stream, once read
    del t
    assert counts(lib) == (before[0][0] + 1, before[0][1] + 1)


# The lies of helpers/arrow_producer.c (enum Lie), what each is told on.
HOSTILE = [
    (1, b"i", 0, ValueError, "length -1 and offset 0; neither may be negative"),
    (2, b"i", 0, ValueError, "length 16 and offset -1; neither may be negative"),
    (3, b"i", 0, ValueError, "past the end of any buffer"),
    (4, b"i", 4, ValueError, "its FixedSizeList parent needs 20 values"),
    (5, b"i", 0, ValueError, "a NULL data buffer for 16 values"),
    (5, b"i", 4, ValueError, "a NULL data buffer for 16 values"),
    (6, b"i", 0, ValueError, "buffers 0x0"),
    (7, b"i", 0, ValueError, "has n_buffers 3 and n_children 0"),
    (8, b"i", 0, ValueError, 'format "xyz" is not an Arrow format string'),
    (9, b"i", 0, ValueError, 'format "i" has n_children 1'),
    (10, b"i", 0, BufferError, r"has 2 null\(s\)"),
    (10, b"i", 4, BufferError, r"has 2 null\(s\)"),
    (11, b"i", 0, ValueError, "null_count 2 but no validity bitmap"),
    (12, b"i", 0, BufferError, "not aligned to their 4-byte size, which DLPack requires"),
    (14, b"i", 0, BufferError, r"has 1 null\(s\)"),
    (15, b"i", 0, ValueError, "the ArrowArray has already been released"),
    (1, b"+w:x", 0, ValueError, 'format "\\+w:x" is not an Arrow format string'),
]


@pytest.mark.parametrize(("lie", "fmt", "list_size", "exception", "fragment"), HOSTILE)
def test_hostile_pairs_refused_and_released(lie, fmt, list_size, exception, fragment):
    lib = arrow_producer()
    before = counts(lib)
    with pytest.raises(exception, match=fragment):
        dlbridge.asarray(Pair(lib, fmt, list_size, lie))
    released_array = 0 if lie == 15 else 1  # the producer released it itself
    assert counts(lib) == (before[0] + 1, before[1] + released_array)


def test_honest_helper_pairs():
    lib = arrow_producer()
    t = dlbridge.asarray(Pair(lib, b"i", 0, 13))  # null_count -1, no null: counted
    assert np.asarray(t).tolist() == list(range(16))
    sliced = dlbridge.asarray(Pair(lib, b"i", 4, 16))  # offset 1 of 4 slots
    assert np.asarray(sliced).tolist() == [[4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]


def test_hostile_streams():
    lib = arrow_producer()

    def stream(chunks, fail):
        class Stream:
            def __arrow_c_stream__(self, requested_schema=None):
                return lib.make_stream(chunks, fail)
        return Stream()

    before = counts(lib), lib.stream_releases()
    with pytest.raises(BufferError, match="holds no chunk"):
        dlbridge.asarray(stream(0, 0))
    with pytest.raises(BufferError, match="more than one chunk"):
        dlbridge.asarray(stream(2, 0))
    with pytest.raises(ValueError, match="get_schema failed with error 22: the helper was told to fail"):
        dlbridge.asarray(stream(1, 1))
    # Three streams, released; two schemas and two arrays (the 2-chunk one's).
    assert lib.stream_releases() == before[1] + 3
    assert counts(lib) == (before[0][0] + 2, before[0][1] + 2)


# ------------------------------------------------- 6: Rust extension arguments --


def test_extension_arguments_take_arrow():
    # Tensor, TypedTensor and the borrowed argument types import through the
    # same discovery (the example extension: `make develop-extension`).
    ext = pytest.importorskip("dlbridge_example")
    fsl = pa.FixedSizeListArray.from_arrays(np.arange(6.0), 3)
    shape, _, dtype, readonly, source = ext.describe(ArrowOnly(fsl))
    assert (shape, dtype, readonly, source) == ([2, 3], "float64", True, "arrow")
    assert ext.sum(fsl) == 15.0 and ext.trace(fsl) == 0.0 + 4.0
    assert ext.data_ptr(pa.chunked_array([fsl])) == values_address(fsl)
    with pytest.raises(BufferError):
        ext.add_one(fsl)  # a writable borrow of immutable Arrow memory
    with pytest.raises(BufferError, match="no zero-copy tensor"):
        ext.describe(ArrowOnly(pa.array([1.0, None])))  # no __array__ fallback for arguments
