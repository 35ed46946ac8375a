"""Framework-native returns from a Rust extension (`dlbridge::Native`).

The example extension returns Rust-owned memory as a real `numpy.ndarray`
(NumPy's C API), `torch.Tensor` (torch's exchange table), `jax.Array`,
`memoryview` or `dlbridge.Tensor`, or in the framework of an argument.
Each is checked for zero copy (pointers), exactly-once release
(`live_buffers()` of the extension's own copy of dlbridge, and producers'
reference counts), and read-only memory kept read-only or refused.
"""

from __future__ import annotations

import gc
import sys

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch

import dlbridge
import dlbridge_example as ex

FRAMEWORKS = {
    "numpy": np.ndarray,
    "torch": torch.Tensor,
    "jax": jax.Array,
    "memoryview": memoryview,
    "dlbridge": dlbridge.Tensor,
}


def data_ptr(x) -> int:
    """The address of `x`'s first element, read through `x`'s own framework."""
    if isinstance(x, np.ndarray):
        return x.ctypes.data
    if isinstance(x, torch.Tensor):
        return x.data_ptr()
    if isinstance(x, jax.Array):
        return x.unsafe_buffer_pointer()
    if isinstance(x, memoryview):
        return np.frombuffer(x, dtype=np.uint8).ctypes.data if x.nbytes else 0
    return x.data_ptr


@pytest.fixture(autouse=True)
def no_rust_buffer_leaks():
    gc.collect()
    before = ex.live_buffers()
    yield
    gc.collect()
    assert ex.live_buffers() == before, "a Rust-owned buffer outlived its last view"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_arange_as_returns_the_framework_type(framework):
    if framework == "jax":  # float64 needs JAX's 64-bit mode (see below)
        jax.config.update("jax_enable_x64", True)
    try:
        out = ex.arange_as(5, framework)
    finally:
        jax.config.update("jax_enable_x64", False)
    assert type(out) is FRAMEWORKS[framework] or isinstance(out, FRAMEWORKS[framework])
    assert np.asarray(out).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0] or list(
        np.frombuffer(out, dtype=np.float64)
    ) == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_numpy_return_is_a_real_ndarray_over_rust_memory():
    before = ex.live_buffers()
    a = ex.arange_numpy(16)
    assert type(a) is np.ndarray
    assert a.dtype == np.float64 and a.shape == (16,) and a.flags.c_contiguous
    assert a.flags.writeable and a.flags.aligned and not a.flags.owndata
    assert ex.live_buffers() == before + 1
    # Views of the array keep the Rust memory alive; the last one frees it.
    view = a[::2]
    del a
    gc.collect()
    assert ex.live_buffers() == before + 1
    assert view.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0]
    del view
    gc.collect()
    assert ex.live_buffers() == before


def test_numpy_return_comes_back_on_the_lent_path():
    """The returned array's base is dlbridge's owner object, not a capsule
    (an array over a DLPack capsule's memory is read through `__dlpack__`),
    so passing it back to an extension reads its fields directly; the owner
    is released once, with the array."""
    before = ex.live_buffers()
    a = ex.arange_numpy(16)
    assert type(a.base).__name__ == "NumpyBase" and type(a.base).__module__ == "dlbridge"
    lent = ex.fast_path_counts()["lent_arguments"]
    assert ex.sum_f64(a) == 120.0
    assert ex.data_ptr(a) == a.ctypes.data
    assert ex.fast_path_counts()["lent_arguments"] == lent + 2
    del a
    gc.collect()
    assert ex.live_buffers() == before


def test_torch_return_is_a_real_tensor_over_rust_memory():
    before = ex.live_buffers()
    t = ex.arange_torch(16)
    assert type(t) is torch.Tensor
    assert t.dtype == torch.float64 and t.shape == (16,) and not t.requires_grad
    assert ex.live_buffers() == before + 1
    t += 1  # writable: the memory is Rust-owned and nobody else sees it
    assert t[3].item() == 4.0
    del t
    gc.collect()
    assert ex.live_buffers() == before


