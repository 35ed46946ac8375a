//! The borrowed argument: [`TensorArg`], written by its users as
//! [`ReadonlyTensor`] (read during the call) or [`ReadwriteTensor`] (write
//! during the call), one type with one access axis, as rust-numpy's
//! `PyReadonlyArray` / `PyReadwriteArray`.
//!
//! A [`Tensor`] argument owns what keeps its memory alive, so it can be
//! stored, sent to another thread or returned: for a NumPy array that means
//! an allocation, a Python reference, and on drop attaching to the
//! interpreter, a release and a free. A function that only uses its
//! argument while it runs needs none of that: the caller holds the argument
//! for the whole call, so a `TensorArg<'a, ..>` borrows it for `'a` instead
//! (as nanobind's `nb::ndarray` does). An exact `numpy.ndarray` comes in as
//! its checked descriptor and a reference to the array (which keeps NumPy
//! from resizing it away while the argument lives): no allocation, no
//! owner, no atomics; every other producer comes in as for `Tensor` and
//! keeps the import's owner (needed to release what the import acquired: a
//! DLPack deleter, a `Py_buffer`). Both access modes take that path
//! ([`import_borrowed`], the one place the import order is decided here).
//!
//! # The parameters
//!
//! `TensorArg<'a, T, D, C, A>`: the element `T`, any [`Element`] (dtype
//! checked at extraction, views with no checks left: `view()`), or
//! [`AnyDtype`] (the default: every dtype and device, read at run time
//! through `dtype()`, `device()` and checked views `as_ndarray::<U>()`,
//! `as_slice::<U>()`); the rank `D` (`IxDyn`: any); the
//! [constraints](crate::constraints) `C` (`()`: none); the access `A`,
//! [`Shared`] or [`Exclusive`]. A typed argument is CPU memory (its views
//! read it); an [`AnyDtype`] one may live on any device, and then has no
//! view.
//!
//! # Why it is sound
//!
//! A borrowed argument may hold no owner at all, so nothing it holds may
//! outlive the borrow: it hands out no tensor (there is none to clone), only
//! metadata and views that borrow the argument; [`TensorArg::to_tensor`] /
//! [`TensorArg::to_typed`] make an owning tensor (with the producer's
//! reference) when one must outlive the call. The `'a` lifetime ties the
//! argument to PyO3's borrow of the Python object, so the argument itself
//! cannot be kept either. While it lives it holds a reference to the
//! object, so NumPy refuses to resize the array's memory away (`resize`
//! checks the reference count), even from a callback or another thread
//! while the GIL is released.
//!
//! # Tracked
//!
//! Each argument of CPU memory holds a borrow in the process's registry
//! ([`crate::borrow`]) from extraction until it drops (released exactly
//! once): a [`ReadonlyTensor`] a shared one, a [`ReadwriteTensor`] an
//! exclusive one (after refusing readonly memory and a layout that reaches
//! one element through two indices). So a reader and a writer of
//! overlapping memory (the same array passed twice, `f(a, a)`, overlapping
//! slices, a NumPy view, `torch.from_numpy` or a `memoryview` of it,
//! another extension's argument or a call further up the stack) cannot
//! both exist: the second is refused with `BufferError`. Memory on another
//! device takes no borrow: it has no view.
//!
//! ```no_run
//! use dlbridge::{ReadonlyTensor, ReadwriteTensor};
//! use ndarray::Ix1;
//! use pyo3::prelude::*;
//!
//! #[pyfunction]
//! fn total(x: ReadonlyTensor<'_, f64, Ix1>) -> f64 {
//!     x.view().sum()
//! }
//!
//! #[pyfunction]
//! fn nbytes(x: ReadonlyTensor<'_>) -> usize {
//!     x.nbytes()
//! }
//!
//! #[pyfunction]
//! fn double(mut x: ReadwriteTensor<'_, f64>) {
//!     x.view_mut().mapv_inplace(|v| 2.0 * v);
//! }
//! ```

use std::marker::PhantomData;

use ndarray::{ArrayView, ArrayViewMut, Dimension, IxDyn};
use pyo3::Borrowed;
use pyo3::prelude::*;

use super::borrow::guard::{Guard, check_writable, describe};
use super::importer::{self, Imported, Options};
use super::owner::PyOwner;
use crate::borrow::key::BorrowKey;
use crate::descriptor::{Descriptor, Source};
use crate::device::Device;
use crate::dtype::{DType, Element};
use crate::error::Result;
use crate::layout::Layout;
use crate::owner::Holder;
use crate::tensor::Tensor;
use crate::view::constraints::Constraint;
use crate::view::{TypedTensor, ViewRecipe, check_rank};

