"""NumPy's array interface, both ways, against real producers and consumers.

Import: `__array_struct__` capsules from a C producer whose destructor
poisons and frees the data (NumPy's test_cstruct, with dlbridge in the
middle), `__array_interface__` objects owning malloc'd memory, PIL images,
pyarrow, and wrappers that expose only one attribute of a NumPy array.
Export: NumPy consuming `Tensor.__array_interface__` / `__array_struct__`
through forwarding wrappers, compared field by field with NumPy's own export.
Plus ml_dtypes <-> PyTorch (bfloat16, float8), malformed dicts (exception
class, message, no leaked reference or buffer) and the buffer `data` path.
"""

from __future__ import annotations

import ctypes
import gc
import itertools
import sys
import weakref

import ml_dtypes
import numpy as np
import pytest
import torch

import dlbridge
from array_interface_structs import PyArrayInterface
from cbuild import load
from framework_versions import TORCH_DLPACK_FLOAT8, float8_param
from dlpack_structs import capsule as dlpack_capsule
from dlpack_structs import capsule_name, capsule_pointer

C_CONTIGUOUS, ALIGNED, NOTSWAPPED, WRITEABLE, ARR_HAS_DESCR = 0x1, 0x100, 0x200, 0x400, 0x800
EXPECTED = -3.1415  # the value the C producer writes (test_cstruct's)


# ----------------------------------------------------------------- helpers --


@pytest.fixture(scope="module")
def producer():
    lib = load("array_struct")
    dims = ctypes.POINTER(ctypes.c_ssize_t)
    lib.new_struct.argtypes = [
        ctypes.c_int, dims, dims, ctypes.c_char, ctypes.c_int, ctypes.c_int, ctypes.c_ssize_t,
        ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_double,
    ]
    lib.new_struct.restype = ctypes.py_object
    lib.destroyed.restype = ctypes.c_long
    lib.created.restype = ctypes.c_long
    return lib


def new_capsule(lib, shape=(256,), strides=None, typekind=b"f", itemsize=8,
                flags=C_CONTIGUOUS | ALIGNED | NOTSWAPPED | WRITEABLE, two=2,
                descr=None, named=False, null_data=False, nd=None, value=EXPECTED, nbytes=None):
    """A fresh `__array_struct__` capsule from the C producer (it owns malloc'd data)."""
    n = len(shape)
    c_shape = (ctypes.c_ssize_t * max(n, 1))(*shape)
    c_strides = (ctypes.c_ssize_t * max(n, 1))(*strides) if strides is not None else None
    if nbytes is None:
        nbytes = int(np.prod(shape, dtype=np.int64)) * itemsize
    # descr travels as a raw PyObject* (NULL when None); the producer takes its own reference.
    return lib.new_struct(n if nd is None else nd, c_shape, c_strides, typekind, itemsize, flags, nbytes, two,
                          id(descr) if descr is not None else None, int(named), int(null_data), value)


class StructSource:
    """test_cstruct's data source: one capsule, made once, handed out on every access."""

    def __init__(self, capsule):
        self._capsule = capsule

    @property
    def __array_struct__(self):
        return self._capsule


class StructOnly:
    """Exposes only `__array_struct__` of the wrapped object (a NumPy array or a Tensor)."""

    def __init__(self, inner):
        self.inner = inner

    @property
    def __array_struct__(self):
        return self.inner.__array_struct__


class InterfaceOnly:
    """Exposes only `__array_interface__` of the wrapped object."""

    def __init__(self, inner):
        self.inner = inner

    @property
    def __array_interface__(self):
        return self.inner.__array_interface__


class DictSource:
    """Exposes a fixed `__array_interface__` value; `keep` holds what its pointer needs."""

    def __init__(self, interface, keep=None):
        self.interface = interface
        self.keep = keep

    @property
    def __array_interface__(self):
        return self.interface


def collect():
    """A full collection (about 0.1 s with torch loaded): used at checkpoints
    only; the drop-order loops rely on reference counting, so a leak through
    a cycle would show there as a destructor that did not run."""
    gc.collect()






assert ctypes.sizeof(PyArrayInterface) == 56


def struct_fields(capsule):
    s = PyArrayInterface.from_address(capsule_pointer(capsule, None))
    shape = tuple(s.shape[i] for i in range(s.nd))
    strides = None if s.nd and not s.strides else tuple(s.strides[i] for i in range(s.nd))
    return dict(two=s.two, nd=s.nd, typekind=s.typekind, itemsize=s.itemsize, flags=s.flags, shape=shape,
                strides=strides, data=s.data, descr=s.descr)


DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "complex64", "complex128"]
LAYOUTS = ["C", "F", "strided", "negative", "0-d", "empty", "size-1", "32-d"]


def make_array(dtype: str, layout: str) -> np.ndarray:
    """A NumPy view of `dtype` with the named layout, over fresh memory."""
    base = (np.arange(120) % 7 + 1).astype(dtype).reshape(4, 6, 5)
    return {
        "C": lambda: base,
        "F": lambda: np.asfortranarray(base),
        "strided": lambda: base[::2, 1::2, ::3],
        "negative": lambda: base[::-1, :, ::-2],
        "0-d": lambda: base[1, 2, 3:4].reshape(()),
        "empty": lambda: base[:, :0],
        "size-1": lambda: base[1, 2, 3:4],
        "32-d": lambda: base.reshape(-1)[:8].reshape((1,) * 14 + (2,) + (1,) * 14 + (2, 1, 2)),
    }[layout]()


