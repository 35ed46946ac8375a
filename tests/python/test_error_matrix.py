"""One test per row of docs/errors.md: the input, the exception, the message.

The doc table is parsed here, so a row without a test, a test without a row,
or a row whose exception or message drifted from the code fails the suite.
"""

from __future__ import annotations

import ctypes
import pathlib
import re

import numpy as np
import pyarrow as pa
import pytest
import torch

import dlbridge
from dlpack_structs import DLDataType, DLDevice, DLManagedTensorVersioned, DLTensor, capsule, capsule_pointer, versioned_header
from array_interface_structs import PyArrayInterface
from cbuild import load
from arrow_error_cases import CASES as ARROW_CASES
from cuda_error_cases import CASES as CUDA_CASES
from pickle_error_cases import CASES as PICKLE_CASES
from values_error_cases import CASES as VALUES_CASES

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def doc_rows() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if len(cells) == 4 and re.fullmatch(r"[a-z][a-z0-9-]*", cells[0]) and cells[0] != "id":
            rows[cells[0]] = (cells[2], cells[3])
    return rows


ROWS = doc_rows()

_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.c_void_p, ctypes.c_int]
_release = ctypes.pythonapi.PyBuffer_Release
_release.argtypes = [ctypes.c_void_p]
PyBUF_WRITABLE, PyBUF_ND, PyBUF_STRIDES = 0x1, 0x8, 0x18
PyBUF_C_CONTIGUOUS, PyBUF_F_CONTIGUOUS, PyBUF_ANY_CONTIGUOUS = 0x38, 0x58, 0x98


def get_buffer(obj, flags):
    view = (ctypes.c_char * 80)()  # sizeof(Py_buffer) on 64-bit CPython
    _get_buffer(obj, ctypes.addressof(view), flags)
    _release(ctypes.addressof(view))  # only reached if it unexpectedly succeeded


class DeviceSays:
    """A DLPack producer whose `__dlpack_device__` says `device`."""

    def __init__(self, device):
        self.device = device

    def __dlpack__(self, **kwargs):
        return capsule()

    def __dlpack_device__(self):
        return self.device


class Returns:
    def __init__(self, value):
        self.value = value

    def __dlpack__(self, **kwargs):
        return self.value


class Raises:
    def __dlpack__(self, **kwargs):
        raise KeyError("boom")


def readonly_tensor():
    a = np.arange(4.0)
    a.flags.writeable = False
    return dlbridge.asarray(a)


def cuda_tensor():
    return dlbridge.from_dlpack(capsule(device=(2, 0), data=0x10000))


def consumed_twice():
    cap = capsule()
    dlbridge.from_dlpack(cap)
    dlbridge.from_dlpack(cap)


def stride_five():
    record = np.zeros(4, dtype=[("a", "<i4"), ("b", "u1")])
    t = dlbridge.from_buffer(record["a"])
    assert t.strides == (5,)
    t.__dlpack__(max_version=(1, 0))


def suboffsets():
    import _testbuffer  # CPython's own test exporter: a missing one must fail, not skip
    exporter = _testbuffer.ndarray(list(range(12)), shape=[3, 4], format="B", flags=_testbuffer.ND_PIL)
    dlbridge.from_buffer(exporter)


class InnerAttributeError:
    """An `__array_interface__` property whose own body fails with AttributeError."""

    @property
    def __array_interface__(self):
        raise AttributeError("inner")


class Interface:
    """Speaks only `__array_interface__`, with the dict given."""

    def __init__(self, **interface):
        self.__array_interface__ = interface


def interface(**changes):
    base = {"version": 3, "typestr": "<f4", "shape": (4,), "data": (KEEP.ctypes.data, False)}
    base.update(changes)
    return {key: value for key, value in base.items() if value is not DROP}


KEEP = np.zeros(16, np.float32)
DROP = object()


class NoCopy:
    """Speaks only `__array__`, NumPy 2's signature, and can only give a copy."""

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("Unable to avoid copy while creating an array as requested.")
        return np.zeros(2)


class OldArray:
    """Speaks only `__array__`, with NumPy 1's signature (no `copy`)."""

    def __array__(self, dtype=None):
        return np.zeros(2)


