//! Arguments borrowed for the length of a call: [`TensorRef`] and
//! [`TypedRef`], the cheapest way for a `#[pyfunction]` to read an array.
//!
//! A [`Tensor`] argument owns what keeps its memory alive, so it can be
//! stored, sent to another thread or returned: for a NumPy array that means
//! an allocation, a Python reference, and on drop attaching to the
//! interpreter, a release and a free. A function that only reads its
//! argument while it runs needs none of that: the caller holds the argument
//! for the whole call. `TensorRef<'a>` and `TypedRef<'a, T, D, C>` borrow it
//! for `'a` instead (as rust-numpy's `PyReadonlyArray` and nanobind's
//! `nb::ndarray` do). An exact `numpy.ndarray` then comes in with no
//! allocation and no reference count touched; every other producer comes in
//! as for `Tensor` (its owner is needed to release what the import
//! acquired: a DLPack deleter, a `Py_buffer`).
//!
//! # Why it is sound
//!
//! The tensor inside a borrowed argument may have no owner of its own, so
//! it must not outlive the borrow: neither type hands out the tensor itself
//! (a `&Tensor` could be cloned into a value that outlives the call), only
//! metadata and views that borrow the argument, and [`TensorRef::to_tensor`]
//! / [`TypedRef::to_typed`] make an owning tensor (with the producer's
//! reference) when one must outlive the call. The `'a` lifetime ties the
//! argument to PyO3's borrow of the Python object, so the argument itself
//! cannot be kept either.
//!
//! ```no_run
//! use dlbridge::{TensorRef, TypedRef};
//! use ndarray::Ix1;
//! use pyo3::prelude::*;
//!
//! #[pyfunction]
//! fn total(x: TypedRef<'_, f64, Ix1>) -> f64 {
//!     x.view().sum()
//! }
//!
//! #[pyfunction]
//! fn nbytes(x: TensorRef<'_>) -> usize {
//!     x.nbytes()
//! }
//! ```

use std::marker::PhantomData;

use ndarray::{ArrayView, ArrayViewD, Dimension, IxDyn};
use pyo3::Borrowed;
use pyo3::prelude::*;

use super::convert::is_home_binary;
use super::discover::import_any;
use super::dlpack::ndarray_fields;
use super::tensor::PyTensor;
use crate::device::Device;
use crate::dtype::{DType, Element};
use crate::error::Result;
use crate::tensor::Tensor;
use crate::view::TypedTensor;
use crate::view::constraints::Constraint;

/// The argument's Python object, borrowed (no reference held) for the
/// argument's `'a`.
struct Object(*mut pyo3::ffi::PyObject);

// SAFETY: the pointer is dereferenced only in `bind`, with the interpreter
// attached, while PyO3's borrow of the argument (`'a`) keeps it alive; the
// argument's views may be used on other threads (inside `py.detach`), which
// never touch the object.
unsafe impl Send for Object {}
// SAFETY: as above.
unsafe impl Sync for Object {}

impl Object {
    fn bind<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        // SAFETY: the object is alive for the argument's borrow (see above).
        unsafe { Bound::from_borrowed_ptr(py, self.0) }
    }
}

/// `obj` as a tensor that may borrow its memory for `'a` (see the module
/// docs), and whether it does.
#[inline(always)]
fn import_for_call(obj: Borrowed<'_, '_, PyAny>) -> PyResult<(Tensor, bool)> {
    if is_home_binary()
        && let Ok(tensor) = obj.cast::<PyTensor>()
    {
        return Ok((tensor.get().inner.clone(), false));
    }
    // SAFETY: the tensor goes into a borrowed argument whose lifetime is
    // PyO3's borrow of `obj`, and the argument never lets it (or anything
    // made from it) outlive that borrow.
    if let Some(tensor) = unsafe { ndarray_fields::import_lent(&obj)? } {
        return Ok((tensor, true));
    }
    Ok((import_any(&obj)?, false))
}

/// The owning tensor for a borrowed one: the producer's reference in place
/// of the borrow.
fn owned(tensor: &Tensor, lent: bool, object: &Bound<'_, PyAny>) -> Tensor {
    if !lent {
        return tensor.clone();
    }
    let owner = std::sync::Arc::new(super::owner::PyOwner::new(object.clone().unbind()));
    // SAFETY: the borrowed tensor's memory is `object`'s (an exact ndarray),
    // which the new owner keeps alive.
    unsafe { tensor.with_owner(owner) }
}