def new_values(a: np.ndarray) -> np.ndarray:
    """Values different from `a`'s, of its dtype and shape."""
    return ((np.arange(a.size).reshape(a.shape) + 2) % 2 if a.dtype == bool
            else np.arange(a.size).reshape(a.shape) * 3 + 11).astype(a.dtype)


def readonly_view(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


# ------------------------------------------------------- __array_struct__ --


def test_cstruct_capsule_outlives_its_source_in_every_drop_order(producer):
    """test_cstruct with dlbridge in the middle: the source goes first, the
    capsule (and with it the data) goes when the last of five views goes."""
    start = producer.destroyed()
    orders = list(itertools.permutations(range(5)))
    for order in orders:
        before = producer.destroyed()
        source = StructSource(new_capsule(producer))
        t = dlbridge.from_array_interface(source)
        assert t.source == "array_struct" and t.dtype == "float64" and t.shape == (256,) and not t.readonly
        del source
        if order == orders[0]:
            collect()
        assert producer.destroyed() == before, "the capsule died with its source"
        views = [t, np.from_dlpack(t), torch.from_dlpack(t), memoryview(t), np.asarray(t)]
        del t
        assert producer.destroyed() == before
        assert np.allclose(views[1], EXPECTED) and np.allclose(views[4], EXPECTED)
        assert torch.allclose(views[2], torch.full((256,), EXPECTED, dtype=torch.float64))
        assert views[3][255] == EXPECTED
        # Writes through each consumer land in the one shared block.
        views[1][0] = 1.0
        views[2][1] = 2.0
        views[3][2] = 3.0
        views[4][3] = 4.0
        for reader in (views[1], views[4], views[2].numpy(), np.asarray(views[3]), np.from_dlpack(views[0])):
            assert list(reader[:5]) == [1.0, 2.0, 3.0, 4.0, EXPECTED]
        del reader
        assert views[1].ctypes.data == views[0].data_ptr == views[2].data_ptr() == views[4].ctypes.data
        for position, index in enumerate(order):
            views[index] = None
            expected = before + (1 if position == len(order) - 1 else 0)
            assert producer.destroyed() == expected, f"order {order}: after dropping view {index}"
    collect()
    assert producer.destroyed() == start + len(orders)


def test_cstruct_fresh_capsule_per_access_is_what_the_tensor_owns(producer):
    """The seed's data_source makes a new capsule on every access and keeps
    none: the tensor must own the capsule itself, not (only) the source."""

    class FreshSource:
        @property
        def __array_struct__(self):
            return new_capsule(producer, shape=(64,))

    created, destroyed = producer.created(), producer.destroyed()
    source = FreshSource()
    t = dlbridge.from_array_interface(source)
    assert producer.created() == created + 1
    assert producer.destroyed() == destroyed, "the capsule died while the tensor still points into it"
    view = np.from_dlpack(t)
    del source, t
    collect()
    assert producer.destroyed() == destroyed
    assert np.allclose(view, EXPECTED)
    view[:] = 1.0
    assert view.sum() == 64.0
    del view
    assert producer.destroyed() == destroyed + 1


def test_cstruct_without_writeable_is_readonly(producer):
    before = producer.destroyed()
    source = StructSource(new_capsule(producer, shape=(4, 8), flags=C_CONTIGUOUS | ALIGNED | NOTSWAPPED))
    t = dlbridge.from_array_interface(source)
    assert t.readonly and t.shape == (4, 8) and t.strides == (64, 8)
    del source
    collect()
    a, mv, b = np.from_dlpack(t), memoryview(t), np.asarray(t)
    assert not a.flags.writeable and mv.readonly and not b.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        a[0, 0] = 1.0
    with pytest.raises(TypeError):
        mv[0, 0] = 1.0
    with pytest.raises(BufferError):
        t.__dlpack__()  # legacy DLPack cannot carry READ_ONLY
    assert np.allclose(b, EXPECTED)
    assert producer.destroyed() == before
    del t, a, mv, b
    collect()
    assert producer.destroyed() == before + 1


def test_cstruct_explicit_strides_and_empty_null(producer):
    before = producer.destroyed()
    # Every other element of 8 doubles.
    source = StructSource(new_capsule(producer, shape=(4,), strides=(16,), nbytes=64,
                                      flags=ALIGNED | NOTSWAPPED | WRITEABLE))
    t = dlbridge.from_array_interface(source)
    assert t.strides == (16,) and np.from_dlpack(t).tolist() == [EXPECTED] * 4
    # NULL data is fine when there is nothing to point at.
    empty = dlbridge.from_array_interface(StructSource(new_capsule(producer, shape=(3, 0), null_data=True)))
    assert empty.size == 0 and empty.shape == (3, 0)
    assert np.from_dlpack(empty).shape == (3, 0)
    # ARR_HAS_DESCR with the default descr [('', typestr)] is plain data.
    described = dlbridge.from_array_interface(
        StructSource(new_capsule(producer, shape=(2,), flags=0x701 | ARR_HAS_DESCR, descr=[("", "<f8")])))
    assert described.dtype == "float64" and np.from_dlpack(described).tolist() == [EXPECTED] * 2
    del source, t, empty, described
    collect()
    assert producer.destroyed() == before + 3


STRUCT_REFUSALS = [
    ("not swapped", dict(flags=C_CONTIGUOUS | ALIGNED | WRITEABLE), BufferError, "0x501"),
    ("two is 3", dict(two=3), ValueError, "is 3, not 2"),
    ("nd 65", dict(shape=(1,) * 65), ValueError, "nd 65"),
    ("nd -1", dict(shape=(4,), nd=-1), ValueError, "nd -1"),
    ("named", dict(named=True), ValueError, "not_an_array_struct"),
    ("NULL data", dict(null_data=True), BufferError, "NULL data pointer for shape [256]"),
    ("structured descr", dict(typekind=b"V", itemsize=16, flags=0x701 | ARR_HAS_DESCR, descr=[("a", "<f8"), ("b", "<f8")]),
     BufferError, "[('a', '<f8'), ('b', '<f8')]"),
    # NumPy's own structured export (Q-4: flags &= HAS_DESCR gives 0) and the
    # same with NOTSWAPPED: descr set but not flagged, refused without a crash.
    ("Q-4 flags 0", dict(typekind=b"V", itemsize=16, flags=0, descr=[("a", "<f8"), ("b", "<f8")]),
     BufferError, "0x0"),
    ("itemsize 0", dict(itemsize=0), ValueError, "itemsize 0"),
    ("object kind", dict(typekind=b"O"), BufferError, "Python objects"),
    ("unknown kind", dict(typekind=b"x"), ValueError, "'x'"),
    ("f3", dict(itemsize=3), ValueError, "itemsize of 3"),
]


@pytest.mark.parametrize(("kwargs", "error", "fragment"), [r[1:] for r in STRUCT_REFUSALS],
                         ids=[r[0] for r in STRUCT_REFUSALS])
def test_cstruct_refusals_release_the_capsule_exactly_once(producer, kwargs, error, fragment):
    before = producer.destroyed()
    source = StructSource(new_capsule(producer, **kwargs))
    capsule = source._capsule
    capsule_refs = sys.getrefcount(capsule)
    for importer in (dlbridge.from_array_interface, dlbridge.asarray):
        with pytest.raises(error) as excinfo:
            importer(source)
        assert fragment in str(excinfo.value)
        del excinfo
        refs_now = sys.getrefcount(capsule)  # outside the assert: pytest's rewriting holds temporaries
        assert refs_now == capsule_refs, "a refusal kept a capsule reference"
    assert producer.destroyed() == before, "a refusal ran the capsule destructor"
    del source, capsule
    assert producer.destroyed() == before + 1


def test_non_capsule_struct_is_a_type_error():
    class Source:
        __array_struct__ = 5

    source = Source()
    with pytest.raises(TypeError, match="is a int, not a capsule"):
        dlbridge.from_array_interface(source)
    # A DLPack capsule is a capsule, but a named one.
    cap = dlpack_capsule()
    with pytest.raises(ValueError, match='named "dltensor_versioned"'):
        dlbridge.from_array_interface(StructSource(cap))


def test_struct_refused_with_buffer_error_falls_back_to_the_dict(producer):
    """from_array_interface: the struct first; its BufferError gives the dict a
    chance (the dict's memory is used), and the struct capsule is still freed once."""
    before = producer.destroyed()
    a = np.arange(6.0)

    class Both:
        def __init__(self):
            self.capsule = new_capsule(producer, flags=C_CONTIGUOUS | ALIGNED | WRITEABLE)  # not swapped

        @property
        def __array_struct__(self):
            return self.capsule

        @property
        def __array_interface__(self):
            return a.__array_interface__

    source = Both()
    t = dlbridge.from_array_interface(source)
    assert t.source == "array_interface" and t.data_ptr == a.ctypes.data
    del source
    collect()
    assert producer.destroyed() == before, "the tensor owns the exporting object, and it the capsule"
    assert np.from_dlpack(t).tolist() == a.tolist()
    del t
    collect()
    assert producer.destroyed() == before + 1

    class ValueErrorStruct(Both):
        def __init__(self):
            self.capsule = new_capsule(producer, two=7)

    source = ValueErrorStruct()
    with pytest.raises(ValueError, match="is 7, not 2"):  # not a refusal: no fallback
        dlbridge.from_array_interface(source)
    del source
    collect()
    assert producer.destroyed() == before + 2


# ----------------------------------------- __array_interface__ owning memory --

_libc = ctypes.CDLL(None)
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]
_libc.free.argtypes = [ctypes.c_void_p]


