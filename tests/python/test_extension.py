"""The example Rust extension (examples/extension, module `dlbridge_example`).

One Rust function signature, `fn f(x: dlbridge::Tensor)`, takes NumPy arrays,
PyTorch tensors, memoryviews, buffer exporters and array-interface objects
with no copy (the pointer the extension sees is the producer's), and the
Rust-owned arrays it returns reach NumPy and PyTorch with no copy either.
Owners are released exactly once: Rust allocations by `live_buffers()`,
Python producers by their reference counts.
"""

from __future__ import annotations

import array
import gc
import sys
import threading
import weakref

import numpy as np
import pytest
import torch

import dlbridge
import dlbridge_example as ex
from producers import ArrayInterfaceOnly, ArrayStructOnly


def base_array() -> np.ndarray:
    return np.arange(24, dtype=np.float64).reshape(4, 6)


# name -> (make input from a float64 NumPy array, the producer's data pointer)
PRODUCERS = {
    "numpy": (lambda a: a, lambda a, x: a.ctypes.data),
    "torch": (lambda a: torch.from_numpy(a), lambda a, x: x.data_ptr()),
    "memoryview": (memoryview, lambda a, x: a.ctypes.data),
    "array_interface": (ArrayInterfaceOnly, lambda a, x: a.ctypes.data),
    "array_struct": (ArrayStructOnly, lambda a, x: a.ctypes.data),
    "dlbridge": (dlbridge.asarray, lambda a, x: x.data_ptr),
}


@pytest.mark.parametrize("name", PRODUCERS)
def test_one_function_takes_every_protocol_without_copying(name):
    make, pointer = PRODUCERS[name]
    a = base_array()
    x = make(a)
    assert ex.data_ptr(x) == pointer(a, x) == a.ctypes.data
    assert ex.sum(x) == a.sum() == 276.0
    shape, strides, dtype, readonly, _source = ex.describe(x)
    assert (shape, strides, dtype, readonly) == ([4, 6], [48, 8], "float64", False)
    assert ex.trace(x) == np.trace(a)
    # The input's memory is the result's source: writes show through.
    ex.add_one_inplace(x)
    assert a[0, 0] == 1.0 and a.sum() == 300.0


@pytest.mark.parametrize("name", PRODUCERS)
def test_every_protocol_releases_its_producer_once(name):
    make, _ = PRODUCERS[name]
    a = base_array()
    x = make(a)
    before_a, before_x = sys.getrefcount(a), sys.getrefcount(x)
    for _ in range(50):
        ex.sum(x)
        ex.data_ptr(x)
    assert (sys.getrefcount(a), sys.getrefcount(x)) == (before_a, before_x)
    # Dropped by a Rust thread that does not hold the GIL.
    ex.drop_on_thread(x)
    assert (sys.getrefcount(a), sys.getrefcount(x)) == (before_a, before_x)
    # A result that views the input keeps the producer alive, then lets go.
    kept = ex.identity(x)
    assert kept.data_ptr == a.ctypes.data
    alive = weakref.ref(a)
    del a, x
    assert alive() is not None, "the result holds the producer"
    assert np.from_dlpack(kept).sum() == 276.0
    del kept
    assert alive() is None, "released with the last view"


def test_other_buffer_exporters():
    data = array.array("d", [1.5, 2.5, 3.0])
    address, _ = data.buffer_info()
    assert ex.data_ptr(data) == address
    assert ex.sum(data) == 7.0
    raw = b"\x01\x02\x03"
    assert ex.sum(raw) == 6.0
    assert ex.describe(raw)[2:4] == ("uint8", True)


def test_strided_and_negative_strides():
    a = base_array()
    for view in (a[::-1], a[:, ::-2], a.T, a[1::2, ::3][::-1, ::-1]):
        assert ex.data_ptr(view) == view.ctypes.data
        assert ex.sum(view) == view.sum()
        assert ex.describe(view)[1] == list(view.strides)
        got = np.from_dlpack(ex.scale(view, 2.0))
        np.testing.assert_array_equal(got, view * 2.0)
    t = torch.arange(24, dtype=torch.float32).reshape(4, 6).t()[::2]
    assert ex.data_ptr(t) == t.data_ptr()
    assert ex.sum(t) == float(t.sum())


def test_dtypes_through_sum_and_scale():
    for dtype in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16",
                  "uint32", "uint64", "float16", "float32", "float64"):
        a = (np.arange(10) % 3).astype(dtype)
        assert ex.sum(a) == float(a.astype(np.float64).sum()), dtype
        scaled = np.from_dlpack(ex.scale(a, 3.0))
        assert scaled.dtype == (np.float32 if dtype == "float32" else np.float64)
        np.testing.assert_array_equal(scaled, a.astype(np.float64) * 3.0)
    t = torch.ones(5, dtype=torch.bfloat16)
    assert ex.sum(t) == 5.0
    with pytest.raises(TypeError, match="unsupported dtype complex128"):
        ex.sum(np.zeros(3, dtype=np.complex128))


