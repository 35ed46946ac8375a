"""Buffer protocol (PEP 3118), both ways, against real exporters and consumers.

Import: bytes, bytearray, array.array (every typecode), mmap (anonymous and
file-backed), np.memmap, ctypes arrays and scalars, memoryview slices and
casts, NumPy arrays of every dtype and layout, and a counting C exporter
(helpers/exporter.c). Each checks the data pointer against the source and
writes through where the source is writable.

Export: `memoryview(t)` formats for every dtype, opaque bytes for dtypes
PEP 3118 cannot name, and every PyBUF request flag combination, read with a
plain C consumer (helpers/getbuffer.c) and compared with what the layout
must give (PEP 3118's request flags).

Lifetimes: memoryviews outlive their Tensor, each acquired buffer is released
exactly once (also on refusal), refcounts return to baseline, no growth over
many imports, and exported bytearrays/arrays/mmaps cannot be resized.
"""

from __future__ import annotations

import array
import ctypes
import gc
import math
import mmap
import os
import sys
import tracemalloc
import warnings

import ml_dtypes
import numpy as np
import pytest
import torch

import _testbuffer
import dlbridge
from cbuild import load
from framework_versions import float8_param
from dlpack_structs import capsule

# PyBUF_* request flags (PROTOCOLS B-7).
SIMPLE, WRITABLE, FORMAT, ND, STRIDES = 0x0, 0x1, 0x4, 0x8, 0x18
C_CONTIGUOUS, F_CONTIGUOUS, ANY_CONTIGUOUS, INDIRECT = 0x38, 0x58, 0x98, 0x118
FLAGS = {
    "SIMPLE": SIMPLE,
    "WRITABLE": WRITABLE,
    "FORMAT": FORMAT,
    "ND": ND,
    "STRIDES": STRIDES,
    "C_CONTIGUOUS": C_CONTIGUOUS,
    "F_CONTIGUOUS": F_CONTIGUOUS,
    "ANY_CONTIGUOUS": ANY_CONTIGUOUS,
    "INDIRECT": INDIRECT,
    "CONTIG": 0x9,
    "CONTIG_RO": 0x8,
    "STRIDED": 0x19,
    "STRIDED_RO": 0x18,
    "RECORDS": 0x1D,
    "RECORDS_RO": 0x1C,
    "FULL": 0x11D,
    "FULL_RO": 0x11C,
    "WRITABLE|FORMAT": WRITABLE | FORMAT,
    "ND|FORMAT": ND | FORMAT,
    "C_CONTIGUOUS|FORMAT|WRITABLE": C_CONTIGUOUS | FORMAT | WRITABLE,
    "F_CONTIGUOUS|FORMAT": F_CONTIGUOUS | FORMAT,
    "ANY_CONTIGUOUS|FORMAT|WRITABLE": ANY_CONTIGUOUS | FORMAT | WRITABLE,
}