class NotArray:
    """An `__array__` that returns no array."""

    def __array__(self, dtype=None, copy=None):
        return 3




_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


class Struct:
    """Speaks only `__array_struct__`: an unnamed capsule over a ctypes PyArrayInterface."""

    def __init__(self, name=None, **fields):
        shape = (ctypes.c_ssize_t * 1)(4)
        values = {"two": 2, "nd": 1, "typekind": b"f", "itemsize": 4, "flags": 0x701, "shape": shape,
                  "strides": None, "data": KEEP.ctypes.data, "descr": None}
        values.update(fields)
        self.keep = (shape, PyArrayInterface(**values))
        self.__array_struct__ = _capsule_new(ctypes.addressof(self.keep[1]), name, None)


def from_interface(**changes):
    return dlbridge.from_array_interface(Interface(**interface(**changes)))


def exporter(nbytes, format, itemsize, ndim, shape, strides=None):
    """The counting C exporter (helpers/exporter.c): exports exactly what it is told."""
    lib = load("exporter")
    lib.exporter_type.argtypes = []
    lib.exporter_type.restype = ctypes.py_object
    return lib.exporter_type()(nbytes, format, itemsize, ndim, shape, strides, False)


def lying_exporter(mode):
    """helpers/lying_exporter.c: an exporter whose Py_buffer breaks PEP 3118 (mode 1: NULL buf, len 16)."""
    lib = load("lying_exporter")
    lib.liar_type.argtypes = []
    lib.liar_type.restype = ctypes.py_object
    return lib.liar_type()(mode)


def deep_testbuffer(ndim):
    import _testbuffer  # CPython's own test exporter: a missing one must fail, not skip
    dlbridge.from_buffer(_testbuffer.ndarray([1], shape=[1] * ndim, format="B"))


def null_dlpack_shape():
    cap = capsule()
    versioned_header(cap).dl_tensor.shape = None
    dlbridge.from_dlpack(cap)


_vectorcall_method = ctypes.pythonapi.PyObject_VectorcallMethod
_vectorcall_method.restype = ctypes.py_object
_vectorcall_method.argtypes = [ctypes.py_object, ctypes.c_void_p, ctypes.c_size_t, ctypes.py_object]


def duplicate_keyword():
    """`t.__dlpack__` called from C with one keyword twice (Python syntax cannot say it)."""
    args = (ctypes.py_object * 3)(dlbridge.zeros(2), None, None)
    _vectorcall_method("__dlpack__", ctypes.addressof(args), 1, ("copy", "copy"))


_SET_ERROR = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p)
_ALLOCATOR = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(DLTensor), ctypes.POINTER(ctypes.c_void_p),
                              ctypes.c_void_p, _SET_ERROR)
_DELETER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def exchange_allocate(device=(1, 0), shape=(4,), ndim=None):
    """Calls `Tensor`'s DLPack exchange API `managed_tensor_allocator` (the
    table's first function, after its 16-byte header) the way a C consumer
    does, and raises the exception its SetError callback names."""
    table = capsule_pointer(dlbridge.Tensor.__dlpack_c_exchange_api__, b"dlpack_exchange_api")
    allocator = _ALLOCATOR(ctypes.c_void_p.from_address(table + 16).value)
    extents = (ctypes.c_int64 * max(len(shape or ()), 1))(*(shape or ()))
    prototype = DLTensor(device=DLDevice(*device), ndim=len(shape) if ndim is None else ndim,
                         dtype=DLDataType(2, 32, 1),
                         shape=None if shape is None else ctypes.cast(extents, ctypes.POINTER(ctypes.c_int64)))
    errors = []
    set_error = _SET_ERROR(lambda _ctx, kind, message: errors.append((kind.decode(), message.decode())))
    out = ctypes.c_void_p()
    if allocator(ctypes.byref(prototype), ctypes.byref(out), None, set_error) == 0:
        managed = DLManagedTensorVersioned.from_address(out.value)
        _DELETER(managed.deleter)(out.value)  # an unexpected success: release it, and the test fails
        return
    assert len(errors) == 1, errors
    kind, message = errors[0]
    raise {"RuntimeError": RuntimeError}.get(kind, AssertionError)(message)


