//! The raw view: a checked recipe for an `ndarray` view of tensor memory,
//! and the writability and exclusivity checks of the mutable paths.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{Ordering, fence};

use ndarray::{ArrayView, ArrayViewMut, Axis, Dimension, ShapeBuilder};

use crate::device::Device;
use crate::dtype::{DType, Element};
use crate::error::{Cause, Error, Result};
use crate::layout::Layout;
use crate::tensor::Tensor;

/// A checked recipe for an `ndarray` view: the element at the lowest address,
/// non-negative element strides, and which axes to flip back afterwards.
pub(super) struct RawView<T, D> {
    pub(super) ptr: NonNull<T>,
    pub(super) dim: D,
    pub(super) strides: D,
    /// Bit `k` set: axis `k` has a negative stride and is inverted after
    /// construction (ndarray's constructors want non-negative strides).
    pub(super) inverted: u64,
    pub(super) _element: PhantomData<T>,
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
    #[inline(always)]
    pub(super) fn new(tensor: &Tensor) -> Result<Self> {
        // SAFETY: a tensor's parts are a validated descriptor's.
        unsafe {
            Self::from_parts(
                tensor.data_ptr(),
                tensor.layout(),
                tensor.dtype(),
                tensor.device(),
            )
        }
    }

    /// As [`RawView::new`], from a tensor's parts (a borrowed argument's
    /// descriptor has no tensor around it).
    ///
    /// # Safety
    ///
    /// The parts must be a validated [`crate::Descriptor`]'s (or a
    /// tensor's): the checks here trust the layout's span to lie inside the
    /// memory around `data`.
    #[inline(always)]
    pub(super) unsafe fn from_parts(
        data: *mut u8,
        layout: &Layout,
        dtype: DType,
        device: Device,
    ) -> Result<Self> {
        Self::with_dims_of(data, layout, dtype, device, |values| {
            let mut dims = D::zeros(values.len());
            dims.slice_mut().copy_from_slice(values);
            dims
        })
    }

    /// As [`RawView::new`], with `make` building a `D` that holds the
    /// values it is given (their count is the checked rank). `IxDyn` passes
    /// `ndarray::IxDyn` itself: one copy of the slice, where `zeros` and a
    /// copy were two (about 15 ns per `ArrayViewD` in a micro-benchmark).
    #[inline(always)]
    pub(super) fn with_dims(tensor: &Tensor, make: impl Fn(&[usize]) -> D) -> Result<Self> {
        Self::with_dims_of(
            tensor.data_ptr(),
            tensor.layout(),
            tensor.dtype(),
            tensor.device(),
            make,
        )
    }

