"""Conventions users expect on first contact (issue 14, item 8).

 1  `Tensor.__array__(dtype=None, copy=None)`, NumPy 2's protocol: zero-copy,
    `copy` and `dtype` with NumPy's meaning, and real consumers
      test_array_dunder_is_zero_copy, test_array_dunder_keeps_readonly,
      test_array_dunder_copy_true_copies, test_array_dunder_copy_false_shares,
      test_array_dunder_same_dtype_shares, test_array_dunder_other_dtype_casts,
      test_array_dunder_cast_refused_with_copy_false,
      test_array_dunder_on_another_device_refused,
      test_array_dunder_ml_dtypes, test_numpy_consumers_share_memory,
      test_numpy_copy_requests, test_jax_consumes_a_tensor,
      test_jax_asarray_without_dtype, test_pyarrow_consumes_array_dunder,
      test_pyarrow_array_of_a_tensor
 2  `asarray` takes an object that offers only `__array__`, last
      test_asarray_array_dunder_view_shares_memory,
      test_asarray_array_dunder_keeps_the_producer_alive,
      test_asarray_array_dunder_copy_true_copies,
      test_asarray_array_dunder_copy_false_is_asked_for,
      test_asarray_array_dunder_copy_false_refused_when_producer_must_copy,
      test_asarray_array_dunder_numpy1_signature,
      test_asarray_array_dunder_other_errors_propagate,
      test_asarray_array_dunder_read_once, test_asarray_array_dunder_none_switches_it_off,
      test_asarray_other_protocols_come_first,
      test_asarray_array_dunder_not_tried_after_a_refusal,
      test_asarray_torch_refusal_is_not_bypassed,
      test_asarray_array_dunder_result_must_be_an_array,
      test_asarray_array_dunder_result_refused,
      test_rust_arguments_do_not_take_array_dunder, test_numpy_is_not_imported
 3  `from_dlpack(x, /, *, ...)`: the object is positional-only
      test_from_dlpack_object_is_positional_only
 4  dtype arguments take every spelling NumPy takes for a dtype dlbridge
    carries, and refuse the others
      test_spellings_cover_what_was_asked, test_dtype_spelling_matches_numpy,
      test_dtype_spellings_tally, test_dtype_python_types,
      test_dtype_python_types_refused, test_dtype_numpy_scalar_types,
      test_dtype_numpy_abstract_types_refused, test_dtype_numpy_dtype_objects,
      test_dtype_spellings_on_every_entry_point, test_dtype_torch_and_ml_dtypes,
      test_dtype_refusals_name_the_spelling, test_dtype_strings_need_no_numpy
"""

from __future__ import annotations

import ctypes
import gc
import inspect
import subprocess
import sys
import warnings

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pyarrow as pa
import pytest
import torch

import dlbridge
from dlpack_structs import capsule

# ------------------------------------------------------ 1: Tensor.__array__ --


def tensor(a: np.ndarray) -> dlbridge.Tensor:
    t = dlbridge.asarray(a)
    assert t.data_ptr == a.ctypes.data
    return t


LAYOUTS = {
    "contiguous": lambda: np.arange(12, dtype=np.float32).reshape(3, 4),
    "strided": lambda: np.arange(24, dtype=np.int16).reshape(4, 6)[::2, 1::2],
    "transposed": lambda: np.arange(12, dtype=np.complex128).reshape(3, 4).T,
    "0-d": lambda: np.array(7, dtype=np.uint64),
    "empty": lambda: np.zeros((0, 3), dtype=np.bool_),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_array_dunder_is_zero_copy(layout):
    a = LAYOUTS[layout]()
    t = tensor(a)
    b = t.__array__()
    assert type(b) is np.ndarray
    assert (b.ctypes.data, b.shape, b.strides, b.dtype) == (a.ctypes.data, a.shape, a.strides, a.dtype)
    assert np.shares_memory(a, b) or a.size == 0
    if a.size:
        b[...] = 1
        assert (a == 1).all()


def test_array_dunder_keeps_readonly():
    a = np.arange(4.0)
    a.flags.writeable = False
    b = tensor(a).__array__()
    assert b.ctypes.data == a.ctypes.data and not b.flags.writeable
    c = tensor(a).__array__(copy=True)
    assert c.ctypes.data != a.ctypes.data and c.flags.writeable


def test_array_dunder_copy_true_copies():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = tensor(a).__array__(copy=True)
    assert b.ctypes.data != a.ctypes.data and not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, b)
    b[0, 0] = 99
    assert a[0, 0] == 0


