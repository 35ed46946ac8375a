//! Rust handoff: `ndarray` views of a [`Tensor`], arrays moved into one, and
//! [`TypedTensor`], a tensor checked once for an element type and a rank.
//!
//! # Soundness model
//!
//! A [`Tensor`] is one *view* of memory that others may view too: its clones
//! (`clone`, [`Tensor::view`], [`Tensor::to_readonly`] share one owner), its
//! exports (a DLPack managed tensor, a Python `dlbridge.Tensor`, a
//! `memoryview` or NumPy array built on one: each holds a reference to the
//! owner), and, for imported memory, the producer itself (the NumPy array or
//! PyTorch tensor it came from). dlbridge hands out three kinds of views.
//!
//! 1. **Shared views**: [`Tensor::as_ndarray`], [`Tensor::as_ndarray_dim`],
//!    [`TypedTensor::view`]. They borrow the tensor, so its owner (and with it
//!    the memory) outlives them, and any number may coexist. Rust code can
//!    write the memory only through the two kinds below, and both exclude
//!    shared Rust views for as long as they live.
//!
//! 2. **Exclusive mutable views**, safe: [`Tensor::as_ndarray_mut`],
//!    [`Tensor::as_ndarray_mut_dim`], [`TypedTensor::view_mut`]. They take
//!    `&mut self` and succeed only when
//!    - the tensor is writable (a readonly tensor is never viewed mutably);
//!    - the memory is *Rust-owned*: allocated by dlbridge
//!      ([`Tensor::zeros`], [`Tensor::empty`], [`Tensor::copy`]) or moved in
//!      from an `ndarray::Array` or a `Vec`. Such an owner is the only handle
//!      on its allocation: no producer, no Python object, no other owner can
//!      reach the bytes except through a reference to this owner;
//!    - this tensor holds the *only* reference to that owner (`Arc` strong
//!      count 1, no weak reference): no clone, and no export still alive;
//!    - no element is reachable through two indices (a broadcast stride of 0
//!      would let `iter_mut` hand out two `&mut` to one element).
//!
//!    `&mut self` alone would not be enough (a `Tensor` is `Clone` and clones
//!    share memory), and the count alone would not be either (imported memory
//!    has viewers dlbridge does not count, such as the NumPy array a capsule
//!    came from). Together they make this `&mut Tensor` the one path to the
//!    memory, and the view borrows it mutably for its whole life, so no
//!    clone, export, shared view or [`Tensor::copy`] can be made until the
//!    view is gone. The count is read and then followed by an acquire fence
//!    (the pattern `Arc`'s own drop uses), so whatever a clone did on another
//!    thread before it was dropped happens-before the writes.
//!
//! 3. **Unchecked mutable views**, `unsafe`:
//!    [`Tensor::as_ndarray_mut_unchecked`], [`TypedTensor::view_mut_unchecked`].
//!    For memory Rust cannot prove exclusive, which is everything imported
//!    from Python: what an extension function that updates its argument in
//!    place needs. They still refuse readonly tensors and self-overlapping
//!    layouts; the caller promises that nothing else touches the elements
//!    while the view lives (their `# Safety` sections say exactly what).
//!    [`Tensor::may_share_memory`] helps check two arguments against each other.
//!
//! ## Limitations
//!
//! - **The foreign side is not checked.** The producer of imported memory
//!   (Python code, the library that allocated it, another thread) can write
//!   what a shared view reads, or touch what an unchecked mutable view
//!   writes; Rust cannot see it. Like rust-numpy, dlbridge assumes that
//!   does not happen while a view lives. In an extension function that holds
//!   the GIL, neither runs Python code nor releases the GIL (`py.detach`)
//!   while a view lives, no Python code can run, so the assumption holds;
//!   releasing the GIL while viewing Python memory puts the duty on the
//!   extension author.
//! - **No borrow tracking.** Two tensors imported from one NumPy array share
//!   no owner, so nothing in dlbridge relates their views. That is why the
//!   mutable path for imported memory is `unsafe` rather than checked at run
//!   time: a registry of borrowed address ranges (rust-numpy's approach)
//!   would catch Rust-side aliasing, but could not make the foreign side
//!   sound, and every shared view would pay a global lock and be a guard
//!   instead of a plain `ArrayView`.
//! - **Conservative.** The safe mutable path refuses all imported memory
//!   (even when it happens to be exclusive) and Rust-owned memory with a
//!   live clone or export; self-overlap is judged by a sufficient test
//!   (sorted strides each beyond the reach of the smaller ones), which may
//!   refuse an exotic layout whose elements are in fact distinct.
//! - **Element validity.** `bool` is the one element type with invalid bit
//!   patterns. Every `bool` view checks that each byte is 0 or 1 when it is
//!   made (one pass over the elements; a `ValueError` otherwise), so neither
//!   [`Tensor::view`] nor a producer storing other bytes can make safe code
//!   read an invalid `bool`. A byte changed to something else *while* a
//!   view lives is the foreign-side case above, or breaks the contract of
//!   the unchecked mutable view that wrote it.

