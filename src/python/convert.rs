//! PyO3 conversions: [`Tensor`] and [`TypedTensor`] as `#[pyfunction]`
//! arguments and return values.
//!
//! See [`Tensor::from_py`] for an example; `examples/extension/` is a whole
//! extension crate.
//!
//! **In**: anything the importer's stages take (`importer.rs`: DLPack, the
//! buffer protocol, the array interface, ...), with no copy. A
//! `dlbridge.Tensor` made by this very binary is simply cloned (same owner,
//! no protocol round trip).
//!
//! **Out**: a `dlbridge.Tensor` Python object. There is one `dlbridge.Tensor`
//! class, the one in `dlbridge._native`. An extension crate that depends on
//! dlbridge links its own copy of the Rust code, whose `Tensor` layout is no
//! ABI the two binaries can share; so outside `dlbridge._native` the tensor
//! crosses as a DLPack managed tensor, through the C exchange table that
//! `dlbridge.Tensor` publishes (`__dlpack_c_exchange_api__`,
//! `managed_tensor_to_py_object_no_sync`): one C call, no capsule, no copy.
//! The deleter (this binary's code) releases the owner exactly once, when
//! the Python object and everything exported from it are gone. Such a
//! result reports `source == "dlpack"`; inside `dlbridge._native` it keeps
//! its own source.

use ndarray::Dimension;
use pyo3::exceptions::PyImportError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::{Borrowed, intern};

use super::dlpack::exchange::{ToPyObject, through_table};
use super::home::is_home_binary;
use super::importer::{self, Imported, Options};
use super::tensor::PyTensor;
use crate::dtype::Element;
use crate::tensor::Tensor;
use crate::view::TypedTensor;
use crate::view::constraints::Constraint;

/// `managed_tensor_to_py_object_no_sync` of `dlbridge._native.Tensor`,
/// looked up once (the table is a process-lifetime static of that module).
fn home_to_py_object(py: Python<'_>) -> PyResult<ToPyObject> {
    static TO_PY_OBJECT: PyOnceLock<ToPyObject> = PyOnceLock::new();
    TO_PY_OBJECT
        .get_or_try_init(py, || {
            let class = py
                .import(intern!(py, "dlbridge._native"))?
                .getattr(intern!(py, "Tensor"))?;
            let capsule = class.getattr(intern!(py, "__dlpack_c_exchange_api__"))?;
            let missing = || {
                PyImportError::new_err(
                    "dlbridge._native.Tensor publishes no usable DLPack exchange table \
                     (managed_tensor_to_py_object_no_sync); is dlbridge too old?",
                )
            };
            crate::python::dlpack::exchange::table_of(&capsule)
                .and_then(|table| table.managed_tensor_to_py_object_no_sync)
                .ok_or_else(missing)
        })
        .copied()
}

impl<'py> FromPyObject<'_, 'py> for Tensor {
    type Error = PyErr;

    /// Any array-like through dlbridge's protocol discovery, zero-copy; a `dlbridge.Tensor`
    /// of this binary is cloned (another view of the same owner).
    fn extract(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        importer::import(
            &obj,
            Options::ARGUMENT,
            #[inline(always)]
            |imported: Imported<'_, '_>| Ok(imported.into_tensor()),
        )
    }
}

impl<'py> IntoPyObject<'py> for Tensor {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    /// A `dlbridge.Tensor` viewing the same memory (see the module docs for
    /// how it crosses from an extension crate's binary).
    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if is_home_binary() {
            return Ok(Bound::new(py, PyTensor::new(self))?.into_any());
        }
        let to_py_object = home_to_py_object(py)?;
        through_table(py, to_py_object, self)
    }
}

impl<'py, T: Element, D: Dimension, C: Constraint> FromPyObject<'_, 'py> for TypedTensor<T, D, C> {
    type Error = PyErr;

    /// As for [`Tensor`], then checked for dtype `T`, rank `D` and the
    /// constraints `C`: a mismatch is a `TypeError` naming what was
    /// expected and what came.
    fn extract(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        let tensor = Tensor::extract(obj)?;
        Ok(TypedTensor::new(tensor)?)
    }
}

impl<'py, T: Element, D: Dimension, C: Constraint> IntoPyObject<'py> for TypedTensor<T, D, C> {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.into_tensor().into_pyobject(py)
    }
}