class Malloced:
    """Owns libc-malloc'd doubles; `__del__` poisons and frees them and counts."""

    deleted = 0

    def __init__(self, n):
        self.n = n
        self.ptr = _libc.malloc(n * 8)
        values = (ctypes.c_double * n).from_address(self.ptr)
        for i in range(n):
            values[i] = i + 0.5

    @property
    def __array_interface__(self):
        return {"data": (self.ptr, False), "shape": (self.n,), "typestr": "<f8", "version": 3, "strides": None}

    def __del__(self):
        ctypes.memset(self.ptr, 0xAB, self.n * 8)
        _libc.free(self.ptr)
        Malloced.deleted += 1


def test_interface_object_is_kept_alive_by_every_view():
    expected = [i + 0.5 for i in range(16)]
    for order in itertools.permutations(range(4)):
        before = Malloced.deleted
        source = Malloced(16)
        address = source.ptr
        t = dlbridge.from_array_interface(source)
        assert t.source == "array_interface" and t.data_ptr == address and not t.readonly
        del source
        views = [t, np.from_dlpack(t), torch.from_dlpack(t), np.asarray(t)]
        del t
        assert Malloced.deleted == before
        assert views[1].tolist() == expected and views[2].tolist() == expected and views[3].tolist() == expected
        views[2][0] = -1.0
        views[3][1] = -2.0
        assert views[1][:2].tolist() == [-1.0, -2.0]
        assert views[1].ctypes.data == views[2].data_ptr() == views[3].ctypes.data == address
        for position, index in enumerate(order):
            views[index] = None
            assert Malloced.deleted == before + (1 if position == len(order) - 1 else 0), (order, index)


# ------------------------------------------------------------------- PIL --