# What dlbridge exports per dtype (B-12), and the NumPy dtype for each.
FORMATS = {
    "bool": "?", "int8": "b", "uint8": "B", "int16": "h", "uint16": "H", "int32": "i", "uint32": "I",
    "int64": "q", "uint64": "Q", "float16": "e", "float32": "f", "float64": "d", "complex64": "Zf",
    "complex128": "Zd",
}
NUMPY_DTYPES = ["bool", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"]


@pytest.fixture(scope="module")
def getbuffer():
    lib = load("getbuffer")
    lib.getbuffer.argtypes = [ctypes.py_object, ctypes.c_int]
    lib.getbuffer.restype = ctypes.py_object
    return lib.getbuffer


@pytest.fixture(scope="module")
def Exporter():
    lib = load("exporter")
    lib.exporter_type.argtypes = []
    lib.exporter_type.restype = ctypes.py_object
    cls = lib.exporter_type()

    def make(nbytes=12, format=b"i", itemsize=4, ndim=1, shape=(3,), strides=None, readonly=False):
        return cls(nbytes, format, itemsize, ndim, shape, strides, readonly)

    return make


def address(obj) -> int:
    """Address of the first byte of a bytes-like object, found without dlbridge."""
    if isinstance(obj, bytes) or len(obj) == 0:
        return np.frombuffer(obj, np.uint8).ctypes.data
    view = ctypes.c_char.from_buffer(obj)  # writable exporters only; holds an export while alive
    try:
        return ctypes.addressof(view)
    finally:
        del view


def sample(dtype, shape=(2, 3, 4)) -> np.ndarray:
    n = math.prod(shape)
    values = np.arange(n)
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        out = values % 3 == 1
    elif dtype.kind == "c":
        out = (values + 1j * (values + 1)).astype(dtype)
    else:
        out = (values % 100).astype(dtype)
    return out.reshape(shape)


def bumped(a: np.ndarray) -> np.ndarray:
    return ~a if a.dtype == np.bool_ else (a + 1).astype(a.dtype)


# ---------------------------------------------------------------- import ----


def test_bytes_import_is_readonly_and_zero_copy(getbuffer):
    b = bytes(range(24))
    for t in (dlbridge.asarray(b), dlbridge.from_buffer(b)):
        assert (t.dtype, t.shape, t.strides, t.readonly, t.source) == ("uint8", (24,), (1,), True, "buffer")
        assert t.data_ptr == address(b)
        view = np.asarray(memoryview(t))
        assert view.tobytes() == b and not view.flags.writeable and not view.flags.owndata
        assert memoryview(t).readonly
        assert isinstance(getbuffer(t, WRITABLE)["error"], BufferError)
    t = dlbridge.from_buffer(b, dtype="float32", shape=(2, -1))
    assert t.readonly and t.shape == (2, 3) and t.data_ptr == address(b)
    assert np.array_equal(np.from_dlpack(t), np.frombuffer(b, np.float32).reshape(2, 3))


def test_bytearray_import_is_writable_and_zero_copy():
    ba = bytearray(range(16))
    for t in (dlbridge.asarray(ba), dlbridge.from_buffer(ba)):
        assert (t.dtype, t.shape, t.readonly) == ("uint8", (16,), False)
        assert t.data_ptr == address(ba)
        x = torch.from_dlpack(t)
        assert x.data_ptr() == address(ba)
        x[3] = 200
        assert ba[3] == 200
        np.asarray(memoryview(t))[4] = 201  # and through our own buffer export
        assert ba[4] == 201
        ba[5] = 202  # and the other way
        assert int(x[5]) == 202
        del x


@pytest.mark.parametrize("typecode", array.typecodes)
def test_array_array_every_typecode(typecode):
    with warnings.catch_warnings():
        # CPython 3.13 deprecates the 'u' typecode: the warning is about this
        # test's input, not dlbridge (which refuses the format either way).
        warnings.filterwarnings("ignore", "The 'u' type code is deprecated", DeprecationWarning)
        fmt = memoryview(array.array(typecode)).format
        unicode = array.array(typecode, "abc") if typecode in "uw" else None
    if unicode is not None:  # unicode: no number type
        a = unicode
        for importer in (dlbridge.asarray, dlbridge.from_buffer):
            with pytest.raises(BufferError, match=f'format "{fmt}"'):
                importer(a)
        a.append("d")  # the refused import released its buffer
        return
    a = array.array(typecode, [1, 2, 3, 4, 5])
    expected = np.dtype(typecode)  # NumPy's type characters match array's
    for importer in (dlbridge.asarray, dlbridge.from_buffer):
        t = importer(a)
        assert (t.dtype, t.itemsize, t.shape, t.readonly) == (expected.name, a.itemsize, (5,), False)
        assert t.data_ptr == a.buffer_info()[0]
        view = np.from_dlpack(t)
        view[1] = 42
        assert a[1] == 42
        assert np.array_equal(np.asarray(memoryview(t)), np.array(a.tolist(), expected))
        with pytest.raises(BufferError):
            a.append(6)  # exported: cannot move
        del view, t
        a.append(6)
        a.pop()


def test_anonymous_mmap():
    m = mmap.mmap(-1, 4096)
    base = address(m)
    t = dlbridge.asarray(m)
    assert (t.dtype, t.shape, t.readonly, t.data_ptr) == ("uint8", (4096,), False, base)
    np.from_dlpack(t)[100:104] = [1, 2, 3, 4]
    assert m[100:104] == b"\x01\x02\x03\x04"
    f = dlbridge.from_buffer(m, dtype="float64", shape=(16, -1), offset=1024)
    assert f.shape == (16, 24) and f.data_ptr == base + 1024
    torch.from_dlpack(f)[0, 0] = 1.5
    assert np.frombuffer(m, np.float64, count=1, offset=1024)[0] == 1.5
    with pytest.raises(BufferError):
        m.close()  # exported pointers exist
    with pytest.raises(BufferError):
        m.resize(8192)
    del t, f
    m.close()


def test_file_backed_mmap_writes_reach_the_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(32))
    with open(path, "r+b") as fh:
        m = mmap.mmap(fh.fileno(), 0)
    t = dlbridge.from_buffer(m, dtype="float32", shape=(2, 3), offset=8)
    assert (t.shape, t.strides, t.readonly) == ((2, 3), (12, 4), False)
    assert t.data_ptr == address(m) + 8
    x = torch.from_dlpack(t)
    assert x.data_ptr() == t.data_ptr
    x[1, 2] = 7.5
    x[0, 0] = -2.0
    m.flush()
    on_disk = np.frombuffer(path.read_bytes(), np.float32, count=6, offset=8).reshape(2, 3)
    assert on_disk[1, 2] == 7.5 and on_disk[0, 0] == -2.0
    del x, t
    m.close()
    with open(path, "rb") as fh:
        ro = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    t = dlbridge.asarray(ro)
    assert t.readonly and memoryview(t).readonly and t.data_ptr == np.frombuffer(ro, np.uint8).ctypes.data
    assert bytes(memoryview(t)) == path.read_bytes()
    del t
    ro.close()


def test_numpy_memmap_write_through_torch(tmp_path):
    path = tmp_path / "mm.f32"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(2, 3))
    mm[:] = np.arange(6, dtype=np.float32).reshape(2, 3)
    mm.flush()
    t = dlbridge.asarray(mm)
    x = torch.from_dlpack(t)
    assert x.data_ptr() == t.data_ptr == mm.ctypes.data
    x[1] *= 10
    mm.flush()
    on_disk = np.frombuffer(path.read_bytes(), np.float32).reshape(2, 3)
    assert np.array_equal(on_disk, [[0, 1, 2], [30, 40, 50]])
    b = dlbridge.from_buffer(mm)  # the buffer protocol on the same map
    assert (b.source, b.data_ptr, b.shape, b.dtype) == ("buffer", mm.ctypes.data, (2, 3), "float32")
    np.asarray(memoryview(b))[0, 0] = 9
    mm.flush()
    assert np.frombuffer(path.read_bytes(), np.float32)[0] == 9
    del x, t, b, mm