impl Tensor {
    /// Any Python array-like (DLPack, buffer protocol, array interface, a
    /// `dlbridge.Tensor`) as a tensor, with no copy (feature `python`).
    ///
    /// `Tensor` and [`TypedTensor`] are also `FromPyObject` and
    /// `IntoPyObject`, so they serve directly as `#[pyfunction]` arguments
    /// and results; a result becomes a `dlbridge.Tensor` viewing the same
    /// memory (Rust-owned memory is freed once, when Python is done with it):
    ///
    /// ```no_run
    /// use dlbridge::{ReadonlyTensor, Tensor, TypedTensor};
    /// use pyo3::prelude::*;
    ///
    /// /// Takes NumPy, PyTorch, memoryviews, array-interface objects, ...
    /// /// and returns a new tensor (the argument is read through a tracked
    /// /// borrow: `ReadonlyTensor`; a `Tensor`'s own views are `unsafe`).
    /// #[pyfunction]
    /// fn scale(x: ReadonlyTensor<'_, f64>, k: f64) -> PyResult<Tensor> {
    ///     Ok(Tensor::try_from(x.view().mapv(|v| v * k))?)
    /// }
    ///
    /// /// Kept beyond the call: an owning `TypedTensor`, dtype and rank
    /// /// checked at the boundary (`TypeError: expected a 2-d tensor, got a
    /// /// 3-d tensor (shape [2, 2, 2])`).
    /// #[pyfunction]
    /// fn keep(m: TypedTensor<f64, ndarray::Ix2>) -> usize {
    ///     m.shape()[0]
    /// }
    /// ```
    ///
    /// ```no_run
    /// use pyo3::prelude::*;
    /// Python::attach(|py| -> PyResult<()> {
    ///     let data = pyo3::types::PyBytes::new(py, b"abc");
    ///     let t = dlbridge::Tensor::from_py(&data)?;
    ///     // SAFETY: nothing writes this memory while the view lives.
    ///     assert_eq!(unsafe { t.as_ndarray::<u8>() }?[[2]], b'c');
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// `TypeError` ([`Cause::NoProtocol`](crate::Cause::NoProtocol)) for an object that speaks no
    /// protocol dlbridge understands; `BufferError` ([`Cause::NoProtocol`](crate::Cause::NoProtocol))
    /// when every protocol it speaks refused with a `BufferError` (the
    /// message lists each refusal); any other exception a protocol raises
    /// (a malformed descriptor's `ValueError`, a `MemoryError`, the
    /// producer's own exception) as it is. `docs/errors.md` lists them.
    pub fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        obj.extract()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python::home::mark_home_binary;

    #[test]
    fn home_binary_round_trip_is_a_clone() {
        Python::initialize();
        mark_home_binary();
        Python::attach(|py| {
            let t = Tensor::from(vec![1.0f32, 2.0, 3.0]);
            let object = t.clone().into_pyobject(py).unwrap();
            let py_tensor = object.cast::<PyTensor>().expect("a dlbridge.Tensor");
            assert!(py_tensor.get().inner.owner().same_owner(t.owner()));
            let back: Tensor = object.extract().unwrap();
            assert_eq!(back.data_ptr(), t.data_ptr());
            assert!(back.owner().same_owner(t.owner()), "no protocol round trip");
            assert_eq!(t.owner().holders(), 3);
            drop(object);
            assert_eq!(t.owner().holders(), 2);

            let typed: TypedTensor<f32> =
                back.clone().into_pyobject(py).unwrap().extract().unwrap();
            // SAFETY: nothing writes this memory while the view lives.
            assert_eq!(unsafe { typed.view() }.sum(), 6.0);
            let err = back
                .into_pyobject(py)
                .unwrap()
                .extract::<TypedTensor<f64>>()
                .unwrap_err();
            assert!(err.is_instance_of::<pyo3::exceptions::PyTypeError>(py));
            assert!(
                err.to_string()
                    .contains("expected dtype float64, got float32")
            );

            let data = pyo3::types::PyBytes::new(py, b"abc");
            let t = Tensor::from_py(&data).unwrap();
            assert_eq!(t.data_ptr().cast_const(), data.as_bytes().as_ptr());
            assert!(t.readonly());
            // SAFETY: nothing writes this memory while the view lives.
            assert_eq!(unsafe { t.as_ndarray::<u8>() }.unwrap()[[2]], b'c');
        });
    }
}
