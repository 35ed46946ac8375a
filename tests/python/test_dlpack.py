"""DLPack through dlbridge against real NumPy, PyTorch and JAX (issue #2).

Round trips per dtype (same dtype, values and data pointer, writes visible
both ways), 0 to 64 dimensions, strided / reversed / empty / 0-d views,
refcounts as in NumPy's own test_dlpack.py, deleters run exactly once (by a
counting C producer, helpers/dlpack_producer.c), read-only, devices,
Rust-owned buffers, and the `__dlpack__` / `from_dlpack` arguments of the
DLPack Python specification, as NumPy 2.4 and torch 2.15 behave.

No test calls gc.collect(): tensors, arrays, capsules and their owners are
freed by reference counting, so each release is checked the moment the last
reference goes (a release that needs the cycle collector would be a leak).

Refusals that are a row of docs/errors.md (positional `__dlpack__`
arguments, `stream=1`, a non-tuple `max_version` or `dl_device`, a
cross-device request, consumed / misnamed / non-capsules, ndim 65, NULL
data, ...) are tested once, by test_error_matrix.py, and not again here.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import sys

os.environ["JAX_PLATFORMS"] = "cpu"  # before jax is imported: keep JAX off any accelerator

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import dlbridge  # noqa: E402
from cbuild import dlpack_producer  # noqa: E402
from framework_versions import float8_param, needs_torch_negative_stride_refusal  # noqa: E402
from dlpack_structs import (  # noqa: E402
    DLManagedTensor,
    DLManagedTensorVersioned,
    _get_pointer,
    capsule,
    capsule_name,
)

READ_ONLY, IS_COPIED = 1 << 0, 1 << 1
CPU = (1, 0)

NUMPY_DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
]
# Every torch dtype DLPack carries, by the name dlbridge gives it (torch uses the same).
TORCH_DTYPES = [
    "bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128",
    *(float8_param(name, id=name) for name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")),
]
# JAX without jax_enable_x64 truncates 64-bit dtypes (with a warning), so the
# JAX round trips cover its 8-32 bit types, including bfloat16 and float8.
JAX_DTYPES = [
    "bool", "uint8", "uint16", "uint32", "int8", "int16", "int32",
    "float16", "bfloat16", "float32", "complex64", "float8_e4m3fn", "float8_e5m2",
]


# --- helpers ----------------------------------------------------------------


def header(cap):
    """The managed tensor inside a live, unconsumed capsule (read with ctypes)."""
    name = capsule_name(cap)
    struct = {b"dltensor": DLManagedTensor, b"dltensor_versioned": DLManagedTensorVersioned}[name]
    return struct.from_address(_get_pointer(cap, name))


def device_of(dl_tensor) -> tuple[int, int]:
    return (dl_tensor.device.device_type, dl_tensor.device.device_id)


def numpy_sample(dtype: str, shape=(3, 4)) -> np.ndarray:
    n = int(np.prod(shape))
    k = np.arange(n)
    if dtype == "bool":
        return (k % 3 == 0).reshape(shape)
    if dtype.startswith("complex"):
        return (k + 1j * (n - k)).astype(dtype).reshape(shape)
    return (k + 1).astype(dtype).reshape(shape)


def torch_sample(dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    return x.remainder(3) == 0 if dtype is torch.bool else x.to(dtype)


def same_bytes(x: torch.Tensor, y: torch.Tensor) -> bool:
    return torch.equal(x.view(torch.uint8), y.view(torch.uint8))


@pytest.fixture(scope="module")
def producer():
    """A foreign C producer whose deleter counts its calls."""
    return dlpack_producer()


def make(lib, *, versioned=True, version=(1, 3), flags=0, shape=(3, 4), offset=0, null_strides=False, device_type=1):
    """A capsule over a float64 `shape` matrix with values `offset + arange`."""
    return lib.make(int(versioned), version[0], version[1], flags, shape[0], shape[1], offset, int(null_strides), device_type)


def aligned(a: np.ndarray, alignment: int = 64) -> np.ndarray:
    """A copy of `a` whose data starts on an `alignment`-byte boundary."""
    raw = np.empty(a.nbytes + alignment, dtype=np.uint8)
    start = -raw.ctypes.data % alignment
    out = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def pointer_of(x) -> int | None:
    """The data pointer of a NumPy, PyTorch, JAX or dlbridge array."""
    if isinstance(x, np.ndarray):
        return x.ctypes.data
    if isinstance(x, torch.Tensor):
        return x.data_ptr()
    if isinstance(x, jax.Array):
        return x.unsafe_buffer_pointer()
    if isinstance(x, dlbridge.Tensor):
        return x.data_ptr
    return None


def expected(shape=(3, 4), offset=0) -> np.ndarray:
    return np.arange(offset, offset + shape[0] * shape[1], dtype=np.float64).reshape(shape)


# --- NumPy round trips --------------------------------------------------------


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_numpy_round_trip(dtype):
    a = numpy_sample(dtype)
    t = dlbridge.asarray(a)
    assert (t.dtype, t.shape, t.strides, t.itemsize) == (dtype, a.shape, a.strides, a.itemsize)
    assert (t.source, t.readonly, t.device) == ("ndarray", False, CPU)  # an exact ndarray: its fields are read, no capsule made
    b = np.from_dlpack(t)
    assert b.dtype == a.dtype and b.shape == a.shape and b.strides == a.strides
    np.testing.assert_array_equal(b, a)
    assert a.ctypes.data == t.data_ptr == b.ctypes.data
    assert b.flags.writeable
    # Write through each view, read through the other.
    b[1, 2] = ~a[1, 2] if dtype == "bool" else a[1, 2] + 100
    assert a[1, 2] == b[1, 2] and a[1, 2] != numpy_sample(dtype)[1, 2]
    a[2, 3] = ~b[2, 3] if dtype == "bool" else b[2, 3] + 50
    assert b[2, 3] == a[2, 3] and b[2, 3] != numpy_sample(dtype)[2, 3]


# --- PyTorch round trips --------------------------------------------------------


@pytest.mark.parametrize("name", TORCH_DTYPES)
def test_torch_to_dlbridge_to_torch(name):
    dtype = getattr(torch, name)
    x = torch_sample(dtype)
    t = dlbridge.asarray(x)
    assert (t.dtype, t.shape, t.itemsize) == (name, (3, 4), x.element_size())
    assert t.strides == tuple(s * x.element_size() for s in x.stride())
    assert t.data_ptr == x.data_ptr() and t.source == "dlpack"
    assert dlbridge.from_dlpack(x).data_ptr == x.data_ptr()
    y = torch.from_dlpack(t)
    assert y.dtype == dtype and y.shape == x.shape and y.stride() == x.stride()
    assert y.data_ptr() == x.data_ptr()
    assert same_bytes(x, y)
    xb, yb = x.view(torch.uint8), y.view(torch.uint8)
    before = int(xb[1, 0])
    yb[1, 0] = before ^ 1  # write through the re-imported tensor ...
    assert int(xb[1, 0]) == before ^ 1  # ... lands in the original


@pytest.mark.parametrize("name", TORCH_DTYPES)
def test_dlbridge_to_torch_to_dlbridge(name):
    dtype = getattr(torch, name)
    r = dlbridge.zeros((3, 4), dtype=name)
    y = torch.from_dlpack(r)
    assert y.dtype == dtype and y.shape == (3, 4) and y.data_ptr() == r.data_ptr
    assert int(y.view(torch.uint8).count_nonzero()) == 0
    back = dlbridge.asarray(y)
    assert (back.dtype, back.shape, back.strides) == (name, r.shape, r.strides)
    assert back.data_ptr == r.data_ptr
    y.view(torch.uint8)[2, -1] = 1
    again = torch.from_dlpack(back)
    assert int(again.view(torch.uint8)[2, -1]) == 1 and again.data_ptr() == r.data_ptr


# --- JAX round trips --------------------------------------------------------------


def jax_sample(name: str) -> jax.Array:
    k = jnp.arange(12).reshape(3, 4)
    return (k % 3 == 0) if name == "bool" else k.astype(name)


@pytest.mark.parametrize("name", JAX_DTYPES)
def test_jax_to_dlbridge_to_jax(name):
    x = jax_sample(name)
    t = dlbridge.asarray(x)
    assert (t.dtype, t.shape, t.device) == (name, (3, 4), CPU)
    assert t.data_ptr == x.unsafe_buffer_pointer()
    # JAX exports legacy capsules, so the import is read-only (NumPy's rule),
    # and JAX asks for a legacy capsule back, which cannot say read-only:
    # refused, exactly as jnp.from_dlpack(np.from_dlpack(x)) is.
    assert t.readonly
    with pytest.raises(BufferError, match="cannot signal read-only"):
        jnp.from_dlpack(t)
    if name not in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):  # NumPy has no DLPack code for these
        with pytest.raises(BufferError, match="Cannot export readonly"):
            jnp.from_dlpack(np.from_dlpack(x))
    # The explicit opt-in vouches for the producer: zero-copy both ways.
    t = dlbridge.from_dlpack(x, legacy_writable=True)
    assert not t.readonly and t.data_ptr == x.unsafe_buffer_pointer()
    for y in (jnp.from_dlpack(t), jax.dlpack.from_dlpack(t)):
        assert y.dtype == x.dtype and y.shape == x.shape
        assert y.unsafe_buffer_pointer() == x.unsafe_buffer_pointer()
        np.testing.assert_array_equal(np.asarray(y), np.asarray(x))


@pytest.mark.parametrize("name", JAX_DTYPES)
def test_dlbridge_to_jax_to_dlbridge(name):
    x = jax_sample(name)
    r = dlbridge.asarray(x, copy=True)  # Rust-owned, 64-byte aligned
    assert r.source == "rust" and r.data_ptr != x.unsafe_buffer_pointer()
    y = jnp.from_dlpack(r)
    assert y.dtype == x.dtype and y.unsafe_buffer_pointer() == r.data_ptr
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))
    back = dlbridge.asarray(y)
    assert (back.dtype, back.data_ptr) == (name, r.data_ptr)


def test_jax_array_outlives_its_name():
    t = dlbridge.asarray(jnp.arange(1000, dtype=jnp.float32) * 2)
    np.testing.assert_array_equal(np.from_dlpack(t), np.arange(1000, dtype=np.float32) * 2)


# --- dimensions -----------------------------------------------------------------


@pytest.mark.parametrize("ndim", range(33))
def test_ndim_numpy(ndim):
    a = np.full((1,) * ndim, 7.5)
    t = dlbridge.asarray(a)
    assert t.ndim == ndim and t.shape == a.shape
    b = np.from_dlpack(t)
    assert b.shape == a.shape and b.ctypes.data == a.ctypes.data
    assert b.reshape(()) == 7.5
    z = np.from_dlpack(dlbridge.zeros((1,) * ndim))
    assert z.shape == (1,) * ndim and z.dtype == np.float32


@pytest.mark.parametrize("ndim", range(33))
def test_ndim_torch(ndim):
    x = torch.full((1,) * ndim, 7.5)
    t = dlbridge.asarray(x)
    assert t.ndim == ndim and t.shape == tuple(x.shape)
    y = torch.from_dlpack(t)
    assert y.shape == x.shape and y.data_ptr() == x.data_ptr()
    assert float(y.reshape(())) == 7.5
    r = dlbridge.zeros((1,) * ndim)
    assert torch.from_dlpack(r).shape == (1,) * ndim


def test_twenty_dims_of_a_million_elements():
    a = np.arange(2**20, dtype=np.float32).reshape((2,) * 20)
    for v in (a, a.transpose(tuple(reversed(range(20))))):
        t = dlbridge.asarray(v)
        assert t.shape == (2,) * 20 and t.size == 2**20 and t.strides == v.strides
        b = np.from_dlpack(t)
        assert b.strides == v.strides and b.ctypes.data == v.ctypes.data
        np.testing.assert_array_equal(b, v)
        y = torch.from_dlpack(t)
        assert y.stride() == tuple(s // 4 for s in v.strides) and y.data_ptr() == v.ctypes.data
        assert torch.equal(y, torch.from_numpy(v))


def test_ndim_64_numpy():
    a = np.arange(6.0).reshape((1,) * 62 + (2, 3))
    t = dlbridge.asarray(a)
    assert t.ndim == 64 and t.strides == a.strides
    b = np.from_dlpack(t)
    assert b.shape == a.shape and b.ctypes.data == a.ctypes.data
    np.testing.assert_array_equal(b, a)
    z = np.from_dlpack(dlbridge.zeros((1,) * 63 + (4,)))
    assert z.ndim == 64 and z.sum() == 0


# --- strided, reversed, empty and 0-d views -------------------------------------


BASE = np.arange(120, dtype=np.int32).reshape(4, 5, 6)
NUMPY_VIEWS = {
    "contiguous": lambda a: a,
    "row": lambda a: a[1],
    "column": lambda a: a[:, 0, :],
    "step": lambda a: a[::2, 1::3, ::4],
    "transpose": lambda a: a.T,
    "moveaxis": lambda a: np.moveaxis(a, 0, 2)[1:, :, ::2],
    "fortran": lambda a: np.asfortranarray(a),
    "reversed": lambda a: a[::-1],
    "reversed-inner": lambda a: a[:, ::-2, 1:],
    "reversed-all": lambda a: a[::-1, ::-1, ::-1],
    "empty": lambda a: a[2:2],
    "empty-middle": lambda a: a[:, 5:, :],
    "zeros-0x3": lambda a: np.zeros((0, 3), dtype=a.dtype),
    "0d": lambda a: np.array(-17, dtype=a.dtype),
    "0d-view": lambda a: a[1, 2, 3, ...],
}


@pytest.mark.parametrize("view", NUMPY_VIEWS)
def test_numpy_views(view):
    base = BASE.copy()
    v = NUMPY_VIEWS[view](base)
    t = dlbridge.asarray(v)
    assert t.shape == v.shape and t.ndim == v.ndim and t.size == v.size
    if v.size:
        assert t.strides == v.strides and t.data_ptr == v.ctypes.data
    b = np.from_dlpack(t)
    assert b.shape == v.shape and b.dtype == v.dtype
    np.testing.assert_array_equal(b, v)
    if v.size:
        assert b.strides == v.strides and b.ctypes.data == v.ctypes.data
        b[(0,) * b.ndim] = 1000  # the first logical element, wherever it sits
        assert v[(0,) * v.ndim] == 1000


@pytest.mark.parametrize("view", [k for k in NUMPY_VIEWS if "reversed" not in k])
def test_numpy_views_to_torch(view):
    v = NUMPY_VIEWS[view](BASE.copy())
    y = torch.from_dlpack(dlbridge.asarray(v))
    assert tuple(y.shape) == v.shape
    np.testing.assert_array_equal(y.numpy(), v)
    if v.size:
        assert y.stride() == tuple(s // v.itemsize for s in v.strides)
        assert y.data_ptr() == v.ctypes.data


@needs_torch_negative_stride_refusal
@pytest.mark.parametrize("view", [k for k in NUMPY_VIEWS if "reversed" in k])
def test_torch_refuses_negative_strides_cleanly(view):
    base = BASE.copy()
    v = NUMPY_VIEWS[view](base)
    refs = sys.getrefcount(base)
    t = dlbridge.asarray(v)
    with pytest.raises((RuntimeError, BufferError, ValueError)) as info:
        torch.from_dlpack(t)
    del info
    np.testing.assert_array_equal(np.from_dlpack(t), v)  # t is intact
    del t
    assert sys.getrefcount(base) == refs  # the refused export was released


TORCH_VIEWS = {
    "transpose": lambda x: x.t(),
    "step": lambda x: x[:, ::3],
    "window": lambda x: x[1:4, 2:7],
    "broadcast": lambda x: x[0:1].expand(4, 12),
    "empty": lambda x: x[:0],
    "empty-null": lambda x: torch.zeros(0, 3, dtype=x.dtype),
    "0d": lambda x: x[2, 5],
}


@pytest.mark.parametrize("view", TORCH_VIEWS)
def test_torch_views(view):
    x = torch.arange(60, dtype=torch.int64).reshape(5, 12)
    v = TORCH_VIEWS[view](x)
    t = dlbridge.asarray(v)
    assert t.shape == tuple(v.shape)
    if v.numel():
        assert t.strides == tuple(8 * s for s in v.stride()) and t.data_ptr == v.data_ptr()
    b = np.from_dlpack(t)
    np.testing.assert_array_equal(b, v.numpy())
    y = torch.from_dlpack(t)
    assert y.shape == v.shape and torch.equal(y, v)
    if v.numel():
        assert y.stride() == v.stride() and y.data_ptr() == v.data_ptr()


# --- refcounts (NumPy's test_dlpack.py patterns) ----------------------------------


# An export holds the tensor's owner (here: NumPy's managed tensor, which
# holds the array), not the Python Tensor object; so each test also checks
# that the array is released once the tensor and the export are gone.


@pytest.mark.parametrize(
    "kwargs", [{}, {"max_version": (1, 0)}, {"max_version": (1, 3), "copy": True}], ids=["legacy", "versioned", "copy"]
)
def test_dunder_dlpack_refcount(kwargs):
    a = np.arange(5)
    base_a = sys.getrefcount(a)
    t = dlbridge.asarray(a)
    base = sys.getrefcount(t)
    y = t.__dlpack__(**kwargs)
    del y
    assert sys.getrefcount(t) == base
    del t
    assert sys.getrefcount(a) == base_a


@pytest.mark.parametrize("consumer", ["numpy", "torch", "dlbridge", "jax"])
def test_from_dlpack_refcount(consumer):
    load_ = {"numpy": np.from_dlpack, "torch": torch.from_dlpack, "dlbridge": dlbridge.from_dlpack,
             "jax": jnp.from_dlpack}[consumer]
    a = aligned(np.arange(5, dtype=np.int32))  # JAX copies data that is not 64-byte aligned
    base_a = sys.getrefcount(a)
    t = dlbridge.asarray(a)
    base = sys.getrefcount(t)
    y = load_(t)
    assert pointer_of(y) == a.ctypes.data
    del y
    assert sys.getrefcount(t) == base
    y = load_(t)
    del t
    assert sys.getrefcount(a) == base_a + 1  # the consumer alone holds the array now
    del y
    assert sys.getrefcount(a) == base_a


def test_import_holds_the_numpy_array():
    a = np.arange(5.0)
    base = sys.getrefcount(a)
    t = dlbridge.asarray(a)
    assert sys.getrefcount(a) == base + 1
    del t
    assert sys.getrefcount(a) == base
    # Consumers of the tensor keep the array alive after the tensor is gone.
    t = dlbridge.asarray(a)
    y, z = np.from_dlpack(t), torch.from_dlpack(t)
    del t
    assert sys.getrefcount(a) == base + 1
    del y
    assert sys.getrefcount(a) == base + 1
    del z
    assert sys.getrefcount(a) == base


def test_source_freed_only_after_consumers():
    t = dlbridge.asarray(np.arange(100_000.0))  # nothing else refers to the array
    y = np.from_dlpack(t)
    del t
    np.testing.assert_array_equal(y, np.arange(100_000.0))


# --- deleters run exactly once ------------------------------------------------------


KINDS = [pytest.param(False, id="legacy"), pytest.param(True, id="versioned")]


@pytest.mark.parametrize("versioned", KINDS)
def test_deleter_once_consumed(producer, versioned):
    n = producer.deleted()
    cap = make(producer, versioned=versioned)
    t = dlbridge.from_dlpack(cap)
    assert capsule_name(cap) == (b"used_dltensor_versioned" if versioned else b"used_dltensor")
    del cap
    assert producer.deleted() == n
    # A legacy capsule cannot say "writable", so it imports read-only (NumPy's rule).
    assert (t.dtype, t.shape, t.strides, t.readonly) == ("float64", (3, 4), (32, 8), not versioned)
    np.testing.assert_array_equal(np.from_dlpack(t), expected())
    del t
    assert producer.deleted() == n + 1


@pytest.mark.parametrize("versioned", KINDS)
def test_deleter_once_unconsumed(producer, versioned):
    n = producer.deleted()
    cap = make(producer, versioned=versioned)
    del cap  # the producer's own capsule destructor deletes it
    assert producer.deleted() == n + 1


def check_views(held):
    """Reads the live consumers (without keeping references to them)."""
    for name in ("numpy", "torch", "tensor"):
        if name in held:
            np.testing.assert_array_equal(np.from_dlpack(held[name]), expected())


@pytest.mark.parametrize("versioned", KINDS)
@pytest.mark.parametrize("order", list(itertools.permutations(["capsule", "tensor", "numpy", "torch"])), ids="-".join)
def test_deleter_once_through_reexport(producer, versioned, order):
    n = producer.deleted()
    held = {"capsule": make(producer, versioned=versioned)}
    held["tensor"] = dlbridge.from_dlpack(held["capsule"])
    held["numpy"] = np.from_dlpack(held["tensor"])
    held["torch"] = torch.from_dlpack(held["tensor"])
    assert held["numpy"].ctypes.data == held["torch"].data_ptr() == held["tensor"].data_ptr
    for name in order:
        check_views(held)  # the memory is still there
        del held[name]
        # A consumed capsule is no consumer: the last view of the memory decides.
        gone = not any(k in held for k in ("tensor", "numpy", "torch"))
        assert producer.deleted() == n + gone, f"after dropping {name}"


def test_deleter_once_through_many_consumers(producer):
    n = producer.deleted()
    cap = make(producer)
    t = dlbridge.from_dlpack(cap)
    unconsumed = t.__dlpack__(max_version=(1, 0))  # never consumed
    chain = dlbridge.asarray(torch.from_dlpack(dlbridge.asarray(np.from_dlpack(t))))
    j = jnp.from_dlpack(t)  # a copying consumer (float64 without x64, unaligned): holds nothing
    copied = t.copy()
    del cap, t
    assert producer.deleted() == n
    np.testing.assert_array_equal(np.from_dlpack(chain), expected())
    np.testing.assert_array_equal(np.asarray(j, dtype=np.float64), expected())
    del unconsumed
    assert producer.deleted() == n
    del j, copied
    assert producer.deleted() == n
    del chain
    assert producer.deleted() == n + 1


def test_unconsumed_export_releases_the_tensor_once():
    start = dlbridge.live_buffers()
    t = dlbridge.zeros(16)
    a = np.arange(4.0)
    base = sys.getrefcount(a)
    s = dlbridge.asarray(a)
    caps = [x.__dlpack__(**kw) for x in (t, s) for kw in ({}, {"max_version": (1, 0)})]
    del t, s
    assert dlbridge.live_buffers() == start + 1 and sys.getrefcount(a) == base + 1
    del caps[:2]  # t's two capsules, dropped unconsumed
    assert dlbridge.live_buffers() == start
    del caps
    assert sys.getrefcount(a) == base


def test_exception_with_a_live_capsule():
    # NumPy's test_dlpack_destructor_exception: an unconsumed capsule in a
    # frame that raises is released with that frame.
    start = dlbridge.live_buffers()

    def raises():
        _ = dlbridge.zeros(5).__dlpack__()
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        raises()
    assert dlbridge.live_buffers() == start


# --- read-only -------------------------------------------------------------------


def test_readonly_numpy_imports_readonly(producer):
    a = np.arange(6.0)
    a.flags.writeable = False
    t = dlbridge.asarray(a)
    assert t.readonly and t.data_ptr == a.ctypes.data
    with pytest.raises(BufferError):
        t.__dlpack__()  # legacy cannot say read-only
    cap = t.__dlpack__(max_version=(1, 0))
    assert header(cap).flags & READ_ONLY
    b = np.from_dlpack(t)
    assert not b.flags.writeable and b.ctypes.data == a.ctypes.data
    np.testing.assert_array_equal(b, a)
    assert dlbridge.from_dlpack(t).readonly
    assert dlbridge.from_dlpack(cap).readonly
    assert not dlbridge.asarray(a, copy=True).readonly  # a private copy is writable
    n = producer.deleted()
    r = dlbridge.from_dlpack(make(producer, flags=READ_ONLY))
    assert r.readonly and not np.from_dlpack(r).flags.writeable
    del r
    assert producer.deleted() == n + 1


def test_writable_export_has_no_flags():
    t = dlbridge.asarray(np.arange(6.0))
    assert header(t.__dlpack__(max_version=(1, 0))).flags == 0


# --- devices ---------------------------------------------------------------------


def test_cpu_device():
    for t in (dlbridge.zeros(3), dlbridge.asarray(np.arange(3)), dlbridge.asarray(torch.arange(3))):
        device = t.__dlpack_device__()
        assert device == CPU and t.device == CPU and all(type(v) is int for v in device)


FAKE_DEVICE_POINTER = 0x7E570000  # never dereferenced


@pytest.mark.parametrize("versioned", KINDS)
def test_non_cpu_tensor_keeps_its_device(versioned):
    cap = capsule(shape=(2, 3), device=(2, 0), data=FAKE_DEVICE_POINTER, versioned=versioned)
    t = dlbridge.from_dlpack(cap, legacy_writable=True)  # writable, so the legacy export below is allowed
    assert t.device == (2, 0) and t.__dlpack_device__() == (2, 0)
    assert t.data_ptr == FAKE_DEVICE_POINTER and t.shape == (2, 3) and t.strides == (12, 4)
    for kwargs in ({}, {"max_version": (1, 0)}, {"dl_device": (2, 0)}):
        cap = t.__dlpack__(**kwargs)
        dl = header(cap).dl_tensor
        assert device_of(dl) == (2, 0) and dl.data == FAKE_DEVICE_POINTER and dl.byte_offset == 0
        assert [dl.shape[i] for i in range(2)] == [2, 3]
    again = dlbridge.from_dlpack(t)
    assert again.device == (2, 0) and again.data_ptr == FAKE_DEVICE_POINTER
    with pytest.raises(BufferError):
        memoryview(t)
    with pytest.raises(BufferError):
        t.copy()
    with pytest.raises(BufferError):
        dlbridge.asarray(t, copy=True)
    with pytest.raises(BufferError):
        dlbridge.from_dlpack(t, copy=True)
    with pytest.raises(BufferError):
        dlbridge.from_dlpack(t, device="cpu")
    with pytest.raises((BufferError, RuntimeError)):
        np.from_dlpack(t)  # NumPy refuses CUDA memory without touching it


def test_non_cpu_deleter_once(producer):
    n = producer.deleted()
    cap = make(producer, device_type=2)
    with pytest.raises(BufferError):
        dlbridge.from_dlpack(cap, device="cpu")  # consumed, then refused: released by us
    assert producer.deleted() == n + 1
    t = dlbridge.from_dlpack(make(producer, device_type=2))
    reexport = t.__dlpack__(max_version=(1, 0))
    assert device_of(header(reexport).dl_tensor) == (2, 0)
    del t
    assert producer.deleted() == n + 1
    del reexport
    assert producer.deleted() == n + 2


# --- Rust-owned buffers -------------------------------------------------------------


FACTORIES = {
    # 32-bit dtypes or narrower: JAX (no x64) would copy 64-bit data to 32-bit.
    "zeros": lambda: dlbridge.zeros((4, 5), dtype="float32"),
    "empty": lambda: dlbridge.empty(7, dtype="int16"),
    "asarray-copy": lambda: dlbridge.asarray(np.arange(6, dtype=np.float32), copy=True),
    "asarray-torch-copy": lambda: dlbridge.asarray(torch.arange(6, dtype=torch.int32), copy=True),
    "tensor-copy": lambda: dlbridge.asarray(np.arange(12, dtype=np.uint8).reshape(3, 4)[:, ::2]).copy(),
    "from-dlpack-copy": lambda: dlbridge.from_dlpack(np.arange(3, dtype=np.int32), copy=True),
}
CONSUMERS = {
    "none": lambda t: None,
    "numpy": np.from_dlpack,
    "torch": torch.from_dlpack,
    "jax": jnp.from_dlpack,
    "dlbridge": dlbridge.from_dlpack,
    "legacy-capsule": lambda t: t.__dlpack__(),
    "versioned-capsule": lambda t: t.__dlpack__(max_version=(1, 0)),
}


@pytest.mark.parametrize("consumer", CONSUMERS)
@pytest.mark.parametrize("factory", FACTORIES)
def test_live_buffers_return_to_start(factory, consumer):
    start = dlbridge.live_buffers()
    t = FACTORIES[factory]()
    assert t.source == "rust" and dlbridge.live_buffers() == start + 1
    held = CONSUMERS[consumer](t)
    del t
    assert dlbridge.live_buffers() == start + (held is not None)
    del held
    assert dlbridge.live_buffers() == start


# --- __dlpack__ arguments (the DLPack Python specification) --------------------------


@pytest.mark.parametrize(
    "max_version, name",
    [
        (None, b"dltensor"),
        ((0, 8), b"dltensor"),
        ((1, 0), b"dltensor_versioned"),
        ((1, 3), b"dltensor_versioned"),
        ((1, 99), b"dltensor_versioned"),
        ((2, 0), b"dltensor_versioned"),  # a newer consumer reads 1.x (P-3)
    ],
    ids=str,
)
def test_export_capsule_per_max_version(max_version, name):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)[:, 1:]
    t = dlbridge.asarray(a)
    cap = t.__dlpack__() if max_version is None else t.__dlpack__(max_version=max_version)
    assert capsule_name(cap) == name
    managed = header(cap)
    if name == b"dltensor_versioned":
        assert managed.version.major == 1 and managed.version.minor <= 3 and managed.flags == 0
    assert managed.deleter
    dl = managed.dl_tensor
    assert dl.data == a.ctypes.data and dl.byte_offset == 0 and device_of(dl) == CPU
    assert (dl.dtype.code, dl.dtype.bits, dl.dtype.lanes) == (2, 32, 1) and dl.ndim == 2
    assert bool(dl.strides)  # never NULL for ndim > 0
    assert [dl.shape[i] for i in range(2)] == [3, 3] and [dl.strides[i] for i in range(2)] == [4, 1]
    # The capsule is a real one: a consumer reads the same memory.
    b = dlbridge.from_dlpack(cap)
    assert b.data_ptr == a.ctypes.data and capsule_name(cap).startswith(b"used_")


@pytest.mark.parametrize("stream", [-1, 2])
def test_export_stream_must_be_none_on_cpu(stream):
    t = dlbridge.zeros(2)
    assert capsule_name(t.__dlpack__(stream=None)) == b"dltensor"
    with pytest.raises(ValueError, match="stream must be None"):
        t.__dlpack__(stream=stream, max_version=(1, 0))


def test_export_dl_device():
    t = dlbridge.asarray(np.arange(4.0))
    for kwargs in ({"dl_device": CPU}, {"dl_device": CPU, "copy": False}, {"dl_device": None}):
        assert header(t.__dlpack__(max_version=(1, 0), **kwargs)).dl_tensor.data == t.data_ptr
    with pytest.raises(BufferError):
        t.__dlpack__(max_version=(1, 0), dl_device=(1, 1))  # another CPU id is not this memory
    b = np.from_dlpack(t, device="cpu")  # NumPy passes dl_device=(1, 0)
    assert b.ctypes.data == t.data_ptr


def read_f64(dl, count):
    return np.ctypeslib.as_array((ctypes.c_double * count).from_address(dl.data + dl.byte_offset)).copy()


@pytest.mark.parametrize("versioned", KINDS)
@pytest.mark.parametrize("copy", [True, False, None], ids=lambda c: f"copy={c}")
def test_export_copy(versioned, copy):
    start = dlbridge.live_buffers()
    a = np.arange(5.0) + 0.5
    t = dlbridge.asarray(a)
    kwargs = {"copy": copy} | ({"max_version": (1, 3)} if versioned else {})
    cap = t.__dlpack__(**kwargs)
    managed = header(cap)
    np.testing.assert_array_equal(read_f64(managed.dl_tensor, 5), a)
    if copy:
        assert managed.dl_tensor.data != a.ctypes.data
        assert dlbridge.live_buffers() == start + 1  # a Rust-owned copy
        a[0] = 99.0
        assert read_f64(managed.dl_tensor, 1)[0] == 0.5  # not shared
    else:
        assert managed.dl_tensor.data == a.ctypes.data
    if versioned:
        assert managed.flags == (IS_COPIED if copy else 0)
    del managed, cap
    assert dlbridge.live_buffers() == start


def test_numpy_copy_request():
    a = np.arange(5.0)
    t = dlbridge.asarray(a)
    b = np.from_dlpack(t, copy=True)
    assert b.ctypes.data != a.ctypes.data and b.flags.writeable
    np.testing.assert_array_equal(b, a)
    assert np.from_dlpack(t, copy=False).ctypes.data == a.ctypes.data


@pytest.mark.parametrize("shape", [(), (3, 0)], ids=["0d", "size0"])
def test_export_0d_and_size0(shape):
    a = np.full(shape, 2.5)
    t = dlbridge.asarray(a)
    dl = header(t.__dlpack__(max_version=(1, 0))).dl_tensor
    assert dl.ndim == len(shape)
    if shape:
        assert bool(dl.shape) and bool(dl.strides)
        assert [dl.shape[i] for i in range(2)] == [3, 0]
    b = np.from_dlpack(t)
    assert b.shape == shape and b.dtype == np.float64
    np.testing.assert_array_equal(b, a)
    y = torch.from_dlpack(t)
    assert tuple(y.shape) == shape
    if not shape:
        assert b[()] == 2.5 and float(y) == 2.5


def test_each_export_is_independent():
    start = dlbridge.live_buffers()
    t = dlbridge.asarray(np.arange(4.0), copy=True)
    first, second = t.__dlpack__(max_version=(1, 0)), t.__dlpack__(max_version=(1, 0))
    assert _get_pointer(first, b"dltensor_versioned") != _get_pointer(second, b"dltensor_versioned")
    y = torch.from_dlpack(first)  # consume one
    del second, t  # drop the other unconsumed
    assert dlbridge.live_buffers() == start + 1
    assert y.tolist() == [0.0, 1.0, 2.0, 3.0]
    del y, first
    assert dlbridge.live_buffers() == start


# --- import -------------------------------------------------------------------------


def test_numpy_imports_versioned_and_writable():
    a = np.arange(3.0)
    t = dlbridge.asarray(a)
    assert not t.readonly
    np.from_dlpack(t)[0] = 5.0
    assert a[0] == 5.0


class NoKwargs:
    """A pre-1.0 producer: `__dlpack__` takes no arguments, returns legacy."""

    def __init__(self, lib):
        self.lib = lib

    def __dlpack__(self):
        return make(self.lib, versioned=False)

    def __dlpack_device__(self):
        return CPU


class LegacyOnly:
    """Accepts `max_version` but answers with a legacy capsule anyway."""

    def __init__(self, lib):
        self.lib = lib
        self.calls = []

    def __dlpack__(self, **kwargs):
        self.calls.append(kwargs)
        return make(self.lib, versioned=False)


def test_producer_without_kwargs_falls_back(producer):
    n = producer.deleted()
    for load_ in (dlbridge.from_dlpack, dlbridge.asarray, lambda p: dlbridge.from_dlpack(p, copy=True)):
        t = load_(NoKwargs(producer))
        np.testing.assert_array_equal(np.from_dlpack(t), expected())
        del t
    assert producer.deleted() == n + 3
    # The tensor's own device is no request: nothing to pass on.
    assert dlbridge.from_dlpack(NoKwargs(producer), device="cpu").shape == (3, 4)
    assert producer.deleted() == n + 4
    # Another device must reach the producer, so there is no silent fallback.
    with pytest.raises(TypeError):
        dlbridge.from_dlpack(NoKwargs(producer), device="cuda:0")
    assert producer.deleted() == n + 4  # it was never asked for a capsule


def test_producer_answering_legacy_to_a_versioned_request(producer):
    n = producer.deleted()
    p = LegacyOnly(producer)
    t = dlbridge.from_dlpack(p)
    assert p.calls == [{"max_version": (1, 3)}]
    assert t.shape == (3, 4) and t.strides == (32, 8) and t.source == "dlpack"
    assert t.readonly  # a legacy capsule cannot say "writable": read-only, NumPy's rule
    np.testing.assert_array_equal(np.from_dlpack(t), expected())
    del t
    assert producer.deleted() == n + 1


@pytest.mark.parametrize("versioned", KINDS)
def test_byte_offset_is_honoured(producer, versioned):
    n = producer.deleted()
    t = dlbridge.from_dlpack(make(producer, versioned=versioned, offset=2))
    np.testing.assert_array_equal(np.from_dlpack(t), expected(offset=2))
    assert torch.equal(torch.from_dlpack(t), torch.from_numpy(expected(offset=2)))
    dl = header(t.__dlpack__(max_version=(1, 0))).dl_tensor
    assert dl.byte_offset == 0 and dl.data == t.data_ptr  # folded into data for older consumers
    assert read_f64(dl, 1)[0] == 2.0
    del t, dl
    assert producer.deleted() == n + 1


@pytest.mark.parametrize(
    "versioned, version",
    [(False, (0, 0)), (True, (1, 0)), (True, (1, 3))],
    ids=["legacy", "v1.0", "v1.3"],
)
def test_null_strides_mean_c_contiguous(producer, versioned, version):
    # Required of legacy and pre-1.2 capsules; dlbridge also accepts it from
    # 1.2+ producers (documented in protocol/dlpack.rs `parse`), as NumPy does.
    n = producer.deleted()
    t = dlbridge.from_dlpack(make(producer, versioned=versioned, version=version, null_strides=True, offset=1))
    assert t.shape == (3, 4) and t.strides == (32, 8)
    np.testing.assert_array_equal(np.from_dlpack(t), expected(offset=1))
    dl = header(t.__dlpack__(max_version=(1, 0))).dl_tensor
    assert [dl.strides[i] for i in range(2)] == [4, 1]  # exported explicitly
    del t, dl
    assert producer.deleted() == n + 1


def test_major_version_2_rejected_and_deleted_once(producer):
    n = producer.deleted()
    cap = make(producer, version=(2, 0))
    with pytest.raises(BufferError, match="version"):
        dlbridge.from_dlpack(cap)
    assert producer.deleted() == n + 1
    del cap  # consumed (renamed) before the refusal: its destructor does nothing more
    assert producer.deleted() == n + 1


def test_minor_version_99_and_unknown_flags_accepted(producer):
    n = producer.deleted()
    t = dlbridge.from_dlpack(make(producer, version=(1, 99), flags=IS_COPIED | (1 << 40)))
    assert not t.readonly
    np.testing.assert_array_equal(np.from_dlpack(t), expected())
    del t
    assert producer.deleted() == n + 1


# --- dlbridge.from_dlpack(obj, device=..., copy=...) ---------------------------------


SOURCES = {
    "numpy": lambda lib: np.arange(6.0).reshape(2, 3),
    "torch": lambda lib: torch.arange(6.0, dtype=torch.float64).reshape(2, 3),
    "jax": lambda lib: jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3),
    "capsule": lambda lib: make(lib, shape=(2, 3)),
}


@pytest.mark.parametrize("source", SOURCES)
def test_from_dlpack_copy_true(producer, source):
    n = producer.deleted()
    start = dlbridge.live_buffers()
    x = SOURCES[source](producer)
    values = np.arange(6.0).reshape(2, 3)
    t = dlbridge.from_dlpack(x, copy=True)
    assert t.source == "rust" and not t.readonly and dlbridge.live_buffers() == start + 1
    assert t.data_ptr != pointer_of(x)
    np.testing.assert_array_equal(np.from_dlpack(t), values)
    np.from_dlpack(t)[0, 0] = 42.0  # the copy is private
    if source == "capsule":
        assert producer.deleted() == n + 1  # the import was released once it was copied
    else:
        assert np.asarray(x)[0, 0] == 0.0
    del t
    assert dlbridge.live_buffers() == start


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("device", [None, "cpu", CPU], ids=["None", "cpu", "(1,0)"])
@pytest.mark.parametrize("copy", [None, False], ids=lambda c: f"copy={c}")
def test_from_dlpack_without_copy(producer, source, device, copy):
    n = producer.deleted()
    x = SOURCES[source](producer)
    t = dlbridge.from_dlpack(x, device=device, copy=copy)
    # An exact ndarray with nothing to negotiate is read from its fields.
    fields = source == "numpy" and device is None and copy is None
    assert t.source == ("ndarray" if fields else "dlpack") and t.device == CPU and t.shape == (2, 3)
    if pointer_of(x) is not None:
        assert t.data_ptr == pointer_of(x)
    assert np.from_dlpack(t).tolist() == [[0, 1, 2], [3, 4, 5]]
    del t, x
    if source == "capsule":
        assert producer.deleted() == n + 1


# --- Tensor.__dlpack__ is a raw fastcall method (keywords matched by pointer) ---


def test_dunder_dlpack_signature_and_keywords():
    import inspect

    assert str(inspect.signature(dlbridge.Tensor.__dlpack__)) == (
        "(self, /, *, stream=None, max_version=None, dl_device=None, copy=None)"
    )
    t = dlbridge.asarray(np.arange(6, dtype=np.int16))
    # Keyword names built at run time are not interned: matched by value.
    name = "".join(["max_", "version"])
    capsule = t.__dlpack__(**{name: (1, 3), "".join(["co", "py"]): None})
    assert np.from_dlpack(dlbridge.from_dlpack(capsule)).tolist() == list(range(6))
    copied = dlbridge.from_dlpack(t.__dlpack__(max_version=(1, 3), copy=np.bool_(True)))
    assert copied.data_ptr != t.data_ptr


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: t.__dlpack__(None), "takes no positional arguments"),
        (lambda t: t.__dlpack__(stream=None, bogus=1), "unexpected keyword argument 'bogus'"),
        (lambda t: t.__dlpack__(copy=1), "copy must be None or a bool"),
        (lambda t: dlbridge.Tensor.__dlpack__(np.zeros(2)), "doesn't apply to a 'numpy.ndarray'"),
    ],
)
def test_dunder_dlpack_argument_errors(call, message):
    t = dlbridge.zeros(2)
    with pytest.raises(TypeError, match=message):
        call(t)