use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};

use ndarray::{
    ArrayView, ArrayViewD, ArrayViewMut, ArrayViewMutD, Axis, Dimension, IxDyn, ShapeBuilder,
};

use crate::descriptor::{Descriptor, Parts};
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::owner::RustValue;
use crate::tensor::{Source, Tensor};

/// A checked recipe for an `ndarray` view: the element at the lowest address,
/// non-negative element strides, and which axes to flip back afterwards.
struct RawView<T, D> {
    ptr: NonNull<T>,
    dim: D,
    strides: D,
    /// Bit `k` set: axis `k` has a negative stride and is inverted after
    /// construction (ndarray's constructors want non-negative strides).
    inverted: u64,
    _element: PhantomData<T>,
}

impl<T, D: Clone> Clone for RawView<T, D> {
    fn clone(&self) -> Self {
        Self {
            ptr: self.ptr,
            dim: self.dim.clone(),
            strides: self.strides.clone(),
            inverted: self.inverted,
            _element: PhantomData,
        }
    }
}

/// Inverts the axes whose bits are set (see [`RawView`]).
fn flip_back<S: ndarray::RawData, D: Dimension>(
    inverted: u64,
    view: &mut ndarray::ArrayBase<S, D>,
) {
    let mut bits = inverted;
    while bits != 0 {
        view.invert_axis(Axis(bits.trailing_zeros() as usize));
        bits &= bits - 1;
    }
}

impl<T: Element, D: Dimension> RawView<T, D> {
    /// Checks `tensor` for a view as `T` with dimension `D`: dtype, rank,
    /// device, alignment and element strides.
    fn new(tensor: &Tensor) -> Result<Self> {
        if tensor.dtype() != T::DTYPE {
            return Err(Error::type_error(format!(
                "expected dtype {}, got {} (shape {:?})",
                T::DTYPE,
                tensor.dtype(),
                tensor.shape()
            )));
        }
        let ndim = tensor.ndim();
        if let Some(expected) = D::NDIM
            && expected != ndim
        {
            return Err(Error::type_error(format!(
                "expected a {expected}-d tensor, got a {ndim}-d tensor (shape {:?})",
                tensor.shape()
            )));
        }
        tensor.device().ensure_cpu("an ndarray view")?;
        let mut dim = D::zeros(ndim);
        dim.slice_mut().copy_from_slice(tensor.shape());
        let mut strides = D::zeros(ndim);
        if tensor.size() == 0 {
            // No element is ever read: an aligned dangling pointer and zero
            // strides are valid for ndarray, whatever the producer's pointer.
            return Ok(Self {
                ptr: NonNull::dangling(),
                dim,
                strides,
                inverted: 0,
                _element: PhantomData,
            });
        }
        let mut ptr = tensor.data_ptr().cast::<T>();
        if ptr.is_null() {
            return Err(Error::buffer(format!(
                "tensor of shape {:?} has a NULL data pointer",
                tensor.shape()
            )));
        }
        if !ptr.is_aligned() {
            return Err(Error::buffer(format!(
                "data pointer {ptr:p} is not aligned for {} ({} bytes)",
                T::DTYPE,
                align_of::<T>()
            )));
        }
        let itemsize = size_of::<T>() as isize;
        let mut inverted = 0u64;
        for (axis, (&extent, &stride)) in tensor.shape().iter().zip(tensor.strides()).enumerate() {
            if extent <= 1 {
                // The stride of a length-1 axis is never applied (NumPy may
                // leave any value there); 0 keeps ndarray's checks simple.
                continue;
            }
            if stride % itemsize != 0 {
                return Err(Error::buffer(format!(
                    "byte stride {stride} on axis {axis} is not a multiple of the itemsize {itemsize}"
                )));
            }
            let step = stride / itemsize;
            if step < 0 {
                // Start from this axis' far end, which has the lowest address.
                // SAFETY: the layout was validated at import, so all
                // `extent` elements along the axis lie inside the tensor's
                // span, which is inside one live allocation (the
                // construction invariant of `Tensor`); `(extent - 1) * step`
                // fits in isize because the span does.
                ptr = unsafe { ptr.offset(step * (extent as isize - 1)) };
                inverted |= 1 << axis;
            }
            strides[axis] = step.unsigned_abs();
        }
        let raw = Self {
            ptr: NonNull::new(ptr).expect("an in-bounds offset of a non-null pointer"),
            dim,
            strides,
            inverted,
            _element: PhantomData,
        };
        if T::DTYPE == crate::DType::BOOL {
            raw.check_bools()?;
        }
        Ok(raw)
    }