def test_same_memory_in_every_framework():
    """`identity_like` hands back its input's memory: no copy on the way out."""
    base = dlbridge.zeros((8,), "float32")  # 64-byte aligned, so JAX does not copy
    for like in (np.zeros(1), torch.zeros(1), jnp.zeros(1), memoryview(b"x"), base):
        out = ex.identity_like(base, like)
        assert type(out) is type(like) or isinstance(out, type(like))
        assert data_ptr(out) == base.data_ptr


def test_write_through_the_returned_array_is_seen_by_the_producer():
    producer = np.zeros(4)
    for like in (np.zeros(1), torch.zeros(1)):
        out = ex.identity_like(producer, like)
        out[1] = 7.0
        assert producer[1] == 7.0
        producer[1] = 0.0


@pytest.mark.parametrize("like", [np.zeros(1), memoryview(b"x"), dlbridge.zeros((1,), "uint8")])
def test_readonly_memory_stays_readonly(like):
    ro = np.arange(3.0)
    ro.flags.writeable = False
    out = ex.identity_like(ro, like)
    if isinstance(out, np.ndarray):
        assert not out.flags.writeable
        with pytest.raises(ValueError):
            out[0] = 1.0
    elif isinstance(out, memoryview):
        assert out.readonly
    else:
        assert out.readonly
    assert data_ptr(out) == ro.ctypes.data


def test_readonly_memory_is_refused_as_torch():
    ro = np.arange(3.0)
    ro.flags.writeable = False
    with pytest.raises(BufferError, match="read-only memory as a torch.Tensor"):
        ex.identity_like(ro, torch.zeros(1))
    assert ro.tolist() == [0.0, 1.0, 2.0]


NEGATIVE_STRIDES = {
    "reversed": lambda a: a[::-1],
    "reversed-columns": lambda a: a.reshape(2, 3)[:, ::-1],
    "reversed-rows": lambda a: a.reshape(2, 3)[::-1],
}


@pytest.mark.parametrize("view", NEGATIVE_STRIDES)
def test_negative_strides_are_refused_as_torch(view):
    """torch has no negative strides: torch 2.13 and earlier abort the process
    on one (pytorch#188023; the oldest environment runs torch 2.9), later
    ones raise RuntimeError. Refused before torch sees it, on every torch,
    and the memory is released (the producer's count back to where it was)."""
    base = np.arange(6.0)
    v = NEGATIVE_STRIDES[view](base)
    refs = sys.getrefcount(base)
    with pytest.raises(BufferError, match="negative stride as a torch.Tensor") as info:
        ex.identity_like(v, torch.zeros(1))
    assert "axis" in str(info.value) and "shape" in str(info.value)
    del info
    gc.collect()
    assert sys.getrefcount(base) == refs
    # NumPy and dlbridge keep the strides; a C-order copy goes to torch.
    np.testing.assert_array_equal(ex.identity_like(v, np.zeros(1)), v)
    t = ex.identity_like(np.ascontiguousarray(v), torch.zeros(1))
    np.testing.assert_array_equal(t.numpy(), v)


@pytest.mark.parametrize(
    "view",
    [lambda a: a[::-1][:1], lambda a: a[::-1][:0], lambda a: a.reshape(2, 3)[:1, ::-1][:, :1]],
    ids=["extent-1", "empty", "extent-1-2d"],
)
def test_negative_strides_that_never_move_go_to_torch(view):
    """A negative stride on an axis of extent 1, or in an empty tensor, never
    moves a pointer: torch takes it (it sizes the storage from extents)."""
    v = view(np.arange(6.0))
    t = ex.identity_like(v, torch.zeros(1))
    assert type(t) is torch.Tensor and tuple(t.shape) == v.shape
    np.testing.assert_array_equal(t.numpy(), v)


def test_dtype_numpy_lacks_is_refused_with_the_alternatives():
    x = np.zeros(2, dtype=ml_dtypes.bfloat16)
    with pytest.raises(TypeError, match="numpy.ndarray has no dtype for bfloat16"):
        ex.identity_like(x, np.zeros(1))
    # torch has bfloat16: the same memory comes back as torch.bfloat16.
    t = ex.identity_like(x, torch.zeros(1))
    assert t.dtype == torch.bfloat16 and t.data_ptr() == x.ctypes.data


