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
//! `nb::ndarray` do). An exact `numpy.ndarray` then comes in as its checked
//! descriptor and a reference to the array (which keeps NumPy from
//! resizing it away while the argument lives): no allocation, no owner, no
//! atomics; every other producer comes in as for `Tensor` and keeps the
//! import's owner (needed to release what the import acquired: a DLPack
//! deleter, a `Py_buffer`).
//!
//! # Why it is sound
//!
//! A borrowed argument may hold no owner at all, so nothing it holds may
//! outlive the borrow: neither type hands out a tensor (there is none to
//! clone), only metadata and views that borrow the argument, and
//! [`TensorRef::to_tensor`] / [`TypedRef::to_typed`] make an owning tensor
//! (with the producer's reference) when one must outlive the call. The `'a`
//! lifetime ties the argument to PyO3's borrow of the Python object, so the
//! argument itself cannot be kept either. While it lives it holds a
//! reference to the object, so NumPy refuses to resize the array's memory
//! away (`resize` checks the reference count), even from a callback or
//! another thread while the GIL is released.
//!
//! # Tracked
//!
//! As rust-numpy's `PyReadonlyArray`, each argument of CPU memory holds a
//! shared borrow in the process's registry ([`crate::borrow`]) from
//! extraction until it drops, so its views are safe: a
//! [`crate::ReadwriteTensor`] of overlapping memory (the same array passed
//! twice, `f(a, a)`, overlapping slices, a NumPy view, `torch.from_numpy`
//! or a `memoryview` of it, another extension's argument or a call further
//! up the stack) is refused with `BufferError` while it lives, and it is
//! refused while such a borrow is held. Memory on another device takes no
//! borrow: it has no view.
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

use super::borrow::tensors::{Guard, describe};
use super::importer::{self, Imported, Options};
use super::owner::PyOwner;
use crate::borrow::key::BorrowKey;
use crate::descriptor::Descriptor;
use crate::device::Device;
use crate::dtype::{DType, Element};
use crate::error::Result;
use crate::owner::Owner;
use crate::tensor::Tensor;
use crate::view::constraints::Constraint;
use crate::view::{TypedParts, TypedTensor};

/// A strong reference to the argument's Python object, held for as long as
/// the argument. PyO3's borrow keeps the *object* alive, but not its
/// memory: NumPy frees an array's data on `resize` when it counts no more
/// than two references, and the caller's argument plus a callback's own are
/// two. This reference is the third that makes NumPy refuse, as a `Tensor`
/// argument's owner (or rust-numpy's `PyReadonlyArray`) does: two reference
/// count updates, no allocation. Held as a `Bound` for the argument's
/// lifetime (within the thread's attachment, `'py: 'a`), so the drop is a
/// plain decrement: a `Py` asks a thread-local whether it is attached first.
struct Object<'a>(Bound<'a, PyAny>);

impl Object<'_> {
    fn bind<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.0.as_unbound().bind(py).clone()
    }
}

/// Takes the shared borrow of a descriptor's memory, CPU memory only
/// (nothing views the rest): the registry then refuses any writer of it,
/// tracked anywhere in the process, while the argument lives.
fn borrow_shared<'a, 'py: 'a>(
    obj: &Bound<'py, PyAny>,
    d: &Descriptor,
) -> PyResult<Option<Guard<'a>>> {
    if !d.device.is_cpu() {
        return Ok(None);
    }
    // The layout's proofs give the key (its span, its contiguity): no
    // second walk of the axes. The descriptor's dtype has its itemsize.
    let key = BorrowKey::of_layout(d.data.addr(), &d.layout);
    Guard::acquire(obj, key, false, || {
        describe(d.dtype, d.layout.shape(), d.source)
    })
    .map(Some)
}

/// Any array-like argument, borrowed for the call (see the module docs).
/// An exact `numpy.ndarray` is held as its checked descriptor alone.
pub struct TensorRef<'a> {
    descriptor: Descriptor,
    /// What keeps the memory alive when the import needed an owner (any
    /// producer but an exact ndarray); `None` while it is only borrowed.
    owner: Option<Owner>,
    object: Object<'a>,
    /// The shared borrow of the memory (dropped after nothing views it).
    _guard: Option<Guard<'a>>,
}

// SAFETY: the descriptor points into memory kept alive by the caller's
// borrow or by `owner` (`Send + Sync`), read only through shared views,
// which the registry's borrow keeps every tracked writer away from; the
// guard is only touched on drop, by the thread that owns the argument (it
// is not `Send`).
unsafe impl Sync for TensorRef<'_> {}

impl<'a, 'py: 'a> FromPyObject<'a, 'py> for TensorRef<'a> {
    type Error = PyErr;