    /// `bool` is the one element type with invalid bit patterns, and safe
    /// code can reach any byte as `bool` ([`Tensor::view`] reinterprets
    /// `uint8`; NumPy's `view(bool)` does too), so every byte is checked to
    /// be 0 or 1 before a `bool` view exists.
    fn check_bools(&self) -> Result<()> {
        // SAFETY: the same elements as this recipe's view, read as `u8`
        // (size and alignment 1, like `bool`, and every byte is a valid
        // `u8`); only read, during this call, while the caller's `&Tensor`
        // keeps the memory alive.
        let mut bytes = unsafe {
            ArrayView::<u8, D>::from_shape_ptr(
                self.dim.clone().strides(self.strides.clone()),
                self.ptr.as_ptr().cast::<u8>().cast_const(),
            )
        };
        flip_back(self.inverted, &mut bytes);
        match bytes.indexed_iter().find(|&(_, &b)| b > 1) {
            None => Ok(()),
            Some((index, byte)) => Err(Error::value(format!(
                "not a valid bool tensor: the byte at index {:?} is {byte}, not 0 or 1",
                ndarray::IntoDimension::into_dimension(index).slice()
            ))),
        }
    }

    /// # Safety
    ///
    /// The tensor this recipe came from must outlive `'a`, and no element may
    /// be written through another path during `'a`.
    unsafe fn view<'a>(self) -> ArrayView<'a, T, D> {
        let (ptr, inverted) = (self.ptr, self.inverted);
        let shape = self.dim.strides(self.strides);
        // SAFETY: `new` checked alignment and element strides; the pointer is
        // the lowest-addressed element and the strides are non-negative, so
        // every reachable element is inside the validated span (an empty view
        // reaches nothing); the element count and span fit in isize (layout
        // validation); lifetime and aliasing are the caller's promise.
        let mut view = unsafe { ArrayView::from_shape_ptr(shape, ptr.as_ptr().cast_const()) };
        flip_back(inverted, &mut view);
        view
    }

    /// # Safety
    ///
    /// As for [`RawView::view`], and in addition no element may be read or
    /// written through another path during `'a`, the tensor must be
    /// writable, and [`RawView::overlaps_itself`] must be false.
    unsafe fn view_mut<'a>(self) -> ArrayViewMut<'a, T, D> {
        let (ptr, inverted) = (self.ptr, self.inverted);
        let shape = self.dim.strides(self.strides);
        // SAFETY: as in `view`; exclusivity, writability and distinct
        // elements are the caller's promise.
        let mut view = unsafe { ArrayViewMut::from_shape_ptr(shape, ptr.as_ptr()) };
        flip_back(inverted, &mut view);
        view
    }

    /// Whether two different indices may reach one element (a sufficient
    /// test: sorted by stride, each axis must step past everything the
    /// smaller-strided axes reach).
    fn overlaps_itself(&self) -> bool {
        if self.dim.size() == 0 {
            return false;
        }
        let mut axes = [(0usize, 0usize); crate::layout::MAX_NDIM];
        let mut n = 0;
        for (&extent, &stride) in self.dim.slice().iter().zip(self.strides.slice()) {
            if extent > 1 {
                axes[n] = (stride, extent);
                n += 1;
            }
        }
        let axes = &mut axes[..n];
        axes.sort_unstable();
        let mut reach = 0usize;
        for &(stride, extent) in axes.iter() {
            if stride <= reach {
                return true;
            }
            // Fits: the validated span bounds the sum.
            reach = reach.saturating_add((extent - 1).saturating_mul(stride));
        }
        false
    }
}