def test_rust_owned_results_reach_numpy_and_torch_without_copying():
    r = ex.arange(1000)
    assert isinstance(r, dlbridge.Tensor)
    assert (r.shape, r.dtype, r.readonly) == ((1000,), "float64", False)
    n = np.from_dlpack(r)
    t = torch.from_dlpack(r)
    m = np.asarray(memoryview(r))
    assert n.ctypes.data == t.data_ptr() == m.ctypes.data == r.data_ptr
    np.testing.assert_array_equal(n, np.arange(1000.0))
    # One memory: a write through NumPy is seen by PyTorch and by Rust.
    n[7] = -1.0
    assert t[7].item() == -1.0
    assert ex.sum(r) == np.arange(1000.0).sum() - 8.0
    assert ex.data_ptr(r) == r.data_ptr


def test_rust_owned_result_is_freed_once_after_the_last_view():
    start = ex.live_buffers()
    r = ex.scale(base_array(), 0.5)
    assert ex.live_buffers() == start + 1
    n, t = np.from_dlpack(r), torch.from_dlpack(r)
    del r
    assert ex.live_buffers() == start + 1
    del n
    assert ex.live_buffers() == start + 1
    assert t.sum().item() == 138.0
    del t
    assert ex.live_buffers() == start


def test_rust_owned_result_freed_from_another_python_thread():
    start = ex.live_buffers()
    holder = [ex.arange(100)]
    holder.append(torch.from_dlpack(holder[0]))
    assert ex.live_buffers() == start + 1

    def drop_all():
        holder.clear()

    worker = threading.Thread(target=drop_all)
    worker.start()
    worker.join()
    assert ex.live_buffers() == start


def test_rust_owned_result_dropped_by_a_rust_thread():
    start = ex.live_buffers()
    r = ex.arange(10)
    ex.drop_on_thread(r)  # the extension's own view goes on a Rust thread
    assert ex.live_buffers() == start + 1, "the Python object still holds it"
    del r
    assert ex.live_buffers() == start


@pytest.mark.parametrize("ndim", [33, 64])
def test_33_and_64_dimensions(ndim):
    shape = (1,) * (ndim - 3) + (2, 3, 2)
    a = np.arange(12, dtype=np.float64).reshape(shape)
    assert ex.data_ptr(a) == a.ctypes.data
    assert ex.sum(a) == 66.0
    assert len(ex.describe(a)[0]) == ndim
    out = np.from_dlpack(ex.scale(a, 2.0))
    assert out.shape == shape
    np.testing.assert_array_equal(out, a * 2.0)
    if ndim == 33:
        t = torch.from_numpy(a)
        assert ex.data_ptr(t) == t.data_ptr()
        assert ex.sum(t) == 66.0


def test_in_place_writes_land_in_the_producers_memory():
    a = np.zeros(5, dtype=np.int32)
    ex.add_one_inplace(a)
    ex.add_one_inplace(a[::2])
    assert a.tolist() == [2, 1, 2, 1, 2]
    t = torch.zeros(4, dtype=torch.float32)
    ex.add_one_inplace(t)
    assert t.tolist() == [1.0] * 4
    b = bytearray(b"abc")
    ex.add_one_inplace(memoryview(b))
    assert b == bytearray(b"bcd")


def readonly_numpy():
    a = np.arange(4, dtype=np.float64)
    a.flags.writeable = False
    return a


READONLY = {
    "numpy": readonly_numpy,
    "bytes": lambda: b"abcd",
    "memoryview": lambda: memoryview(bytearray(b"abcd")).toreadonly(),
    "dlbridge": lambda: dlbridge.asarray(readonly_numpy()),
    "array_interface": lambda: ArrayInterfaceOnly(readonly_numpy()),
}


@pytest.mark.parametrize("name", READONLY)
def test_mutable_function_refuses_readonly_inputs(name):
    x = READONLY[name]()
    before = ex.sum(x)
    with pytest.raises(BufferError, match="readonly"):
        ex.add_one_inplace(x)
    assert ex.sum(x) == before