def test_ctypes_arrays_and_scalars(getbuffer):
    ints = (ctypes.c_int32 * 6)(*range(6))
    raw = getbuffer(ints, FLAGS["FULL_RO"])
    assert raw["format"] == "<i" and raw["strides"] is None  # ctypes: standard size, NULL strides
    t = dlbridge.asarray(ints)
    assert (t.dtype, t.shape, t.strides, t.data_ptr) == ("int32", (6,), (4,), ctypes.addressof(ints))
    torch.from_dlpack(t)[2] = -7
    assert ints[2] == -7

    grid = ((ctypes.c_int32 * 3) * 2)()
    t = dlbridge.asarray(grid)
    assert (t.dtype, t.shape, t.strides, t.data_ptr) == ("int32", (2, 3), (12, 4), ctypes.addressof(grid))
    np.from_dlpack(t)[1, 2] = 12
    assert grid[1][2] == 12

    doubles = (ctypes.c_double * 4)(0.5, 1.5, 2.5, 3.5)
    t = dlbridge.from_buffer(doubles)
    assert (t.dtype, t.shape, t.data_ptr) == ("float64", (4,), ctypes.addressof(doubles))
    assert np.array_equal(np.asarray(memoryview(t)), [0.5, 1.5, 2.5, 3.5])

    scalar = ctypes.c_double(2.25)  # ndim 0, shape NULL: a scalar, not (1,)
    t = dlbridge.asarray(scalar)
    assert (t.dtype, t.shape, t.ndim, t.data_ptr) == ("float64", (), 0, ctypes.addressof(scalar))
    np.from_dlpack(t)[()] = 4.5
    assert scalar.value == 4.5

    for ctype, fmt in ((ctypes.c_int64, "<q"), (ctypes.c_uint64, "<Q"), (ctypes.c_bool, "<?"), (ctypes.c_float, "<f")):
        arr = (ctype * 3)()
        assert memoryview(arr).format == fmt
        t = dlbridge.asarray(arr)
        assert t.dtype == np.dtype(fmt).name and t.data_ptr == ctypes.addressof(arr)


def test_ctypes_big_endian_is_refused():
    be = (ctypes.c_int32.__ctype_be__ * 3)(1, 2, 3)
    assert memoryview(be).format == ">i"
    with pytest.raises(BufferError, match='format ">i": non-native byte order'):
        dlbridge.from_buffer(be)
    with pytest.raises(BufferError, match='">i"'):
        dlbridge.asarray(be)


MEMORYVIEW_CASES = {
    "slice": (lambda mv: mv[2:10], 2),
    "step": (lambda mv: mv[::2], 0),
    "reverse": (lambda mv: mv[::-1], 23),
    "reverse-step": (lambda mv: mv[20:3:-3], 20),
    "cast-i": (lambda mv: mv.cast("i"), 0),
    "cast-2d": (lambda mv: mv[:6].cast("B", shape=[2, 3]), 0),
    "cast-d-3d": (lambda mv: mv.cast("d", shape=[1, 3, 1]), 0),
    "cast-then-slice": (lambda mv: mv.cast("h")[1:11:3], 2),
}


@pytest.mark.parametrize("case", MEMORYVIEW_CASES)
@pytest.mark.parametrize("readonly", [False, True], ids=["bytearray", "bytes"])
def test_memoryview_slices_and_casts(case, readonly):
    make, offset = MEMORYVIEW_CASES[case]
    source = bytes(range(24)) if readonly else bytearray(range(24))
    base = address(source)
    mv = make(memoryview(source))
    t = dlbridge.asarray(mv)
    assert t.dtype == np.dtype(mv.format).name and t.itemsize == mv.itemsize
    assert (t.shape, t.strides, t.readonly) == (mv.shape, mv.strides, readonly)
    assert t.data_ptr == base + offset
    back = np.asarray(memoryview(t))
    assert np.array_equal(back, np.asarray(mv)) and back.ctypes.data == base + offset
    if not readonly:
        back[...] = bumped(back)
        assert np.array_equal(np.asarray(mv), back)
    del t, back
    mv.release()


LAYOUTS = {
    "C": lambda a: a,
    "F": lambda a: np.asfortranarray(a),
    "strided": lambda a: a[:, ::2],
    "negative": lambda a: a[::-1, :, ::-2],
    "0-d": lambda a: np.array(a[1, 2, 3]),
    "empty": lambda a: a[:, :0],
    "32-d": lambda a: a[0].reshape((1,) * 29 + (3, 1, 4)),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_from_buffer_numpy_every_dtype_and_layout(dtype, layout):
    a = LAYOUTS[layout](sample(dtype))
    t = dlbridge.from_buffer(a)
    exported = memoryview(a)
    assert (t.dtype, t.itemsize, t.source, t.readonly) == (np.dtype(dtype).name, a.itemsize, "buffer", False)
    assert (t.shape, t.strides, t.ndim) == (a.shape, exported.strides, a.ndim)
    assert t.data_ptr == a.ctypes.data
    back = np.asarray(memoryview(t))
    assert back.dtype == a.dtype and back.ctypes.data == a.ctypes.data and not back.flags.owndata
    assert np.array_equal(back, a)
    back[...] = bumped(back)  # write through our export, read the source
    assert np.array_equal(a, back)
    assert np.array_equal(np.from_dlpack(t), a)


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">i2", ">i4", ">u8", ">c8", ">c16", ">f2"])
def test_non_native_byte_order_is_refused(dtype):
    a = np.zeros(3, dtype)
    fmt = memoryview(a).format
    assert fmt.startswith(">")
    with pytest.raises(BufferError, match=f'format "{fmt}": non-native byte order'):
        dlbridge.from_buffer(a)
    with pytest.raises(BufferError, match=f'"{fmt}"'):
        dlbridge.asarray(memoryview(a))
    with pytest.raises(BufferError):
        dlbridge.asarray(a)  # DLPack refuses too