def test_array_dunder_copy_false_shares():
    a = np.arange(6, dtype=np.float32)
    assert tensor(a).__array__(copy=False).ctypes.data == a.ctypes.data
    assert tensor(a).__array__(None, copy=None).ctypes.data == a.ctypes.data


@pytest.mark.parametrize("spelling", [np.dtype(np.float32), np.float32, "float32", "=f4", "<f4", "f"])
def test_array_dunder_same_dtype_shares(spelling):
    a = np.arange(6, dtype=np.float32)
    t = tensor(a)
    assert t.__array__(spelling).ctypes.data == a.ctypes.data
    assert t.__array__(spelling, copy=False).ctypes.data == a.ctypes.data
    copied = t.__array__(spelling, copy=True)
    assert copied.ctypes.data != a.ctypes.data and copied.dtype == np.float32


@pytest.mark.parametrize("copy", [None, True])
def test_array_dunder_other_dtype_casts(copy):
    a = np.arange(6, dtype=np.float32)
    b = tensor(a).__array__(np.float64, copy=copy)
    assert b.dtype == np.float64 and not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, b)
    # Byte order is a dtype too: NumPy's own cast, a copy.
    swapped = tensor(a).__array__(">f4")
    assert swapped.dtype == np.dtype(">f4") and swapped.tolist() == a.tolist()


def test_array_dunder_cast_refused_with_copy_false():
    a = np.arange(6, dtype=np.float32)
    with pytest.raises(ValueError, match="dtype float64 is not the tensor's float32, and a cast is a copy"):
        tensor(a).__array__(np.float64, copy=False)
    # NumPy's own consumer says the same through its protocol.
    with pytest.raises(ValueError):
        np.array(tensor(a), dtype=np.float64, copy=False)


def test_array_dunder_on_another_device_refused():
    t = dlbridge.from_dlpack(capsule(device=(2, 0), data=0x10000))
    with pytest.raises(ValueError, match="on device cuda:0, and a NumPy array needs CPU memory"):
        t.__array__(copy=False)
    for copy in (None, True):
        with pytest.raises(BufferError, match="__array__ needs CPU memory, but the tensor is on device cuda:0"):
            t.__array__(copy=copy)


def test_array_dunder_ml_dtypes():
    a = np.arange(4, dtype=np.float32).astype(ml_dtypes.bfloat16)
    t = dlbridge.asarray(a)
    b = t.__array__()
    assert b.dtype == ml_dtypes.bfloat16 and b.ctypes.data == a.ctypes.data
    assert t.__array__(ml_dtypes.bfloat16, copy=False).ctypes.data == a.ctypes.data
    assert t.__array__(np.float32).tolist() == [0.0, 1.0, 2.0, 3.0]


def test_numpy_consumers_share_memory():
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    t = tensor(a)
    for b in (np.asarray(t), np.array(t, copy=False), np.asarray(t, dtype=np.float64), np.asarray(t, copy=None)):
        assert b.ctypes.data == a.ctypes.data, b
    c = np.array(t)  # np.array copies by default
    assert c.ctypes.data != a.ctypes.data
    np.testing.assert_array_equal(c, a)


def test_numpy_copy_requests():
    a = np.arange(4, dtype=np.int32)
    t = tensor(a)
    assert np.asarray(t, dtype=np.int64).dtype == np.int64
    assert not np.shares_memory(np.array(t, copy=True), a)
    with pytest.raises(ValueError):
        np.asarray(t, dtype=np.int64, copy=False)


def test_jax_consumes_a_tensor():
    t = dlbridge.zeros((4, 16), dtype="float32")  # 64-byte aligned, as XLA's CPU client wants
    np.asarray(t)[...] = np.arange(64, dtype=np.float32).reshape(4, 16)
    j = jnp.asarray(t, dtype=jnp.float32)  # a copy, as for any ndarray
    np.testing.assert_array_equal(np.asarray(j), np.asarray(t))
    shared = jnp.from_dlpack(t)  # the zero-copy route
    assert shared.unsafe_buffer_pointer() == t.data_ptr
    np.testing.assert_array_equal(np.asarray(shared), np.asarray(t))