@pytest.mark.parametrize(("mode", "dtype", "shape"), [
    ("1", "bool", (3, 5)), ("L", "uint8", (3, 5)), ("RGB", "uint8", (3, 5, 3)), ("RGBA", "uint8", (3, 5, 4)),
    ("I", "int32", (3, 5)), ("F", "float32", (3, 5)), ("I;16", "uint16", (3, 5)),
])
def test_pil_images(mode, dtype, shape):
    from PIL import Image

    rng = np.random.default_rng(7)
    if mode in ("RGB", "RGBA"):
        image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
    elif mode == "1":
        image = Image.fromarray(rng.integers(0, 2, shape).astype(bool))
    else:
        image = Image.fromarray(rng.integers(0, 200, shape).astype(np.dtype(dtype)))
        image = image.convert(mode) if image.mode != mode else image
    reference = np.asarray(image)
    assert image.mode == mode and reference.dtype == np.dtype(dtype) and reference.shape == shape
    for t in (dlbridge.from_array_interface(image), dlbridge.asarray(image)):
        # PIL hands out `bytes`: a read-only buffer the tensor keeps alive.
        assert t.source == "array_interface" and t.readonly
        assert t.dtype == dtype and t.shape == shape
        view = np.from_dlpack(t)
        assert view.ctypes.data == t.data_ptr and not view.flags.writeable
        assert np.array_equal(view, reference)
    del image, view
    collect()
    assert np.array_equal(np.from_dlpack(t), reference)


def test_pil_big_endian_image_is_refused():
    from PIL import Image

    image = Image.new("I;16B", (4, 2))
    with pytest.raises(BufferError, match='">u2": non-native byte order'):
        dlbridge.from_array_interface(image)


# --------------------------------------------------------------- pyarrow --


def test_pyarrow_array_and_buffer():
    import pyarrow as pa  # pinned in requirements-dev.txt: never skipped
    array = pa.array([1.5, 2.5, 3.5, 4.5])
    values_address = array.buffers()[1].address
    # pyarrow speaks DLPack (and __array__), not the array interface.
    assert hasattr(array, "__dlpack__") and not hasattr(array, "__array_interface__")
    t = dlbridge.asarray(array)
    # An older pyarrow's __dlpack__ takes no max_version (TypeError): from an
    # object that also speaks Arrow that is a refusal, and Arrow answers.
    # Which one this pyarrow is, asked of pyarrow itself.
    try:
        array.__dlpack__(max_version=(1, 0))
        expected = "dlpack"
    except TypeError:
        expected = "arrow"
    assert t.source == expected and t.dtype == "float64" and t.readonly
    assert t.data_ptr == values_address
    assert np.from_dlpack(t).tolist() == [1.5, 2.5, 3.5, 4.5]
    sliced = dlbridge.asarray(array.slice(1))
    assert sliced.data_ptr == values_address + 8 and np.from_dlpack(sliced).tolist() == [2.5, 3.5, 4.5]
    with pytest.raises(TypeError, match="neither __array_struct__ nor __array_interface__"):
        dlbridge.from_array_interface(array)
    # pyarrow's __dlpack__ refuses nulls with ArrowTypeError (a TypeError);
    # from an object that also speaks Arrow that is a refusal, and its Arrow
    # export is asked (no legacy DLPack retry, which pyarrow 26 deprecates).
    with pytest.raises(BufferError, match="no nulls.*Arrow PyCapsule interface.*1 null"):
        dlbridge.asarray(pa.array([1.0, None]))

    # A pyarrow Buffer speaks the buffer protocol (format 'b').
    buffer = array.buffers()[1]
    b = dlbridge.asarray(buffer)
    assert b.source == "buffer" and b.dtype == "int8" and b.nbytes == 32 and b.data_ptr == values_address
    # ... and serves as `data` of an __array_interface__ dict, offset applied.
    source = DictSource({"data": buffer, "offset": 8, "shape": (3,), "typestr": "<f8", "version": 3})
    d = dlbridge.from_array_interface(source)
    assert d.data_ptr == values_address + 8 and np.from_dlpack(d).tolist() == [2.5, 3.5, 4.5]
    del array, buffer, source
    collect()
    assert np.from_dlpack(d).tolist() == [2.5, 3.5, 4.5] and np.from_dlpack(t)[0] == 1.5


# --------------------------------------------- importing NumPy through wrappers --


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_import_numpy_views_through_one_attribute(dtype, layout):
    for wrapper, source_name in ((InterfaceOnly, "array_interface"), (StructOnly, "array_struct")):
        for readonly in (False, True):
            a = make_array(dtype, layout)
            a = readonly_view(a) if readonly else a
            expected = a.copy()
            # NumPy's own reading of the same attribute is the reference for
            # strides (an empty array's dict says C-contiguous, losing them).
            reference = np.asarray(wrapper(a))
            t = dlbridge.from_array_interface(wrapper(a))
            assert t.source == source_name
            assert t.dtype == np.dtype(dtype).name and t.shape == a.shape and t.ndim == a.ndim
            assert t.data_ptr == a.ctypes.data
            assert t.strides == reference.strides
            if a.size:
                assert t.strides == a.strides
            assert t.readonly == readonly
            view = np.from_dlpack(t)
            assert view.dtype == a.dtype and view.strides == t.strides and view.ctypes.data == a.ctypes.data
            assert np.array_equal(view, a)
            assert view.flags.writeable == (not readonly)
            assert memoryview(t).readonly == readonly
            if not readonly and a.size:
                fresh = new_values(a)
                view[...] = fresh
                assert np.array_equal(a, fresh)
            # The source (wrapper and array) may go; the tensor keeps the memory.
            alive = weakref.ref(a.base if a.base is not None else a)
            del a, view, reference
            assert alive() is not None
            if readonly or expected.size == 0:
                assert np.array_equal(np.from_dlpack(t), expected)
            del t
            assert alive() is None, "the tensor leaked its source"


