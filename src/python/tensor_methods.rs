//! `dlbridge.Tensor`'s Python methods: each protocol method delegates to its
//! spoke.
//!
//! The top of the Python layer beside the `#[pymodule]`: it calls into the
//! spokes, and none of them calls back here (they name the class's object,
//! `super::tensor::PyTensor`, one layer down).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::error::{Cause, Error};
use crate::python::dtype_arg::parse_dtype;
use crate::python::tensor::PyTensor;
use crate::python::{array_interface, arrow, buffer, framework_dunders, pickle};

#[pymethods]
impl PyTensor {
    #[new]
    fn py_new() -> PyResult<Self> {
        Err(PyErr::from(Error::type_error(
            Cause::Argument,
            "dlbridge.Tensor cannot be created directly; use dlbridge.asarray, from_dlpack, zeros or empty",
        )))
    }

    /// Extents per axis.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.inner.shape())
    }

    /// Strides per axis, in bytes (as NumPy).
    #[getter]
    fn strides<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.inner.strides())
    }

    /// The dtype's name (`"float32"`, `"bfloat16"`, ...).
    #[getter]
    fn dtype(&self) -> String {
        self.inner.dtype().name()
    }

    #[getter]
    fn itemsize(&self) -> usize {
        self.inner.itemsize()
    }

    #[getter]
    fn ndim(&self) -> usize {
        self.inner.ndim()
    }

    #[getter]
    fn size(&self) -> usize {
        self.inner.size()
    }

    #[getter]
    fn nbytes(&self) -> usize {
        self.inner.nbytes()
    }

    /// `(device_type, device_id)`, `(1, 0)` for CPU.
    #[getter]
    fn device(&self) -> (u32, i32) {
        let device = self.inner.device();
        (device.device_type, device.device_id)
    }

    #[getter]
    fn readonly(&self) -> bool {
        self.inner.readonly()
    }

    /// Address of the first logical element.
    #[getter]
    fn data_ptr(&self) -> usize {
        self.inner.data_ptr() as usize
    }

    /// The protocol the memory came through.
    #[getter]
    fn source(&self) -> &'static str {
        self.inner.source().as_str()
    }

    /// A Rust-owned C-contiguous copy.
    fn copy(&self) -> PyResult<Self> {
        Ok(Self::new(self.inner.copy()?))
    }

    // `__dlpack__` is installed by `super::dlpack::dunder` (a raw fastcall
    // method: keyword matching by pointer).

    /// Buffer protocol export; see `protocol::buffer::fill_view`.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: std::ffi::c_int,
    ) -> PyResult<()> {
        let owner = slf.clone().into_any();
        // SAFETY: CPython hands us a writable view; `slf` (stored in
        // `view.obj`) is frozen, so its tensor's layout arrays stay put.
        unsafe { buffer::fill_view(&slf.get().inner, owner, view, flags) }?;
        Ok(())
    }

    /// NumPy's array interface, version 3 (a fresh copy of a dict built once).
    #[getter]
    fn __array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = self
            .interface
            .get_or_try_init(py, || {
                array_interface::dict::interface_dict(py, &self.inner).map(Bound::unbind)
            })?
            .bind(py);
        let copy = dict.copy()?;
        // The one mutable value inside: a consumer that edits its `descr`
        // list must not edit the next caller's (its tuples are immutable).
        if let Some(descr) = dict.get_item(pyo3::intern!(py, "descr"))? {
            let descr = descr.cast_into::<pyo3::types::PyList>()?;
            copy.set_item(pyo3::intern!(py, "descr"), descr.get_slice(0, descr.len()))?;
        }
        Ok(copy)
    }

    /// A fresh `PyArrayInterface` capsule that keeps the memory alive.
    #[getter]
    fn __array_struct__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        array_interface::structs::struct_capsule(slf)
    }

    /// The CUDA array interface, version 3 (a fresh dict), for CUDA memory;
    /// `AttributeError` on any other device, so consumers move on.
    #[getter]
    fn __cuda_array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        crate::python::cuda_array_interface::interface_dict(py, &self.inner)
    }

    /// The same bytes as another dtype of the same itemsize.
    fn view(&self, dtype: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Self::new(self.inner.view(parse_dtype(dtype)?)?))
    }

    /// A zero-copy `numpy.ndarray` of this tensor (with the `ml_dtypes`
    /// dtype for bfloat16 and float8 when ml_dtypes is installed).
    fn numpy<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        framework_dunders::to_numpy(slf, "numpy()")
    }

    /// NumPy 2's `__array__`: the zero-copy `numpy()` array, or a copy when
    /// `copy=True` or when `dtype` differs (a cast is a copy); `copy=False`
    /// refuses what only a copy could give (ValueError).
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        slf: &Bound<'py, Self>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        framework_dunders::array(slf, dtype.filter(|d| !d.is_none()), copy)
    }

    /// The Arrow PyCapsule interface: `(schema, array)` capsules of this
    /// tensor's memory, zero-copy (see `crate::python::arrow`).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        arrow::export(py, &self.inner, requested_schema)
    }

    /// `jnp.asarray(t)`: a JAX array of the NumPy view (JAX copies it).
    fn __jax_array__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        framework_dunders::jax_array(slf)
    }

    /// NumPy's iteration over the first axis (pandas needs `__iter__`).
    fn __iter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        framework_dunders::iterate(slf)
    }

    /// Pickling (protocol 5: the data out of band, zero-copy); see
    /// `super::pickle`.
    #[pyo3(signature = (protocol, /))]
    fn __reduce_ex__<'py>(slf: &Bound<'py, Self>, protocol: i64) -> PyResult<Bound<'py, PyTuple>> {
        pickle::reduce_ex(slf, protocol)
    }

    /// `copy.copy`: a new view of the same memory.
    fn __copy__(&self) -> Self {
        Self::new(self.inner.clone())
    }

    /// `copy.deepcopy`: a Rust-owned C-contiguous copy.
    #[pyo3(signature = (memo, /))]
    fn __deepcopy__(&self, memo: &Bound<'_, PyAny>) -> PyResult<Self> {
        let _ = memo; // copy.deepcopy records the result in it itself
        self.copy()
    }

    fn __dlpack_device__(&self) -> (u32, i32) {
        self.device()
    }

    fn __len__(&self) -> PyResult<usize> {
        self.inner
            .shape()
            .first()
            .copied()
            .ok_or_else(|| PyErr::from(Error::type_error(Cause::Layout, "len() of a 0-d tensor")))
    }

    fn __repr__(&self) -> String {
        let t = &self.inner;
        let shape = match t.shape() {
            [one] => format!("({one},)"),
            dims => format!(
                "({})",
                dims.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        format!(
            "dlbridge.Tensor(shape={shape}, dtype={}, device={}, readonly={}, source={})",
            t.dtype(),
            t.device(),
            if t.readonly() { "True" } else { "False" },
            t.source().as_str()
        )
    }
}