def test_mutable_function_refuses_what_its_producer_forbids():
    """Issue 11: a JAX array (legacy DLPack: read-only by NumPy's rule) and a
    torch leaf that requires grad (autograd's) must not be mutated in place;
    conjugate and negative views are refused before any value is read."""
    import jax.numpy as jnp

    j = jnp.arange(4.0)
    with pytest.raises(BufferError, match="readonly"):
        ex.add_one_inplace(j)
    assert j.tolist() == [0.0, 1.0, 2.0, 3.0]
    leaf = torch.zeros(3, requires_grad=True)
    with pytest.raises(BufferError, match=r"detach\(\)"):
        ex.add_one_inplace(leaf)
    assert leaf.detach().sum().item() == 0.0
    z = torch.tensor([1 + 2j, 3 - 4j])
    with pytest.raises(BufferError, match=r"resolve_conj\(\)"):
        ex.sum(z.conj())
    with pytest.raises(BufferError, match=r"resolve_neg\(\)"):
        ex.sum(z.conj().imag)
    assert ex.sum(z.conj().imag.resolve_neg()) == -2.0 + 4.0
    # The bit set in place on a tensor that is no view, after the same
    # tensor was accepted once: asked again on each call, not remembered.
    x = torch.ones(3, dtype=torch.float64)
    assert ex.sum(x) == 3.0
    torch._C._set_neg(x, True)
    assert not x._is_view()
    with pytest.raises(BufferError, match=r"resolve_neg\(\)"):
        ex.sum(x)
    with pytest.raises(BufferError, match=r"resolve_neg\(\)"):
        ex.add_one_inplace(x)
    torch._C._set_neg(x, False)
    assert ex.sum(x) == 3.0


def test_mutable_function_refuses_self_overlapping_inputs():
    t = torch.zeros(3).expand(4, 3)  # writable, stride 0
    with pytest.raises(BufferError, match="two indices may reach one element"):
        ex.add_one_inplace(t)
    assert t.sum().item() == 0.0


def test_typed_arguments_name_expected_and_got():
    assert ex.trace(np.eye(3)) == 3.0
    assert ex.trace(torch.eye(2, dtype=torch.float64)) == 2.0
    with pytest.raises(TypeError, match=r"expected a 2-d tensor, got a 3-d tensor \(shape \[2, 2, 2\]\)"):
        ex.trace(np.zeros((2, 2, 2)))
    with pytest.raises(TypeError, match=r"expected dtype float64, got float32"):
        ex.trace(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(TypeError, match=r"expected dtype float64, got int64"):
        ex.sum_f64(torch.arange(3))
    assert ex.sum_f64_any(np.ones((2, 3, 4))) == 24.0
    assert ex.sum_f64(np.ones(5)) == 5.0
    with pytest.raises(TypeError, match=r"expected a 1-d tensor, got a 3-d tensor"):
        ex.sum_f64(np.ones((2, 3, 4)))
    with pytest.raises(TypeError, match=r"expected a C-contiguous tensor"):
        ex.sum_f64(np.ones(6)[::2])
    with pytest.raises(TypeError, match="list speaks no array protocol"):
        ex.sum([1.0, 2.0])


def test_bool_bytes_other_than_0_and_1_are_refused():
    fake = np.array([0, 1, 2], dtype=np.uint8).view(np.bool_)  # NumPy allows it
    with pytest.raises(ValueError, match=r"byte at index \[2\] is 2, not 0 or 1"):
        ex.sum(fake)
    assert ex.sum(np.array([True, False, True])) == 2.0


def test_layouts_ndarray_cannot_view_are_buffer_errors():
    packed = np.zeros(4, dtype=np.dtype([("a", "u1"), ("b", "<i4")]))
    field = packed["b"]  # stride 5, misaligned int32
    with pytest.raises(BufferError):
        ex.sum(field)


def test_numpy_only_baseline_agrees_and_refuses_the_rest():
    a = base_array()
    assert ex.np_data_ptr(a) == ex.data_ptr(a) == a.ctypes.data
    assert ex.np_sum(a) == ex.sum(a)
    np.testing.assert_array_equal(ex.np_arange(5), np.from_dlpack(ex.arange(5)))
    np.testing.assert_array_equal(ex.np_scale(a, 2.0), np.from_dlpack(ex.scale(a, 2.0)))
    b = a.copy()
    ex.np_add_one_inplace(b)
    assert b.sum() == a.sum() + 24
    with pytest.raises(TypeError):
        ex.np_sum(torch.from_numpy(a))  # what dlbridge is for
    with pytest.raises(TypeError):
        ex.np_sum(memoryview(a))


def test_borrowed_arguments_take_the_lent_path_and_no_reference():
    """`sum(x: ReadonlyTensor)` and `sum_f64(x: ReadonlyTensor<f64, ..>)` borrow an exact ndarray
    for the call: the lent fast path is counted, the array's reference
    count never moves, and a non-ndarray producer still comes in owned."""
    a = np.arange(16.0)
    before = ex.fast_path_counts()["lent_arguments"]
    refs = sys.getrefcount(a)
    assert ex.sum(a) == 120.0
    assert ex.sum_f64(a) == 120.0
    assert ex.data_ptr(a) == a.ctypes.data
    assert ex.fast_path_counts()["lent_arguments"] == before + 3
    assert sys.getrefcount(a) == refs
    # Not an exact ndarray: the ordinary import (the count stays).
    assert ex.sum(torch.arange(4.0)) == 6.0
    assert ex.sum(np.ma.masked_array(np.arange(4.0))) == 6.0
    assert ex.fast_path_counts()["lent_arguments"] == before + 3


def test_a_borrowed_argument_made_owning_outlives_the_call():
    a = np.arange(4.0)
    refs = sys.getrefcount(a)
    kept = ex.keep(a)  # ReadonlyTensor::to_tensor: takes the producer's reference
    assert sys.getrefcount(a) == refs + 1
    assert kept.data_ptr == a.ctypes.data
    del a
    gc.collect()
    assert np.from_dlpack(kept).tolist() == [0.0, 1.0, 2.0, 3.0]
    kept_torch = ex.keep(torch.arange(3.0))  # owned import: cloned
    assert torch.from_dlpack(kept_torch).tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.arange(12.0).reshape(3, 4),  # C order: the slice path
        lambda: np.asfortranarray(np.arange(12.0).reshape(3, 4)),  # F order: the slice path
        lambda: np.arange(24.0).reshape(4, 6)[:, ::2],  # strided: the view path
        lambda: np.arange(12.0).reshape(3, 4)[::-1],  # reversed: the view path
        lambda: np.zeros((0, 3)),  # empty
        lambda: np.frombuffer(bytes(17), dtype=np.uint8)[1:].view(np.float64),  # misaligned
    ],
    ids=["c", "f", "strided", "reversed", "empty", "misaligned"],
)
def test_slice_and_view_paths_agree(make):
    """`ReadonlyTensor::as_slice` (contiguous memory) and the view path give the
    same sum as NumPy; a misaligned pointer is refused by either path."""
    x = make()
    if x.ctypes.data % 8:
        with pytest.raises(BufferError, match="is not aligned for float64"):
            ex.sum(x)
        return
    assert ex.sum(x) == float(x.sum())
    assert ex.sum(np.asarray(x, dtype=np.float32)) == float(x.sum())


