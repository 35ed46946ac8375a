//! Rust arrays moved into tensors with no copy.

use ndarray::Dimension;

use crate::descriptor::Source;
use crate::descriptor::{Claims, Descriptor};
use crate::dtype::Element;
use crate::error::{Cause, Error, Result};
use crate::layout::Layout;
use crate::owner::{Holder, RustVec};
use crate::tensor::Tensor;

use super::TypedTensor;

/// Moves a Rust array into a tensor with no copy; the array's allocation
/// becomes the owner, freed once, when the last view (Rust or Python) is
/// gone, on whichever thread that is. Any strides (negative too) are kept.
/// Refuses (`Value`) more than [`MAX_NDIM`](crate::MAX_NDIM) axes, which an
/// `ndarray::ArrayD` allows and no protocol does.
fn tensor_from_array<T: Element, D: Dimension + 'static>(
    array: ndarray::Array<T, D>,
) -> Result<Tensor> {
    if array.ndim() > crate::layout::MAX_NDIM {
        return Err(too_many_axes(array.ndim()));
    }
    // SAFETY: the shape and strides of an owned array of `T`, with at most
    // `MAX_NDIM` axes (refused above): what the checked constructor would
    // prove, the array's type has (as for the fixed ranks).
    let layout =
        unsafe { Layout::from_owned_ndarray(array.shape(), array.strides(), size_of::<T>()) };
    Ok(tensor_over_array(array, layout))
}

/// Refuses an `ndarray::ArrayD` of `ndim` axes, more than any protocol
/// carries.
pub(super) fn too_many_axes(ndim: usize) -> Error {
    Error::value(
        Cause::Layout,
        format!(
            "an array with {ndim} axes cannot become a Tensor: ndim {ndim} exceeds the maximum of {}",
            crate::layout::MAX_NDIM
        ),
    )
}

/// The tensor over `array`, whose own layout (validated) is `layout`.
///
/// No [`Descriptor::new`] checks here: an `ndarray::Array` has proved them
/// all. Its pointer is never NULL and lies in its own live allocation (or
/// is dangling and aligned for no elements), every element's offset from
/// it fits in `isize` (ndarray's constructors refuse anything else), so no
/// address in the span wraps, and `T: Element` promises that `T::DTYPE` has
/// `size_of::<T>()` bytes, the layout's itemsize. Skipping them is about 70
/// instructions (a fifth) of `Tensor::from(Array2)` (debug builds still run
/// them).
#[inline(always)]
fn tensor_over_array<T: Element, D: Dimension + 'static>(
    array: ndarray::Array<T, D>,
    layout: Layout,
) -> Tensor {
    let base = array.as_ptr().cast_mut().cast::<u8>();
    // The array's heap buffer is all the owner needs (its shape and strides
    // are in the layout): two words, held inline by the tensor.
    let owner = RustVec::holding(array);
    // SAFETY: the checks hold for an `ndarray::Array` (see above); taking
    // the array's `Vec` apart does not move its heap buffer, so the layout
    // keeps describing live memory that the owner alone holds (the
    // exclusivity `as_ndarray_mut` relies on).
    unsafe { rust_owned("ndarray::Array", base, layout, T::DTYPE, owner) }
}

/// The tensor over Rust-owned memory at `base` (`what` names it in
/// messages), writable, on the CPU.
///
/// # Safety
///
/// Every check of [`Descriptor::new`] holds for `base`, `layout` and
/// `dtype` (non-NULL when not empty, no address of the span wraps, `dtype`'s
/// itemsize is the layout's), and `owner` alone keeps that memory alive.
#[inline(always)]
unsafe fn rust_owned(
    what: &'static str,
    base: *mut u8,
    layout: Layout,
    dtype: crate::DType,
    owner: Holder,
) -> Tensor {
    let claims = Claims {
        what,
        base,
        offset: 0,
        layout,
        dtype,
        device: crate::Device::CPU,
        readonly: false,
        source: Source::Rust,
        len: None,
    };
    // SAFETY: the caller's promise: the checks hold.
    let descriptor = unsafe { Descriptor::new_proved(claims) };
    // SAFETY: the caller's promise: `owner` alone holds the memory.
    unsafe { Tensor::from_held(descriptor, owner) }
}