def test_unaligned_native_data_imports():
    raw = np.zeros(8 * 4 + 1, np.uint8)
    a = raw[1:].view("f8")  # NumPy exports unaligned native data as "=d"
    assert memoryview(a).format == "=d"
    a[:] = [1.5, 2.5, 3.5, 4.5]
    t = dlbridge.from_buffer(a)
    assert (t.dtype, t.shape, t.data_ptr) == ("float64", (4,), raw.ctypes.data + 1)
    assert np.asarray(memoryview(t)).tolist() == [1.5, 2.5, 3.5, 4.5]


def test_fortran_testbuffer_imports_with_its_strides():
    e = _testbuffer.ndarray(list(range(12)), shape=[3, 4], format="i", flags=_testbuffer.ND_FORTRAN)
    t = dlbridge.asarray(e)
    assert (t.dtype, t.shape, t.strides) == ("int32", (3, 4), (4, 12))
    assert np.array_equal(np.asarray(memoryview(t)), np.asarray(e))


# ---------------------------------------------------------------- export ----


@pytest.mark.parametrize("dtype", list(FORMATS))
def test_export_format_and_round_trip_every_dtype(dtype):
    a = sample(dtype, (2, 3))
    for t, source in ((dlbridge.asarray(a), a), (dlbridge.zeros((2, 3), dtype=dtype), np.zeros((2, 3), dtype))):
        mv = memoryview(t)
        assert (mv.format, mv.itemsize) == (FORMATS[dtype], np.dtype(dtype).itemsize)
        assert (mv.shape, mv.strides, mv.readonly, mv.nbytes) == ((2, 3), t.strides, False, t.nbytes)
        back = np.asarray(mv)
        assert back.dtype == np.dtype(dtype) and back.strides == t.strides
        assert not back.flags.owndata and back.ctypes.data == t.data_ptr
        assert np.array_equal(back, source)
        # And our own import of our own export: same memory, same dtype.
        again = dlbridge.asarray(memoryview(t))
        assert (again.dtype, again.data_ptr, again.shape, again.source) == (dtype, t.data_ptr, (2, 3), "buffer")


def test_memoryview_holds_the_tensor_until_released():
    t = dlbridge.zeros(6, dtype="int32")
    base = sys.getrefcount(t)
    mv = memoryview(t)
    views = [memoryview(t) for _ in range(3)]
    assert sys.getrefcount(t) == base + 4  # view.obj of each
    for v in views:
        v.release()
    mv.release()
    assert sys.getrefcount(t) == base
    with memoryview(t) as scoped:
        assert sys.getrefcount(t) == base + 1 and scoped.tolist() == [0] * 6
    assert sys.getrefcount(t) == base


@pytest.mark.parametrize(
    "torch_dtype, name, ml_dtype",
    [
        (torch.bfloat16, "bfloat16", ml_dtypes.bfloat16),
        float8_param(torch.float8_e4m3fn, "float8_e4m3fn", ml_dtypes.float8_e4m3fn),
        float8_param(torch.float8_e5m2, "float8_e5m2", ml_dtypes.float8_e5m2),
    ],
)
def test_dtypes_without_a_format_refuse_a_format_and_keep_their_values(torch_dtype, name, ml_dtype):
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3).to(torch_dtype)
    t = dlbridge.asarray(x)
    assert t.dtype == name
    # A format would be "2x" (padding): refused, so NumPy reaches __array__.
    with pytest.raises(BufferError, match=f"dtype {name} has no PEP 3118 format"):
        memoryview(t)
    back = np.asarray(t)
    assert back.dtype == ml_dtype and back.shape == (2, 3)
    assert back.ctypes.data == t.data_ptr == x.data_ptr()
    assert np.array_equal(back.astype(np.float32), x.float().numpy())
    # The bytes, asked for as bytes.
    itemsize = x.element_size()
    raw = x.view(torch.int16 if itemsize == 2 else torch.uint8).numpy().tobytes()
    mv = memoryview(t.view("uint8"))
    assert (mv.format, mv.shape, bytes(mv)) == ("B", (2, 3 * itemsize), raw)
    get, release = ctypes.pythonapi.PyObject_GetBuffer, ctypes.pythonapi.PyBuffer_Release
    get.argtypes, release.argtypes = [ctypes.py_object, ctypes.c_void_p, ctypes.c_int], [ctypes.c_void_p]
    view = (ctypes.c_char * 80)()  # sizeof(Py_buffer) on 64-bit CPython
    assert get(t, ctypes.addressof(view), 0) == 0  # PyBUF_SIMPLE: no format asked
    release(ctypes.addressof(view))


