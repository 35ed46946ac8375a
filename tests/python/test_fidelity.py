"""Fidelity: an import carries the producer's meaning or refuses; it never drops it.

Acceptance tests for the fidelity rules (docs/architecture.md, "Fidelity"),
against real producers
(PyTorch, JAX, NumPy, ml_dtypes), ctypes capsules (dlpack_structs.py), the
counting C DLPack producer (helpers/dlpack_producer.c) and a lying PEP 3118
exporter (helpers/lying_exporter.c). Test names by the issue's case numbers:

 1  torch special states, on every import path (asarray, from_dlpack,
    from_dlpack(copy=False)), and the C exchange fast path
      test_torch_conj_bit_refused, test_torch_neg_bit_refused,
      test_torch_requires_grad_refused, test_torch_sparse_refused,
      test_torch_resolved_states_import_zero_copy,
      test_torch_detach_shares_the_leaf_memory,
      test_fast_path_counts_is_a_dict_of_ints,
      test_torch_import_takes_the_exchange_api,
      test_asarray_leaves_a_table_whose_class_switches_dlpack_off,
      test_exact_ndarray_import_takes_the_field_read,
      test_exchange_api_does_not_call_dunder_dlpack,
      test_subclass_overriding_dunder_dlpack_is_asked,
      test_subclass_with_its_own_table_uses_it
 2  legacy DLPack capsules import read-only; `legacy_writable=True` opts in
      test_jax_array_imports_readonly, test_legacy_numpy_capsule_imports_readonly,
      test_legacy_foreign_capsule_imports_readonly,
      test_versioned_capsule_without_read_only_imports_writable,
      test_legacy_writable_opt_in,
      test_legacy_writable_keeps_versioned_read_only,
      test_numpy_sees_a_jax_import_as_readonly
 3  each protocol attribute is evaluated once per import
      test_array_struct_read_once, test_array_interface_read_once,
      test_dunder_dlpack_read_once, test_attribute_error_inside_property_propagates
 4  dtype arguments with non-native byte order are refused
      test_non_native_dtype_argument_refused, test_native_dtype_argument_accepted,
      test_one_byte_dtype_has_no_byte_order
 5  a buffer exporter that lies (NULL buf, suboffsets) is refused on every
    path, and every acquired buffer is released exactly once
      test_honest_exporter_control, test_lying_interface_data_refused,
      test_lying_exporter_refused_directly
 6  a DLPack byte_offset that wraps the address space is refused, deleter once
      test_byte_offset_wrapping_around_refused,
      test_byte_offset_wrapping_around_deleter_once
 7  the per-type exchange-table cache keeps no type alive and goes stale never
      test_exchange_table_deleted_from_class_is_not_used,
      test_exchange_table_added_to_class_is_used,
      test_dunder_dlpack_deleted_from_class, test_type_cache_keeps_no_type_alive
 8  ml_dtypes float4/float6 (one element per byte) travel as padded sub-byte
      test_subbyte_versioned_export_says_padded, test_subbyte_reimport_zero_copy,
      test_subbyte_legacy_export_refused, test_padded_subbyte_capsule_imports,
      test_packed_subbyte_capsule_refused
 9  opaque NumPy `V<n>` imports and can be named with `view`
      test_opaque_void_views_as_named_dtype, test_opaque_void_without_named_size,
      test_opaque_void_round_trips_to_numpy, test_structured_records_still_refused
10  exception types: MemoryError, ValueError naming the number, `= None`
      test_unsatisfiable_allocation_is_memory_error,
      test_byte_size_overflowing_isize_is_value_error,
      test_huge_extent_is_value_error, test_huge_from_buffer_offset_is_value_error,
      test_huge_from_buffer_shape_is_value_error,
      test_dunder_dlpack_none_moves_on_to_array_interface,
      test_array_struct_none_moves_on_to_array_interface,
      test_dunder_dlpack_none_only_speaks_no_protocol

A few tests pass on a build without the fixes too: they pin behaviour the
fixes must keep (zero-copy after resolve_conj()/detach(), the exchange path
not calling `__dlpack__`, versioned capsules staying writable, refusals that
were already right). They are marked "(guard)" in their docstrings.

Like test_dlpack.py, releases are checked by reference counting where they
can be; only the type-lifetime test calls gc.collect() (every class is in a
reference cycle with its own __mro__).
"""

from __future__ import annotations

import ctypes
import gc
import os
import re
import weakref

os.environ["JAX_PLATFORMS"] = "cpu"  # before jax is imported: keep JAX off any accelerator

import jax.numpy as jnp  # noqa: E402
import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.utils.dlpack  # noqa: E402

# torch's read-only DLPack export (`__dlpack__(read_only=True)`,
# `ReadOnlyTensorWrapper` and its const exchange table) is newer than the
# oldest supported torch (2.9 has none of it): the tests that need it skip.
ReadOnlyTensorWrapper = getattr(torch.utils.dlpack, "ReadOnlyTensorWrapper", None)
needs_torch_read_only = pytest.mark.skipif(
    ReadOnlyTensorWrapper is None, reason=f"torch {torch.__version__} has no read-only DLPack export (ReadOnlyTensorWrapper)"
)
needs_torch_exchange_table = pytest.mark.skipif(
    not hasattr(torch.Tensor, "__dlpack_c_exchange_api__"),
    reason=f"torch {torch.__version__} has no DLPack exchange table (2.10 and later have)",
)