def test_ml_dtypes_arrays_import_by_the_struct_with_their_dtype():
    for name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        a = np.array([0.0, 1.0, -2.0, 0.5], dtype=getattr(ml_dtypes, name))
        t = dlbridge.from_array_interface(a)
        assert t.source == "array_struct" and t.dtype == name and t.data_ptr == a.ctypes.data
        # Through a wrapper the struct says only "V" (or "f1"): no name, so
        # opaque bytes, which view() names again, zero-copy.
        for wrapper in (StructOnly(a), InterfaceOnly(a)):
            opaque = dlbridge.from_array_interface(wrapper)
            assert opaque.dtype == f"void{8 * a.itemsize}" and opaque.data_ptr == a.ctypes.data
            named = opaque.view(name)
            assert named.dtype == name and named.data_ptr == a.ctypes.data
            assert named.numpy().tolist() == a.tolist()


def test_unflagged_descr_imports_as_the_opaque_bytes_it_declares(producer):
    """NumPy's Q-4 export (descr set, HAS_DESCR not flagged): the descr must not
    be read, so the struct says only "16 opaque bytes", which is what comes in
    (read-only: no WRITEABLE flag); the capsule is still released once."""
    before = producer.destroyed()
    source = StructSource(new_capsule(producer, typekind=b"V", itemsize=16, flags=NOTSWAPPED,
                                      descr=[("a", "<f8"), ("b", "<f8")]))
    t = dlbridge.from_array_interface(source)
    assert (t.dtype, t.itemsize, t.readonly, t.source) == ("void128", 16, True, "array_struct")
    del source, t
    collect()
    assert producer.destroyed() == before + 1


# ------------------------------------------------------------------ export --


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_export_to_numpy_through_one_attribute(dtype, layout):
    for readonly in (False, True):
        a = make_array(dtype, layout)
        a = readonly_view(a) if readonly else a
        t = dlbridge.asarray(a)
        assert t.readonly == readonly and t.data_ptr == a.ctypes.data
        interface = t.__array_interface__
        assert set(interface) == {"data", "strides", "descr", "typestr", "shape", "version"}
        assert interface["version"] == 3
        assert interface["data"] == (a.ctypes.data, readonly)
        assert (interface["strides"] is None) == a.flags.c_contiguous
        assert interface["descr"] == [("", interface["typestr"])]
        assert interface == a.__array_interface__, "NumPy describes the same array differently"
        ours, numpys = struct_fields(t.__array_struct__), struct_fields(a.__array_struct__)
        assert ours == numpys
        assert bool(ours["flags"] & WRITEABLE) == (not readonly) and ours["flags"] & NOTSWAPPED
        for wrapper in (InterfaceOnly, StructOnly):
            r = np.asarray(wrapper(t))
            reference = np.asarray(wrapper(a))
            assert r.dtype == a.dtype and r.shape == a.shape and r.strides == reference.strides
            assert r.ctypes.data == a.ctypes.data
            assert np.array_equal(r, a)
            assert r.flags.writeable == (not readonly)
            if not readonly and a.size:
                fresh = new_values(a)
                r[...] = fresh
                assert np.array_equal(a, fresh)


def test_export_dict_is_fresh_each_time():
    t = dlbridge.asarray(np.arange(6.0).reshape(2, 3)[:, ::2])
    first = t.__array_interface__
    pristine = {key: (list(value) if isinstance(value, list) else value) for key, value in first.items()}
    first["shape"] = (99,)
    first["data"] = (0, True)
    first["strides"] = None
    del first["typestr"]
    first["mask"] = "mask"
    assert t.__array_interface__ == pristine
    assert t.__array_interface__ is not t.__array_interface__


def test_export_dict_descr_list_is_not_shared():
    """A consumer that edits the `descr` list it was given must not change the
    next caller's dict (NumPy builds a new dict, list included, per access)."""
    t = dlbridge.asarray(np.arange(4, dtype=np.int32))
    first = t.__array_interface__
    first["descr"][0] = ("x", "<i8")
    first["descr"].append(("y", "<f4"))
    assert t.__array_interface__["descr"] == [("", "<i4")]
    assert t.__array_interface__["descr"] is not t.__array_interface__["descr"]


def test_export_struct_capsule_is_unnamed_and_holds_the_tensor_until_it_goes():
    # Each capsule holds one reference to the Tensor object (its interface
    # points into the object's frozen layout, as NumPy's points into the
    # array's), and gives it back when it goes: nothing leaks.
    t = dlbridge.asarray(np.arange(12.0).reshape(3, 4))
    base = sys.getrefcount(t)
    for _ in range(1000):
        capsule = t.__array_struct__
    assert capsule_name(capsule) is None
    assert sys.getrefcount(t) == base + 1
    capsules = [t.__array_struct__ for _ in range(100)]
    assert sys.getrefcount(t) == base + 101
    del capsule, capsules
    assert sys.getrefcount(t) == base
    wrapper = StructOnly(t)
    refs_with_wrapper = sys.getrefcount(t)
    arrays = [np.asarray(wrapper) for _ in range(100)]  # each array's base holds (wrapper, capsule)
    assert all(x.ctypes.data == t.data_ptr for x in arrays)
    assert sys.getrefcount(t) == refs_with_wrapper + 100  # one per array's capsule
    del arrays
    assert sys.getrefcount(t) == refs_with_wrapper
    # The capsule alone keeps the tensor (and its memory) alive, until it goes.
    live = dlbridge.live_buffers()
    r = dlbridge.asarray(np.arange(12.0).reshape(3, 4), copy=True)
    data = r.data_ptr
    capsule = r.__array_struct__
    del r
    assert dlbridge.live_buffers() == live + 1
    view = np.asarray(StructSource(capsule))
    assert view.ctypes.data == data and view[2, 3] == 11.0
    del capsule
    assert dlbridge.live_buffers() == live + 1  # the array's base holds the capsule
    del view
    gc.collect()
    assert dlbridge.live_buffers() == live
    interface_arrays = [np.asarray(InterfaceOnly(t)) for _ in range(10)]  # each holds its wrapper, so t
    refs = sys.getrefcount(t)
    assert refs == refs_with_wrapper + 10
    del interface_arrays, wrapper
    collect()
    assert sys.getrefcount(t) == base