    #[inline]
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let object = Object(obj.to_owned());
        importer::import(
            &obj,
            Options::BORROWED,
            #[inline(always)]
            |imported| {
                let tensor = match imported {
                    Imported::Lent(descriptor) => {
                        return Ok(Self {
                            _guard: borrow_shared(&obj, &descriptor)?,
                            descriptor,
                            owner: None,
                            object,
                        });
                    }
                    Imported::Owned(tensor) => tensor,
                    Imported::Home(tensor) => tensor.get().inner.clone(),
                };
                let (descriptor, owner) = tensor.into_parts();
                Ok(Self {
                    _guard: borrow_shared(&obj, &descriptor)?,
                    descriptor,
                    owner: Some(owner),
                    object,
                })
            },
        )
    }
}

impl TensorRef<'_> {
    /// Extents per axis.
    pub fn shape(&self) -> &[usize] {
        self.descriptor.layout.shape()
    }

    /// Byte strides per axis.
    pub fn strides(&self) -> &[isize] {
        self.descriptor.layout.strides()
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.descriptor.layout.ndim()
    }

    /// The validated layout (shape, byte strides, contiguity).
    pub fn layout(&self) -> &crate::layout::Layout {
        &self.descriptor.layout
    }

    /// Number of elements.
    pub fn size(&self) -> usize {
        self.descriptor.layout.size()
    }

    /// Bytes the elements take.
    pub fn nbytes(&self) -> usize {
        self.descriptor.layout.nbytes()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.descriptor.dtype
    }

    /// Where the memory lives.
    pub fn device(&self) -> Device {
        self.descriptor.device
    }

    /// Whether the producer forbids writes.
    pub fn readonly(&self) -> bool {
        self.descriptor.readonly
    }

    /// Address of the first logical element.
    pub fn data_ptr(&self) -> *mut u8 {
        self.descriptor.data
    }

    /// A shared view with dynamic rank.
    ///
    /// # Errors
    ///
    /// Those of [`Tensor::as_ndarray`].
    pub fn as_ndarray<T: Element>(&self) -> Result<ArrayViewD<'_, T>> {
        self.as_ndarray_dim::<T, IxDyn>()
    }

    /// The elements as one slice in memory order, when the memory is
    /// contiguous (C or Fortran order); `None` for any other layout (use
    /// [`TensorRef::as_ndarray`]). The cheapest read there is: no view is
    /// built.
    ///
    /// # Errors
    ///
    /// As [`Tensor::as_ndarray`]: `Type` for another dtype, `Buffer` for
    /// memory not on the CPU or a misaligned pointer, `Value` for a `bool`
    /// tensor holding a byte other than 0 or 1.
    pub fn as_slice<T: Element>(&self) -> Result<Option<&[T]>> {
        let d = &self.descriptor;
        let contiguous = d.layout.is_c_contiguous() || d.layout.is_f_contiguous();
        if T::DTYPE == DType::BOOL || !contiguous || d.dtype != T::DTYPE || !d.device.is_cpu() {
            // The view's checks (and their messages) decide; a bool slice
            // needs its bytes checked, which the view does.
            let view = self.as_ndarray::<T>()?;
            return Ok(if contiguous {
                view.to_slice_memory_order()
            } else {
                None
            });
        }
        let len = d.layout.size();
        if len == 0 {
            return Ok(Some(&[]));
        }
        let ptr = d.data.cast::<T>();
        if !ptr.is_aligned() {
            // The view's check says so with its message.
            self.as_ndarray::<T>()?;
        }
        // SAFETY: a contiguous layout of `len` elements of `T` (the dtype
        // checked) starting at its lowest address, the data pointer (its
        // strides are positive); validated at import to lie inside memory
        // that the caller's borrow or `owner` keeps alive for `&self`;
        // aligned (checked above); no tracked writer while the registry
        // holds this argument's shared borrow (CPU memory: checked above).
        Ok(Some(unsafe { std::slice::from_raw_parts(ptr, len) }))
    }

    /// A shared view of rank `D`.
    ///
    /// # Errors
    ///
    /// Those of [`Tensor::as_ndarray_dim`].
    pub fn as_ndarray_dim<T: Element, D: Dimension>(&self) -> Result<ArrayView<'_, T, D>> {
        let d = &self.descriptor;
        // SAFETY: the parts are this argument's validated descriptor's.
        let parts = unsafe {
            TypedParts::<T, D>::check::<()>(d.data, &d.layout, d.dtype, d.device, d.readonly)
        }?;
        // SAFETY: the memory is alive for the borrow of `self`: the caller's
        // borrow of the argument (`'a` outlives `self`) or `owner` keeps it;
        // a view exists only of CPU memory (checked), whose shared borrow
        // the registry holds until `self` drops: no tracked writer.
        Ok(unsafe { parts.into_view() })
    }

    /// An owning [`Tensor`] of the same memory, which may outlive the call
    /// (it holds the producer as a `Tensor` argument would).
    pub fn to_tensor(&self) -> Tensor {
        let owner = match &self.owner {
            Some(owner) => owner.clone(),
            None => Python::attach(|py| -> Owner {
                std::sync::Arc::new(PyOwner::new(self.object.0.as_unbound().clone_ref(py)))
            }),
        };
        // SAFETY: the descriptor's memory is kept alive by `owner`: the
        // import's own owner, or a reference to the exact ndarray it read.
        unsafe { Tensor::from_descriptor(self.descriptor.clone(), owner) }
    }
}