/// Refusals shared by every mutable view: readonly memory, overlapping layouts.
fn check_writable<T: Element, D: Dimension>(tensor: &Tensor, raw: &RawView<T, D>) -> Result<()> {
    if tensor.readonly() {
        return Err(Error::buffer(format!(
            "cannot view a readonly tensor (source {}) mutably",
            tensor.source().as_str()
        )));
    }
    if raw.overlaps_itself() {
        return Err(Error::buffer(format!(
            "cannot view shape {:?} with byte strides {:?} mutably: two indices may reach one element",
            tensor.shape(),
            tensor.strides()
        )));
    }
    Ok(())
}

/// The exclusivity proof of the safe mutable path (see the module docs).
/// Callers hold `&mut Tensor`.
fn check_exclusive(tensor: &Tensor) -> Result<()> {
    let owner = tensor.owner();
    if !owner.is_rust_owned() {
        return Err(Error::buffer(format!(
            "cannot prove exclusive access to memory imported through {}: its producer may \
             view it too (use the unsafe as_ndarray_mut_unchecked)",
            tensor.source().as_str()
        )));
    }
    let others = Arc::strong_count(owner) - 1 + Arc::weak_count(owner);
    if others != 0 {
        return Err(Error::buffer(format!(
            "cannot view mutably: {others} other view(s) or export(s) share this memory"
        )));
    }
    // Pairs with the release decrement of the last other reference: what it
    // did with the memory happens-before our writes.
    fence(Ordering::Acquire);
    Ok(())
}