def c_contiguous(shape, strides, itemsize) -> bool:
    """CPython's rule (_IsCContiguous): extents of 0 or 1 never break contiguity."""
    if math.prod(shape) == 0:
        return True
    expected = itemsize
    for n, s in zip(reversed(shape), reversed(strides)):
        if n > 1 and s != expected:
            return False
        expected *= n
    return True


def f_contiguous(shape, strides, itemsize) -> bool:
    return c_contiguous(tuple(reversed(shape)), tuple(reversed(strides)), itemsize)


def expected_view(t, flags):
    """What PEP 3118 says an exporter of `t` must hand back for `flags`: a dict, or BufferError."""
    def wants(flag):
        return flags & flag == flag

    shape, strides, itemsize = t.shape, t.strides, t.itemsize
    is_c, is_f = c_contiguous(shape, strides, itemsize), f_contiguous(shape, strides, itemsize)
    if (
        (wants(WRITABLE) and t.readonly)
        or (wants(C_CONTIGUOUS) and not is_c)
        or (wants(F_CONTIGUOUS) and not is_f)
        or (wants(ANY_CONTIGUOUS) and not (is_c or is_f))
        or (not wants(STRIDES) and not is_c)
        # No format for what PEP 3118 cannot name: "2x" reads as padding.
        or (wants(FORMAT) and t.dtype not in FORMATS)
    ):
        return BufferError
    nd = wants(ND) and t.ndim > 0
    fmt = FORMATS.get(t.dtype)
    return {
        "buf": t.data_ptr,
        "len": math.prod(shape) * itemsize,
        "itemsize": itemsize,
        "readonly": t.readonly,
        "ndim": t.ndim if wants(ND) else 0,
        "format": fmt if wants(FORMAT) else None,
        "shape": shape if nd else None,
        "strides": strides if nd and wants(STRIDES) else None,
        "suboffsets_null": True,
        "obj_is_exporter": True,
        "obj_null_after_release": True,
    }


def flag_tensors(Exporter):
    """Named tensors of every layout the flag matrix runs on, with what keeps their memory."""
    a = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    odd_c = Exporter(96, b"d", 8, 3, (3, 1, 4), (32, 8 * 1000, 8))  # size-1 axis with a stray stride
    odd_f = Exporter(96, b"d", 8, 3, (4, 1, 3), (8, -8 * 77, 32))
    wide = np.zeros((1, 10), np.int16)
    return {
        "C (DLPack)": dlbridge.asarray(a),
        "C (Rust)": dlbridge.zeros((2, 3, 4), dtype="int16"),
        "F": dlbridge.from_buffer(np.asfortranarray(a)),
        "strided": dlbridge.from_buffer(a[:, ::2]),
        "negative": dlbridge.from_buffer(a[::-1, :, ::-2]),
        "0-d": dlbridge.zeros((), dtype="float64"),
        "0-d buffer": dlbridge.from_buffer(np.array(3.0)),
        "size-1 C": dlbridge.asarray(odd_c),
        "size-1 F": dlbridge.asarray(odd_f),
        "(1, 10)": dlbridge.from_buffer(wide),
        "(10, 1) F": dlbridge.from_buffer(np.asfortranarray(np.zeros((10, 1), np.int8))),
        "empty": dlbridge.zeros((0, 3), dtype="complex64"),
        "readonly C": dlbridge.from_buffer(bytes(48), dtype="float64", shape=(3, 2)),
        "readonly strided": dlbridge.asarray(memoryview(bytes(48)).cast("i")[::3]),
        "bfloat16": dlbridge.asarray(torch.zeros(2, 3, dtype=torch.bfloat16)),
        "64-d (Rust)": dlbridge.zeros((1,) * 64, dtype="uint8"),
        "64-d": dlbridge.from_buffer(np.zeros((1,) * 62 + (2, 3), np.float32)),
        "64-d strided": dlbridge.from_buffer(np.zeros((1,) * 62 + (2, 6), np.float32)[..., ::2]),
        "64-d F": dlbridge.from_buffer(np.asfortranarray(np.zeros((2,) + (1,) * 62 + (3,), np.float32))),
    }


def test_flag_matrix_tensors_have_their_layout(Exporter):
    """The matrix below is only as good as its inputs: check they are what they claim."""
    t = flag_tensors(Exporter)
    assert t["F"].strides == (8, 16, 48)
    assert t["negative"].strides == (-96, 32, -16)
    assert t["strided"].strides == (96, 64, 8)
    assert t["0-d"].shape == () and t["0-d buffer"].shape == ()
    assert t["size-1 C"].strides == (32, 8000, 8) and t["size-1 F"].strides == (8, -616, 32)
    assert t["readonly C"].readonly and t["readonly strided"].strides == (12,)
    assert t["64-d"].ndim == t["64-d strided"].ndim == t["64-d F"].ndim == 64
    assert t["64-d strided"].strides[-1] == 8 and t["64-d F"].strides[0] == 4


@pytest.mark.parametrize("flag", FLAGS)
def test_flag_matrix(getbuffer, Exporter, flag):
    flags = FLAGS[flag]
    for name, t in flag_tensors(Exporter).items():
        got = getbuffer(t, flags)
        want = expected_view(t, flags)
        if want is BufferError:
            assert isinstance(got.get("error"), BufferError), (name, got)
            assert got["obj_null"], f"{name}: view.obj must be NULL after a refusal"
            continue
        assert "error" not in got, (name, got.get("error"))
        checks = {key: got[key] for key in want}
        assert checks == want, name
        # What the consumer may now assume, by CPython's own contiguity test.
        if flags & C_CONTIGUOUS == C_CONTIGUOUS or flags & ND != ND or flags & STRIDES != STRIDES:
            assert got["contiguous_c"], name
        if flags & F_CONTIGUOUS == F_CONTIGUOUS:
            assert got["contiguous_f"], name
        if flags & ANY_CONTIGUOUS == ANY_CONTIGUOUS:
            assert got["contiguous_any"], name


