//! `dlbridge.Tensor`'s object: a thin Python shell over [`crate::Tensor`].
//!
//! The lowest module of the Python layer: every spoke may name
//! [`PyTensor`] (to build one, or to read the tensor inside), and this file
//! names none of them. The class's Python methods, which delegate to the
//! spokes, are in `super::tensor_methods`, one layer up, so the
//! dependencies point one way (`tests/python/test_module_cycles.py`).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use crate::tensor::Tensor;

/// A view of tensor memory that speaks DLPack, the buffer protocol and the
/// array interface.
#[pyclass(name = "Tensor", module = "dlbridge", frozen)]
pub(crate) struct PyTensor {
    pub(crate) inner: Tensor,
    /// `__array_interface__`, built on first use (the tensor is immutable).
    pub(crate) interface: PyOnceLock<Py<PyDict>>,
}

impl PyTensor {
    pub(crate) fn new(inner: Tensor) -> Self {
        Self {
            inner,
            interface: PyOnceLock::new(),
        }
    }
}