/// An array argument of element type `T`, rank `D` and constraints `C`,
/// borrowed for the call: [`TypedTensor`]'s checks with [`TensorRef`]'s
/// cost (see the module docs). An exact `numpy.ndarray` is checked where its
/// fields lie and held as a view recipe alone: no tensor is built or moved.
pub struct TypedRef<'a, T: Element, D: Dimension = IxDyn, C: Constraint = ()> {
    parts: TypedParts<T, D>,
    /// What keeps the memory alive when the import needed an owner (any
    /// producer but an exact ndarray); `None` while it is only borrowed.
    /// Never read: it is held to be dropped with the argument.
    _owner: Option<Owner>,
    object: Object<'a>,
    /// The shared borrow of the memory (the typed checks refuse memory
    /// off the CPU, so there always is one; dropped after the views).
    _guard: Option<Guard<'a>>,
    _constraint: PhantomData<fn() -> C>,
}

// SAFETY: the view recipe points into memory kept alive by the caller's
// borrow or by `owner` (`Send + Sync`); it is read only through shared
// views (`T: Element` is `Send + Sync`), which the registry's borrow keeps
// every tracked writer away from; the guard is only touched on drop, by
// the thread that owns the argument (it is not `Send`).
unsafe impl<T: Element, D: Dimension, C: Constraint> Sync for TypedRef<'_, T, D, C> {}

impl<'a, 'py: 'a, T: Element, D: Dimension, C: Constraint> FromPyObject<'a, 'py>
    for TypedRef<'a, T, D, C>
{
    type Error = PyErr;

    #[inline]
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let object = Object(obj.to_owned());
        importer::import(
            &obj,
            Options::BORROWED,
            #[inline(always)]
            |imported| {
                let tensor = match imported {
                    Imported::Lent(d) => {
                        // SAFETY: the parts are the validated descriptor just read.
                        let parts = unsafe {
                            TypedParts::check::<C>(d.data, &d.layout, d.dtype, d.device, d.readonly)
                        }?;
                        return Ok(Self {
                            parts,
                            _owner: None,
                            object,
                            _guard: borrow_shared(&obj, &d)?,
                            _constraint: PhantomData,
                        });
                    }
                    Imported::Owned(tensor) => tensor,
                    Imported::Home(tensor) => tensor.get().inner.clone(),
                };
                let parts = TypedParts::of::<C>(&tensor)?;
                let (descriptor, owner) = tensor.into_parts();
                Ok(Self {
                    parts,
                    _owner: Some(owner),
                    object,
                    _guard: borrow_shared(&obj, &descriptor)?,
                    _constraint: PhantomData,
                })
            },
        )
    }
}

impl<T: Element, D: Dimension, C: Constraint> TypedRef<'_, T, D, C> {
    /// A shared view (no checks left to make), tracked: the registry holds
    /// this argument's shared borrow while the view can live.
    pub fn view(&self) -> ArrayView<'_, T, D> {
        // SAFETY: the memory is alive for the borrow of `self`: the caller's
        // borrow of the argument (`'a` outlives `self`) or `owner` keeps it;
        // the registry holds its shared borrow until `self` drops, so no
        // tracked writer exists meanwhile.
        unsafe { self.parts.view() }
    }

    /// Extents per axis.
    pub fn shape(&self) -> &[usize] {
        self.parts.shape()
    }

    /// Whether the producer forbids writes.
    pub fn readonly(&self) -> bool {
        self.parts.readonly()
    }

    /// Address of the first logical element.
    pub fn data_ptr(&self) -> *mut u8 {
        self.parts.data_ptr()
    }

    /// An owning [`TypedTensor`] of the same memory, which may outlive the
    /// call (the argument imported again, with the producer's reference).
    ///
    /// # Errors
    ///
    /// None in practice: the same object passed the same checks once; a
    /// producer that answers differently the second time is refused as it
    /// would be at the boundary.
    pub fn to_typed(&self) -> PyResult<TypedTensor<T, D, C>> {
        Python::attach(|py| {
            let tensor: Tensor = self.object.bind(py).extract()?;
            Ok(TypedTensor::new(tensor)?)
        })
    }
}