impl Tensor {
    /// A zero-copy `ndarray` view of the elements, as Rust type `T`, of any rank.
    ///
    /// Refuses (`TypeError`) a dtype other than `T::DTYPE`, and
    /// (`BufferError`) non-CPU memory, a misaligned pointer, or a stride that
    /// is not a multiple of `size_of::<T>()`. Negative strides, 0-d, empty
    /// and 64-d tensors are fine.
    ///
    /// ```
    /// use dlbridge::{DType, Tensor};
    /// let t = Tensor::zeros(&[2, 2], DType::FLOAT64).unwrap();
    /// let v = t.as_ndarray::<f64>().unwrap();
    /// assert_eq!(v.sum(), 0.0);
    /// assert!(t.as_ndarray::<f32>().is_err());
    /// ```
    pub fn as_ndarray<T: Element>(&self) -> Result<ArrayViewD<'_, T>> {
        self.as_ndarray_dim::<T, IxDyn>()
    }

    /// Like [`Tensor::as_ndarray`], with a fixed rank: `D` is `Ix0` … `Ix6`
    /// (or `IxDyn` for any). A tensor of another rank is a `TypeError`
    /// naming both ranks.
    ///
    /// ```
    /// use dlbridge::Tensor;
    /// use ndarray::{Ix1, Ix2, array};
    /// let t = Tensor::from(array![[1i32, 2, 3], [4, 5, 6]]);
    /// let m = t.as_ndarray_dim::<i32, Ix2>().unwrap();
    /// assert_eq!(m.row(1).sum(), 15);
    /// let err = t.as_ndarray_dim::<i32, Ix1>().unwrap_err();
    /// assert_eq!(err.message(), "expected a 1-d tensor, got a 2-d tensor (shape [2, 3])");
    /// ```
    pub fn as_ndarray_dim<T: Element, D: Dimension>(&self) -> Result<ArrayView<'_, T, D>> {
        let raw = RawView::<T, D>::new(self)?;
        // SAFETY: the view borrows `self`, whose owner keeps the memory
        // alive; Rust writes exclude shared views (module docs), and the
        // foreign side is the documented limitation.
        Ok(unsafe { raw.view() })
    }

    /// A mutable view of Rust-owned memory that no one else can see.
    ///
    /// Succeeds only for a writable tensor whose memory Rust owns (from
    /// [`Tensor::zeros`], [`Tensor::empty`], [`Tensor::copy`], or an
    /// `ndarray::Array` or `Vec` moved in) and that has no clone and no
    /// export alive, and whose layout reaches each element once; otherwise
    /// a `BufferError` (dtype: `TypeError`). The module docs argue why this
    /// is sound. For imported memory use the `unsafe`
    /// [`Tensor::as_ndarray_mut_unchecked`].
    ///
    /// ```
    /// use dlbridge::Tensor;
    /// let mut t = Tensor::from(vec![1.0f32, 2.0, 3.0]);
    /// t.as_ndarray_mut::<f32>().unwrap().mapv_inplace(|x| x * 10.0);
    /// assert_eq!(t.as_ndarray::<f32>().unwrap().sum(), 60.0);
    ///
    /// let other = t.clone(); // a second view of the same memory
    /// assert!(t.as_ndarray_mut::<f32>().is_err());
    /// drop(other);
    /// assert!(t.to_readonly().as_ndarray_mut::<f32>().is_err());
    /// ```
    pub fn as_ndarray_mut<T: Element>(&mut self) -> Result<ArrayViewMutD<'_, T>> {
        self.as_ndarray_mut_dim::<T, IxDyn>()
    }

    /// [`Tensor::as_ndarray_mut`] with a fixed rank `D`.
    ///
    /// ```
    /// use dlbridge::{DType, Tensor};
    /// use ndarray::Ix2;
    /// let mut t = Tensor::zeros(&[2, 3], DType::INT64).unwrap();
    /// t.as_ndarray_mut_dim::<i64, Ix2>().unwrap()[[1, 2]] = 7;
    /// assert_eq!(t.as_ndarray_dim::<i64, Ix2>().unwrap()[[1, 2]], 7);
    /// ```
    pub fn as_ndarray_mut_dim<T: Element, D: Dimension>(
        &mut self,
    ) -> Result<ArrayViewMut<'_, T, D>> {
        let raw = RawView::<T, D>::new(self)?;
        check_writable(self, &raw)?;
        check_exclusive(self)?;
        // SAFETY: writable, distinct elements, and exclusive: `check_exclusive`
        // proved this `&mut Tensor` is the only path to the memory, and the
        // view borrows it mutably for its whole life (module docs).
        Ok(unsafe { raw.view_mut() })
    }

    /// A mutable view of memory Rust cannot prove exclusive (anything
    /// imported from Python), with rank `D` (`IxDyn` for any rank).
    ///
    /// Still refuses (`BufferError`) readonly tensors and layouts that reach
    /// one element through two indices, besides everything
    /// [`Tensor::as_ndarray_dim`] refuses.
    ///
    /// # Safety
    ///
    /// For as long as the returned view lives, no element it covers may be
    /// read or written through any other path:
    /// - no other `ndarray` view (shared or mutable) of that memory may be
    ///   alive or be created: from this tensor, its clones, or another
    ///   tensor importing the same memory (two arguments of one function
    ///   may be the same array: [`Tensor::may_share_memory`] tells);
    /// - no other Rust code may read or write it (a [`Tensor::copy`], an
    ///   export consumed in Rust, a raw pointer from [`Tensor::data_ptr`]);
    /// - no foreign code may access it: in a Python extension, hold the GIL
    ///   for the view's whole life and neither call into Python nor release
    ///   the GIL while it lives, and do not hand the memory to another
    ///   thread or library meanwhile.
    ///
    /// Values written through it are valid `T`s; if the same bytes are also
    /// viewed as another dtype elsewhere, they must stay valid for it too
    /// (0 or 1 where they are viewed as `bool`).
    ///
    /// ```
    /// use dlbridge::Tensor;
    /// use ndarray::IxDyn;
    /// let t = Tensor::from(vec![1u8, 2, 3]);
    /// let alias = t.clone(); // the safe path would refuse now
    /// {
    ///     // SAFETY: `alias` is not used while the view lives.
    ///     let mut view = unsafe { t.as_ndarray_mut_unchecked::<u8, IxDyn>() }.unwrap();
    ///     view[[0]] = 9;
    /// }
    /// assert_eq!(alias.as_ndarray::<u8>().unwrap()[[0]], 9);
    /// ```
    pub unsafe fn as_ndarray_mut_unchecked<T: Element, D: Dimension>(
        &self,
    ) -> Result<ArrayViewMut<'_, T, D>> {
        let raw = RawView::<T, D>::new(self)?;
        check_writable(self, &raw)?;
        // SAFETY: writable and distinct elements checked above; exclusivity
        // is the caller's promise; `self` keeps the memory alive.
        Ok(unsafe { raw.view_mut() })
    }

    /// Whether the two tensors' byte spans may overlap (a conservative
    /// test, like NumPy's `may_share_memory`): `false` proves they share no
    /// element. Tensors on different devices, and empty ones, never overlap.
    ///
    /// ```
    /// use dlbridge::Tensor;
    /// let a = Tensor::from(vec![0u16; 4]);
    /// let b = Tensor::from(vec![0u16; 4]);
    /// assert!(a.may_share_memory(&a.clone()));
    /// assert!(!a.may_share_memory(&b));
    /// ```
    pub fn may_share_memory(&self, other: &Tensor) -> bool {
        if self.device() != other.device() || self.size() == 0 || other.size() == 0 {
            return false;
        }
        let range = |t: &Tensor| {
            let (low, high) = t.layout().span();
            let base = t.data_ptr() as usize;
            (
                base.wrapping_add_signed(low),
                base.wrapping_add_signed(high),
            )
        };
        let (a_low, a_high) = range(self);
        let (b_low, b_high) = range(other);
        a_low < b_high && b_low < a_high
    }
}