import dlbridge  # noqa: E402
from cbuild import dlpack_producer, load  # noqa: E402
from dlpack_structs import DLManagedTensor, capsule, capsule_pointer, versioned_header  # noqa: E402

READ_ONLY, IS_SUBBYTE_TYPE_PADDED = 1 << 0, 1 << 2

# The three ways a DLPack producer comes in (case 1).
IMPORT_PATHS = {
    "asarray": dlbridge.asarray,
    "from_dlpack": dlbridge.from_dlpack,
    "from_dlpack(copy=False)": lambda x: dlbridge.from_dlpack(x, copy=False),
}
# The two that may take the C exchange / ndarray-field fast paths.
FAST_PATHS = {"asarray": dlbridge.asarray, "from_dlpack": dlbridge.from_dlpack}
DLPACK_PATHS = FAST_PATHS


@pytest.fixture(scope="module")
def producer():
    """The counting C DLPack producer (helpers/dlpack_producer.c)."""
    return dlpack_producer()


def make(lib, *, versioned=True, flags=0, shape=(3, 4), offset=0):
    """A C-producer capsule over a float64 `shape` matrix; `byte_offset = offset * 8`."""
    return lib.make(int(versioned), 1, 3, flags, shape[0], shape[1], offset, 0, 1)


@pytest.fixture(scope="module")
def Liar():
    """The lying PEP 3118 exporter type (helpers/lying_exporter.c)."""
    lib = load("lying_exporter")
    lib.liar_type.argtypes = []
    lib.liar_type.restype = ctypes.py_object
    return lib.liar_type()


HONEST, NULL_BUF, SUBOFFSETS = 0, 1, 2


# ------------------------------------------------------------------------
# 1. torch special states: refused on every path, with the fix named
# ------------------------------------------------------------------------


def conj_tensor() -> torch.Tensor:
    x = torch.tensor([1 + 2j, 3 - 4j]).conj()
    assert x.is_conj()
    return x


def neg_tensor() -> torch.Tensor:
    x = torch.tensor([1 + 2j]).conj().imag
    assert x.is_neg()
    return x


GRAD_TENSORS = {
    "leaf": lambda: torch.ones(3, requires_grad=True),
    "non-leaf": lambda: torch.ones(3, requires_grad=True) * 2,
    "parameter": lambda: torch.nn.Parameter(torch.ones(3)),
}


@pytest.mark.parametrize("path", IMPORT_PATHS)
def test_torch_conj_bit_refused(path):
    with pytest.raises(BufferError, match=r"resolve_conj\(\)"):
        IMPORT_PATHS[path](conj_tensor())


@pytest.mark.parametrize("path", IMPORT_PATHS)
def test_torch_neg_bit_refused(path):
    with pytest.raises(BufferError, match=r"resolve_neg\(\)"):
        IMPORT_PATHS[path](neg_tensor())


@pytest.mark.parametrize("dtype", [torch.float32, torch.int32, torch.uint8])
@pytest.mark.parametrize("path", IMPORT_PATHS)
def test_torch_neg_bit_refused_on_real_dtypes(path, dtype):
    # The exchange path asks `is_neg()` of every dtype but bool: a real
    # tensor's negative view is refused however it was made.
    x = torch.ones(3, dtype=dtype)._neg_view()
    assert x.is_neg()
    with pytest.raises(BufferError, match=r"resolve_neg\(\)"):
        IMPORT_PATHS[path](x)


@pytest.mark.parametrize("path", IMPORT_PATHS)
def test_torch_neg_bit_set_in_place_is_refused(path):
    # The negative bit is not a property of views alone, nor fixed for a
    # tensor's life: `torch._C._set_neg` sets it in place on a tensor that
    # is no view (so `_is_view()`, which reads without releasing the GIL,
    # cannot stand in for `is_neg()`), after the same tensor was imported
    # once (so the answer cannot be remembered per tensor).
    x = torch.ones(3)
    IMPORT_PATHS[path](x)
    torch._C._set_neg(x, True)
    assert x.is_neg() and not x._is_view()
    with pytest.raises(BufferError, match=r"resolve_neg\(\)"):
        IMPORT_PATHS[path](x)
    torch._C._set_neg(x, False)
    IMPORT_PATHS[path](x)


def test_torch_view_bits_the_exchange_path_does_not_ask():
    # The exchange path skips `is_conj()` on non-complex tensors and
    # `is_neg()` on bool ones (each costs a GIL round trip inside torch).
    # Sound only while torch cannot give those states a meaning: if a
    # future torch can, this fails and the skip must go.
    with pytest.raises(RuntimeError, match="isComplexType"):
        torch._C._set_conj(torch.ones(3), True)
    with pytest.raises(RuntimeError, match="isComplexType"):
        torch._conj(torch.ones(3))
    assert not torch.ones(3).conj().is_conj()
    negated_bool = torch.tensor([True, False])._neg_view()
    with pytest.raises(NotImplementedError, match="Bool"):
        negated_bool.resolve_neg()


@pytest.mark.parametrize("kind", GRAD_TENSORS)
@pytest.mark.parametrize("path", IMPORT_PATHS)
def test_torch_requires_grad_refused(path, kind):
    x = GRAD_TENSORS[kind]()
    assert x.requires_grad
    with pytest.raises(BufferError, match=r"detach\(\)"):
        IMPORT_PATHS[path](x)


