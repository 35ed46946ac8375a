//! Rust handoff: `ndarray` views of a [`Tensor`], and arrays moved into one.
//!
//! # Soundness model
//!
//! `as_ndarray` hands out a shared view that borrows the `Tensor`, so the
//! memory outlives the view. It checks the dtype, the device (CPU only), the
//! alignment of the data pointer and that every stride is a whole number of
//! elements. What Rust cannot see is the *foreign* side: a NumPy array or a
//! PyTorch tensor viewing the same memory may be written by Python code while
//! a Rust view exists. As with rust-numpy, dlbridge assumes that Python code
//! does not mutate an array concurrently with Rust code reading it (the
//! interpreter lock serialises them in practice; releasing it while holding a
//! view is where the caller must take care).

use ndarray::{ArrayD, ArrayViewD, Axis, Dimension, IxDyn, ShapeBuilder};

use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::owner::{LiveBufferToken, Owner};
use crate::tensor::{Source, Tensor};

impl Tensor {
    /// A zero-copy `ndarray` view of the elements, as Rust type `T`.
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
    /// ```
    pub fn as_ndarray<T: Element>(&self) -> Result<ArrayViewD<'_, T>> {
        if self.dtype() != T::DTYPE {
            return Err(Error::type_error(format!(
                "tensor has dtype {}, not {} as requested",
                self.dtype(),
                T::DTYPE
            )));
        }
        self.device().ensure_cpu("an ndarray view")?;
        let size = size_of::<T>() as isize;
        let mut base = self.data_ptr().cast::<T>();
        let mut strides = Vec::with_capacity(self.ndim());
        let mut flipped = Vec::new();
        if self.size() == 0 {
            base = std::ptr::NonNull::<T>::dangling().as_ptr();
            strides.resize(self.ndim(), 0usize);
        } else {
            if !base.is_aligned() {
                return Err(Error::buffer(format!(
                    "data pointer {base:p} is not aligned for {} ({} bytes)",
                    T::DTYPE,
                    align_of::<T>()
                )));
            }
            for (axis, (&extent, &stride)) in self.shape().iter().zip(self.strides()).enumerate() {
                if stride % size != 0 {
                    return Err(Error::buffer(format!(
                        "byte stride {stride} on axis {axis} is not a multiple of the itemsize {size}"
                    )));
                }
                let step = stride / size;
                if step < 0 {
                    // ndarray wants non-negative strides from the lowest
                    // address: start at this axis' far end and flip it after.
                    // SAFETY: `extent - 1` steps back stays inside the span.
                    base = unsafe { base.offset(step * (extent as isize - 1)) };
                    flipped.push(axis);
                }
                strides.push(step.unsigned_abs());
            }
        }
        let shape = IxDyn(self.shape()).strides(IxDyn(&strides));
        // SAFETY: the layout was validated at import (span fits in isize), the
        // pointer is aligned (or dangling for an empty view), the memory is
        // kept alive by `self` for the view's lifetime, and strides are
        // non-negative from the lowest address.
        let mut view = unsafe { ArrayViewD::from_shape_ptr(shape, base.cast_const()) };
        for axis in flipped {
            view.invert_axis(Axis(axis));
        }
        Ok(view)
    }
}

impl<T: Element, D: Dimension> From<ndarray::Array<T, D>> for Tensor {
    /// Moves a Rust array into a tensor with no copy; the array's allocation
    /// becomes the owner, freed once, when the last view (Rust or Python) is
    /// gone, on whichever thread that is.
    fn from(array: ndarray::Array<T, D>) -> Self {
        let size = size_of::<T>() as isize;
        let shape = array.shape().to_vec();
        let strides: Vec<isize> = array.strides().iter().map(|s| s * size).collect();
        let layout = Layout::new(&shape, Some(&strides), size as usize)
            .expect("an ndarray::Array always has a valid layout");
        let data = array.as_ptr().cast_mut().cast::<u8>();
        let array: ArrayD<T> = array.into_dyn();
        // SAFETY: moving the array into the owner does not move its heap
        // buffer, so `data` and `layout` keep describing live, exclusively
        // owned memory.
        unsafe {
            Tensor::from_parts(
                data,
                layout,
                T::DTYPE,
                crate::Device::CPU,
                false,
                Source::Rust,
                Owner::RustValue(Box::new(array), LiveBufferToken::new()),
            )
        }
    }
}

impl<T: Element> From<Vec<T>> for Tensor {
    /// Moves a vector into a 1-d tensor with no copy.
    fn from(values: Vec<T>) -> Self {
        Tensor::from(ndarray::Array1::from_vec(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::error::ErrorKind;
    use ndarray::{Array, Array2, s};

    #[test]
    fn views_follow_strides_including_negative() {
        let a = Array::from_shape_fn((3, 4), |(i, j)| (i * 10 + j) as i64);
        let expect = a.slice(s![..;-1, 1..;2]).to_owned();
        let t = Tensor::from(a);
        let v = t.as_ndarray::<i64>().unwrap();
        assert_eq!(v.shape(), &[3, 4]);
        let flipped = Layout::new(&[3, 2], Some(&[-32, 16]), 8).unwrap();
        // SAFETY: the sub-view lies inside t's memory, kept alive by t's owner.
        let sub = unsafe {
            Tensor::from_parts(
                t.data_ptr().add(2 * 32 + 8),
                flipped,
                DType::INT64,
                crate::Device::CPU,
                true,
                Source::Rust,
                Owner::RustValue(Box::new(()), LiveBufferToken::new()),
            )
        };
        assert_eq!(sub.as_ndarray::<i64>().unwrap(), expect.into_dyn());
    }

    #[test]
    fn refusals() {
        let t = Tensor::from(Array2::<f32>::zeros((2, 2)));
        assert_eq!(t.as_ndarray::<f64>().unwrap_err().kind(), ErrorKind::Type);
        let zero_d = Tensor::from(ndarray::arr0(5u8));
        assert_eq!(zero_d.as_ndarray::<u8>().unwrap()[[]], 5);
        let empty = Tensor::zeros(&[0, 3], DType::FLOAT32).unwrap();
        assert_eq!(empty.as_ndarray::<f32>().unwrap().len(), 0);
        let deep = Tensor::zeros(&[1; 64], DType::UINT16).unwrap();
        assert_eq!(deep.as_ndarray::<u16>().unwrap().ndim(), 64);
    }
}