mod sealed {
    /// Only this crate's markers and element types fill the parameters.
    pub trait Sealed {}
}

/// How a [`TensorArg`] holds its memory: [`Shared`] (any number of readers)
/// or [`Exclusive`] (one writer). Sealed.
pub trait Access: sealed::Sealed {
    /// Whether the registry's borrow is exclusive.
    #[doc(hidden)]
    const EXCLUSIVE: bool;
}

/// A shared, read-only borrow: [`ReadonlyTensor`].
#[derive(Debug)]
pub enum Shared {}

/// An exclusive, writable borrow: [`ReadwriteTensor`].
#[derive(Debug)]
pub enum Exclusive {}

impl sealed::Sealed for Shared {}
impl sealed::Sealed for Exclusive {}
impl Access for Shared {
    const EXCLUSIVE: bool = false;
}
impl Access for Exclusive {
    const EXCLUSIVE: bool = true;
}

/// The element parameter of a [`TensorArg`] that accepts every dtype and
/// every device (the default): the dtype is read at run time, and each view
/// checks it (`as_ndarray::<U>()`, `as_slice::<U>()`).
#[derive(Debug)]
pub enum AnyDtype {}

/// What a [`TensorArg`]'s element parameter may be: any [`Element`]
/// (checked at extraction) or [`AnyDtype`]. Sealed; it carries what the
/// argument holds besides its descriptor (a typed view recipe, or nothing).
pub trait ArgElement: sealed::Sealed {
    /// What the checks at extraction leave for the views.
    #[doc(hidden)]
    type Recipe<D: Dimension>;

    /// The checks at extraction: dtype, rank `D`, CPU and the view's own
    /// (typed), or rank `D` alone (any dtype), then the constraints `C`.
    #[doc(hidden)]
    fn check<D: Dimension, C: Constraint>(d: &Descriptor) -> Result<Self::Recipe<D>>;
}

impl<T: Element> sealed::Sealed for T {}
impl sealed::Sealed for AnyDtype {}

impl<T: Element> ArgElement for T {
    type Recipe<D: Dimension> = ViewRecipe<T, D>;

    #[inline(always)]
    fn check<D: Dimension, C: Constraint>(d: &Descriptor) -> Result<ViewRecipe<T, D>> {
        ViewRecipe::check::<C>(d)
    }
}

impl ArgElement for AnyDtype {
    type Recipe<D: Dimension> = ();

    #[inline(always)]
    fn check<D: Dimension, C: Constraint>(d: &Descriptor) -> Result<()> {
        check_rank::<D>(d.layout.shape())?;
        C::check(&d.layout, d.readonly, d.device)
    }
}

/// An array argument borrowed for the call, read-only: a tracked shared
/// borrow (see [`TensorArg`]). `ReadonlyTensor<'_>` takes any dtype and
/// device; `ReadonlyTensor<'_, f64, Ix2, CContig>` a C-contiguous float64
/// matrix on the CPU.
pub type ReadonlyTensor<'a, T = AnyDtype, D = IxDyn, C = ()> = TensorArg<'a, T, D, C, Shared>;

/// An array argument borrowed for the call, writable: a tracked exclusive
/// borrow (see [`TensorArg`]), refused for readonly memory, a layout that
/// reaches one element through two indices, and memory that overlaps any
/// borrow already held (this call's other arguments, a call further up the
/// stack, another extension, a rust-numpy `PyReadwriteArray` or
/// `PyReadonlyArray` of the same NumPy array).
///
/// ```no_run
/// use dlbridge::{ReadonlyTensor, ReadwriteTensor};
/// use pyo3::prelude::*;
///
/// /// `out = x + y`; refuses an `out` that overlaps `x` or `y`.
/// #[pyfunction]
/// fn add(x: ReadonlyTensor<'_, f64>, y: ReadonlyTensor<'_, f64>, mut out: ReadwriteTensor<'_, f64>) {
///     ndarray::Zip::from(out.view_mut())
///         .and(&x.view())
///         .and(&y.view())
///         .for_each(|o, &a, &b| *o = a + b);
/// }
/// ```
pub type ReadwriteTensor<'a, T = AnyDtype, D = IxDyn, C = ()> = TensorArg<'a, T, D, C, Exclusive>;

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