def test_jax_asarray_without_dtype():
    # JAX infers a dtype from t.dtype, a str by contract, which NumPy refuses;
    # Tensor.__jax_array__ answers first (tests/python/test_frameworks.py).
    t = dlbridge.zeros(4, dtype="float32")
    j = jnp.asarray(t)
    assert j.dtype == jnp.float32 and isinstance(t.dtype, str)
    np.testing.assert_array_equal(np.asarray(j), np.zeros(4, np.float32))


def test_pyarrow_consumes_array_dunder():
    a = np.arange(5, dtype=np.float64)
    t = tensor(a)
    arrow = pa.array(t.__array__())
    assert arrow.type == pa.float64() and arrow.to_pylist() == a.tolist()
    assert arrow.buffers()[1].address == a.ctypes.data  # no copy: pyarrow wraps the ndarray's memory
    assert pa.array(np.asarray(t)).buffers()[1].address == a.ctypes.data


def test_pyarrow_array_of_a_tensor():
    # pyarrow never calls __array__; it takes Tensor.__arrow_c_array__, zero-copy
    # (tests/python/test_frameworks.py).
    t = dlbridge.zeros(3, dtype="float64")
    arrow = pa.array(t)
    assert arrow.type == pa.float64() and arrow.to_pylist() == [0.0, 0.0, 0.0]
    assert arrow.buffers()[1].address == t.data_ptr


# ---------------------------------------- 2: asarray of an __array__ object --


class ArrayOnly:
    """Speaks only `__array__` (NumPy 2's signature): a view of its own memory."""

    def __init__(self, n=8):
        self.memory = np.arange(n, dtype=np.float64)
        self.calls = []

    def __array__(self, dtype=None, copy=None):
        self.calls.append((dtype, copy))
        return self.memory[1:]


def test_asarray_array_dunder_view_shares_memory():
    producer = ArrayOnly()
    for copy in (None, False):
        t = dlbridge.asarray(producer, copy=copy)
        assert t.data_ptr == producer.memory[1:].ctypes.data
        assert (t.shape, t.dtype, t.readonly) == ((7,), "float64", False)
        np.asarray(t)[0] = 42
        assert producer.memory[1] == 42
        producer.memory[1] = 1
    assert producer.calls == [(None, None), (None, False)]


def test_asarray_array_dunder_keeps_the_producer_alive():
    producer = ArrayOnly(1 << 16)
    address = producer.memory[1:].ctypes.data
    t = dlbridge.asarray(producer)
    del producer
    gc.collect()
    assert t.data_ptr == address
    assert np.asarray(t)[-1] == (1 << 16) - 1  # the ndarray returned holds the producer's memory


def test_asarray_array_dunder_copy_true_copies():
    producer = ArrayOnly()
    t = dlbridge.asarray(producer, copy=True)
    assert t.data_ptr != producer.memory[1:].ctypes.data and t.source == "rust"
    assert np.asarray(t).tolist() == producer.memory[1:].tolist()
    # copy=True is done on dlbridge's side: the producer is not asked to copy.
    assert producer.calls == [(None, None)]


def test_asarray_array_dunder_copy_false_is_asked_for():
    class Honest:
        def __init__(self):
            self.memory = np.arange(4.0)

        def __array__(self, dtype=None, copy=None):
            return self.memory if copy is False else self.memory.copy()

    producer = Honest()
    assert dlbridge.asarray(producer, copy=False).data_ptr == producer.memory.ctypes.data
    assert dlbridge.asarray(producer).data_ptr != producer.memory.ctypes.data  # its own choice: a copy


def test_asarray_array_dunder_copy_false_refused_when_producer_must_copy():
    class MustCopy:
        def __array__(self, dtype=None, copy=None):
            if copy is False:
                raise ValueError("Unable to avoid copy while creating an array as requested.")
            return np.zeros(3)

    with pytest.raises(ValueError, match=r"asarray\(copy=False\): MustCopy.__array__ cannot avoid a copy") as info:
        dlbridge.asarray(MustCopy(), copy=False)
    assert isinstance(info.value.__cause__, ValueError) and "Unable to avoid copy" in str(info.value.__cause__)
    assert dlbridge.asarray(MustCopy()).shape == (3,)  # copy=None accepts the copy
    # NumPy refuses it the same way.
    with pytest.raises(ValueError, match="Unable to avoid copy"):
        np.asarray(MustCopy(), copy=False)