@pytest.mark.parametrize("path", IMPORT_PATHS)
def test_torch_sparse_refused(path):
    x = torch.tensor([0.0, 1.0, 0.0]).to_sparse()
    assert x.layout == torch.sparse_coo
    with pytest.raises(BufferError):
        IMPORT_PATHS[path](x)


def resolved_cases():
    """(resolved tensor, what its values must read as), built fresh per call."""
    leaf = torch.arange(3.0, requires_grad=True)
    return {
        "resolve_conj": (conj_tensor().resolve_conj(), np.array([1 - 2j, 3 + 4j], dtype=np.complex64)),
        "resolve_neg": (neg_tensor().resolve_neg(), np.array([-2.0], dtype=np.float32)),
        "detach leaf": (leaf.detach(), np.arange(3.0, dtype=np.float32)),
        "detach non-leaf": ((leaf * 2).detach(), 2 * np.arange(3.0, dtype=np.float32)),
        "detach parameter": (torch.nn.Parameter(torch.ones(3)).detach(), np.ones(3, dtype=np.float32)),
    }


@pytest.mark.parametrize("case", list(resolved_cases()))
@pytest.mark.parametrize("path", IMPORT_PATHS)
def test_torch_resolved_states_import_zero_copy(path, case):
    """(guard) Once the state is resolved the import works, zero-copy, with the right values."""
    x, expected = resolved_cases()[case]
    assert not (x.is_conj() or x.is_neg() or x.requires_grad)
    t = IMPORT_PATHS[path](x)
    assert t.data_ptr == x.data_ptr()
    assert t.shape == tuple(x.shape)
    np.testing.assert_array_equal(np.from_dlpack(t), expected)


def test_torch_detach_shares_the_leaf_memory():
    """(guard) detach() is the fix the message names: the import aliases the leaf itself."""
    leaf = torch.arange(3.0, requires_grad=True)
    t = dlbridge.asarray(leaf.detach())
    assert t.data_ptr == leaf.data_ptr()


# --- the C exchange fast path, observable ---------------------------------


def fast_path_counts() -> dict[str, int]:
    return dlbridge._native._testing.fast_path_counts()


def test_fast_path_counts_is_a_dict_of_ints():
    counts = fast_path_counts()
    assert isinstance(counts, dict)
    for key in ("exchange_api", "ndarray_fields"):
        assert type(counts[key]) is int, key


@needs_torch_exchange_table
@pytest.mark.parametrize("path", FAST_PATHS)
def test_torch_import_takes_the_exchange_api(path):
    x = torch.arange(6.0).reshape(2, 3)
    before = fast_path_counts()
    t = FAST_PATHS[path](x)
    after = fast_path_counts()
    assert t.data_ptr == x.data_ptr()
    assert after["exchange_api"] == before["exchange_api"] + 1
    assert after["ndarray_fields"] == before["ndarray_fields"]


@needs_torch_exchange_table
def test_exchange_api_is_taken_again_from_the_type_cache():
    """The second import of a type is answered by the per-thread cache: it
    must still take the table (a cache that forgot the table would fall
    back to __dlpack__ with every value right). dlbridge's own Tensor
    publishes a table too, so from_dlpack(t) takes it as well."""
    x = torch.arange(4.0)
    own = dlbridge.zeros(3)
    for _ in range(3):
        before = fast_path_counts()["exchange_api"]
        assert dlbridge.asarray(x).data_ptr == x.data_ptr()
        back = dlbridge.from_dlpack(own)
        assert back.data_ptr == own.data_ptr and back.source == "dlpack"
        assert fast_path_counts()["exchange_api"] == before + 2


@needs_torch_exchange_table
def test_asarray_leaves_a_table_whose_class_switches_dlpack_off():
    """asarray takes a table before discovery only where discovery's DLPack
    step would: a class that publishes the table but sets `__dlpack__ =
    None` beside it has switched DLPack off, and is read another way."""

    class Off(torch.Tensor):
        __dlpack_c_exchange_api__ = torch.Tensor.__dlpack_c_exchange_api__
        __dlpack__ = None

    x = torch.arange(4.0).as_subclass(Off)
    before = fast_path_counts()["exchange_api"]
    t = dlbridge.asarray(x)
    # torch's `__array__` (a zero-copy ndarray view), read as that ndarray.
    assert t.source == "ndarray" and t.data_ptr == x.data_ptr()
    assert fast_path_counts()["exchange_api"] == before


@pytest.mark.parametrize("path", FAST_PATHS)
def test_exact_ndarray_import_takes_the_field_read(path):
    a = np.arange(6.0).reshape(2, 3)
    before = fast_path_counts()
    t = FAST_PATHS[path](a)
    after = fast_path_counts()
    assert t.data_ptr == a.ctypes.data
    assert after["ndarray_fields"] == before["ndarray_fields"] + 1
    assert after["exchange_api"] == before["exchange_api"]