/// Moves a Rust array into a tensor with no copy; the array's allocation
/// becomes the owner, freed once, when the last view (Rust or Python) is
/// gone, on whichever thread that is. Any strides (negative too) are kept.
/// Refuses (`Value`) more than [`MAX_NDIM`](crate::MAX_NDIM) axes, which an
/// `ndarray::ArrayD` allows and no protocol does.
fn tensor_from_array<T: Element, D: Dimension>(array: ndarray::Array<T, D>) -> Result<Tensor> {
    if array.ndim() > crate::layout::MAX_NDIM {
        return Err(Error::value(format!(
            "an array with {} axes cannot become a Tensor: ndim {} exceeds the maximum of {}",
            array.ndim(),
            array.ndim(),
            crate::layout::MAX_NDIM
        )));
    }
    let size = size_of::<T>() as isize;
    let mut strides = [0isize; crate::layout::MAX_NDIM];
    for (out, s) in strides.iter_mut().zip(array.strides()) {
        *out = s * size;
    }
    let layout = Layout::new(array.shape(), Some(&strides[..array.ndim()]), size as usize)?;
    let descriptor = Descriptor::new(Parts {
        what: "ndarray::Array",
        base: array.as_ptr().cast_mut().cast::<u8>(),
        offset: 0,
        layout,
        dtype: T::DTYPE,
        device: crate::Device::CPU,
        readonly: false,
        source: Source::Rust,
        len: None,
    })?;
    let array: ndarray::ArrayD<T> = array.into_dyn();
    // SAFETY: moving the array into the owner does not move its heap
    // buffer, so the descriptor keeps describing live memory that the owner
    // alone holds (the exclusivity `as_ndarray_mut` relies on).
    Ok(unsafe { Tensor::from_descriptor(descriptor, Arc::new(RustValue::new(array))) })
}

/// `From` for the fixed ranks (at most six axes: always carried) and
/// `TryFrom` for `ArrayD`, whose rank may exceed [`MAX_NDIM`](crate::MAX_NDIM).
macro_rules! from_fixed_rank {
    ($($dim:ty),*) => {$(
        impl<T: Element> From<ndarray::Array<T, $dim>> for Tensor {
            /// Moves a Rust array into a tensor with no copy; its allocation
            /// becomes the owner, freed once, when the last view is gone.
            fn from(array: ndarray::Array<T, $dim>) -> Self {
                tensor_from_array(array).unwrap_or_else(|e| {
                    unreachable!("a fixed-rank array always has a valid layout: {e}")
                })
            }
        }

        impl<T: Element> From<ndarray::Array<T, $dim>> for TypedTensor<T, $dim> {
            /// Moves a Rust array in with no copy (see `From<Array> for Tensor`).
            fn from(array: ndarray::Array<T, $dim>) -> Self {
                let dim = array.raw_dim();
                Self::new(Tensor::from(array)).unwrap_or_else(|e| {
                    unreachable!("an array of shape {dim:?} always views as itself: {e}")
                })
            }
        }
    )*};
}

from_fixed_rank!(
    ndarray::Ix0,
    ndarray::Ix1,
    ndarray::Ix2,
    ndarray::Ix3,
    ndarray::Ix4,
    ndarray::Ix5,
    ndarray::Ix6
);

impl<T: Element> TryFrom<ndarray::ArrayD<T>> for Tensor {
    type Error = Error;