def test_asarray_array_dunder_numpy1_signature():
    class Old:
        def __init__(self):
            self.memory = np.arange(3.0)

        def __array__(self, dtype=None):
            return self.memory

    producer = Old()
    assert dlbridge.asarray(producer).data_ptr == producer.memory.ctypes.data
    assert dlbridge.asarray(producer, copy=True).data_ptr != producer.memory.ctypes.data
    with pytest.raises(ValueError, match="Old.__array__ takes no copy argument, so it cannot promise not to copy") as info:
        dlbridge.asarray(producer, copy=False)
    assert isinstance(info.value.__cause__, TypeError)
    # NumPy 2 refuses it too (after a DeprecationWarning).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ValueError):
            np.asarray(producer, copy=False)


def test_asarray_array_dunder_other_errors_propagate():
    class Fails:
        def __init__(self, error):
            self.error = error

        def __array__(self, dtype=None, copy=None):
            raise self.error

    for copy in (None, False, True):
        for error in (RuntimeError("boom"), KeyError("k"), TypeError("unrelated")):
            with pytest.raises(type(error)) as info:
                dlbridge.asarray(Fails(error), copy=copy)
            assert info.value is error
    with pytest.raises(ValueError, match="^bad value$"):
        dlbridge.asarray(Fails(ValueError("bad value")))  # only copy=False reads a ValueError as "must copy"


def test_asarray_array_dunder_read_once():
    class Counted:
        reads = 0

        @property
        def __array__(self):
            type(self).reads += 1
            return lambda dtype=None, copy=None: np.zeros(2)

    dlbridge.asarray(Counted())
    assert Counted.reads == 1

    class Raising:
        @property
        def __array__(self):
            raise AttributeError("inner")

    with pytest.raises(AttributeError, match="inner"):  # the producer's error, not "no protocol"
        dlbridge.asarray(Raising())


def test_asarray_array_dunder_none_switches_it_off():
    class Off(ArrayOnly):
        __array__ = None

    with pytest.raises(TypeError, match=r"Off speaks no array protocol .*__arrow_c_stream__, __array__\)"):
        dlbridge.asarray(Off())
    instance = ArrayOnly()
    instance.__array__ = None  # shadows the method, as getattr sees it
    with pytest.raises(TypeError, match="ArrayOnly speaks no array protocol"):
        dlbridge.asarray(instance)
    assert instance.calls == []


def test_asarray_other_protocols_come_first():
    class Both(ArrayOnly):
        @property
        def __array_interface__(self):
            return self.memory.__array_interface__

    producer = Both()
    t = dlbridge.asarray(producer)
    assert t.data_ptr == producer.memory.ctypes.data and t.shape == (8,)
    assert producer.calls == []
    # Instance attributes count too, as for every protocol.
    instance = ArrayOnly()
    instance.__array_interface__ = instance.memory.__array_interface__
    assert dlbridge.asarray(instance).shape == (8,) and instance.calls == []


def test_asarray_array_dunder_not_tried_after_a_refusal():
    class Refuses(ArrayOnly):
        def __dlpack__(self, **kwargs):
            raise BufferError("cannot export that")

    producer = Refuses()
    with pytest.raises(BufferError, match="no protocol could import Refuses: DLPack: BufferError: cannot export that"):
        dlbridge.asarray(producer)
    assert producer.calls == []


def test_asarray_torch_refusal_is_not_bypassed():
    # torch.Tensor has __array__ too: its refusals stand, no silent copy.
    with pytest.raises(BufferError, match="requires grad"):
        dlbridge.asarray(torch.ones(2, requires_grad=True))
    with pytest.raises(BufferError, match="conjugate bit"):
        dlbridge.asarray(torch.ones(2, dtype=torch.complex64).conj())