@pytest.mark.parametrize(
    "make",
    [lambda: memoryview(np.arange(6.0)), lambda: bytes(range(8)), lambda: bytearray(range(8))],
    ids=["memoryview", "bytes", "bytearray"],
)
def test_builtin_buffer_exporters_take_asarray_fast_path(make):
    """`asarray` imports an exact memoryview/bytes/bytearray through the buffer
    protocol before discovery: counted, zero-copy, readonly kept."""
    x = make()
    before = fast_path_counts()
    t = dlbridge.asarray(x)
    after = fast_path_counts()
    assert after["builtin_buffer"] == before["builtin_buffer"] + 1
    assert t.source == "buffer"
    view = memoryview(x).cast("B")
    assert t.data_ptr == np.frombuffer(view, dtype=np.uint8).ctypes.data
    assert t.readonly is view.readonly
    # A refusal still reads in discovery's words (and is not counted).
    odd = memoryview(b"abcd").cast("B").cast("c")
    with pytest.raises(BufferError, match='no protocol could import memoryview: buffer protocol: .*format "c"'):
        dlbridge.asarray(odd)
    assert fast_path_counts()["builtin_buffer"] == after["builtin_buffer"]


@needs_torch_exchange_table
@pytest.mark.parametrize("path", FAST_PATHS)
def test_exchange_api_does_not_call_dunder_dlpack(path, monkeypatch):
    """(guard) A plain torch tensor comes across without torch.Tensor.__dlpack__."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("__dlpack__ called: the C exchange fast path was not taken")

    monkeypatch.setattr(torch.Tensor, "__dlpack__", refuse)
    x = torch.arange(4.0)
    t = FAST_PATHS[path](x)
    assert t.data_ptr == x.data_ptr()
    assert t.readonly is False
    np.testing.assert_array_equal(np.from_dlpack(t), np.arange(4.0, dtype=np.float32))


class ReadOnlyByDunder(torch.Tensor):
    """Overrides `__dlpack__` (to export read-only) but inherits torch.Tensor's
    exchange table, which knows nothing of the override: the table speaks for
    the class that defines it, so here only `__dlpack__` says what the object
    means. (Subclasses that override neither, such as nn.Parameter, and
    those that define their own table, such as ReadOnlyTensorWrapper, are
    the table's to describe.)"""

    calls = 0

    def __dlpack__(self, **kwargs):
        type(self).calls += 1
        return super().__dlpack__(read_only=True, **kwargs)


@needs_torch_read_only
@pytest.mark.parametrize("path", FAST_PATHS)
def test_subclass_overriding_dunder_dlpack_is_asked(path):
    x = torch.arange(4.0)
    s = x.as_subclass(ReadOnlyByDunder)
    ReadOnlyByDunder.calls = 0
    t = FAST_PATHS[path](s)
    assert ReadOnlyByDunder.calls == 1
    assert t.readonly is True
    assert t.data_ptr == x.data_ptr()


@needs_torch_read_only
@pytest.mark.parametrize("path", FAST_PATHS)
def test_subclass_with_its_own_table_uses_it(path):
    """(guard) torch's ReadOnlyTensorWrapper publishes the const table: read-only."""
    x = torch.arange(4.0)
    t = FAST_PATHS[path](ReadOnlyTensorWrapper(x))
    assert t.readonly is True
    assert t.data_ptr == x.data_ptr()


# ------------------------------------------------------------------------
# 2. Legacy DLPack capsules import read-only (opt-in: legacy_writable=True)
# ------------------------------------------------------------------------


@pytest.mark.parametrize("path", DLPACK_PATHS)
def test_jax_array_imports_readonly(path):
    x = jnp.arange(4.0)
    t = DLPACK_PATHS[path](x)
    assert t.readonly is True
    assert t.data_ptr == x.unsafe_buffer_pointer()


@pytest.mark.parametrize("path", DLPACK_PATHS)
def test_legacy_numpy_capsule_imports_readonly(path):
    a = np.arange(3)
    cap = a.__dlpack__()
    assert capsule_pointer(cap, b"dltensor")  # legacy: no max_version asked
    t = DLPACK_PATHS[path](cap)
    assert t.readonly is True
    assert t.data_ptr == a.ctypes.data


def test_legacy_foreign_capsule_imports_readonly(producer):
    t = dlbridge.from_dlpack(make(producer, versioned=False))
    assert t.readonly is True


@pytest.mark.parametrize("path", DLPACK_PATHS)
def test_versioned_capsule_without_read_only_imports_writable(path, producer):
    """(guard) A versioned capsule can say READ_ONLY, so its silence means writable."""
    a = np.arange(3)
    assert DLPACK_PATHS[path](a.__dlpack__(max_version=(1, 0))).readonly is False
    assert DLPACK_PATHS[path](make(producer, versioned=True)).readonly is False


LEGACY_SOURCES = {
    "numpy legacy capsule": lambda producer: np.arange(3.0).__dlpack__(),
    "C producer legacy capsule": lambda producer: make(producer, versioned=False),
    "jax array": lambda producer: jnp.arange(4.0),
}


@pytest.mark.parametrize("source", LEGACY_SOURCES)
def test_legacy_writable_opt_in(source, producer):
    t = dlbridge.from_dlpack(LEGACY_SOURCES[source](producer), legacy_writable=True)
    assert t.readonly is False


def test_legacy_writable_keeps_versioned_read_only(producer):
    """The opt-in is for capsules that cannot say; one that says READ_ONLY stays read-only."""
    t = dlbridge.from_dlpack(make(producer, flags=READ_ONLY), legacy_writable=True)
    assert t.readonly is True


def test_numpy_sees_a_jax_import_as_readonly():
    x = jnp.arange(4.0)
    a = np.from_dlpack(dlbridge.asarray(x))
    assert a.flags.writeable is False
    assert a.ctypes.data == x.unsafe_buffer_pointer()


# ------------------------------------------------------------------------
# 3. Each protocol attribute is evaluated once per import
# ------------------------------------------------------------------------


class CountingStruct:
    def __init__(self):
        self.array = np.arange(4.0)
        self.reads = 0

    @property
    def __array_struct__(self):
        self.reads += 1
        return self.array.__array_struct__


class CountingInterface:
    def __init__(self):
        self.array = np.arange(4.0)
        self.reads = 0

    @property
    def __array_interface__(self):
        self.reads += 1
        return self.array.__array_interface__


class CountingDlpack:
    """`__dlpack__` is a property returning the array's bound method."""

    def __init__(self):
        self.array = np.arange(4.0)
        self.reads = 0

    @property
    def __dlpack__(self):
        self.reads += 1
        return self.array.__dlpack__

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()


class CountingLegacyDlpack(CountingDlpack):
    """The same, for a pre-1.0 producer whose `__dlpack__` takes no keywords
    (the consumer's keyword call fails with TypeError and it asks again)."""

    @property
    def __dlpack__(self):
        self.reads += 1
        return lambda: self.array.__dlpack__()


ARRAY_INTERFACE_PATHS = {"asarray": dlbridge.asarray, "from_array_interface": dlbridge.from_array_interface}


@pytest.mark.parametrize("path", ARRAY_INTERFACE_PATHS)
def test_array_struct_read_once(path):
    obj = CountingStruct()
    t = ARRAY_INTERFACE_PATHS[path](obj)
    assert t.data_ptr == obj.array.ctypes.data
    assert obj.reads == 1


@pytest.mark.parametrize("path", ARRAY_INTERFACE_PATHS)
def test_array_interface_read_once(path):
    obj = CountingInterface()
    t = ARRAY_INTERFACE_PATHS[path](obj)
    assert t.data_ptr == obj.array.ctypes.data
    assert obj.reads == 1


@pytest.mark.parametrize("cls", [CountingDlpack, CountingLegacyDlpack], ids=lambda c: c.__name__)
@pytest.mark.parametrize("path", DLPACK_PATHS)
def test_dunder_dlpack_read_once(path, cls):
    obj = cls()
    t = DLPACK_PATHS[path](obj)
    assert t.data_ptr == obj.array.ctypes.data
    assert obj.reads == 1


class InterfaceRaisingAttributeError:
    @property
    def __array_interface__(self):
        raise AttributeError("inner")


@pytest.mark.parametrize("path", ARRAY_INTERFACE_PATHS)
def test_attribute_error_inside_property_propagates(path):
    """An AttributeError raised by the producer's own property is its answer,
    not a sign that the attribute is missing ("speaks no protocol")."""
    with pytest.raises(AttributeError, match="^inner$"):
        ARRAY_INTERFACE_PATHS[path](InterfaceRaisingAttributeError())


# ------------------------------------------------------------------------
# 4. dtype arguments with non-native byte order are refused
# ------------------------------------------------------------------------

NON_NATIVE_F4 = np.dtype("f4").newbyteorder()  # ">f4" on a little-endian host
assert NON_NATIVE_F4.name == "float32"  # the trap: the name drops the byte order

DTYPE_TAKERS = {
    "from_buffer": lambda dtype: dlbridge.from_buffer(bytearray(8), dtype=dtype),
    "zeros": lambda dtype: dlbridge.zeros(3, dtype=dtype),
    "empty": lambda dtype: dlbridge.empty(3, dtype=dtype),
    # view() keeps the itemsize (src/tensor.rs `view`), so the source is 4-byte too.
    "view": lambda dtype: dlbridge.zeros(4, dtype="int32").view(dtype),
}


@pytest.mark.parametrize("taker", DTYPE_TAKERS)
def test_non_native_dtype_argument_refused(taker):
    pattern = rf"{re.escape(NON_NATIVE_F4.str)}|byte order"
    with pytest.raises(BufferError, match=pattern):
        DTYPE_TAKERS[taker](NON_NATIVE_F4)


@pytest.mark.parametrize("spelling", ["<f4" if np.little_endian else ">f4", "=f4"])
@pytest.mark.parametrize("taker", DTYPE_TAKERS)
def test_native_dtype_argument_accepted(taker, spelling):
    t = DTYPE_TAKERS[taker](np.dtype(spelling))
    assert t.dtype == "float32"


@pytest.mark.parametrize("taker", ["from_buffer", "zeros", "empty"])
def test_one_byte_dtype_has_no_byte_order(taker):
    """(guard) `np.dtype('>u1')` is `'|u1'`: no byte order to get wrong."""
    t = DTYPE_TAKERS[taker](np.dtype(">u1"))
    assert t.dtype == "uint8"


# ------------------------------------------------------------------------
# 5. A buffer exporter that lies is refused on every path; released once
# ------------------------------------------------------------------------


class InterfaceOver:
    """An object whose `__array_interface__` takes its data from a buffer exporter."""

    def __init__(self, exporter):
        self.__array_interface__ = {"version": 3, "typestr": "<f4", "shape": (4,), "data": exporter}


def released_once(exporter) -> bool:
    return exporter.gets >= 1 and exporter.releases == exporter.gets and exporter.exports == 0


LIAR_PATHS = {
    "asarray": dlbridge.asarray,
    "from_buffer": dlbridge.from_buffer,
    "asarray(interface)": lambda e: dlbridge.asarray(InterfaceOver(e)),
    "from_array_interface": lambda e: dlbridge.from_array_interface(InterfaceOver(e)),
}
DIRECT_PATHS = {name: LIAR_PATHS[name] for name in ("asarray", "from_buffer")}
INTERFACE_PATHS = {name: LIAR_PATHS[name] for name in ("asarray(interface)", "from_array_interface")}
LIES = {"NULL buf": (NULL_BUF, r"NULL"), "suboffsets": (SUBOFFSETS, r"suboffsets")}


@pytest.mark.parametrize("path", LIAR_PATHS)
def test_honest_exporter_control(Liar, path):
    """(guard) The helper itself: mode 0 imports zero-copy on every path, released once."""
    liar = Liar(HONEST)
    t = LIAR_PATHS[path](liar)
    assert t.data_ptr == liar.address
    assert t.shape == (4,) and t.dtype == "float32"
    assert liar.exports == 1
    del t
    assert released_once(liar)


@pytest.mark.parametrize("lie", LIES)
@pytest.mark.parametrize("path", INTERFACE_PATHS)
def test_lying_interface_data_refused(Liar, path, lie):
    mode, message = LIES[lie]
    liar = Liar(mode)
    with pytest.raises(BufferError, match=message):
        INTERFACE_PATHS[path](liar)
    assert released_once(liar), (liar.gets, liar.releases)


@pytest.mark.parametrize("lie", LIES)
@pytest.mark.parametrize("path", DIRECT_PATHS)
def test_lying_exporter_refused_directly(Liar, path, lie):
    """The same lies through the buffer protocol itself: the same exception type."""
    mode, message = LIES[lie]
    liar = Liar(mode)
    with pytest.raises(BufferError, match=message):
        DIRECT_PATHS[path](liar)
    assert released_once(liar), (liar.gets, liar.releases)


# ------------------------------------------------------------------------
# 6. A DLPack byte_offset that wraps the address space
# ------------------------------------------------------------------------

WRAPPING_OFFSET = 2**64 - 32


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "legacy"])
def test_byte_offset_wrapping_around_refused(versioned):
    cap = capsule(shape=(4,), dtype=(2, 32, 1), byte_offset=WRAPPING_OFFSET, versioned=versioned)
    with pytest.raises(ValueError, match="wraps around"):
        dlbridge.from_dlpack(cap)