/// A `#[pyfunction]` argument borrowed for the call, with element `T`
/// ([`AnyDtype`] or an [`Element`]), rank `D`, [constraints](crate::constraints)
/// `C` and access `A` checked at extraction; written [`ReadonlyTensor`]
/// or [`ReadwriteTensor`] (the module docs of `arg.rs` argue the design:
/// an exact `numpy.ndarray` is held as its checked descriptor alone, every
/// CPU argument holds a tracked borrow until it drops).
///
/// Extraction refuses, beside the import's own refusals: another dtype,
/// rank or constraint (`TypeError`); memory not on the CPU, misaligned, or
/// strides that are not whole elements, for a typed `T` (`BufferError`);
/// for [`Exclusive`] access, readonly memory and a layout that reaches one
/// element through two indices (`BufferError`); memory a conflicting
/// borrow holds (`BufferError`).
pub struct TensorArg<
    'a,
    T: ArgElement = AnyDtype,
    D: Dimension = IxDyn,
    C: Constraint = (),
    A: Access = Shared,
> {
    descriptor: Descriptor,
    /// The typed view recipe (`T: Element`), or nothing ([`AnyDtype`]).
    recipe: T::Recipe<D>,
    /// What keeps the memory alive when the import needed an owner (any
    /// producer but an exact ndarray); `None` while it is only borrowed.
    owner: Option<Holder>,
    object: Object<'a>,
    /// The borrow of the memory (CPU memory only), released on drop.
    guard: Option<Guard<'a>>,
    _marker: PhantomData<fn() -> (C, A)>,
}

// SAFETY: the descriptor (and recipe) point into memory kept alive by the
// caller's borrow or by `owner` (`Send + Sync`); `&self` reads it only
// through shared views (`T: Element` is `Send + Sync`), which the
// registry's borrow keeps every tracked writer away from (a mutable view
// needs `&mut self`); the Python object is touched through `&self` only by
// `to_tensor`, which attaches first (no reference count changes on a thread
// that is not attached); the guard and the object's own reference are only
// touched on drop, by the thread that owns the argument (it is not `Send`).
unsafe impl<T: ArgElement, D: Dimension, C: Constraint, A: Access> Sync
    for TensorArg<'_, T, D, C, A>
{
}

/// The import every borrowed argument makes: an exact `numpy.ndarray` as
/// its lent descriptor (no tensor, no owner: counted as `lent_arguments`),
/// a `dlbridge.Tensor` of this binary as its own parts, anything else as
/// `Tensor`'s import does, keeping the import's owner.
#[inline(always)]
fn import_borrowed(obj: &Bound<'_, PyAny>) -> PyResult<(Descriptor, Option<Holder>)> {
    importer::import(
        obj,
        Options::BORROWED,
        #[inline(always)]
        |imported| {
            let tensor = match imported {
                Imported::Lent(descriptor) => return Ok((descriptor, None)),
                Imported::Home(tensor) => tensor.get().inner.clone(),
                Imported::Owned(tensor) => tensor,
            };
            // The import's own hold on its owner: one it alone held stays
            // inline (no shared block, no locked release).
            let (descriptor, owner) = tensor.into_held_parts();
            Ok((descriptor, Some(owner)))
        },
    )
}

/// Takes the borrow of a descriptor's memory, CPU memory only (nothing
/// views the rest): the registry then refuses any conflicting borrow of it,
/// tracked anywhere in the process, while the argument lives.
#[inline(always)]
fn borrow<'a, 'py: 'a>(
    obj: &Bound<'py, PyAny>,
    d: &Descriptor,
    exclusive: bool,
) -> PyResult<Option<Guard<'a>>> {
    if !d.device.is_cpu() {
        return Ok(None);
    }
    // The layout's proofs give the key (its span, its contiguity): no
    // second walk of the axes. The descriptor's dtype has its itemsize.
    let key = BorrowKey::of_layout(d.data.addr(), &d.layout);
    Guard::acquire(obj, key, exclusive, || {
        describe(d.dtype, d.layout.shape(), d.source)
    })
    .map(Some)
}

impl<'a, 'py: 'a, T: ArgElement, D: Dimension, C: Constraint, A: Access> FromPyObject<'a, 'py>
    for TensorArg<'a, T, D, C, A>
{
    type Error = PyErr;

    /// The import, the checks of `T`, `D` and `C`, for [`Exclusive`]
    /// access writability and distinct elements, then the borrow.
    #[inline]
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let (descriptor, owner) = import_borrowed(&obj)?;
        let recipe = T::check::<D, C>(&descriptor)?;
        if A::EXCLUSIVE {
            check_writable(&descriptor)?;
        }
        let guard = borrow(&obj, &descriptor, A::EXCLUSIVE)?;
        Ok(Self {
            descriptor,
            recipe,
            owner,
            object: Object(obj.to_owned()),
            guard,
            _marker: PhantomData,
        })
    }
}