/// Any array-like argument, borrowed for the call (see the module docs).
pub struct TensorRef<'a> {
    tensor: Tensor,
    lent: bool,
    object: Object,
    _borrow: PhantomData<&'a ()>,
}

impl<'a, 'py> FromPyObject<'a, 'py> for TensorRef<'a> {
    type Error = PyErr;

    #[inline]
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let (tensor, lent) = import_for_call(obj)?;
        Ok(Self {
            tensor,
            lent,
            object: Object(obj.as_ptr()),
            _borrow: PhantomData,
        })
    }
}

impl TensorRef<'_> {
    /// Extents per axis.
    pub fn shape(&self) -> &[usize] {
        self.tensor.shape()
    }

    /// Byte strides per axis.
    pub fn strides(&self) -> &[isize] {
        self.tensor.strides()
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.tensor.ndim()
    }

    /// Number of elements.
    pub fn size(&self) -> usize {
        self.tensor.size()
    }

    /// Bytes the elements take.
    pub fn nbytes(&self) -> usize {
        self.tensor.nbytes()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.tensor.dtype()
    }

    /// Where the memory lives.
    pub fn device(&self) -> Device {
        self.tensor.device()
    }

    /// Whether the producer forbids writes.
    pub fn readonly(&self) -> bool {
        self.tensor.readonly()
    }

    /// Address of the first logical element.
    pub fn data_ptr(&self) -> *mut u8 {
        self.tensor.data_ptr()
    }

    /// A shared view with dynamic rank.
    ///
    /// # Errors
    ///
    /// Those of [`Tensor::as_ndarray`].
    pub fn as_ndarray<T: Element>(&self) -> Result<ArrayViewD<'_, T>> {
        self.tensor.as_ndarray::<T>()
    }

    /// A shared view of rank `D`.
    ///
    /// # Errors
    ///
    /// Those of [`Tensor::as_ndarray_dim`].
    pub fn as_ndarray_dim<T: Element, D: Dimension>(&self) -> Result<ArrayView<'_, T, D>> {
        self.tensor.as_ndarray_dim::<T, D>()
    }

    /// An owning [`Tensor`] of the same memory, which may outlive the call
    /// (it holds the producer as a `Tensor` argument would).
    pub fn to_tensor(&self) -> Tensor {
        Python::attach(|py| owned(&self.tensor, self.lent, &self.object.bind(py)))
    }
}

/// An array argument of element type `T`, rank `D` and constraints `C`,
/// borrowed for the call: [`TypedTensor`]'s checks with [`TensorRef`]'s
/// cost (see the module docs).
pub struct TypedRef<'a, T: Element, D: Dimension = IxDyn, C: Constraint = ()> {
    typed: TypedTensor<T, D, C>,
    lent: bool,
    object: Object,
    _borrow: PhantomData<&'a ()>,
}

impl<'a, 'py, T: Element, D: Dimension, C: Constraint> FromPyObject<'a, 'py>
    for TypedRef<'a, T, D, C>
{
    type Error = PyErr;

    #[inline]
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let (tensor, lent) = import_for_call(obj)?;
        Ok(Self {
            typed: TypedTensor::new(tensor)?,
            lent,
            object: Object(obj.as_ptr()),
            _borrow: PhantomData,
        })
    }
}

impl<T: Element, D: Dimension, C: Constraint> TypedRef<'_, T, D, C> {
    /// A shared view (no checks left to make).
    pub fn view(&self) -> ArrayView<'_, T, D> {
        self.typed.view()
    }

    /// Extents per axis.
    pub fn shape(&self) -> &[usize] {
        self.typed.shape()
    }

    /// Byte strides per axis.
    pub fn strides(&self) -> &[isize] {
        self.typed.strides()
    }

    /// Whether the producer forbids writes.
    pub fn readonly(&self) -> bool {
        self.typed.readonly()
    }

    /// Address of the first logical element.
    pub fn data_ptr(&self) -> *mut u8 {
        self.typed.data_ptr()
    }

    /// An owning [`TypedTensor`] of the same memory, which may outlive the
    /// call.
    ///
    /// # Errors
    ///
    /// None in practice: the checks already passed once.
    pub fn to_typed(&self) -> Result<TypedTensor<T, D, C>> {
        let tensor =
            Python::attach(|py| owned(self.typed.tensor(), self.lent, &self.object.bind(py)));
        TypedTensor::new(tensor)
    }
}