@pytest.mark.parametrize(
    "dtype",
    ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
     "float16", "float32", "float64", "complex64", "complex128"],
)
def test_every_numpy_dtype_round_trips(dtype):
    x = np.ones((2, 3), dtype=dtype)[:, ::2]  # strided, not contiguous
    out = ex.identity_like(x, np.zeros(1))
    assert out.dtype == np.dtype(dtype)
    assert out.shape == x.shape and out.strides == x.strides
    assert out.ctypes.data == x.ctypes.data


_grid = np.arange(12.0).reshape(3, 4)


@pytest.mark.parametrize(
    "x",
    [
        _grid,  # C strides: NumPy writes them itself
        np.asfortranarray(_grid),
        _grid[:, 1:2],  # C-contiguous, but (32, 8): not the strides NumPy would write
        _grid[1:2, :],  # (32, 8) again: the length-1 axis keeps its stride
        np.ones((4, 1, 3))[:, :, ::-1],
        np.ones((0, 3)),
        np.ones((3, 0))[::2],
        np.array(5.0),
        np.ones((1, 1, 1)),
    ],
    ids=["c", "f", "column", "row", "reversed", "empty", "empty-stepped", "0-d", "ones"],
)
def test_numpy_return_keeps_strides_and_flags(x):
    """A C-strided tensor's array has NumPy fill its strides in (faster); the
    array must read the same either way: strides, contiguity, memory."""
    out = ex.identity_like(x, np.zeros(1))
    assert (out.shape, out.strides) == (x.shape, x.strides)
    assert out.ctypes.data == x.ctypes.data
    for flag in ("C_CONTIGUOUS", "F_CONTIGUOUS", "WRITEABLE", "ALIGNED"):
        assert out.flags[flag] == x.flags[flag], flag
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("dtype", ["float64", "int64", "uint64", "complex128"])
def test_jax_narrowing_is_refused(dtype):
    assert not jax.config.jax_enable_x64  # JAX's default, which narrows
    with pytest.raises(TypeError, match=f"cannot return a {dtype} tensor as a jax.Array"):
        ex.identity_like(np.zeros(2, dtype=dtype), jnp.zeros(1))
    assert ex.identity_like(np.zeros(2, dtype="float32"), jnp.zeros(1)).dtype == jnp.float32


def test_producer_released_once_when_the_returned_array_goes():
    x = np.arange(6.0)
    refs = sys.getrefcount(x)
    out = ex.identity_like(x, np.zeros(1))
    assert sys.getrefcount(x) == refs + 1
    t = ex.identity_like(x, torch.zeros(1))
    assert sys.getrefcount(x) == refs + 2
    del out, t
    gc.collect()
    assert sys.getrefcount(x) == refs


def test_producer_dropped_first_leaves_no_dangling_view():
    x = np.arange(6.0)
    out = ex.identity_like(x, np.zeros(1))
    del x
    gc.collect()
    assert out.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_high_rank_returns():
    x = np.zeros((1,) * 33)
    out = ex.identity_like(x, np.zeros(1))
    assert out.shape == x.shape and out.ctypes.data == x.ctypes.data
    x64 = np.zeros((1,) * 64)
    assert ex.identity_like(x64, np.zeros(1)).ndim == 64
    assert ex.identity_like(x64, torch.zeros(1)).ndim == 64


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (np.arange(4.0), np.ndarray),
        (np.ma.masked_array(np.arange(4.0)), np.ndarray),
        (torch.arange(4.0, dtype=torch.float64), torch.Tensor),
        (memoryview(np.arange(4.0)), memoryview),
        (np.arange(4.0, dtype=np.float32), np.ndarray),
        (dlbridge.asarray(np.arange(4.0)), dlbridge.Tensor),
        (bytearray(np.arange(4.0).tobytes()), dlbridge.Tensor),
    ],
    ids=["ndarray", "ndarray-subclass", "torch", "memoryview", "float32", "dlbridge", "bytearray"],
)
def test_scale_like_returns_the_argument_framework(x, expected):
    out = ex.scale_like(x, 2.0)
    assert isinstance(out, expected)
    if expected is np.ndarray:
        assert type(out) is np.ndarray  # the base type, not the subclass
    values = np.frombuffer(out, dtype=np.float64) if expected is memoryview else np.asarray(out)
    if isinstance(x, bytearray):
        # A bytearray is uint8 elements: each byte doubled, as float64.
        assert values.tolist() == (np.frombuffer(x, dtype=np.uint8) * 2.0).tolist()
    else:
        assert values.tolist() == [0.0, 2.0, 4.0, 6.0]