impl<T: ArgElement, D: Dimension, C: Constraint, A: Access> TensorArg<'_, T, D, C, A> {
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
    pub fn layout(&self) -> &Layout {
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

    /// The element type (`T`'s, for a typed argument).
    pub fn dtype(&self) -> DType {
        self.descriptor.dtype
    }

    /// Where the memory lives (the CPU, for a typed argument).
    pub fn device(&self) -> Device {
        self.descriptor.device
    }

    /// Whether the producer forbids writes (never, for [`Exclusive`]).
    pub fn readonly(&self) -> bool {
        self.descriptor.readonly
    }

    /// The protocol the memory came through.
    pub fn source(&self) -> Source {
        self.descriptor.source
    }

    /// An owning [`Tensor`] of the same memory, which may outlive the call
    /// (it holds the producer as a `Tensor` argument would). It takes no
    /// borrow: its views are `unsafe`.
    pub fn to_tensor(&self) -> Tensor {
        let owner = match &self.owner {
            Some(owner) => owner.clone(),
            // `&self` may be on a thread that is not attached (the type is
            // `Sync`, so `py.detach(|| x.to_tensor())` compiles): the new
            // reference is taken attached, never as a bare increment.
            None => Python::attach(|py| {
                Holder::new(PyOwner::new(self.object.0.as_unbound().clone_ref(py)))
            }),
        };
        // SAFETY: the descriptor's memory is kept alive by `owner`: the
        // import's own owner, or a reference to the exact ndarray it read.
        unsafe { Tensor::from_held(self.descriptor.clone(), owner) }
    }
}

impl<T: ArgElement, D: Dimension, C: Constraint> TensorArg<'_, T, D, C, Shared> {
    /// Address of the first logical element, to read through: a shared
    /// borrow's memory may be read by others meanwhile, or be readonly, so
    /// the pointer is `*const` (a [`ReadwriteTensor`]'s is `*mut`).
    ///
    /// ```compile_fail,E0594
    /// # use dlbridge::ReadonlyTensor;
    /// fn zero_first(x: ReadonlyTensor<'_, u8>) {
    ///     // error[E0594]: cannot assign through a `*const` pointer
    ///     unsafe { *x.data_ptr() = 0 };
    /// }
    /// ```
    ///
    /// ```
    /// # use dlbridge::ReadwriteTensor;
    /// fn zero_first(x: ReadwriteTensor<'_, u8>) {
    ///     // SAFETY (of this example): a caller passes a non-empty array.
    ///     unsafe { *x.data_ptr() = 0 };
    /// }
    /// ```
    pub fn data_ptr(&self) -> *const u8 {
        self.descriptor.data.cast_const()
    }
}

impl<T: ArgElement, D: Dimension, C: Constraint> TensorArg<'_, T, D, C, Exclusive> {
    /// Address of the first logical element, writable: the registry holds
    /// this argument's exclusive borrow, and extraction refused readonly
    /// memory (writes through it are still `unsafe`: bounds, alignment and
    /// the dtype are the caller's).
    pub fn data_ptr(&self) -> *mut u8 {
        self.descriptor.data
    }
}

impl<T: Element, D: Dimension, C: Constraint, A: Access> TensorArg<'_, T, D, C, A> {
    /// A shared view (no checks left to make), tracked: the registry holds
    /// this argument's borrow while the view can live.
    #[inline]
    pub fn view(&self) -> ArrayView<'_, T, D> {
        // SAFETY: the memory is alive for the borrow of `self`: the caller's
        // borrow of the argument (`'a` outlives `self`) or `owner` keeps it;
        // it is CPU memory (the typed checks refuse the rest), whose borrow
        // the registry holds until `self` drops, so no tracked writer but
        // this argument exists, and its `view_mut` needs `&mut self`.
        unsafe { self.recipe.view() }
    }

    /// An owning [`TypedTensor`] of the same memory, which may outlive the
    /// call (see [`TensorArg::to_tensor`]).
    ///
    /// # Errors
    ///
    /// None in practice: the checks that passed at extraction run again.
    pub fn to_typed(&self) -> Result<TypedTensor<T, D, C>> {
        TypedTensor::new(self.to_tensor())
    }
}

impl<T: Element, D: Dimension, C: Constraint> TensorArg<'_, T, D, C, Exclusive> {
    /// An exclusive mutable view (no checks left to make), tracked: the
    /// registry holds this argument's exclusive borrow.
    #[inline]
    pub fn view_mut(&mut self) -> ArrayViewMut<'_, T, D> {
        // SAFETY: as in `view`; the registry's borrow is exclusive, so no
        // other tracked view of these bytes exists until `self` drops, and
        // the view borrows `self` mutably; extraction refused readonly
        // memory and a layout that reaches one element twice (the limits
        // of the registry: `crate::borrow`'s "What it cannot see").
        unsafe { self.recipe.view_mut() }
    }
}

