//! Rust arrays handed out as DLPack with no `Tensor` in between.

use dlpark::versioned;

use crate::dtype::Element;
use crate::error::Result;

use super::from_array::too_many_axes;

/// Moves an owned array out as a versioned DLPack managed tensor, with no
/// copy: the same tensor as `Tensor::from(array).into_dlpack()`, written
/// straight from the array's own shape and element strides (which
/// ndarray has proved) instead of through a validated [`Layout`](crate::Layout)
/// and back. The array's buffer is freed once, when the consumer calls the
/// deleter.
///
/// ```
/// use dlbridge::{IntoDlpack, Tensor};
///
/// let array = ndarray::Array2::<f32>::from_shape_fn((2, 3), |(i, j)| (i * 3 + j) as f32);
/// let managed = array.t().to_owned().into_dlpack().unwrap();
/// let back = Tensor::try_from(managed).unwrap();
/// assert_eq!((back.shape(), back.strides()), (&[3, 2][..], &[4, 12][..]));
/// ```
pub trait IntoDlpack {
    /// The versioned managed tensor over this array's memory.
    ///
    /// # Errors
    ///
    /// `Value` ([`Cause::Layout`](crate::Cause::Layout)) for an `ArrayD`
    /// of more than [`MAX_NDIM`](crate::MAX_NDIM) axes, as
    /// `Tensor::try_from` refuses it; the fixed ranks always succeed.
    fn into_dlpack(self) -> Result<versioned::Dlpack>;
}

impl<T: Element, D: ndarray::Dimension> IntoDlpack for ndarray::Array<T, D> {
    #[inline]
    fn into_dlpack(self) -> Result<versioned::Dlpack> {
        if self.ndim() > crate::layout::MAX_NDIM {
            return Err(too_many_axes(self.ndim()));
        }
        crate::protocol::dlpack::array_into_dlpack(self)
    }
}

#[cfg(test)]
mod tests {
    use dlpark::DlpackFlags;
    use ndarray::{Array, ArrayD, IxDyn, ShapeBuilder};

    use super::super::awkward::{self, at_fixed_rank};
    use super::*;
    use crate::error::{Cause, ErrorKind};
    use crate::tensor::Tensor;

    /// The header and dims of a managed tensor: data, ndim, dtype, flags,
    /// shape, strides.
    fn described(
        managed: &versioned::Dlpack,
    ) -> (usize, i32, crate::DType, u64, Vec<i64>, Vec<i64>) {
        // SAFETY: a live managed tensor's dims stay readable while it is owned.
        let t = unsafe { managed.tensor() };
        let ndim = usize::try_from(t.ndim).unwrap();
        // SAFETY: `ndim` values each, or no axes (the pointers are unread).
        let (shape, strides) = unsafe {
            if ndim == 0 {
                (vec![], vec![])
            } else {
                (
                    std::slice::from_raw_parts(t.shape, ndim).to_vec(),
                    std::slice::from_raw_parts(t.strides, ndim).to_vec(),
                )
            }
        };
        (
            t.data as usize,
            t.ndim,
            crate::DType::from_dlpack_flagged(t.dtype, false).unwrap(),
            managed.flags().bits(),
            shape,
            strides,
        )
    }

    /// Straight from the array, the managed tensor is the one the checked
    /// path (`Tensor::from(array).into_dlpack()`) writes, for every kind of
    /// owned array (`awkward::arrays`), each at its own fixed rank where it
    /// has one.
    #[test]
    fn writes_what_the_tensor_path_writes() {
        fn same<D: ndarray::Dimension>(array: Array<f64, D>) {
            let direct = array.clone().into_dlpack().unwrap();
            // `into_dyn` keeps the shape and strides as they are.
            let checked = Tensor::try_from(array.into_dyn())
                .unwrap()
                .into_dlpack()
                .unwrap();
            let (mut d, mut c) = (described(&direct), described(&checked));
            // Two arrays, two buffers: all but the address must match.
            (d.0, c.0) = (0, 0);
            assert_eq!(d, c);
            // And it imports back over the same memory.
            // SAFETY: the header of a live managed tensor.
            let data = unsafe { direct.tensor() }.data.cast::<u8>();
            let back = Tensor::try_from(direct).unwrap();
            assert_eq!(back.data_ptr(), data);
        }
        fn same_dyn(array: ArrayD<f64>) {
            same(array);
        }
        for array in awkward::arrays() {
            at_fixed_rank!(array, same, same_dyn);
        }
        // An element stride that fits in bytes is kept, one that does not
        // is written compact (the `f64` arrays above overflow; these check
        // the values themselves, one byte and two per element).
        let raw = || (2, 1, 3).strides((3, (isize::MIN + 1) as usize, 1));
        let managed = Array::from_shape_vec(raw(), vec![0u8; 6])
            .unwrap()
            .into_dlpack()
            .unwrap();
        assert_eq!(described(&managed).5, [3, isize::MIN as i64 + 1, 1]);
        let managed = Array::from_shape_vec(raw(), vec![0u16; 6])
            .unwrap()
            .into_dlpack()
            .unwrap();
        assert_eq!(
            described(&managed).5,
            [3, 3, 1],
            "overflows in bytes: compact"
        );
    }

    #[test]
    fn flags_and_refusals() {
        let exported = Array::<f32, _>::zeros((2, 2)).into_dlpack().unwrap();
        assert_eq!(exported.flags(), DlpackFlags::empty(), "writable");
        let err = ArrayD::<u8>::zeros(IxDyn(&[1; 65]))
            .into_dlpack()
            .err()
            .unwrap();
        assert_eq!((err.kind(), err.cause()), (ErrorKind::Value, Cause::Layout));
        assert!(err.message().contains("65 axes"), "{err}");
    }
}
