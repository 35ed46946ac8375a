//! `TypedTensor`: a tensor checked once for an element type and a rank.

use std::ops::Deref;

use ndarray::{ArrayView, ArrayViewMut, Dimension, IxDyn};

use crate::descriptor::Descriptor;
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

use super::constraints::Constraint;
use super::raw::{RawView, check_exclusive, check_writable};

/// A [`Tensor`] checked once for element type `T`, rank `D` (`IxDyn`: any
/// rank) and the [constraints](crate::constraints) `C` (fixed extents,
/// contiguity, writability; `()`: none), viewed with no further checks: the
/// argument type of a Rust function (or, with the `python` feature, a
/// `#[pyfunction]`) that wants, say, a C-contiguous `n x 3` `float32` array.
///
/// The checks are those of [`Tensor::as_ndarray_dim`]: a dtype or rank
/// mismatch is a `TypeError` that names what was expected and what came;
/// non-CPU memory, a misaligned pointer or a stride that is not a whole
/// number of elements is a `BufferError`; a failed constraint is a
/// `TypeError` too.
///
/// ```
/// use dlbridge::{Tensor, TypedTensor};
/// use ndarray::{Ix2, array};
///
/// let m: TypedTensor<f64, Ix2> = Tensor::from(array![[1.0, 2.0], [3.0, 4.0]]).try_into().unwrap();
/// // SAFETY: `m` is Rust-owned and never shared: nothing writes it.
/// assert_eq!(unsafe { m.view() }.diag().sum(), 5.0);
///
/// let err = TypedTensor::<f32, Ix2>::new(Tensor::from(vec![1.0f64])).unwrap_err();
/// assert_eq!(err.message(), "expected dtype float32, got float64 (shape [1])");
/// ```
pub struct TypedTensor<T: Element, D: Dimension = IxDyn, C: Constraint = ()> {
    tensor: Tensor,
    raw: RawView<T, D>,
    _constraint: std::marker::PhantomData<fn() -> C>,
}

// SAFETY: the raw pointer points into memory kept alive by `tensor`, which is
// `Send + Sync`; it is dereferenced only through views that borrow `self`
// under the same rules as `Tensor`'s own views, and `T: Element` is
// `Send + Sync`.
unsafe impl<T: Element, D: Dimension, C: Constraint> Send for TypedTensor<T, D, C> {}
// SAFETY: as above; `&TypedTensor` hands out shared views only (the unchecked
// mutable view is `unsafe`).
unsafe impl<T: Element, D: Dimension, C: Constraint> Sync for TypedTensor<T, D, C> {}

impl<T: Element, D: Dimension, C: Constraint> TypedTensor<T, D, C> {
    /// Checks `tensor` once.
    ///
    /// # Errors
    ///
    /// Those of [`Tensor::as_ndarray_dim`]: `Type` for another dtype or
    /// rank; `Buffer` for memory not on the CPU, a misaligned pointer or a
    /// stride that is not a whole number of elements; `Value` for a `bool`
    /// tensor holding a byte other than 0 or 1; `Type` from the first
    /// constraint of `C` it fails.
    #[inline]
    pub fn new(tensor: Tensor) -> Result<Self> {
        let raw = RawView::new(&tensor)?;
        C::check(tensor.layout(), tensor.readonly(), tensor.device())?;
        Ok(Self {
            tensor,
            raw,
            _constraint: std::marker::PhantomData,
        })
    }

    /// A shared view (no checks left to make), tracked by no one.
    ///
    /// # Safety
    ///
    /// That of [`Tensor::as_ndarray`]: while the view lives, nothing writes
    /// the elements it covers through any other path. The safe reads are
    /// the tracked borrowed arguments (`ReadonlyTensor`, `ReadwriteTensor`,
    /// feature `python`) and [`TypedTensor::view_mut`].
    pub unsafe fn view(&self) -> ArrayView<'_, T, D> {
        // SAFETY: as in `Tensor::as_ndarray_dim`; `self.tensor` keeps the
        // memory alive for the borrow of `self`; no writer is the caller's
        // promise.
        unsafe { self.raw.clone().view() }
    }

    /// An exclusive mutable view, under the rules of [`Tensor::as_ndarray_mut`].
    ///
    /// ```
    /// use dlbridge::{Tensor, TypedTensor};
    /// let mut v = TypedTensor::<u32>::new(Tensor::from(vec![1u32, 2])).unwrap();
    /// v.view_mut().unwrap()[[1]] += 40;
    /// assert_eq!(v.view_mut().unwrap()[[1]], 42);
    /// ```
    ///
    /// # Errors
    ///
    /// `Buffer` ([`Cause::Readonly`]) for a readonly tensor; `Buffer`
    /// ([`Cause::Aliasing`]) for memory Rust does not own, another clone or
    /// export of it alive, or a layout that reaches one element through two
    /// indices.
    ///
    /// [`Cause::Readonly`]: crate::Cause::Readonly
    /// [`Cause::Aliasing`]: crate::Cause::Aliasing
    pub fn view_mut(&mut self) -> Result<ArrayViewMut<'_, T, D>> {
        check_writable(&self.tensor, &self.raw)?;
        check_exclusive(&self.tensor)?;
        // SAFETY: as in `Tensor::as_ndarray_mut_dim`: this `&mut` is the only
        // path to the memory, and the view borrows it.
        Ok(unsafe { self.raw.clone().view_mut() })
    }

    /// A mutable view of memory Rust cannot prove exclusive, under the rules
    /// of [`Tensor::as_ndarray_mut_unchecked`].
    ///
    /// # Safety
    ///
    /// Exactly the contract of [`Tensor::as_ndarray_mut_unchecked`]: while
    /// the view lives, nothing else (no other view from this or any other
    /// tensor, no other Rust code, no Python code or other thread) reads or
    /// writes the elements it covers.
    ///
    /// # Errors
    ///
    /// `Buffer` ([`Cause::Readonly`]) for a readonly tensor; `Buffer`
    /// ([`Cause::Aliasing`]) for a layout that reaches one element through
    /// two indices.
    ///
    /// [`Cause::Readonly`]: crate::Cause::Readonly
    /// [`Cause::Aliasing`]: crate::Cause::Aliasing
    pub unsafe fn view_mut_unchecked(&self) -> Result<ArrayViewMut<'_, T, D>> {
        check_writable(&self.tensor, &self.raw)?;
        // SAFETY: writable and distinct checked above; exclusivity is the
        // caller's promise.
        Ok(unsafe { self.raw.clone().view_mut() })
    }

    /// The untyped tensor.
    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    /// Gives the untyped tensor back.
    pub fn into_tensor(self) -> Tensor {
        self.tensor
    }
}