def test_flag_matrix_expectations_are_not_vacuous(Exporter):
    """Both outcomes occur for the layout-sensitive flags, so the matrix tests something."""
    tensors = flag_tensors(Exporter)
    for flags in (SIMPLE, ND, C_CONTIGUOUS, F_CONTIGUOUS, ANY_CONTIGUOUS, WRITABLE):
        outcomes = {expected_view(t, flags) is BufferError for t in tensors.values()}
        assert outcomes == {True, False}, hex(flags)
    assert expected_view(tensors["(1, 10)"], F_CONTIGUOUS) is not BufferError  # size-1 axes
    assert expected_view(tensors["size-1 C"], C_CONTIGUOUS) is not BufferError
    assert expected_view(tensors["size-1 F"], F_CONTIGUOUS) is not BufferError


def test_negative_strides_export_the_first_logical_element(getbuffer):
    a = np.arange(24, dtype=np.float64).reshape(2, 3, 4)[::-1, :, ::-2]
    t = dlbridge.from_buffer(a)
    got = getbuffer(t, FLAGS["FULL_RO"])
    assert got["buf"] == a.ctypes.data and got["strides"] == (-96, 32, -16)
    assert np.array_equal(np.asarray(memoryview(t)), a)


def test_zero_d_and_64_d_through_memoryview():
    z = dlbridge.asarray(np.array(2.5))
    mv = memoryview(z)
    assert (mv.ndim, mv.shape, mv.strides, mv.nbytes, mv.format) == (0, (), (), 8, "d")
    assert np.asarray(mv)[()] == 2.5
    deep = dlbridge.from_buffer(np.arange(6, dtype=np.int32).reshape((1,) * 62 + (2, 3)))
    mv = memoryview(deep)
    assert mv.ndim == 64 and mv.shape[-2:] == (2, 3) and mv.tolist() == np.arange(6).reshape((1,) * 62 + (2, 3)).tolist()


@pytest.mark.parametrize("flag", FLAGS)
def test_non_cpu_tensor_refuses_every_request(getbuffer, flag):
    t = dlbridge.from_dlpack(capsule(device=(2, 0), data=0x10000, shape=(2, 3)))
    assert t.device == (2, 0)
    got = getbuffer(t, FLAGS[flag])
    assert isinstance(got.get("error"), BufferError) and "CPU" in str(got["error"]), got
    assert got["obj_null"]
    with pytest.raises(BufferError):
        memoryview(t)


# ------------------------------------------------------------- lifetimes ----


def test_memoryview_outlives_the_tensor():
    start = dlbridge.live_buffers()
    t = dlbridge.zeros((4, 5), dtype="float64")
    np.from_dlpack(t)[:] = np.arange(20.0).reshape(4, 5)
    mv = memoryview(t)
    del t
    gc.collect()
    assert dlbridge.live_buffers() == start + 1
    assert np.array_equal(np.asarray(mv), np.arange(20.0).reshape(4, 5))
    assert mv.tolist()[3][4] == 19.0
    mv.release()
    gc.collect()
    assert dlbridge.live_buffers() == start


def test_memoryview_keeps_a_foreign_exporter_alive(Exporter):
    e = Exporter()
    t = dlbridge.asarray(e)
    np.from_dlpack(t)[:] = [7, 8, 9]
    mv = memoryview(t)
    del t
    gc.collect()
    assert (e.gets, e.releases) == (1, 0)
    assert mv.tolist() == [7, 8, 9]
    mv.release()
    gc.collect()
    assert (e.gets, e.releases, e.exports) == (1, 1, 0)


def test_torch_shares_bytearray_and_mmap_memory():
    ba = bytearray(range(8))
    x = torch.from_dlpack(dlbridge.asarray(ba))
    assert x.dtype == torch.uint8 and x.data_ptr() == address(ba)
    x[0] = 99
    assert ba[0] == 99
    ba[7] = 77
    assert int(x[7]) == 77

    m = mmap.mmap(-1, 24)
    y = torch.from_dlpack(dlbridge.from_buffer(m, dtype="float32", shape=(2, 3)))
    assert y.shape == (2, 3) and y.dtype == torch.float32 and y.data_ptr() == address(m)
    y[1, 1] = 3.25
    assert np.frombuffer(m, np.float32)[4] == 3.25
    m[0:4] = np.float32(-1.0).tobytes()
    assert float(y[0, 0]) == -1.0
    del x, y
    ba.append(0)
    m.close()


# ------------------------------------------------------------ from_buffer ----