def released_schema_request():
    schema = pa.float32().__arrow_c_schema__()
    pa.DataType._import_from_c_capsule(schema)  # moves the struct out: its release is now NULL
    dlbridge.zeros(3).__arrow_c_array__(schema)


CASES = {
    "no-protocol": lambda: dlbridge.asarray(object()),
    "tensor-constructor": lambda: dlbridge.Tensor(),
    "dtype-unknown": lambda: dlbridge.zeros(3, dtype="float128"),
    "shape-type": lambda: dlbridge.zeros("3"),
    "shape-negative": lambda: dlbridge.zeros((2, -1)),
    "shape-ndim": lambda: dlbridge.zeros((1,) * 65),
    "dlpack-no-method": lambda: dlbridge.from_dlpack(object()),
    "dlpack-not-capsule": lambda: dlbridge.from_dlpack(Returns(3)),
    "dlpack-capsule-name": lambda: dlbridge.from_dlpack(capsule(name=b"foo")),
    "dlpack-consumed": consumed_twice,
    "dlpack-producer-raises": lambda: dlbridge.asarray(Raises()),
    "dlpack-ndim": lambda: dlbridge.from_dlpack(capsule(shape=(1,) * 65)),
    "dlpack-negative-ndim": lambda: dlbridge.from_dlpack(capsule(ndim=-1)),
    "dlpack-negative-shape": lambda: dlbridge.from_dlpack(capsule(shape=(2, -3))),
    "dlpack-null-data": lambda: dlbridge.from_dlpack(capsule(data=0)),
    "dlpack-dtype": lambda: dlbridge.from_dlpack(capsule(dtype=(99, 8, 1))),
    "dlpack-subbyte": lambda: dlbridge.from_dlpack(capsule(dtype=(17, 4, 1))),
    "dlpack-lanes": lambda: dlbridge.from_dlpack(capsule(dtype=(2, 32, 0))),
    "dlpack-major": lambda: dlbridge.from_dlpack(capsule(version=(2, 0))),
    "dlpack-stride-overflow": lambda: dlbridge.from_dlpack(capsule(shape=(4,), strides=(2**62,))),
    "export-readonly-legacy": lambda: readonly_tensor().__dlpack__(),
    "export-stream-cpu": lambda: dlbridge.zeros(2).__dlpack__(stream=1),
    "export-max-version-type": lambda: dlbridge.zeros(2).__dlpack__(max_version=[1, 0]),
    "export-dl-device-type": lambda: dlbridge.zeros(2).__dlpack__(dl_device=("cuda", 0)),
    "export-cross-device": lambda: dlbridge.zeros(2).__dlpack__(dl_device=(2, 0)),
    "export-cross-device-no-copy": lambda: dlbridge.zeros(2).__dlpack__(dl_device=(2, 0), copy=False),
    "export-positional": lambda: dlbridge.zeros(2).__dlpack__(None),
    "export-unknown-keyword": lambda: dlbridge.zeros(2).__dlpack__(bogus=1),
    "export-copy-type": lambda: dlbridge.zeros(2).__dlpack__(copy=1),
    "export-stride-not-multiple": stride_five,
    "device-copy": lambda: cuda_tensor().copy(),
    "device-buffer": lambda: memoryview(cuda_tensor()),
    "buffer-non-native": lambda: dlbridge.from_buffer(np.zeros(3, ">f4")),
    "buffer-struct": lambda: dlbridge.from_buffer(np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")])),
    "buffer-suboffsets": suboffsets,
    "buffer-exporter-fails": lambda: dlbridge.asarray(np.zeros(3, "datetime64[s]")),
    "buffer-writable-readonly": lambda: get_buffer(readonly_tensor(), PyBUF_WRITABLE),
    "buffer-c-contiguous": lambda: get_buffer(dlbridge.asarray(np.zeros((3, 4), order="F")), PyBUF_C_CONTIGUOUS),
    "buffer-f-contiguous": lambda: get_buffer(dlbridge.zeros((3, 4)), PyBUF_F_CONTIGUOUS),
    "buffer-any-contiguous": lambda: get_buffer(dlbridge.asarray(np.zeros((3, 4))[:, ::2]), PyBUF_ANY_CONTIGUOUS),
    "buffer-no-strides": lambda: get_buffer(dlbridge.asarray(np.zeros((3, 4))[:, ::2]), PyBUF_ND),
    "from-buffer-no-buffer": lambda: dlbridge.from_buffer(3),
    "from-buffer-strided": lambda: dlbridge.from_buffer(np.zeros(8, np.uint8)[::2], dtype="uint8"),
    "from-buffer-offset": lambda: dlbridge.from_buffer(b"abcd", dtype="uint8", offset=5),
    "from-buffer-negative-offset": lambda: dlbridge.from_buffer(b"abcd", offset=-1),
    "from-buffer-divide": lambda: dlbridge.from_buffer(b"abcde", dtype="int16"),
    "from-buffer-shape": lambda: dlbridge.from_buffer(b"abcd", dtype="uint8", shape=(3,)),
    "from-buffer-two-inferred": lambda: dlbridge.from_buffer(b"abcd", dtype="uint8", shape=(-1, -1)),
    "ai-not-dict": lambda: dlbridge.asarray(type("Three", (), {"__array_interface__": 3})()),
    "ai-version": lambda: from_interface(version=2),
    "ai-no-version": lambda: from_interface(version=DROP),
    "ai-no-typestr": lambda: from_interface(typestr=DROP),
    "ai-no-shape": lambda: from_interface(shape=DROP),
    "ai-typestr-type": lambda: from_interface(typestr=4),
    "ai-typestr-malformed": lambda: from_interface(typestr="<f3"),
    "ai-typestr-unknown-kind": lambda: from_interface(typestr="<t8"),
    "ai-typestr-object": lambda: from_interface(typestr="|O8"),
    "ai-typestr-datetime": lambda: from_interface(typestr="<M8[s]"),
    "ai-typestr-swapped": lambda: from_interface(typestr=">f4"),
    "ai-typestr-void": lambda: from_interface(typestr="|V32"),
    "ai-shape-list": lambda: from_interface(shape=[2, 3]),
    "ai-shape-negative": lambda: from_interface(shape=(2, -3)),
    "ai-shape-overflow": lambda: from_interface(shape=(2**62, 8)),
    "ai-shape-ndim": lambda: from_interface(shape=(1,) * 65),
    "ai-strides-length": lambda: from_interface(shape=(2, 3), strides=(4,)),
    "ai-mask": lambda: from_interface(mask=np.zeros(4, bool)),
    "ai-records": lambda: from_interface(typestr="|V12", descr=[("a", "<i4"), ("b", "<f8")]),
    "ai-data-three": lambda: from_interface(data=(KEEP.ctypes.data, False, 0)),
    "ai-data-pointer-type": lambda: from_interface(data=("0x10", False)),
    "ai-data-null": lambda: from_interface(data=(0, False)),
    "ai-data-wraps": lambda: from_interface(data=(2**64 - 8, False)),
    "ai-offset-with-pointer": lambda: from_interface(offset=4),
    "ai-offset-beyond": lambda: from_interface(data=b"abcd", offset=9),
    "ai-buffer-bounds": lambda: from_interface(data=b"abcd", shape=(2,)),
    "ai-buffer-none": lambda: from_interface(data=DROP),
    "as-not-capsule": lambda: dlbridge.from_array_interface(type("Three", (), {"__array_struct__": 3})()),
    "as-named": lambda: dlbridge.from_array_interface(Struct(name=b"foo")),
    "as-two": lambda: dlbridge.from_array_interface(Struct(two=3)),
    "as-nd": lambda: dlbridge.from_array_interface(Struct(nd=65)),
    "as-swapped": lambda: dlbridge.from_array_interface(Struct(flags=0x501)),
    "as-null-data": lambda: dlbridge.from_array_interface(Struct(data=None)),
    "as-typekind": lambda: dlbridge.from_array_interface(Struct(typekind=b"O", itemsize=8)),
    "device-array-interface": lambda: cuda_tensor().__array_interface__,
    "device-array-struct": lambda: cuda_tensor().__array_struct__,
    "alloc-too-large": lambda: dlbridge.empty(2**63 - 1, dtype="uint8"),
    "alloc-out-of-memory": lambda: dlbridge.empty(2**62, dtype="uint8"),
    "shape-out-of-range": lambda: dlbridge.zeros(2**64),
    "dtype-non-native": lambda: dlbridge.zeros(3, dtype=np.dtype(">f4")),
    "len-0d": lambda: len(dlbridge.zeros(())),
    "asarray-all-refuse": lambda: dlbridge.asarray(np.zeros(3, "datetime64[s]")),
    "from-dlpack-device-type": lambda: dlbridge.from_dlpack(capsule(), device=1.5),
    "from-dlpack-device-string": lambda: dlbridge.from_dlpack(capsule(), device="gpu"),
    "from-dlpack-device-range": lambda: dlbridge.from_dlpack(capsule(), device=(1, 2**31)),
    "from-dlpack-device-pair": lambda: dlbridge.from_dlpack(capsule(), device=(2, 0, 0)),
    "from-dlpack-device-holder": lambda: dlbridge.from_dlpack(capsule(), device=DeviceSays("cuda")),
    "dlpack-producer-device": lambda: dlbridge.from_dlpack(DeviceSays("cuda")),
    "dlpack-capsule-copy-device": lambda: dlbridge.from_dlpack(capsule(device=(2, 0), data=0x10000), copy=True),
    "from-dlpack-capsule-device": lambda: dlbridge.from_dlpack(capsule(), device=(2, 0)),
    "dlpack-wrong-device": lambda: dlbridge.from_dlpack(Returns(capsule()), device=(2, 0)),
    "dlpack-null-shape": null_dlpack_shape,
    "export-duplicate-keyword": duplicate_keyword,
    "from-buffer-offset-type": lambda: dlbridge.from_buffer(b"abcd", offset="1"),
    "from-buffer-invalid-shape": lambda: dlbridge.from_buffer(b"abcd", dtype="uint8", shape=(-1, -2)),
    "buffer-format-ascii": lambda: dlbridge.from_buffer(exporter(4, b"\xff", 1, 1, (4,))),
    "buffer-itemsize": lambda: dlbridge.from_buffer(exporter(16, b"f", 8, 1, (2,))),
    "buffer-len-multiple": lambda: dlbridge.from_buffer(exporter(10, b"f", 4, 1, None)),
    "buffer-len-short": lambda: dlbridge.from_buffer(exporter(8, b"f", 4, 1, (4,))),
    "buffer-null-buf": lambda: dlbridge.from_buffer(lying_exporter(1)),
    # Fidelity refusals (the second table).
    "torch-requires-grad": lambda: dlbridge.asarray(torch.ones(2, requires_grad=True)),
    "torch-conj": lambda: dlbridge.from_dlpack(torch.ones(2, dtype=torch.complex64).conj()),
    "torch-neg": lambda: dlbridge.from_dlpack(torch.ones(2, dtype=torch.complex64).conj().imag),
    "dlpack-offset-wraps": lambda: dlbridge.from_dlpack(capsule(byte_offset=2**64 - 32)),
    "export-padded-legacy": lambda: dlbridge.from_dlpack(capsule(dtype=(17, 4, 1), flags=4)).__dlpack__(),
    "ai-buffer-null-buf": lambda: from_interface(data=lying_exporter(1), typestr="<f4", shape=(4,)),
    "ai-buffer-suboffsets": lambda: from_interface(data=lying_exporter(2), typestr="<f4", shape=(4,)),
    "from-buffer-dtype-non-native": lambda: dlbridge.from_buffer(bytearray(8), dtype=np.dtype(">f4")),
    "view-dtype-non-native": lambda: dlbridge.zeros(2, dtype="int32").view(np.dtype(">i4")),
    "from-buffer-offset-range": lambda: dlbridge.from_buffer(b"abcd", offset=2**70),
    "ai-property-raises": lambda: dlbridge.asarray(InnerAttributeError()),
    "buffer-ndim": lambda: deep_testbuffer(65),
    "buffer-null-view": lambda: _get_buffer(dlbridge.zeros(2), None, 0),
    "buffer-no-format": lambda: memoryview(dlbridge.from_dlpack(capsule(shape=(1,), dtype=(2, 64, 8)))),
    "ai-typestr-longdouble": lambda: from_interface(typestr="<f16"),
    "ai-shape-entry": lambda: from_interface(shape=(2**64,)),
    "ai-offset-type": lambda: from_interface(data=b"abcd", offset=1.5),
    "ai-offset-negative": lambda: from_interface(data=b"abcd", offset=-1),
    "as-neither": lambda: dlbridge.from_array_interface(object()),
    "as-itemsize": lambda: dlbridge.from_array_interface(Struct(itemsize=0)),
    "as-null-shape": lambda: dlbridge.from_array_interface(Struct(shape=None)),
    "exchange-alloc-device": lambda: exchange_allocate(device=(2, 0)),
    "exchange-alloc-ndim": lambda: exchange_allocate(ndim=-1),
    "exchange-alloc-null-shape": lambda: exchange_allocate(shape=None, ndim=1),
    "exchange-alloc-negative-extent": lambda: exchange_allocate(shape=(-3,)),
    "asarray-array-copy": lambda: dlbridge.asarray(NoCopy(), copy=False),
    "asarray-array-no-copy-keyword": lambda: dlbridge.asarray(OldArray(), copy=False),
    "asarray-array-not-array": lambda: dlbridge.asarray(NotArray()),
    "array-dunder-device-no-copy": lambda: cuda_tensor().__array__(copy=False),
    "array-dunder-device": lambda: cuda_tensor().__array__(),
    "array-dunder-cast-no-copy": lambda: dlbridge.zeros(2).__array__(np.float64, copy=False),
    "dtype-string-non-native": lambda: dlbridge.zeros(3, dtype=">d"),
    "dtype-string-kind": lambda: dlbridge.zeros(3, dtype="U3"),
    "dtype-structured": lambda: dlbridge.zeros(3, dtype=np.dtype("f4,i4")),
    "arrow-device": lambda: cuda_tensor().__arrow_c_array__(),
    "arrow-dtype": lambda: pa.array(dlbridge.zeros(3, dtype="bfloat16")),
    "arrow-bool": lambda: pa.array(dlbridge.zeros(3, dtype="bool")),
    "arrow-0d": lambda: pa.array(dlbridge.zeros(())),
    "arrow-strided": lambda: pa.array(dlbridge.asarray(np.zeros(8)[::2])),
    "arrow-misaligned": lambda: pa.array(dlbridge.from_buffer(bytearray(9), dtype="float32", shape=(2,), offset=1)),
    "arrow-extent": lambda: dlbridge.from_dlpack(capsule(shape=(1, 2**31), dtype=(1, 8, 1), data=0x10000)).__arrow_c_array__(),
    "arrow-requested-type": lambda: pa.array(dlbridge.zeros(3, dtype="float64"), type=pa.float32()),
    "arrow-requested-not-capsule": lambda: dlbridge.zeros(3).__arrow_c_array__(3),
    "arrow-requested-released": released_schema_request,
    "iter-0d": lambda: iter(dlbridge.zeros(())),
}

CASES.update(PICKLE_CASES)
CASES.update(VALUES_CASES)  # docs/errors.md's "Values, never padding" (tests/python/values_error_cases.py)
CASES.update(CUDA_CASES)  # docs/errors.md's "CUDA refusals" (tests/python/cuda_error_cases.py)
CASES.update(ARROW_CASES)  # docs/errors.md's "Arrow in" rows (tests/python/arrow_error_cases.py)


def test_every_row_has_a_case_and_every_case_a_row():
    assert sorted(ROWS) == sorted(CASES)


@pytest.mark.parametrize("row", sorted(ROWS))
def test_row(row):
    exception, fragment = ROWS[row]
    expected = {"TypeError": TypeError, "ValueError": ValueError, "BufferError": BufferError, "KeyError": KeyError,
                "MemoryError": MemoryError, "RuntimeError": RuntimeError, "AttributeError": AttributeError}[exception]
    with pytest.raises(Exception) as info:
        CASES[row]()
    assert type(info.value) is expected, f"{row}: {type(info.value).__name__}: {info.value}"
    message = str(info.value)
    fragment = fragment.strip("`").replace("\\|", "|")
    assert fragment in message, f"{row}: {fragment!r} not in {message!r}"