def test_asarray_array_dunder_result_must_be_an_array():
    class Returns:
        def __init__(self, value):
            self.value = value

        def __array__(self, dtype=None, copy=None):
            return self.value

    with pytest.raises(TypeError, match=r"^list \(what Returns.__array__ returned\) speaks no array protocol"):
        dlbridge.asarray(Returns([1, 2]))
    # A result that speaks a protocol is taken, through the protocols only.
    memory = bytearray(8)
    t = dlbridge.asarray(Returns(memory))
    assert t.source == "buffer" and t.nbytes == 8
    for nested in (ArrayOnly(), Returns(np.zeros(2))):  # never __array__ twice
        with pytest.raises(TypeError, match=r"\(what Returns.__array__ returned\) speaks no array protocol"):
            dlbridge.asarray(Returns(nested))


def test_asarray_array_dunder_result_refused():
    class Dates:
        def __array__(self, dtype=None, copy=None):
            return np.zeros(3, "datetime64[s]")

    with pytest.raises(BufferError, match=r"no protocol could import ndarray \(what Dates.__array__ returned\)"):
        dlbridge.asarray(Dates())


def test_rust_arguments_do_not_take_array_dunder():
    # from_array_interface and the Rust extension argument path use the
    # protocols only; __array__ is asarray's last resort.
    with pytest.raises(TypeError):
        dlbridge.from_array_interface(ArrayOnly())
    with pytest.raises(TypeError):
        dlbridge.from_dlpack(ArrayOnly())


def test_numpy_is_not_imported():
    code = (
        "import sys, dlbridge\n"
        "class Off:\n"
        "    __array__ = None\n"
        "for spelling in ('float32', '<f8', 'd', 'int', float, int, bool, complex):\n"
        "    dlbridge.zeros(2, dtype=spelling)\n"
        "try:\n"
        "    dlbridge.asarray(Off())\n"
        "except TypeError:\n"
        "    pass\n"
        "dlbridge.asarray(bytearray(4), copy=False)\n"
        "assert 'numpy' not in sys.modules, 'dlbridge imported numpy'\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)


# ------------------------------------------------ 3: from_dlpack(x, /, ...) --


def test_from_dlpack_object_is_positional_only():
    a = np.arange(3.0)
    assert dlbridge.from_dlpack(a).data_ptr == a.ctypes.data
    with pytest.raises(TypeError, match="positional"):
        dlbridge.from_dlpack(obj=a)
    with pytest.raises(TypeError):
        dlbridge.from_dlpack(x=a)
    (first, *rest) = inspect.signature(dlbridge.from_dlpack).parameters.values()
    assert first.kind is inspect.Parameter.POSITIONAL_ONLY
    assert [(p.name, p.kind) for p in rest] == [
        (name, inspect.Parameter.KEYWORD_ONLY) for name in ("device", "copy", "legacy_writable")]


# ------------------------------------------------------ 4: dtype spellings --

# The dtypes dlbridge carries, by NumPy's name for them.
CARRIED = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
           "float16", "float32", "float64", "complex64", "complex128"}
SWAPPED = ">" if sys.byteorder == "little" else "<"
ORDERS = ["", "<", ">", "=", "|"]
REFUSED = (TypeError, BufferError)