@pytest.mark.parametrize("ndim", [33, 64])
def test_high_rank_inputs_through_every_argument_type(ndim):
    """33 and 64 axes (past NumPy 1's 32 and the inline dims) come in through
    the borrowed (ReadonlyTensor, any dtype or typed) and owning (Tensor) argument types."""
    a = np.full((1,) * (ndim - 1) + (3,), 2.0)
    assert ex.sum(a) == 6.0  # ReadonlyTensor<AnyDtype>
    assert ex.sum_f64_any(a) == 6.0  # ReadonlyTensor<f64, IxDyn>
    assert ex.data_ptr(a) == a.ctypes.data
    assert ex.describe(a)[0] == list(a.shape)  # Tensor
    assert ex.sum(torch.from_numpy(a)) == 6.0


def test_bfloat16_and_readonly_inputs():
    import ml_dtypes

    b = np.arange(4, dtype=ml_dtypes.bfloat16)
    assert ex.sum(b) == 6.0  # via DLPack: NumPy's bf16 has no buffer format
    assert ex.sum(torch.arange(4, dtype=torch.bfloat16)) == 6.0
    ro = np.arange(4.0)
    ro.flags.writeable = False
    assert ex.sum(ro) == 6.0 and ex.sum_f64(ro) == 6.0  # reading read-only memory is fine
    ro_block = np.zeros((4, 4))
    ro_block.flags.writeable = False
    with pytest.raises(TypeError, match="expected a writable tensor"):
        ex.writable_block(ro_block)


def test_a_borrowed_argument_keeps_numpy_from_resizing_it_away():
    """A callback that drops every other reference and resizes the array
    (NumPy frees the old data when it counts no more than two references)
    is refused while a borrowed argument's view is alive: the argument holds
    a reference of its own. Without it the view would read freed memory."""
    arrays = [np.arange(1000.0)]
    with pytest.raises(ValueError, match="cannot resize"):
        ex.sum_after(arrays[0], lambda: arrays.pop().resize(10**6))
    arrays = [np.arange(10.0)]
    refs = sys.getrefcount(arrays[0])
    total = ex.sum_after(arrays[0], lambda: None)
    after = sys.getrefcount(arrays[0])  # (outside the assert: pytest's rewrite holds one)
    assert total == 45.0
    assert after == refs  # the argument's reference is released