def test_export_struct_keeps_rust_memory_alive_until_the_last_consumer():
    collect()
    base = dlbridge.live_buffers()
    for order in itertools.permutations(range(3)):
        t = dlbridge.zeros((4, 4), dtype="float64")
        assert dlbridge.live_buffers() == base + 1
        keep = [t.__array_struct__, np.asarray(StructOnly(t)), np.asarray(InterfaceOnly(t))]
        keep[1][1, 2] = 7.0
        del t
        assert dlbridge.live_buffers() == base + 1
        assert keep[2][1, 2] == 7.0
        for position, index in enumerate(order):
            keep[index] = None
            assert dlbridge.live_buffers() == base + (0 if position == 2 else 1), (order, index)
    # A capsule nobody consumed frees its block too.
    t = dlbridge.zeros(8)
    capsule = t.__array_struct__
    del t
    collect()
    assert dlbridge.live_buffers() == base + 1
    del capsule
    collect()
    assert dlbridge.live_buffers() == base


def test_export_refuses_non_cpu_memory():
    t = dlbridge.from_dlpack(dlpack_capsule(device=(2, 0)))
    assert t.device == (2, 0)
    with pytest.raises(BufferError, match="needs CPU memory"):
        t.__array_interface__
    with pytest.raises(BufferError, match="needs CPU memory"):
        t.__array_struct__
    with pytest.raises(BufferError, match="needs CPU memory"):
        np.asarray(StructOnly(t))
    # The wrappers' properties raise that BufferError: dlbridge passes it on
    # (it used to say "speaks no array protocol", a TypeError).
    for wrapper in (InterfaceOnly, StructOnly):
        with pytest.raises(BufferError, match="needs CPU memory"):
            dlbridge.from_array_interface(wrapper(t))
        with pytest.raises(BufferError, match="needs CPU memory"):
            dlbridge.asarray(wrapper(t))


# ------------------------------------------- bfloat16 / float8 with PyTorch --

LOW_PRECISION = ["bfloat16", float8_param("float8_e4m3fn", id="float8_e4m3fn"), float8_param("float8_e5m2", id="float8_e5m2")]
EXACT = [0.0, 1.0, -2.0, 0.5, 3.0, -1.5]


@pytest.mark.parametrize("name", LOW_PRECISION)
def test_ml_dtypes_to_torch_zero_copy(name):
    a = np.array(EXACT, dtype=getattr(ml_dtypes, name))
    t = dlbridge.asarray(a)
    assert t.dtype == name and t.data_ptr == a.ctypes.data
    x = torch.from_dlpack(t)
    assert x.dtype == getattr(torch, name) and x.data_ptr() == a.ctypes.data
    assert x.float().tolist() == EXACT
    a[0] = 4.0
    assert x.float()[0] == 4.0
    x[1] = 2.0
    assert float(a[1]) == 2.0
    # Strided too.
    s = torch.from_dlpack(dlbridge.asarray(a[::2]))
    assert s.stride() == (2,) and s.data_ptr() == a.ctypes.data and s.float().tolist() == [4.0, -2.0, 3.0]
    del x, t, s
    collect()


@pytest.mark.parametrize("name", LOW_PRECISION)
def test_torch_to_ml_dtypes_zero_copy(name):
    x = torch.tensor(EXACT, dtype=getattr(torch, name))
    t = dlbridge.asarray(x)
    assert t.dtype == name and t.data_ptr == x.data_ptr()
    n = t.numpy()
    assert type(n) is np.ndarray and n.dtype == np.dtype(getattr(ml_dtypes, name))
    assert n.ctypes.data == x.data_ptr() and n.astype(np.float32).tolist() == EXACT
    n[1] = 2.0
    assert x.float()[1] == 2.0
    x[2] = 4.0
    assert float(n[2]) == 4.0
    del x, t
    collect()
    assert n.astype(np.float32).tolist()[:3] == [0.0, 2.0, 4.0]