    /// Moves a dynamic-rank Rust array into a tensor with no copy (as the
    /// fixed-rank `From` does).
    ///
    /// # Errors
    ///
    /// `Value` when the array has more than [`MAX_NDIM`](crate::MAX_NDIM)
    /// (64) axes.
    fn try_from(array: ndarray::ArrayD<T>) -> Result<Self> {
        tensor_from_array(array)
    }
}

impl<T: Element> TryFrom<ndarray::ArrayD<T>> for TypedTensor<T, ndarray::IxDyn> {
    type Error = Error;

    /// Moves a dynamic-rank Rust array in with no copy.
    ///
    /// # Errors
    ///
    /// `Value` when the array has more than 64 axes.
    fn try_from(array: ndarray::ArrayD<T>) -> Result<Self> {
        Self::new(tensor_from_array(array)?)
    }
}

impl<T: Element> From<Vec<T>> for Tensor {
    /// Moves a vector into a 1-d tensor with no copy.
    fn from(values: Vec<T>) -> Self {
        Tensor::from(ndarray::Array1::from_vec(values))
    }
}

/// A [`Tensor`] checked once for element type `T` and rank `D` (`IxDyn`:
/// any rank), viewed with no further checks: the argument type of a Rust
/// function (or, with the `python` feature, a `#[pyfunction]`) that wants,
/// say, a 2-d `float32` array.
///
/// The checks are those of [`Tensor::as_ndarray_dim`]: a dtype or rank
/// mismatch is a `TypeError` that names what was expected and what came;
/// non-CPU memory, a misaligned pointer or a stride that is not a whole
/// number of elements is a `BufferError`.
///
/// ```
/// use dlbridge::{Tensor, TypedTensor};
/// use ndarray::{Ix2, array};
///
/// let m: TypedTensor<f64, Ix2> = Tensor::from(array![[1.0, 2.0], [3.0, 4.0]]).try_into().unwrap();
/// assert_eq!(m.view().diag().sum(), 5.0);
///
/// let err = TypedTensor::<f32, Ix2>::new(Tensor::from(vec![1.0f64])).unwrap_err();
/// assert_eq!(err.message(), "expected dtype float32, got float64 (shape [1])");
/// ```
pub struct TypedTensor<T: Element, D: Dimension = IxDyn> {
    tensor: Tensor,
    raw: RawView<T, D>,
}

// SAFETY: the raw pointer points into memory kept alive by `tensor`, which is
// `Send + Sync`; it is dereferenced only through views that borrow `self`
// under the same rules as `Tensor`'s own views, and `T: Element` is
// `Send + Sync`.
unsafe impl<T: Element, D: Dimension> Send for TypedTensor<T, D> {}
// SAFETY: as above; `&TypedTensor` hands out shared views only (the unchecked
// mutable view is `unsafe`).
unsafe impl<T: Element, D: Dimension> Sync for TypedTensor<T, D> {}

impl<T: Element, D: Dimension> TypedTensor<T, D> {
    /// Checks `tensor` once; see the type's docs for the refusals.
    pub fn new(tensor: Tensor) -> Result<Self> {
        let raw = RawView::new(&tensor)?;
        Ok(Self { tensor, raw })
    }

    /// A shared view (no checks left to make).
    pub fn view(&self) -> ArrayView<'_, T, D> {
        // SAFETY: as in `Tensor::as_ndarray_dim`; `self.tensor` keeps the
        // memory alive for the borrow of `self`.
        unsafe { self.raw.clone().view() }
    }

    /// An exclusive mutable view, under the rules of [`Tensor::as_ndarray_mut`].
    ///
    /// ```
    /// use dlbridge::{Tensor, TypedTensor};
    /// let mut v = TypedTensor::<u32>::new(Tensor::from(vec![1u32, 2])).unwrap();
    /// v.view_mut().unwrap()[[1]] += 40;
    /// assert_eq!(v.view()[[1]], 42);
    /// ```
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

impl<T: Element, D: Dimension> Deref for TypedTensor<T, D> {
    type Target = Tensor;

    fn deref(&self) -> &Tensor {
        &self.tensor
    }
}

impl<T: Element, D: Dimension> Clone for TypedTensor<T, D> {
    /// Another view of the same memory (as [`Tensor::clone`]).
    fn clone(&self) -> Self {
        Self {
            tensor: self.tensor.clone(),
            raw: self.raw.clone(),
        }
    }
}

