//! A tensor as a real `torch.Tensor`, through PyTorch's DLPack exchange
//! table (`torch.Tensor.__dlpack_c_exchange_api__`,
//! `managed_tensor_to_py_object_no_sync`): one C call, no capsule, no
//! `torch.from_dlpack` in Python. torch calls the managed tensor's deleter,
//! releasing the owner exactly once, when the last tensor over the memory
//! goes.
//!
//! torch has no read-only tensors and ignores DLPack's `READ_ONLY` flag (a
//! read-only import comes back writable), so a read-only tensor is refused
//! here rather than handed out as writable memory.
//!
//! torch has no negative strides either, and its DLPack import does not
//! refuse them cleanly on every release: torch 2.9 to 2.13 abort the
//! process (`at::fromDLPackVersioned` reaches `TensorMaker::computeStorageSize`,
//! declared `noexcept`, whose storage-size check throws: `std::terminate`,
//! pytorch#188023, fixed by pytorch#188062), later ones raise `RuntimeError`.
//! So a tensor with a negative stride is refused here, on every torch,
//! before torch sees it.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::via_from_dlpack;
use crate::error::{Cause, Error};
use crate::python::dlpack::exchange::{ToPyObject, table_of, through_table};
use crate::python::errors::framework_missing;
use crate::tensor::Tensor;

/// torch's `managed_tensor_to_py_object_no_sync`, looked up once; `None`
/// for a PyTorch without the table (then `torch.from_dlpack` does the job).
fn to_py_object(py: Python<'_>) -> PyResult<Option<ToPyObject>> {
    static TO_PY_OBJECT: PyOnceLock<Option<ToPyObject>> = PyOnceLock::new();
    TO_PY_OBJECT
        .get_or_try_init(py, || {
            let torch = py
                .import(intern!(py, "torch"))
                .map_err(|err| framework_missing(py, "torch.Tensor", "PyTorch", err))?;
            let capsule = torch
                .getattr(intern!(py, "Tensor"))?
                .getattr(intern!(py, "__dlpack_c_exchange_api__"))
                .ok();
            Ok(capsule
                .as_ref()
                .and_then(table_of)
                .and_then(|table| table.managed_tensor_to_py_object_no_sync))
        })
        .copied()
}

/// `tensor` as a `torch.Tensor` over the same memory.
pub(crate) fn to_torch<'py>(py: Python<'py>, tensor: Tensor) -> PyResult<Bound<'py, PyAny>> {
    if tensor.readonly() {
        return Err(Error::buffer(
            Cause::Readonly,
            "cannot return read-only memory as a torch.Tensor: torch has no read-only \
             tensors and would write to it; return a copy, or a numpy.ndarray, memoryview \
             or dlbridge.Tensor, which keep it read-only",
        )
        .into());
    }
    if let Some(axis) = negative_stride_axis(&tensor) {
        return Err(Error::buffer(
            Cause::Layout,
            format!(
                "cannot return a tensor with a negative stride as a torch.Tensor (shape {:?}, \
                 byte strides {:?}, axis {axis}): torch has no negative strides, and torch \
                 before 2.14 aborts the process on one; return tensor.copy(), or a \
                 numpy.ndarray or dlbridge.Tensor, which keep the strides",
                tensor.shape(),
                tensor.strides()
            ),
        )
        .into());
    }
    match to_py_object(py)? {
        Some(to_py_object) => through_table(py, to_py_object, tensor),
        None => via_from_dlpack(py, tensor, "torch", "from_dlpack"),
    }
}

/// The first axis whose stride is negative where that matters: an axis of
/// extent 2 or more in a tensor that has elements (an extent-1 axis never
/// moves by its stride, and torch sizes an empty tensor's storage at zero).
fn negative_stride_axis(tensor: &Tensor) -> Option<usize> {
    if tensor.size() == 0 {
        return None;
    }
    tensor
        .shape()
        .iter()
        .zip(tensor.strides())
        .position(|(&extent, &stride)| extent > 1 && stride < 0)
}