@pytest.mark.parametrize(
    "dtype, shape, offset",
    [
        ("uint8", None, 0),
        ("float32", None, 0),
        ("float32", -1, 0),
        ("float32", (-1,), 8),
        ("float64", (3, -1), 0),
        ("float64", (-1, 3), 0),
        ("int16", (2, 3, 2), 0),
        ("int16", (3, -1, 2), 0),
        ("complex64", (3,), 0),
        ("int32", (), 20),
        ("uint8", (0,), 24),
        ("uint8", -1, 24),
        ("int8", (4, 0, 2), 24),
        ("bool", (4, 5), 4),
        ("float16", 10, 4),
        (None, (4, 6), 0),
        (None, -1, 5),
    ],
)
def test_from_buffer_matches_np_frombuffer(dtype, shape, offset):
    source = bytearray(np.arange(24, dtype=np.uint8).tobytes())
    t = dlbridge.from_buffer(source, dtype=dtype, shape=shape, offset=offset)
    np_dtype = np.dtype(dtype or "uint8")
    expected = np.frombuffer(source, np_dtype, offset=offset) if offset < len(source) else np.zeros(0, np_dtype)
    if shape is not None:
        expected = expected.reshape(shape)
    assert (t.dtype, t.shape) == (np_dtype.name, expected.shape)
    if expected.size:  # strides of an empty array are arbitrary
        c_strides = tuple(np_dtype.itemsize * math.prod(expected.shape[i + 1 :]) for i in range(expected.ndim))
        assert t.strides == c_strides
    assert t.data_ptr == address(source) + offset and not t.readonly
    view = np.from_dlpack(t)
    assert np.array_equal(view, expected)
    view[...] = bumped(view)
    assert np.array_equal(np.frombuffer(source, np_dtype, offset=offset).reshape(view.shape), view)


def test_from_buffer_reinterprets_any_c_contiguous_buffer():
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    t = dlbridge.from_buffer(a, dtype="int16", shape=(6, -1), offset=0)
    assert t.shape == (6, 4) and t.data_ptr == a.ctypes.data
    assert np.array_equal(np.from_dlpack(t), a.view(np.int16).reshape(6, 4))
    t = dlbridge.from_buffer(a, offset=16)  # the source's dtype, 1-d
    assert (t.dtype, t.shape, t.data_ptr) == ("int32", (8,), a.ctypes.data + 16)
    ro = np.arange(4.0)
    ro.flags.writeable = False
    t = dlbridge.from_buffer(ro, dtype="uint8", shape=(4, 8))
    assert t.readonly and not np.from_dlpack(t).flags.writeable


def test_from_buffer_value_errors_not_in_the_error_matrix():
    with pytest.raises(ValueError, match="do not divide"):
        dlbridge.from_buffer(b"abcde", dtype="uint8", shape=(2, -1))
    with pytest.raises(ValueError, match="do not divide"):
        dlbridge.from_buffer(b"abcd", dtype="uint8", shape=(0, -1))
    with pytest.raises(ValueError, match="negative"):
        dlbridge.from_buffer(b"abcd", dtype="uint8", shape=(-2, -2))
    with pytest.raises(ValueError, match="needs 8 bytes"):
        dlbridge.from_buffer(b"abcd", dtype="int32", shape=(2,))


# -------------------------------------------------- release and refcounts ----


def test_counting_exporter_released_once_after_all_consumers(Exporter):
    e = Exporter()
    t = dlbridge.asarray(e)
    assert (t.dtype, t.shape, t.data_ptr, t.source) == ("int32", (3,), e.address, "buffer")
    assert (e.gets, e.releases) == (1, 0)
    n = np.from_dlpack(t)
    x = torch.from_dlpack(t)
    mv = memoryview(t)
    m = np.asarray(mv)
    a = np.asarray(t)
    n[:] = [1, 2, 3]
    assert x.tolist() == m.tolist() == a.tolist() == [1, 2, 3]
    del t
    gc.collect()
    assert (e.gets, e.releases) == (1, 0)
    del n, x
    gc.collect()
    assert (e.gets, e.releases) == (1, 0)
    del m
    mv.release()
    gc.collect()
    assert (e.gets, e.releases) == (1, 0)
    del mv, a
    gc.collect()
    assert (e.gets, e.releases, e.exports) == (1, 1, 0)


def test_refused_imports_release_what_they_acquired(Exporter):
    e = Exporter()
    for bad in (
        lambda: dlbridge.from_buffer(e, dtype="int32", shape=(5,)),
        lambda: dlbridge.from_buffer(e, dtype="float64"),
        lambda: dlbridge.from_buffer(e, offset=13),
        lambda: dlbridge.from_buffer(e, dtype="uint8", shape=(-1, -1)),
    ):
        with pytest.raises(ValueError):
            bad()
    assert e.gets == 4 and e.releases == 4


@pytest.mark.parametrize(
    "fmt, itemsize",
    [(b">i", 4), (b"!i", 4), (b"P", 8), (b"T{i:x:}", 4), (b"3s", 3), (b"O", 8), (b"g", 16),
     (b"2f", 8), (b"w", 4), (b"u", 2), (b"&f", 8), (b"t", 1), (b"X{}", 8), (b"<n", 8), (b"32x", 32)],
)
def test_refused_formats_name_the_format_and_release(Exporter, fmt, itemsize):
    e = Exporter(nbytes=itemsize * 3, format=fmt, itemsize=itemsize)
    for importer in (dlbridge.asarray, dlbridge.from_buffer):
        with pytest.raises(BufferError, match=f'"{fmt.decode()}"'):
            importer(e)
    assert e.gets == e.releases == 2


