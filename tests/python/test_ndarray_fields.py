"""`asarray`/`from_dlpack` read an exact ndarray's fields instead of calling
`__dlpack__`: the result must be the DLPack import's, but for its name.

Every case is imported twice: directly (the field-reading path) and through
a wrapper that forwards NumPy's real `__dlpack__` (the capsule path). Both
must give the same tensor, or the same exception with the same message, up
to the one honest difference: the field read says what it read (`source`
"ndarray", messages naming "numpy.ndarray"), the capsule path "dlpack" and
"DLPack tensor".
"""

from __future__ import annotations

import gc
import sys

import ml_dtypes
import numpy as np
import pytest

import dlbridge
from dlpack_structs import capsule


class ViaDlpack:
    """Forwards only DLPack, so dlbridge must take the capsule path."""

    def __init__(self, array):
        self.array = array

    def __dlpack__(self, **kwargs):
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()


def describe(t: dlbridge.Tensor):
    # `source` is compared by the tests themselves: "ndarray" where the
    # fields were read, "dlpack" where the capsule path was taken.
    return (t.data_ptr, t.shape, t.strides, t.dtype, t.itemsize, t.device, t.readonly)


def outcome(import_, obj):
    try:
        return ("ok", describe(import_(obj)))
    except Exception as err:  # noqa: BLE001 - the exception itself is compared
        message = str(err).replace("ViaDlpack", "ndarray")
        return (type(err), message.replace("numpy.ndarray", "DLPack tensor"))


def assert_same(array):
    for import_ in (dlbridge.asarray, dlbridge.from_dlpack):
        direct = outcome(import_, array)
        via = outcome(import_, ViaDlpack(array))
        if import_ is dlbridge.asarray and via[0] != "ok":
            # asarray goes on to the buffer protocol after a DLPack refusal,
            # which the wrapper does not speak: compare with from_dlpack's
            # refusal instead of asarray's fallback.
            continue
        assert direct == via, (import_.__name__, array.dtype, array.shape, array.strides)


NUMERIC = [
    np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.intc, np.uintc, np.int_, np.uint,
    np.longlong, np.ulonglong, np.int32, np.int64, np.uint32, np.uint64, np.float16,
    np.float32, np.float64, np.complex64, np.complex128,
]
REFUSED_OR_OTHER = [
    np.longdouble, np.clongdouble, "M8[s]", "m8[ns]", object, "S3", "U2", "V4",
    [("a", "<i4"), ("b", "<f4")], ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn,
]


@pytest.mark.parametrize("dtype", NUMERIC + REFUSED_OR_OTHER, ids=str)
def test_every_dtype_matches_the_dlpack_import(dtype):
    array = np.zeros((3, 4), dtype=dtype)
    if dtype in NUMERIC:  # the fields are read: the source says so
        assert dlbridge.asarray(array).source == "ndarray"
        assert dlbridge.from_dlpack(ViaDlpack(array)).source == "dlpack"
    assert_same(array)
    assert_same(array[::-1, 1::2])
    assert_same(array.T)
    assert_same(array[0, 0, ...])  # 0-d


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.arange(24.0).reshape(2, 3, 4),
        lambda: np.arange(24.0).reshape(2, 3, 4)[:, ::-2, 1:],
        lambda: np.arange(24.0).reshape(2, 3, 4).transpose(2, 0, 1),
        lambda: np.zeros((0, 5)),
        lambda: np.zeros((5, 0))[::2],
        lambda: np.array(3.0),
        lambda: np.broadcast_to(np.arange(3.0), (4, 3)),  # zero strides, readonly
        lambda: np.ones((1,) * 64),
        lambda: np.zeros(10, dtype="<i4").view(">i4"),  # byte-swapped: refused
        lambda: np.zeros(12, dtype=np.uint8)[1:].view(np.uint8)[::3],
        lambda: np.zeros((4, 3), dtype=[("a", "<f4"), ("b", "<i2")])["a"],  # stride 6, itemsize 4
        lambda: np.zeros((4, 1), dtype=[("a", "<f4"), ("b", "<i2")])["a"],  # extent-1 odd stride
        lambda: np.zeros(8, dtype=np.float32)[::3],
    ],
)
def test_layouts_match_the_dlpack_import(make):
    assert_same(make())