impl<T: Element, D: Dimension, C: Constraint> Deref for TypedTensor<T, D, C> {
    type Target = Tensor;

    fn deref(&self) -> &Tensor {
        &self.tensor
    }
}

impl<T: Element, D: Dimension, C: Constraint> Clone for TypedTensor<T, D, C> {
    /// Another view of the same memory (as [`Tensor::clone`]).
    fn clone(&self) -> Self {
        Self {
            tensor: self.tensor.clone(),
            raw: self.raw.clone(),
            _constraint: std::marker::PhantomData,
        }
    }
}

impl<T: Element, D: Dimension, C: Constraint> std::fmt::Debug for TypedTensor<T, D, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TypedTensor").field(&self.tensor).finish()
    }
}

impl<T: Element, D: Dimension, C: Constraint> TryFrom<Tensor> for TypedTensor<T, D, C> {
    type Error = Error;

    fn try_from(tensor: Tensor) -> Result<Self> {
        Self::new(tensor)
    }
}

impl<T: Element, D: Dimension, C: Constraint> From<TypedTensor<T, D, C>> for Tensor {
    fn from(typed: TypedTensor<T, D, C>) -> Self {
        typed.tensor
    }
}

/// A typed view recipe checked once against a descriptor, with no owner:
/// what a borrowed argument of element type `T` holds while a layer above
/// keeps the memory alive (the Python layer's `ReadonlyTensor` /
/// `ReadwriteTensor`, for the length of a call). The checks read the
/// descriptor where it lies; no [`Tensor`] is built or moved.
///
/// Public in name only (its module is private): the associated type of the
/// Python layer's sealed element trait.
pub struct ViewRecipe<T, D> {
    raw: RawView<T, D>,
}

#[cfg_attr(not(feature = "python"), allow(dead_code))] // used by the Python layer
impl<T: Element, D: Dimension> ViewRecipe<T, D> {
    /// Runs [`TypedTensor::new`]'s checks (dtype, rank, CPU, alignment,
    /// element strides, `bool` bytes, then the constraints `C`) on a
    /// descriptor.
    ///
    /// # Errors
    ///
    /// Those of [`TypedTensor::new`].
    #[inline(always)]
    pub(crate) fn check<C: Constraint>(d: &Descriptor) -> Result<Self> {
        // SAFETY: a descriptor's parts are validated (`Descriptor::new`).
        let raw = unsafe { RawView::from_parts(d.data, &d.layout, d.dtype, d.device) }?;
        C::check(&d.layout, d.readonly, d.device)?;
        Ok(Self { raw })
    }

    /// A shared view.
    ///
    /// # Safety
    ///
    /// The memory the recipe was checked over must still be alive, and
    /// written by no one, for as long as the view lives.
    #[inline(always)]
    pub(crate) unsafe fn view(&self) -> ArrayView<'_, T, D> {
        // SAFETY: forwarded from the caller.
        unsafe { self.raw.clone().view() }
    }

    /// A shared view of any lifetime.
    ///
    /// # Safety
    ///
    /// As for [`ViewRecipe::view`], for all of `'b`.
    pub(crate) unsafe fn into_view<'b>(self) -> ArrayView<'b, T, D> {
        // SAFETY: forwarded from the caller.
        unsafe { self.raw.view() }
    }

    /// A mutable view of any lifetime.
    ///
    /// # Safety
    ///
    /// As for [`ViewRecipe::view`], for all of `'b`; in addition nothing
    /// else reads the elements meanwhile, the memory is writable and
    /// no element is reached through two indices.
    pub(crate) unsafe fn into_view_mut<'b>(self) -> ArrayViewMut<'b, T, D> {
        // SAFETY: forwarded from the caller.
        unsafe { self.raw.view_mut() }
    }

    /// A mutable view.
    ///
    /// # Safety
    ///
    /// As for [`ViewRecipe::into_view_mut`], while the view lives.
    pub(crate) unsafe fn view_mut(&mut self) -> ArrayViewMut<'_, T, D> {
        // SAFETY: forwarded from the caller.
        unsafe { self.raw.clone().view_mut() }
    }
}