@pytest.mark.parametrize("path", ["from_dlpack", "asarray"])
@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "legacy"])
def test_byte_offset_wrapping_around_deleter_once(producer, versioned, path):
    # offset = -4 doubles: the C producer stores byte_offset = (uint64_t)-4 * 8.
    n = producer.deleted()
    cap = make(producer, versioned=versioned, shape=(1, 4), offset=-4)
    if versioned:
        assert versioned_header(cap).dl_tensor.byte_offset == WRAPPING_OFFSET
    else:
        header = DLManagedTensor.from_address(capsule_pointer(cap, b"dltensor"))
        assert header.dl_tensor.byte_offset == WRAPPING_OFFSET
    with pytest.raises(ValueError, match="wraps around"):
        # Called directly (no Python frame in the traceback holds the capsule).
        if path == "from_dlpack":
            dlbridge.from_dlpack(cap)
        else:
            dlbridge.asarray(cap)
    del cap  # consumed: dlbridge deleted it; unconsumed: its destructor does now
    assert producer.deleted() == n + 1


# ------------------------------------------------------------------------
# 7. The per-type exchange-table cache: never stale, keeps no type alive
# ------------------------------------------------------------------------


def const_table():
    """torch's read-only exchange table (what ReadOnlyTensorWrapper publishes)."""
    return torch._C._const_dlpack_exchange_api()