def test_readonly_is_carried():
    array = np.arange(6.0)
    array.flags.writeable = False
    assert_same(array)
    assert dlbridge.asarray(array).readonly
    assert memoryview(dlbridge.asarray(array)).readonly


def test_subclasses_use_the_protocol():
    class Sub(np.ndarray):
        pass

    array = np.arange(5.0).view(Sub)
    assert_same(array)
    masked = np.ma.masked_array(np.arange(5.0), mask=[0, 1, 0, 0, 0])
    assert_same(masked)


def test_memory_is_shared_both_ways():
    array = np.zeros(4, dtype=np.int32)
    view = np.from_dlpack(dlbridge.asarray(array))
    view[2] = 7
    assert array[2] == 7
    array[1] = -3
    assert view[1] == -3
    assert view.ctypes.data == array.ctypes.data


def test_the_array_outlives_its_name():
    array = np.arange(1000, dtype=np.float64)
    before = sys.getrefcount(array)
    tensor = dlbridge.asarray(array)
    assert sys.getrefcount(array) == before + 1
    del tensor
    gc.collect()
    assert sys.getrefcount(array) == before

    tensor = dlbridge.asarray(np.arange(1000, dtype=np.float64))  # only the tensor holds it
    gc.collect()
    np.testing.assert_array_equal(np.from_dlpack(tensor), np.arange(1000.0))


class Producer:
    """A DLPack producer whose memory NumPy then wraps (base: a capsule)."""

    def __init__(self, device):
        self.device = device
        self.block = np.arange(4, dtype=np.float32)

    def __dlpack__(self, **kwargs):
        return capsule(shape=(4,), dtype=(2, 32, 1), device=self.device, data=self.block.ctypes.data)

    def __dlpack_device__(self):
        return self.device


@pytest.mark.parametrize("device", [(1, 0), (3, 0)], ids=["cpu", "cuda_host"])
def test_arrays_wrapping_a_capsule_keep_their_device(device):
    producer = Producer(device)
    array = np.from_dlpack(producer)
    via = ViaDlpack(array)
    # NumPy reports the capsule's device for such arrays; so must dlbridge.
    assert dlbridge.asarray(array).device == dlbridge.from_dlpack(via).device == device
    assert_same(array)
    assert_same(array[1:])  # the capsule is found through a view's base chain


def test_pointer_checks_match_the_dlpack_import():
    # A span that wraps around the address space: refused on both paths.
    wrapping = np.lib.stride_tricks.as_strided(np.zeros(4), shape=(2,), strides=(-(2**62),))
    assert_same(wrapping)
    with pytest.raises(ValueError, match="wraps around the address space"):
        dlbridge.from_dlpack(wrapping)


FAKE_NDARRAY = """
import sys, types
# A Python class whose tp_name is "numpy.ndarray", where the resolver looks;
# its slots would overlay the fields (data at a, descr at f).
def refuse(self, **kwargs):
    raise ZeroDivisionError("its own __dlpack__ was called")
X = type("numpy.ndarray", (), {"__slots__": tuple("abcdefg"), "__dlpack__": refuse})
fake = types.ModuleType("numpy")
fake.ndarray = X
fake.__version__ = "2.4.0"
sys.modules["numpy"] = fake
import dlbridge
x = X()
x.a = bytearray(b"victim")
x.f = (12 << 30) | 0x3D0000  # digits that read as byteorder "=", type_num 12
try:
    dlbridge.asarray(x)
except ZeroDivisionError as err:
    print("refused:", err)
"""


def test_a_python_class_named_numpy_ndarray_is_never_read_as_one():
    import subprocess

    run = subprocess.run([sys.executable, "-c", FAKE_NDARRAY], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert "refused: its own __dlpack__ was called" in run.stdout, run.stdout


def test_unencodable_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        dlbridge.zeros(2).__dlpack__(**{"\ud800": 1})