    /// The checks of every constructor above, on a tensor's (or a
    /// validated descriptor's) data pointer, layout, dtype and device.
    #[inline(always)]
    fn with_dims_of(
        data: *mut u8,
        layout: &Layout,
        dtype: DType,
        device: Device,
        make: impl Fn(&[usize]) -> D,
    ) -> Result<Self> {
        if dtype != T::DTYPE {
            return Err(Error::type_error(
                Cause::DType,
                format!(
                    "expected dtype {}, got {} (shape {:?})",
                    T::DTYPE,
                    dtype,
                    layout.shape()
                ),
            ));
        }
        check_rank::<D>(layout.shape())?;
        device.ensure_cpu("an ndarray view")?;
        let dim = make(layout.shape());
        // The strides start as a copy of the extents: every entry is
        // overwritten below.
        let mut strides = make(layout.shape());
        if layout.size() == 0 {
            strides.slice_mut().fill(0);
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
        let mut ptr = data.cast::<T>();
        if ptr.is_null() {
            return Err(Error::buffer(
                Cause::Pointer,
                format!(
                    "tensor of shape {:?} has a NULL data pointer",
                    layout.shape()
                ),
            ));
        }
        if !ptr.is_aligned() {
            return Err(Error::buffer(
                Cause::Pointer,
                format!(
                    "data pointer {ptr:p} is not aligned for {} ({} bytes)",
                    T::DTYPE,
                    align_of::<T>()
                ),
            ));
        }
        let itemsize = size_of::<T>() as isize;
        let mut inverted = 0u64;
        let steps = strides.slice_mut();
        for (axis, (&extent, &stride)) in layout.shape().iter().zip(layout.strides()).enumerate() {
            if extent <= 1 {
                // The stride of a length-1 axis is never applied (NumPy may
                // leave any value there); 0 keeps ndarray's checks simple.
                steps[axis] = 0;
                continue;
            }
            if stride % itemsize != 0 {
                return Err(Error::buffer(
                    Cause::Layout,
                    format!(
                        "byte stride {stride} on axis {axis} is not a multiple of the itemsize {itemsize}"
                    ),
                ));
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
            steps[axis] = step.unsigned_abs();
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
    pub(super) fn check_bools(&self) -> Result<()> {
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
            Some((index, byte)) => Err(Error::value(
                Cause::DType,
                format!(
                    "not a valid bool tensor: the byte at index {:?} is {byte}, not 0 or 1",
                    ndarray::IntoDimension::into_dimension(index).slice()
                ),
            )),
        }
    }

    /// # Safety
    ///
    /// The tensor this recipe came from must outlive `'a`, and no element may
    /// be written through another path during `'a`.
    #[inline(always)]
    pub(super) unsafe fn view<'a>(self) -> ArrayView<'a, T, D> {
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
    pub(super) unsafe fn view_mut<'a>(self) -> ArrayViewMut<'a, T, D> {
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
    pub(super) fn overlaps_itself(&self) -> bool {
        let axes = self.dim.slice().iter().zip(self.strides.slice());
        crate::layout::overlaps_itself(
            self.dim.size(),
            axes.map(|(&extent, &stride)| (stride, extent)),
            1,
        )
    }
}

/// Refuses a shape of another rank than `D`'s (`IxDyn`: any rank).
#[inline(always)]
pub(crate) fn check_rank<D: Dimension>(shape: &[usize]) -> Result<()> {
    let ndim = shape.len();
    if let Some(expected) = D::NDIM
        && expected != ndim
    {
        return Err(Error::type_error(
            Cause::Layout,
            format!("expected a {expected}-d tensor, got a {ndim}-d tensor (shape {shape:?})"),
        ));
    }
    Ok(())
}

/// Refusals shared by every mutable view: readonly memory, overlapping layouts.
pub(super) fn check_writable<T: Element, D: Dimension>(
    tensor: &Tensor,
    raw: &RawView<T, D>,
) -> Result<()> {
    if tensor.readonly() {
        return Err(Error::buffer(
            Cause::Readonly,
            format!(
                "cannot view a readonly tensor (source {}) mutably",
                tensor.source().as_str()
            ),
        ));
    }
    if raw.overlaps_itself() {
        return Err(Error::buffer(
            Cause::Aliasing,
            format!(
                "cannot view shape {:?} with byte strides {:?} mutably: two indices may reach one element",
                tensor.shape(),
                tensor.strides()
            ),
        ));
    }
    Ok(())
}

/// The exclusivity proof of the safe mutable path (see the module docs).
/// Callers hold `&mut Tensor`.
pub(super) fn check_exclusive(tensor: &Tensor) -> Result<()> {
    let owner = tensor.owner();
    if !owner.is_rust_owned() {
        return Err(Error::buffer(
            Cause::Aliasing,
            format!(
                "cannot prove exclusive access to memory imported through {}: its producer may \
                 view it too (use the unsafe as_ndarray_mut_unchecked)",
                tensor.source().as_str()
            ),
        ));
    }
    let others = owner.holders() - 1;
    if others != 0 {
        return Err(Error::buffer(
            Cause::Aliasing,
            format!("cannot view mutably: {others} other view(s) or export(s) share this memory"),
        ));
    }
    // Pairs with the release decrement of the last other reference: what it
    // did with the memory happens-before our writes.
    fence(Ordering::Acquire);
    Ok(())
}