/// `From` for the fixed ranks (at most six axes: always carried) and
/// `TryFrom` for `ArrayD`, whose rank may exceed [`MAX_NDIM`](crate::MAX_NDIM).
macro_rules! from_fixed_rank {
    ($($dim:ty),*) => {$(
        impl<T: Element> From<ndarray::Array<T, $dim>> for Tensor {
            /// Moves a Rust array into a tensor with no copy; its allocation
            /// becomes the owner, freed once, when the last view is gone.
            fn from(array: ndarray::Array<T, $dim>) -> Self {
                // At most six axes of an owned array: the layout's checks
                // hold already, and the tensor is built in place (no
                // `Result` to move the layout or the tensor through).
                // SAFETY: the shape and strides of an owned array of `T`.
                let layout = unsafe {
                    Layout::from_owned_ndarray(array.shape(), array.strides(), size_of::<T>())
                };
                tensor_over_array(array, layout)
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
    /// `Value` ([`Cause::Layout`]) when the array has more than
    /// [`MAX_NDIM`](crate::MAX_NDIM) (64) axes.
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
    /// `Value` ([`Cause::Layout`]) when the array has more than
    /// [`MAX_NDIM`](crate::MAX_NDIM) (64) axes.
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

impl Tensor {
    /// Moves `values` into a tensor of `shape` with no copy, read in
    /// `order` (`Order::RowMajor` is C's, `Order::ColumnMajor` Fortran's),
    /// as `ndarray::Array::from_shape_vec` reads them; the vector's buffer
    /// becomes the owner. The way to return "an array like this one" from
    /// values computed in memory order: no `ndarray` array is built in
    /// between (its dynamic-rank dims and checks cost about 600
    /// instructions of the example's `scale_like`, more than the rest of
    /// the return).
    ///
    /// ```
    /// use dlbridge::Tensor;
    /// use ndarray::Order;
    ///
    /// let t = Tensor::from_shape_vec(&[2, 3], Order::RowMajor, vec![0u8, 1, 2, 3, 4, 5]).unwrap();
    /// assert_eq!((t.shape(), t.strides()), (&[2, 3][..], &[3, 1][..]));
    /// let f = Tensor::from_shape_vec(&[2, 3], Order::ColumnMajor, vec![0u8; 6]).unwrap();
    /// assert_eq!(f.strides(), &[1, 2]);
    /// assert!(Tensor::from_shape_vec(&[2, 3], Order::RowMajor, vec![0u8; 5]).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// `Value` ([`Cause::Layout`]) when `shape` does not hold exactly
    /// `values.len()` elements, or has more than
    /// [`MAX_NDIM`](crate::MAX_NDIM) axes.
    pub fn from_shape_vec<T: Element>(
        shape: &[usize],
        order: ndarray::Order,
        values: Vec<T>,
    ) -> Result<Self> {
        let layout = Layout::contiguous_in(shape, size_of::<T>(), order)?;
        if layout.size() != values.len() {
            return Err(Error::value(
                Cause::Layout,
                format!(
                    "Tensor::from_shape_vec: shape {shape:?} holds {} elements, the vector {}",
                    layout.size(),
                    values.len()
                ),
            ));
        }
        let base = values.as_ptr().cast_mut().cast::<u8>();
        let owner = Holder::new(RustVec::new(values));
        // SAFETY: the pointer of a `Vec<T>` (never NULL, aligned for `T`,
        // dangling only when it holds no elements), whose `len` elements
        // the contiguous layout covers exactly (checked above), in bytes
        // that fit in `isize` (a `Vec` never holds more); `T: Element`
        // promises `T::DTYPE` has `size_of::<T>()` bytes. Moving the `Vec`
        // into its holder does not move its heap buffer, which the owner
        // alone holds.
        Ok(unsafe { rust_owned("Vec", base, layout, T::DTYPE, owner) })
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array;

    use super::super::awkward::{self, at_fixed_rank};
    use super::*;
    use crate::dtype::Element;

    /// The layout `From<Array>` (fixed ranks) and `TryFrom<ArrayD>` build
    /// without checks is the one the checked constructor builds (and
    /// accepts), over the array's own memory, for every kind of owned
    /// array (`awkward::arrays`), past the inline ranks too.
    #[test]
    fn owned_array_layouts_match_the_checked_constructor() {
        fn checked(array: &ndarray::ArrayView<'_, f64, impl Dimension>) -> Layout {
            Layout::from_ndarray(array.shape(), array.strides(), 8).unwrap()
        }
        fn same<D: Dimension + 'static>(array: Array<f64, D>)
        where
            Tensor: From<Array<f64, D>>,
        {
            let (layout, ptr) = (checked(&array.view()), array.as_ptr());
            let t = Tensor::from(array);
            assert_eq!(t.layout(), &layout);
            assert_eq!(t.data_ptr().cast_const(), ptr.cast());
            assert_eq!((t.dtype(), t.source()), (f64::DTYPE, Source::Rust));
        }
        fn same_dyn(array: ndarray::ArrayD<f64>) {
            let (layout, ptr) = (checked(&array.view()), array.as_ptr());
            let t = Tensor::try_from(array).unwrap();
            assert_eq!(t.layout(), &layout);
            assert_eq!(t.data_ptr().cast_const(), ptr.cast());
        }
        for array in awkward::arrays() {
            same_dyn(array.clone());
            at_fixed_rank!(array, same, |_| ());
        }
        let too_many = Array::<f64, _>::zeros(ndarray::IxDyn(&[1; 65]));
        assert!(Tensor::try_from(too_many).is_err());
    }

    /// `from_shape_vec` builds the layout ndarray's `from_shape_vec` gives
    /// the same shape and order (as the checked constructor reads it), over
    /// the vector's own buffer (freed once: Miri sees a leak or a double
    /// free).
    #[test]
    fn from_shape_vec_is_ndarrays_layout_over_the_vec() {
        use ndarray::{Order, ShapeBuilder};
        let shapes: [&[usize]; 8] = [
            &[],
            &[0],
            &[3, 0, 2],
            &[5],
            &[3, 4],
            &[1, 4],
            &[2, 3, 4],
            &[2, 1, 3, 1, 2, 1, 2],
        ];
        for shape in shapes {
            for order in [Order::RowMajor, Order::ColumnMajor] {
                let n = shape.iter().product::<usize>();
                let values: Vec<f64> = (0..n).map(|i| i as f64).collect();
                let ptr = values.as_ptr();
                let dim = ndarray::IxDyn(shape);
                let expected = match order {
                    Order::RowMajor => Array::from_shape_vec(dim, values.clone()),
                    _ => Array::from_shape_vec(dim.f(), values.clone()),
                }
                .unwrap();
                let t = Tensor::from_shape_vec(shape, order, values).unwrap();
                // ndarray gives an empty array zero strides; dlbridge the
                // contiguous ones, as `Tensor::zeros` and NumPy do.
                let strides: Vec<isize> = if n == 0 {
                    let layout = Layout::contiguous_in(shape, 1, order).unwrap();
                    layout.strides().to_vec()
                } else {
                    expected.strides().to_vec()
                };
                let checked = Layout::from_ndarray(expected.shape(), &strides, 8).unwrap();
                assert_eq!(t.layout(), &checked, "{shape:?} {order:?}");
                assert_eq!(
                    t.data_ptr().cast_const(),
                    ptr.cast(),
                    "the vector's own buffer"
                );
                assert_eq!((t.dtype(), t.source()), (f64::DTYPE, Source::Rust));
                // SAFETY: `t` is the only handle on its memory; nothing writes.
                let view = unsafe { t.as_ndarray::<f64>() }.unwrap();
                assert_eq!(view, expected.view(), "the same values at the same indices");
            }
        }
    }

    #[test]
    fn from_shape_vec_refuses_a_shape_the_vector_does_not_fill() {
        use ndarray::Order;
        for (shape, len) in [
            (&[2usize, 3][..], 5usize),
            (&[2, 3], 7),
            (&[0], 1),
            (&[], 0),
        ] {
            let e = Tensor::from_shape_vec(shape, Order::RowMajor, vec![0u8; len]).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Value, "{shape:?} {len}");
            assert!(e.to_string().contains(&format!("the vector {len}")), "{e}");
        }
        let e = Tensor::from_shape_vec(&[1; 65], Order::RowMajor, vec![0u8]).unwrap_err();
        assert!(e.to_string().contains("ndim 65 exceeds"), "{e}");
        let e = Tensor::from_shape_vec(&[usize::MAX, 2], Order::RowMajor, vec![0u8]).unwrap_err();
        assert!(e.to_string().contains("does not fit in isize"), "{e}");
    }
}