def numpy_dtype(spelling):
    """What NumPy reads the spelling as, or None if it refuses it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'a' and friends are deprecated, not refused
        try:
            return np.dtype(spelling)
        except (TypeError, ValueError):
            return None


# ml_dtypes' dtypes (registered with NumPy once ml_dtypes is imported) that
# dlbridge names; its int1/int2/int4 and uint1/uint2/uint4 have no DLPack dtype.
ML_DTYPES = {"bfloat16", "complex32", "float4_e2m1fn", "float6_e2m3fn", "float6_e3m2fn", "float8_e3m4",
             "float8_e4m3", "float8_e4m3b11fnuz", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
             "float8_e5m2fnuz", "float8_e8m0fnu"}


def carried_name(dtype):
    """The name dlbridge gives a NumPy dtype it carries, or None."""
    if dtype.fields is not None or dtype.subdtype is not None:
        return None  # records: dtype-structured
    if dtype.kind in "biufc" and dtype.name in CARRIED or dtype.name in ML_DTYPES:
        return dtype.name
    if dtype.kind == "V" and dtype.name.startswith("void") and 1 <= dtype.itemsize <= 31:
        return dtype.name  # "void16": opaque bytes, named as NumPy names them
    return None


def spellings():
    names = {key for key in np.sctypeDict if isinstance(key, str)}
    names |= {"float128", "complex256", "float96", "int0", "Float64", "datetime64[ns]", "timedelta64[s]",
              "", "f4,i4", "(2,)f4", "<float64", "=bool", ">int8", "|float32", "Int32", "void16", "void"}
    codes = set(np.typecodes["All"]) | set("cauTxyz0")
    chars = {order + code for order in ORDERS for code in codes}
    typestrs = {order + kind + str(size) for order in ORDERS for kind in "biufcVSUaOMmx"
                for size in (0, 1, 2, 3, 4, 8, 10, 12, 16, 32)}
    typestrs |= {"M8[ns]", "<m8[s]", ">M8[D]", "d8", "f8x", "i4 ", " i4"}
    return sorted(names | chars | typestrs)


SPELLINGS = spellings()


def test_spellings_cover_what_was_asked():
    asked = {"i4", "<f8", "=f4", "|u1", "f2", "c8", "?", "b1", "d", "f", "l", "q", "int", "float", "complex", "bool"}
    assert asked <= set(SPELLINGS)
    for spelling in asked:
        assert dlbridge.zeros(3, dtype=spelling).dtype == np.dtype(spelling).name


def check_spelling(spelling):
    """dlbridge reads the spelling as NumPy does, or refuses what it cannot carry."""
    dtype = numpy_dtype(spelling)
    name = None if dtype is None else carried_name(dtype)
    swapped = dtype is not None and dtype.byteorder == SWAPPED
    if name is not None and not swapped:
        assert dlbridge.zeros(3, dtype=spelling).dtype == name, spelling
        return "carried"
    with pytest.raises(REFUSED) as info:
        dlbridge.zeros(3, dtype=spelling)
    native = carried_name(dtype.newbyteorder("=")) if swapped else None
    if swapped and native is not None:
        # A dtype dlbridge carries, in the other byte order: dtype-non-native.
        assert type(info.value) is BufferError and "non-native byte order" in str(info.value), (spelling, info.value)
        return "swapped"
    return "refused"


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_dtype_spelling_matches_numpy(spelling):
    if numpy_dtype(spelling) is None:
        # NumPy refuses it: so does dlbridge, but for its own names
        # (torch's complex32, "void16" as dlbridge names V2).
        try:
            got = dlbridge.zeros(3, dtype=spelling).dtype
        except REFUSED:
            return
        assert got == spelling, spelling
        return
    check_spelling(spelling)


def test_dtype_spellings_tally():
    # A floor, so a generator that silently lost its cases fails.
    outcomes = [check_spelling(s) for s in SPELLINGS if numpy_dtype(s) is not None]
    assert outcomes.count("carried") > 200 and outcomes.count("swapped") > 20, (
        {k: outcomes.count(k) for k in set(outcomes)})


@pytest.mark.parametrize(("python_type", "name"), [
    (float, "float64"), (int, "int64"), (bool, "bool"), (complex, "complex128")])
def test_dtype_python_types(python_type, name):
    assert np.dtype(python_type).name == name
    assert dlbridge.zeros(3, dtype=python_type).dtype == name


@pytest.mark.parametrize("python_type", [str, bytes, object, memoryview, list, dict])
def test_dtype_python_types_refused(python_type):
    with pytest.raises(TypeError, match="unknown dtype name"):
        dlbridge.zeros(3, dtype=python_type)


SCALAR_TYPES = sorted({value for value in np.sctypeDict.values()} | {
    np.longlong, np.ulonglong, np.intc, np.uintc, np.int_, np.uint, np.intp, np.uintp, np.long, np.ulong,
    np.half, np.single, np.double, np.longdouble, np.csingle, np.cdouble, np.clongdouble, np.bool_,
    np.byte, np.ubyte, np.short, np.ushort, np.str_, np.bytes_, np.void, np.object_, np.datetime64,
    np.timedelta64}, key=lambda t: t.__name__)


@pytest.mark.parametrize("scalar_type", SCALAR_TYPES, ids=lambda t: t.__name__)
def test_dtype_numpy_scalar_types(scalar_type):
    check_spelling(scalar_type)


@pytest.mark.parametrize("abstract", [np.generic, np.number, np.integer, np.floating, np.complexfloating])
def test_dtype_numpy_abstract_types_refused(abstract):
    assert numpy_dtype(abstract) is None or carried_name(np.dtype(abstract)) is None
    with pytest.raises(REFUSED):
        dlbridge.zeros(3, dtype=abstract)


@pytest.mark.parametrize("spelling", [s for s in SPELLINGS if numpy_dtype(s) is not None])
def test_dtype_numpy_dtype_objects(spelling):
    check_spelling(numpy_dtype(spelling))


@pytest.mark.parametrize("spelling", ["i4", "<f8", "=f4", "|u1", "f2", "c8", "?", "b1", "d", "l", "int", "float",
                                      "complex", "bool", float, int, complex, np.longlong, np.intc, "V2"])
def test_dtype_spellings_on_every_entry_point(spelling):
    expected = np.dtype(spelling)
    assert dlbridge.empty(2, dtype=spelling).dtype == expected.name
    assert dlbridge.zeros(2, dtype=spelling).dtype == expected.name
    data = bytearray(expected.itemsize * 4)
    from_buffer = dlbridge.from_buffer(data, dtype=spelling)
    assert (from_buffer.dtype, from_buffer.shape) == (expected.name, (4,))
    same_width = dlbridge.zeros(3, dtype=f"V{expected.itemsize}")
    assert same_width.view(spelling).dtype == expected.name
    np.testing.assert_array_equal(np.asarray(dlbridge.zeros(3, dtype=spelling)).view(np.uint8), 0)
    if expected.itemsize > 1 and expected.kind != "V":
        swapped = SWAPPED + expected.str[1:]
        for refuse in (lambda: dlbridge.zeros(2, dtype=swapped), lambda: dlbridge.from_buffer(data, dtype=swapped),
                       lambda: same_width.view(swapped)):
            with pytest.raises(BufferError, match="non-native byte order"):
                refuse()


def test_dtype_torch_and_ml_dtypes():
    assert dlbridge.zeros(2, dtype=torch.float64).dtype == "float64"
    assert dlbridge.zeros(2, dtype=torch.bfloat16).dtype == "bfloat16"
    for spelling in (ml_dtypes.bfloat16, np.dtype(ml_dtypes.bfloat16), "bfloat16"):
        assert dlbridge.zeros(2, dtype=spelling).dtype == "bfloat16"
    assert dlbridge.zeros(2, dtype=ml_dtypes.float8_e4m3fn).dtype == "float8_e4m3fn"


def test_dtype_refusals_name_the_spelling():
    with pytest.raises(TypeError, match='unknown dtype name "longdouble"'):
        dlbridge.zeros(2, dtype="longdouble")
    with pytest.raises(TypeError, match='unknown dtype name "float128"'):
        dlbridge.zeros(2, dtype=np.longdouble)
    with pytest.raises(TypeError, match='unknown dtype name "g"'):
        dlbridge.zeros(2, dtype="g")
    with pytest.raises(BufferError, match='typestr "O": Python objects have no DLPack dtype'):
        dlbridge.zeros(2, dtype="O")
    with pytest.raises(BufferError, match="dtype argument '>d' has non-native byte order"):
        dlbridge.zeros(2, dtype=">d")
    with pytest.raises(BufferError, match='typestr "<f16": extended precision'):
        dlbridge.zeros(2, dtype="<f16")
    with pytest.raises(BufferError, match="opaque 32-byte elements"):
        dlbridge.zeros(2, dtype="V32")


def test_dtype_strings_need_no_numpy():
    # The string and builtin-type spellings are read in Rust: test_numpy_is_not_imported
    # runs them in a fresh interpreter; here, that they agree with ctypes' C widths.
    assert dlbridge.zeros(1, dtype="l").itemsize == ctypes.sizeof(ctypes.c_long)
    assert dlbridge.zeros(1, dtype="i").itemsize == ctypes.sizeof(ctypes.c_int)
    assert dlbridge.zeros(1, dtype="h").itemsize == ctypes.sizeof(ctypes.c_short)
    assert dlbridge.zeros(1, dtype="q").itemsize == ctypes.sizeof(ctypes.c_longlong)
    assert dlbridge.zeros(1, dtype="p").itemsize == ctypes.sizeof(ctypes.c_ssize_t)
    assert dlbridge.zeros(1, dtype="L").dtype.startswith("uint")