def test_scale_like_jax():
    out = ex.scale_like(jnp.arange(4.0, dtype=jnp.float32), 2.0)
    assert isinstance(out, jax.Array) and out.dtype == jnp.float32
    assert out.tolist() == [0.0, 2.0, 4.0, 6.0]


def test_torch_views_are_refused_before_a_return():
    """The argument's fidelity checks still run: a conjugate view never comes in."""
    z = torch.tensor([1 + 2j]).conj()
    with pytest.raises(BufferError, match="resolve_conj"):
        ex.identity_like(z, np.zeros(1))


@pytest.mark.parametrize(
    ("blocked", "call", "message"),
    [
        ("numpy", "ex.arange_numpy(3)", "returning a numpy.ndarray needs NumPy, which cannot be imported"),
        ("torch", "ex.arange_torch(3)", "returning a torch.Tensor needs PyTorch, which cannot be imported"),
        ("jax", "ex.arange_as(3, 'jax')", "returning a jax.Array needs JAX, which cannot be imported"),
    ],
)
def test_absent_framework_is_a_clear_import_error(blocked, call, message):
    """NumPy, PyTorch and JAX are optional at run time: asking for an absent
    one raises ImportError naming it, and every other return still works."""
    import subprocess

    code = f"""
import sys
sys.modules[{blocked!r}] = None  # as if not installed
import dlbridge_example as ex
try:
    {call}
except ImportError as err:
    print("ImportError:", err)
print(type(ex.arange_as(2, "dlbridge")).__name__, bytes(ex.arange_as(1, "memoryview")) == bytes(8))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"ImportError: {message}" in out.stdout
    assert "Tensor True" in out.stdout


@pytest.mark.parametrize(
    "x",
    [
        np.arange(6.0).reshape(2, 3),
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        np.arange(12.0).reshape(3, 4)[:, ::2],
        np.arange(6, dtype=np.float32).reshape(3, 2),
        np.arange(6, dtype=np.int16).reshape(2, 3),
    ],
    ids=["c", "f", "strided", "float32", "int16"],
)
def test_scale_like_every_layout(x):
    """The contiguous fast path (C and F order) and the general path agree
    with NumPy; float32 stays float32, other dtypes become float64."""
    out = ex.scale_like(x, 2.0)
    assert type(out) is np.ndarray and out.shape == x.shape
    np.testing.assert_array_equal(out, x * 2)
    assert out.dtype == (np.float32 if x.dtype == np.float32 else np.float64)
    if x.flags.c_contiguous or x.flags.f_contiguous:
        # The fast path writes in x's memory order (Tensor::from_shape_vec's).
        assert (out.flags.c_contiguous, out.flags.f_contiguous) == (x.flags.c_contiguous, x.flags.f_contiguous)


@pytest.mark.parametrize("name", ["torch._C.TensorBase", "numpy.ndarray", "jaxlib._jax.Array"])
def test_a_class_named_like_a_framework_is_not_that_framework(name):
    # Framework::of recognises a framework's type by identity with the
    # loaded module's own type object; a Python class taking the name gets
    # the framework-free return, a dlbridge.Tensor.
    Fake = type("Fake", (), {})
    Fake.__name__ = name
    base = np.arange(3.0)
    out = ex.identity_like(base, Fake())
    assert type(out) is dlbridge.Tensor and out.data_ptr == base.ctypes.data