impl<D: Dimension, C: Constraint, A: Access> TensorArg<'_, AnyDtype, D, C, A> {
    /// A shared view as `U`, of rank `D`.
    ///
    /// # Errors
    ///
    /// Those of [`Tensor::as_ndarray_dim`]: `Type` for another dtype;
    /// `Buffer` for memory not on the CPU, a misaligned pointer or a
    /// stride that is not a whole number of elements; `Value` for a `bool`
    /// tensor holding a byte other than 0 or 1.
    pub fn as_ndarray<U: Element>(&self) -> Result<ArrayView<'_, U, D>> {
        self.as_ndarray_dim::<U, D>()
    }

    /// A shared view as `U`, of rank `E` (a fixed rank of an `IxDyn`
    /// argument, say).
    ///
    /// # Errors
    ///
    /// Those of [`TensorArg::as_ndarray`], and `Type` for another rank.
    pub fn as_ndarray_dim<U: Element, E: Dimension>(&self) -> Result<ArrayView<'_, U, E>> {
        let recipe = ViewRecipe::<U, E>::check::<()>(&self.descriptor)?;
        // SAFETY: the memory is alive for the borrow of `self`: the caller's
        // borrow of the argument (`'a` outlives `self`) or `owner` keeps it;
        // a view exists only of CPU memory (checked), whose borrow the
        // registry holds until `self` drops: no tracked writer but this
        // argument, whose mutable views need `&mut self`.
        Ok(unsafe { recipe.into_view() })
    }

    /// The elements as one slice in memory order, when the memory is
    /// contiguous (C or Fortran order); `None` for any other layout (use
    /// [`TensorArg::as_ndarray`]). The cheapest read there is: no view is
    /// built.
    ///
    /// # Errors
    ///
    /// Those of [`TensorArg::as_ndarray`].
    pub fn as_slice<U: Element>(&self) -> Result<Option<&[U]>> {
        let d = &self.descriptor;
        let contiguous = d.layout.is_c_contiguous() || d.layout.is_f_contiguous();
        if U::DTYPE == DType::BOOL || !contiguous || d.dtype != U::DTYPE || !d.device.is_cpu() {
            // The view's checks (and their messages) decide; a bool slice
            // needs its bytes checked, which the view does.
            let view = self.as_ndarray_dim::<U, IxDyn>()?;
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
        let ptr = d.data.cast::<U>();
        if !ptr.is_aligned() {
            // The view's check says so with its message.
            self.as_ndarray_dim::<U, IxDyn>()?;
        }
        // SAFETY: a contiguous layout of `len` elements of `U` (the dtype
        // checked) starting at its lowest address, the data pointer (its
        // strides are positive); validated at import to lie inside memory
        // that the caller's borrow or `owner` keeps alive for `&self`;
        // aligned (checked above); no tracked writer but this argument
        // (whose mutable views need `&mut self`) while the registry holds
        // its borrow (CPU memory: checked above).
        Ok(Some(unsafe { std::slice::from_raw_parts(ptr, len) }))
    }
}

impl<D: Dimension, C: Constraint> TensorArg<'_, AnyDtype, D, C, Exclusive> {
    /// An exclusive mutable view as `U`, of rank `D`.
    ///
    /// # Errors
    ///
    /// Those of [`TensorArg::as_ndarray`].
    pub fn as_ndarray_mut<U: Element>(&mut self) -> Result<ArrayViewMut<'_, U, D>> {
        let recipe = ViewRecipe::<U, D>::check::<()>(&self.descriptor)?;
        // SAFETY: as in `as_ndarray_dim`, and the registry's borrow is
        // exclusive, so no other tracked view of these bytes exists until
        // `self` drops, and the view borrows `self` mutably; extraction
        // refused readonly memory and a layout that reaches one element
        // twice.
        Ok(unsafe { recipe.into_view_mut() })
    }
}

impl<T: ArgElement, D: Dimension, C: Constraint, A: Access> std::fmt::Debug
    for TensorArg<'_, T, D, C, A>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(if A::EXCLUSIVE {
            "ReadwriteTensor"
        } else {
            "ReadonlyTensor"
        })
        .field("dtype", &self.descriptor.dtype)
        .field("shape", &self.shape())
        .field("device", &self.descriptor.device)
        .field("source", &self.descriptor.source)
        .field("tracked", &self.guard.is_some())
        .finish()
    }
}