@needs_torch_read_only
def test_exchange_table_deleted_from_class_is_not_used():
    cls = type("ConstTableThenPlain", (torch.Tensor,), {"__dlpack_c_exchange_api__": const_table()})
    x = torch.arange(3.0)
    obj = x.as_subclass(cls)
    assert dlbridge.asarray(obj).readonly is True
    del cls.__dlpack_c_exchange_api__  # now torch.Tensor's own (writable) table
    t = dlbridge.asarray(obj)
    assert t.readonly is False
    assert t.data_ptr == x.data_ptr()


@needs_torch_read_only
def test_exchange_table_added_to_class_is_used():
    cls = type("PlainThenConstTable", (torch.Tensor,), {})
    x = torch.arange(3.0)
    obj = x.as_subclass(cls)
    assert dlbridge.asarray(obj).readonly is False
    cls.__dlpack_c_exchange_api__ = const_table()
    t = dlbridge.asarray(obj)
    assert t.readonly is True
    assert t.data_ptr == x.data_ptr()


def _delegate_dlpack(self, **kwargs):
    return self.array.__dlpack__(**kwargs)


def _delegate_device(self):
    return self.array.__dlpack_device__()


def _delegate_interface(self):
    return self.array.__array_interface__


def _init(self, array):
    self.array = array