@pytest.mark.parametrize(
    "fmt, itemsize, dtype",
    [(b"<l", 4, "int32"), (b"<L", 4, "uint32"), (b"=l", 4, "int32"), (b"l", 8, "int64"), (b"@L", 8, "uint64"),
     (b"<q", 8, "int64"), (b"=d", 8, "float64"), (b"n", 8, "int64"), (b"N", 8, "uint64"), (b"1f", 4, "float32"),
     (b"Zf", 8, "complex64"), (b"=Zd", 16, "complex128"), (b"?", 1, "bool"), (b"<e", 2, "float16"),
     (b"", 1, "uint8")],
)
def test_accepted_formats(Exporter, fmt, itemsize, dtype):
    """Standard sizes under < = (l is 4 bytes), native under @ or none; a NULL format is bytes."""
    e = Exporter(nbytes=itemsize * 3, format=fmt, itemsize=itemsize)
    t = dlbridge.asarray(e)
    assert (t.dtype, t.itemsize, t.shape, t.data_ptr) == (dtype, itemsize, (3,), e.address)
    del t
    assert e.gets == e.releases == 1


def test_itemsize_disagreeing_with_format_is_refused_and_released(Exporter):
    for fmt, itemsize in ((b"<l", 8), (b"i", 8), (b"d", 4), (b"", 2)):
        e = Exporter(nbytes=24, format=fmt, itemsize=itemsize, shape=(2,))
        with pytest.raises(BufferError, match="itemsize"):
            dlbridge.asarray(e)
        assert e.gets == e.releases == 1


def test_exporter_shapes_and_strides(Exporter):
    scalar = Exporter(nbytes=8, format=b"d", itemsize=8, ndim=0, shape=None)
    assert dlbridge.asarray(scalar).shape == ()
    flat = Exporter(nbytes=12, format=b"i", itemsize=4, ndim=1, shape=None)
    assert dlbridge.asarray(flat).shape == (3,)
    c = Exporter(nbytes=24, format=b"i", itemsize=4, ndim=2, shape=(2, 3), strides=None)
    assert dlbridge.asarray(c).strides == (12, 4)
    f = Exporter(nbytes=24, format=b"i", itemsize=4, ndim=2, shape=(2, 3), strides=(4, 8))
    assert dlbridge.asarray(f).strides == (4, 8)
    short = Exporter(nbytes=20, format=b"i", itemsize=4, ndim=2, shape=(2, 3), strides=None)
    with pytest.raises(BufferError, match="needs 24 bytes but its len is 20"):
        dlbridge.asarray(short)
    readonly = Exporter(readonly=True)
    t = dlbridge.asarray(readonly)
    assert t.readonly and memoryview(t).readonly and not np.from_dlpack(t).flags.writeable
    del t
    for e in (scalar, flat, c, f, short, readonly):
        assert e.gets == e.releases == 1


def test_bytearray_refcount_returns_to_baseline():
    ba = bytearray(64)
    base = sys.getrefcount(ba)
    t = dlbridge.asarray(ba)
    assert sys.getrefcount(ba) == base + 1  # the Py_buffer's obj
    mv = memoryview(t)
    n = np.asarray(mv)
    x = torch.from_dlpack(t)
    f = dlbridge.from_buffer(ba, dtype="float64", shape=(2, 4))
    assert sys.getrefcount(ba) == base + 2
    del t, mv, n, x, f
    gc.collect()
    assert sys.getrefcount(ba) == base
    with pytest.raises(ValueError):
        dlbridge.from_buffer(ba, dtype="float64", shape=(3,))
    assert sys.getrefcount(ba) == base


def test_bytearray_cannot_resize_while_exported():
    ba = bytearray(b"abcdefgh")
    t = dlbridge.asarray(ba)
    with pytest.raises(BufferError):
        ba.append(1)
    with pytest.raises(BufferError):
        ba.extend(b"xyz")
    mv = memoryview(t)
    del t
    gc.collect()
    with pytest.raises(BufferError):
        ba.append(1)  # the memoryview still holds the Tensor, which holds the buffer
    mv.release()
    gc.collect()
    ba.append(1)
    assert ba == b"abcdefgh\x01"


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_many_imports_leak_nothing(Exporter):
    e = Exporter(nbytes=4096, format=b"f", itemsize=4, shape=(1024,))
    ba = bytearray(4096)
    base = sys.getrefcount(ba)
    start_live = dlbridge.live_buffers()

    def round_trip():
        t = dlbridge.asarray(e)
        u = dlbridge.from_buffer(ba, dtype="float32", shape=(32, -1))
        mv = memoryview(u)
        n = np.asarray(mv)
        v = dlbridge.asarray(memoryview(t))
        try:
            dlbridge.from_buffer(ba, dtype="float64", shape=(3,))
        except ValueError:
            pass
        return n[0, 0] + v.size

    for _ in range(1000):  # warm caches and allocator pools
        round_trip()
    gc.collect()
    before = rss()
    tracemalloc.start()
    try:
        snapshot = tracemalloc.take_snapshot()
        for _ in range(10_000):
            round_trip()
        gc.collect()
        grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(snapshot, "filename"))
    finally:
        tracemalloc.stop()
    for _ in range(10_000):  # untraced, for RSS (native allocations)
        round_trip()
    gc.collect()
    assert e.gets == e.releases == 21_000
    assert sys.getrefcount(ba) == base
    assert dlbridge.live_buffers() == start_live
    assert grown < 64 * 1024, f"Python heap grew {grown} bytes over 10,000 rounds"
    assert rss() - before < 1024 * 1024, f"RSS grew {rss() - before} bytes over 20,000 rounds"