def test_view_reinterprets_same_itemsize():
    bits = np.array([0x3F80, 0x4000, 0xBF80], dtype=np.uint16)  # bfloat16 1, 2, -1
    u = dlbridge.asarray(bits)
    b = u.view("bfloat16")
    assert b.dtype == "bfloat16" and b.data_ptr == u.data_ptr == bits.ctypes.data and b.shape == (3,)
    assert torch.from_dlpack(b).float().tolist() == [1.0, 2.0, -1.0]
    assert u.view(np.dtype(ml_dtypes.bfloat16)).dtype == "bfloat16"
    assert u.view(torch.float16).dtype == "float16"
    e = dlbridge.asarray(np.array([0x3C], dtype=np.uint8)).view("float8_e5m2")  # 1.0
    assert e.dtype == "float8_e5m2"
    if TORCH_DLPACK_FLOAT8:  # torch 2.9 has no float8 over DLPack
        assert torch.from_dlpack(e).float().tolist() == [1.0]
    # Another itemsize, by NumPy's rule: the last axis's bytes re-counted.
    with pytest.raises(ValueError, match="6 bytes, not a multiple of 4"):
        u.view("float32")
    as_bytes = u.view("uint8")
    assert as_bytes.shape == (6,) and as_bytes.data_ptr == bits.ctypes.data
    np.testing.assert_array_equal(np.asarray(as_bytes), bits.view(np.uint8))
    words = dlbridge.asarray(np.arange(8, dtype=np.uint8).reshape(2, 4)).view("uint32")
    assert words.shape == (2, 1) and words.strides == (4, 4)
    with pytest.raises(ValueError, match="must be contiguous"):
        dlbridge.asarray(np.zeros((2, 4), np.uint16)[:, ::2]).view("uint8")
    with pytest.raises(ValueError, match="0-d tensor cannot change its itemsize"):
        dlbridge.asarray(np.uint16(3)).view("uint8")


# ------------------------------------------------------- malformed dicts --

BASE = {"shape": (12,), "typestr": "<f4", "version": 3, "strides": None}
MISSING = object()
MALFORMED = [
    # label, changes (MISSING removes the key), exception, message fragment
    ("missing typestr", dict(typestr=MISSING), ValueError, 'no "typestr" key'),
    ("missing shape", dict(shape=MISSING), ValueError, 'no "shape" key'),
    ("typestr <f3", dict(typestr="<f3"), ValueError, '"<f3"'),
    ("typestr <t8", dict(typestr="<t8"), ValueError, '"<t8": unknown type kind'),
    ("typestr <u16", dict(typestr="<u16"), ValueError, '"<u16"'),
    ("typestr empty", dict(typestr=""), ValueError, 'typestr ""'),
    ("typestr int", dict(typestr=4), TypeError, "got int"),
    ("kind O", dict(typestr="|O8"), BufferError, '"|O8"'),
    ("kind M", dict(typestr="<M8[s]"), BufferError, '"<M8[s]"'),
    ("kind m", dict(typestr="<m8"), BufferError, '"<m8"'),
    ("kind S", dict(typestr="|S4"), BufferError, '"|S4"'),
    ("kind U", dict(typestr="<U1"), BufferError, '"<U1"'),
    ("V wider than DLPack", dict(typestr="|V32", shape=(3,)), BufferError, "opaque 32-byte elements"),
    ("long double", dict(typestr="<f16", shape=(3,)), BufferError, '"<f16"'),
    ("big endian", dict(typestr=">f4"), BufferError, '">f4"'),
    ("negative shape", dict(shape=(3, -1)), ValueError, "-1"),
    ("shape past int64", dict(shape=(2**63,)), ValueError, "9223372036854775808"),
    ("shape product overflows", dict(shape=(2**62, 4)), ValueError, "4611686018427387904"),
    ("shape as list", dict(shape=[12]), TypeError, "[12]"),
    ("shape of floats", dict(shape=(1.5,)), TypeError, "(1.5,)"),
    ("65 dims", dict(shape=(1,) * 65), ValueError, "65 entries"),
    ("strides length", dict(strides=(4, 4)), ValueError, "[4, 4]"),
    ("strides as list", dict(strides=[4]), TypeError, "[4]"),
    ("version 2", dict(version=2), ValueError, "version 2 "),
    ("version missing", dict(version=MISSING), ValueError, "version missing"),
    ("version '3'", dict(version="3"), ValueError, "version '3'"),
    ("mask", dict(mask=(True,) * 12), BufferError, "mask"),
    ("data 3-tuple", dict(data=(1, False, 0)), TypeError, "(1, False, 0)"),
    ("data 1-tuple", dict(data=(1,)), TypeError, "(1,)"),
    ("pointer str", dict(data=("0x10", False)), TypeError, "got 0x10"),
    ("pointer negative", dict(data=(-8, False)), TypeError, "got -8"),
    ("pointer float", dict(data=(8.0, False)), TypeError, "got 8.0"),
    ("NULL pointer", dict(data=(0, False)), BufferError, "NULL data pointer for shape [12]"),
    ("offset with tuple", "offset-tuple", ValueError, "offset 4 with a (pointer, readonly)"),
    ("offset past buffer", dict(data="ba", offset=100), ValueError, "offset 100 is beyond its buffer's 48"),
    ("layout past buffer", dict(data="ba", offset=4), BufferError, "at offset 4 reaches outside a buffer of 48"),
    ("offset negative", dict(data="ba", offset=-4), ValueError, "got -4"),
    ("offset str", dict(data="ba", offset="4"), TypeError, "got 4"),
    ("data without buffer", dict(data=3), BufferError, "data (int) gives no buffer"),
    ("no data, no buffer", dict(data=None), BufferError, "data (DictSource) gives no buffer"),
    ("structured descr", dict(typestr="|V8", shape=(6,), descr=[("re", "<f4"), ("im", "<f4")]),
     BufferError, "[('re', '<f4'), ('im', '<f4')]"),
    ("one named field", dict(descr=[("x", "<f4")]), BufferError, "[('x', '<f4')]"),
]