def test_dunder_dlpack_deleted_from_class():
    """(guard) Taking `__dlpack__` off a class moves discovery on at once."""
    cls = type(
        "DlpackThenInterface",
        (),
        {
            "__init__": _init,
            "__dlpack__": _delegate_dlpack,
            "__dlpack_device__": _delegate_device,
            "__array_interface__": property(_delegate_interface),
        },
    )
    obj = cls(np.arange(3.0))
    assert dlbridge.asarray(obj).source == "dlpack"
    del cls.__dlpack__
    t = dlbridge.asarray(obj)
    assert t.source == "array_interface"
    assert t.data_ptr == obj.array.ctypes.data


@needs_torch_read_only
def test_type_cache_keeps_no_type_alive():
    """40 throwaway producer types (more than any fixed cache holds), each
    imported once: plain classes delegating to NumPy, and torch.Tensor
    subclasses (types that really publish an exchange table, some the
    read-only one). None may outlive its last instance."""
    refs = []
    for i in range(40):
        if i % 4 == 3:
            readonly = i % 8 == 7
            namespace = {"__dlpack_c_exchange_api__": const_table()} if readonly else {}
            cls = type(f"ThrowawayTensor{i}", (torch.Tensor,), namespace)
            obj = torch.arange(3.0).as_subclass(cls)
        else:
            readonly = False
            cls = type(
                f"Throwaway{i}",
                (),
                {"__init__": _init, "__dlpack__": _delegate_dlpack, "__dlpack_device__": _delegate_device},
            )
            obj = cls(np.arange(3.0))
        t = dlbridge.asarray(obj)
        assert t.shape == (3,) and t.readonly is readonly, cls.__name__
        np.testing.assert_array_equal(np.from_dlpack(t), [0.0, 1.0, 2.0])
        refs.append(weakref.ref(cls))
        del cls, obj, t
    gc.collect()
    alive = [ref().__name__ for ref in refs if ref() is not None]
    assert alive == []


# ------------------------------------------------------------------------
# 8. ml_dtypes float4/float6: one element per byte, DLPack's PADDED flag
# ------------------------------------------------------------------------

SUBBYTE = {"float4_e2m1fn": (17, 4), "float6_e2m3fn": (15, 6), "float6_e3m2fn": (16, 6)}


def subbyte_array(name: str) -> np.ndarray:
    return np.array([0.0, 1.0, -1.5, 0.5], dtype=getattr(ml_dtypes, name))


@pytest.mark.parametrize("name", SUBBYTE)
def test_subbyte_versioned_export_says_padded(name):
    a = subbyte_array(name)
    t = dlbridge.asarray(a)
    assert (t.dtype, t.itemsize, t.data_ptr) == (name, 1, a.ctypes.data)
    cap = t.__dlpack__(max_version=(1, 3))
    header = versioned_header(cap)
    assert header.flags & IS_SUBBYTE_TYPE_PADDED
    dtype = header.dl_tensor.dtype
    assert (dtype.code, dtype.bits, dtype.lanes) == (*SUBBYTE[name], 1)


@pytest.mark.parametrize("name", SUBBYTE)
def test_subbyte_reimport_zero_copy(name):
    a = subbyte_array(name)
    t = dlbridge.asarray(a)
    for again in (dlbridge.from_dlpack(t), dlbridge.from_dlpack(t.__dlpack__(max_version=(1, 3)))):
        assert again.dtype == t.dtype == name
        assert again.data_ptr == t.data_ptr
        assert again.itemsize == 1 and again.shape == (4,)
        np.testing.assert_array_equal(again.numpy().view(np.uint8), a.view(np.uint8))


@pytest.mark.parametrize("name", SUBBYTE)
def test_subbyte_legacy_export_refused(name):
    """A legacy capsule has no flags, so it would say "packed": refuse."""
    t = dlbridge.asarray(subbyte_array(name))
    with pytest.raises(BufferError):
        t.__dlpack__()


@pytest.mark.parametrize("name", SUBBYTE)
def test_padded_subbyte_capsule_imports(name):
    block = (ctypes.c_uint8 * 4)(0, 1, 2, 3)
    cap = capsule(shape=(4,), dtype=(*SUBBYTE[name], 1), data=ctypes.addressof(block), flags=IS_SUBBYTE_TYPE_PADDED)
    t = dlbridge.from_dlpack(cap)
    assert (t.dtype, t.itemsize, t.nbytes, t.shape) == (name, 1, 4, (4,))
    assert t.data_ptr == ctypes.addressof(block)


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "legacy"])
@pytest.mark.parametrize("name", SUBBYTE)
def test_packed_subbyte_capsule_refused(name, versioned):
    """(guard) Without the flag, (code, 4|6, 1) is packed storage: no byte strides."""
    cap = capsule(shape=(4,), dtype=(*SUBBYTE[name], 1), versioned=versioned)
    with pytest.raises(BufferError):
        dlbridge.from_dlpack(cap)


# ------------------------------------------------------------------------
# 9. Opaque NumPy V<n>
# ------------------------------------------------------------------------

NAMED_OF_SIZE = {"V2": ("bfloat16", ml_dtypes.bfloat16), "V4": ("float32", np.float32)}


@pytest.mark.parametrize("void", NAMED_OF_SIZE)
def test_opaque_void_views_as_named_dtype(void):
    name, scalar = NAMED_OF_SIZE[void]
    values = np.array([1.0, 2.0, -3.0], dtype=scalar)
    a = values.view(void).copy()
    assert a.dtype == np.dtype(void)
    t = dlbridge.asarray(a)
    assert (t.shape, t.itemsize, t.data_ptr, t.readonly) == ((3,), a.itemsize, a.ctypes.data, False)
    v = t.view(name)
    assert v.dtype == name
    assert v.data_ptr == a.ctypes.data
    np.testing.assert_array_equal(v.numpy().astype(np.float32), [1.0, 2.0, -3.0])