impl<T: Element, D: Dimension> std::fmt::Debug for TypedTensor<T, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TypedTensor").field(&self.tensor).finish()
    }
}

impl<T: Element, D: Dimension> TryFrom<Tensor> for TypedTensor<T, D> {
    type Error = Error;

    fn try_from(tensor: Tensor) -> Result<Self> {
        Self::new(tensor)
    }
}

impl<T: Element, D: Dimension> From<TypedTensor<T, D>> for Tensor {
    fn from(typed: TypedTensor<T, D>) -> Self {
        typed.tensor
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::error::ErrorKind;
    use ndarray::{Array, Array2, Ix2, Ix3, s};

    #[test]
    fn views_follow_strides_including_negative() {
        let mut a = Array::from_shape_fn((3, 4), |(i, j)| (i * 10 + j) as i64);
        a.invert_axis(Axis(0));
        a.slice_collapse(s![.., 1..;2]);
        let expect = a.clone();
        let ptr = a.as_ptr();
        let t = Tensor::from(a);
        assert_eq!(t.strides(), &[-32, 16]);
        assert_eq!(t.data_ptr().cast_const(), ptr.cast());
        let v = t.as_ndarray::<i64>().unwrap();
        assert_eq!(v, expect.view().into_dyn());
        assert_eq!(v.as_ptr(), ptr);
        assert_eq!(v[[0, 0]], 21);
    }

    #[test]
    fn refusals() {
        let t = Tensor::from(Array2::<f32>::zeros((2, 2)));
        assert_eq!(t.as_ndarray::<f64>().unwrap_err().kind(), ErrorKind::Type);
        let err = t.as_ndarray_dim::<f32, Ix3>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Type);
        assert!(
            err.message()
                .contains("expected a 3-d tensor, got a 2-d tensor")
        );
        assert_eq!(t.as_ndarray_dim::<f32, Ix2>().unwrap().dim(), (2, 2));
        let zero_d = Tensor::from(ndarray::arr0(5u8));
        assert_eq!(zero_d.as_ndarray::<u8>().unwrap()[[]], 5);
        let empty = Tensor::zeros(&[0, 3], DType::FLOAT32).unwrap();
        assert_eq!(empty.as_ndarray::<f32>().unwrap().len(), 0);
        let deep = Tensor::zeros(&[1; 64], DType::UINT16).unwrap();
        assert_eq!(deep.as_ndarray::<u16>().unwrap().ndim(), 64);
    }

    #[test]
    fn overlap_test_is_sufficient_by_brute_force() {
        let overlaps = |dim: &[usize], strides: &[usize]| {
            let raw = RawView::<u8, IxDyn> {
                ptr: NonNull::dangling(),
                dim: IxDyn(dim),
                strides: IxDyn(strides),
                inverted: 0,
                _element: PhantomData,
            };
            raw.overlaps_itself()
        };
        assert!(!overlaps(&[3, 4], &[4, 1]));
        assert!(!overlaps(&[3, 4], &[1, 3]));
        assert!(overlaps(&[3, 4], &[0, 1]), "broadcast");
        assert!(overlaps(&[3, 4], &[2, 1]), "rows overlap");
        assert!(!overlaps(&[3, 1], &[1, 0]), "length-1 axes never step");
        assert!(!overlaps(&[0, 4], &[0, 0]), "empty");
        assert!(!overlaps(&[2, 2, 2], &[1, 4, 2]));
        // Every layout the test accepts really has distinct elements.
        let (max_extent, max_stride) = if cfg!(miri) { (3, 3) } else { (4, 6) };
        let mut accepted = 0;
        for e0 in 0..max_extent {
            for e1 in 0..max_extent {
                for e2 in 0..max_extent {
                    for s0 in 0..max_stride {
                        for s1 in 0..max_stride {
                            for s2 in 0..max_stride {
                                let (dim, strides) = ([e0, e1, e2], [s0, s1, s2]);
                                if overlaps(&dim, &strides) {
                                    continue;
                                }
                                accepted += 1;
                                let mut seen = std::collections::HashSet::new();
                                for i in 0..e0 {
                                    for j in 0..e1 {
                                        for k in 0..e2 {
                                            assert!(
                                                seen.insert(i * s0 + j * s1 + k * s2),
                                                "{dim:?} {strides:?} accepted but overlaps"
                                            );
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(accepted > 100, "{accepted}");
    }
}