@pytest.mark.parametrize(("changes", "error", "fragment"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_dicts_are_refused_and_leak_nothing(changes, error, fragment):
    memory = np.zeros(12, dtype=np.float32)
    ba = bytearray(48)
    interface = dict(BASE, data=(memory.ctypes.data, False))
    if changes == "offset-tuple":
        changes = dict(offset=4)
    for key, value in changes.items():
        if value is MISSING:
            interface.pop(key)
        else:
            interface[key] = ba if value == "ba" and key == "data" else value
    source = DictSource(interface, keep=memory)
    def refcounts():
        return sys.getrefcount(source), sys.getrefcount(ba), sys.getrefcount(memory), sys.getrefcount(interface)

    refs = refcounts()
    for importer in (dlbridge.from_array_interface, dlbridge.asarray):
        with pytest.raises(error) as excinfo:
            importer(source)
        assert fragment in str(excinfo.value), str(excinfo.value)
        del excinfo
    refs_now = refcounts()
    assert refs_now == refs
    ba.extend(b"\x00" * 8)  # no buffer export left behind on the bytearray


def test_not_a_dict_is_a_type_error():
    with pytest.raises(TypeError, match="__array_interface__ of DictSource is a list, not a dict"):
        dlbridge.from_array_interface(DictSource([("shape", (1,))]))


def test_accepted_spellings():
    memory = np.arange(12, dtype=np.float32)
    for typestr in ("<f4", "f4", "=f4", "|f4", b"<f4"):
        t = dlbridge.from_array_interface(DictSource(dict(BASE, typestr=typestr, data=(memory.ctypes.data, 0)), memory))
        assert t.dtype == "float32" and np.from_dlpack(t).tolist() == memory.tolist()
    for typestr, dtype in (("|b1", "bool"), ("<f2", "float16"), ("<c8", "complex64"), ("<c16", "complex128"),
                           (">u1", "uint8"), ("<i8", "int64")):
        itemsize = np.dtype(dtype).itemsize
        t = dlbridge.from_array_interface(
            DictSource(dict(BASE, typestr=typestr, shape=(48 // itemsize,), data=(memory.ctypes.data, True)), memory))
        assert t.dtype == dtype and t.readonly
    # mask=None, offset 0 with the tuple, the default descr, a descr of None.
    t = dlbridge.from_array_interface(DictSource(dict(BASE, data=(memory.ctypes.data, False), mask=None, offset=0,
                                                      descr=[("", "<f4")]), memory))
    assert t.shape == (12,) and not t.readonly
    # NULL with nothing to point at is fine; explicit negative strides.
    empty = dlbridge.from_array_interface(DictSource(dict(BASE, shape=(0, 4), data=(0, False))))
    assert empty.shape == (0, 4) and empty.size == 0
    last = memory.ctypes.data + 11 * 4
    r = dlbridge.from_array_interface(DictSource(dict(BASE, shape=(3, 2), strides=(-16, -4), data=(last, False)),
                                                 memory))
    assert np.from_dlpack(r).tolist() == [[11.0, 10.0], [7.0, 6.0], [3.0, 2.0]]


# ---------------------------------------------------------- buffer data --


def test_buffer_data_applies_the_offset_and_pins_the_bytearray():
    ba = bytearray(np.arange(8, dtype=np.float32).tobytes())
    start = np.frombuffer(ba, dtype=np.uint8).ctypes.data
    source = DictSource({"data": ba, "offset": 4, "shape": (3,), "typestr": "<f4", "version": 3})
    t = dlbridge.from_array_interface(source)
    assert t.source == "array_interface" and not t.readonly
    assert t.data_ptr == start + 4
    assert np.from_dlpack(t).tolist() == [1.0, 2.0, 3.0]
    np.from_dlpack(t)[0] = 42.0
    assert np.frombuffer(ba, dtype=np.float32)[1] == 42.0
    with pytest.raises(BufferError):
        ba.append(0)  # exported: cannot be resized while the tensor lives
    del source
    collect()
    with pytest.raises(BufferError):
        ba.extend(b"1234")
    del t
    collect()
    ba.extend(b"1234")

    # Negative strides inside the buffer: offset points at the first logical element.
    ba = bytearray(np.arange(4, dtype=np.float32).tobytes())
    r = dlbridge.from_array_interface(
        DictSource({"data": ba, "offset": 12, "shape": (4,), "strides": (-4,), "typestr": "<f4", "version": 3}))
    assert np.from_dlpack(r).tolist() == [3.0, 2.0, 1.0, 0.0]
    with pytest.raises(BufferError, match="reaches outside"):
        dlbridge.from_array_interface(
            DictSource({"data": ba, "offset": 8, "shape": (4,), "strides": (-4,), "typestr": "<f4", "version": 3}))


def test_readonly_buffer_data_gives_a_readonly_tensor():
    data = np.arange(4, dtype=np.int16).tobytes()
    t = dlbridge.from_array_interface(DictSource({"data": data, "shape": (2,), "typestr": "<i2", "version": 3,
                                                  "offset": 2}))
    assert t.readonly and np.from_dlpack(t).tolist() == [1, 2]
    assert not np.from_dlpack(t).flags.writeable


@pytest.mark.parametrize("data", ["absent", "none"])
def test_missing_or_none_data_uses_the_objects_own_buffer(data):
    class Exporter(bytearray):
        @property
        def __array_interface__(self):
            interface = {"shape": (2,), "typestr": "<u4", "version": 3, "offset": 4}
            if data == "none":
                interface["data"] = None
            return interface

    source = Exporter(np.array([5, 6, 7, 8], dtype=np.uint32).tobytes())
    t = dlbridge.from_array_interface(source)
    assert t.source == "array_interface"
    assert t.data_ptr == np.frombuffer(source, dtype=np.uint8).ctypes.data + 4
    assert np.from_dlpack(t).tolist() == [6, 7]
    with pytest.raises(BufferError):
        source.append(0)
    del t
    collect()
    source.append(0)