def test_opaque_void_without_named_size():
    a = np.zeros(3, dtype="V3")
    t = dlbridge.asarray(a)
    assert (t.shape, t.itemsize, t.nbytes, t.data_ptr) == ((3,), 3, 9, a.ctypes.data)
    for other in ("uint16", "float32"):
        with pytest.raises(ValueError, match="holds 9 bytes, not a multiple of"):
            t.view(other)
    assert t.view("uint8").shape == (9,)


class InterfaceOnly:
    """Shows NumPy only the `__array_interface__` dict it is given."""

    def __init__(self, interface):
        self.__array_interface__ = interface


@pytest.mark.parametrize("void", ["V2", "V3", "V4"])
def test_opaque_void_round_trips_to_numpy(void):
    """Back to NumPy as the same opaque bytes, sharing memory. The array
    interface export says exactly `V<n>`. (`np.asarray(t)` itself reads the
    buffer protocol first, whose `<n>x` NumPy turns into a field-less
    structured dtype of the same size, as it does for its own V<n> arrays'
    memoryviews; only "opaque, n bytes, no fields" is asked of that path.)"""
    size = int(void[1:])
    a = np.frombuffer(bytes(range(3 * size)), dtype=void).copy()
    t = dlbridge.asarray(a)
    via_interface = np.asarray(InterfaceOnly(t.__array_interface__))
    assert via_interface.dtype == np.dtype(void)
    b = np.asarray(t)
    assert (b.dtype.kind, b.dtype.itemsize, b.dtype.fields or None) == ("V", size, None)
    for out in (via_interface, b):
        assert out.ctypes.data == a.ctypes.data
        assert out.tobytes() == a.tobytes()


def test_structured_records_still_refused():
    """(guard) Opaque bytes are not a licence to drop field names: NumPy's
    `__array_struct__` of a structured array says only "V8" (its flags lose
    HAS_DESCR: NumPy writes `flags &= HAS_DESCR` for `|=`), so an import of it as opaque V8 would."""
    with pytest.raises(BufferError):
        dlbridge.asarray(np.zeros(3, dtype=[("re", "<f4"), ("im", "<f4")]))


# ------------------------------------------------------------------------
# 10. Exception types
# ------------------------------------------------------------------------

# 2**60 bytes: fits in isize, but no allocator on a 48-bit address space has it.
UNSATISFIABLE = (2**40, 2**20)


@pytest.mark.parametrize("allocate", [dlbridge.empty, dlbridge.zeros], ids=["empty", "zeros"])
def test_unsatisfiable_allocation_is_memory_error(allocate):
    with pytest.raises(MemoryError):
        allocate(UNSATISFIABLE, dtype="uint8")


@pytest.mark.parametrize("allocate", [dlbridge.empty, dlbridge.zeros], ids=["empty", "zeros"])
def test_byte_size_overflowing_isize_is_value_error(allocate):
    """(guard) 2**60 float64 is 2**63 bytes, past isize: an overflowing shape, not an allocation."""
    with pytest.raises(ValueError):
        allocate(UNSATISFIABLE, dtype="float64")


@pytest.mark.parametrize("allocate", [dlbridge.empty, dlbridge.zeros], ids=["empty", "zeros"])
@pytest.mark.parametrize("shape", [2**70, (2**63,), (2, 2**64)], ids=["2**70", "(2**63,)", "(2, 2**64)"])
def test_huge_extent_is_value_error(allocate, shape):
    number = shape if isinstance(shape, int) else shape[-1]
    with pytest.raises(ValueError, match=str(number)):
        allocate(shape, dtype="uint8")


def test_huge_from_buffer_offset_is_value_error():
    with pytest.raises(ValueError, match=str(2**70)):
        dlbridge.from_buffer(b"abcd", offset=2**70)


def test_huge_from_buffer_shape_is_value_error():
    with pytest.raises(ValueError):
        dlbridge.from_buffer(b"abcd", shape=(2**70,))


class NoDlpackButInterface:
    __dlpack__ = None

    def __init__(self):
        self.array = np.arange(3.0)

    @property
    def __array_interface__(self):
        return self.array.__array_interface__


class NoStructButInterface(NoDlpackButInterface):
    __dlpack__ = None
    __array_struct__ = None


class NoDlpackOnly:
    __dlpack__ = None


@pytest.mark.parametrize("cls", [NoDlpackButInterface, NoStructButInterface], ids=lambda c: c.__name__)
def test_dunder_dlpack_none_moves_on_to_array_interface(cls):
    obj = cls()
    t = dlbridge.asarray(obj)
    assert t.source == "array_interface"
    assert t.data_ptr == obj.array.ctypes.data


def test_array_struct_none_moves_on_to_array_interface():
    obj = NoStructButInterface()
    t = dlbridge.from_array_interface(obj)
    assert t.source == "array_interface"
    assert t.data_ptr == obj.array.ctypes.data


def test_dunder_dlpack_none_only_speaks_no_protocol():
    with pytest.raises(TypeError, match="speaks no array protocol"):
        dlbridge.asarray(NoDlpackOnly())
