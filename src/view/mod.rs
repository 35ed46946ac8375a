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
//! 1. **Untracked shared views**, `unsafe`: [`Tensor::as_ndarray`],
//!    [`Tensor::as_ndarray_dim`], [`TypedTensor::view`]. They borrow the
//!    tensor, so its owner (and with it the memory) outlives them, but
//!    nothing records them, while a `Tensor` is one handle on memory that
//!    others can reach and write in safe code: a clone exported to Python
//!    and borrowed by a `ReadwriteTensor` argument, the producer's own
//!    array in a call further up. A safe `&self` view could not rule that
//!    out for its whole life (a clone can be made and exported while it
//!    lives), so these are `unsafe fn`s whose caller promises no writer, as
//!    rust-numpy's `PyArray::as_array`. The safe shared views are the
//!    Python layer's tracked arguments (`ReadonlyTensor`: a shared borrow
//!    in [`crate::borrow`]'s registry; `ReadwriteTensor`: an exclusive one),
//!    and, for Rust-owned memory no one else holds, the exclusive view
//!    below.
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
//! - **No borrow tracking here.** Two tensors imported from one NumPy array
//!   share no owner, so nothing in these views relates them, and they stay
//!   plain `ArrayView`s with no guard and no global lookup: which is why
//!   the shared ones are `unsafe`. Tracked borrows belong to the argument
//!   types of the Python layer (feature `python`), whose registry
//!   ([`crate::borrow`]) of borrowed address ranges is shared by every
//!   extension in the process.
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
#[cfg(test)]
mod awkward;
pub mod constraints;
mod from_array;
mod into_dlpack;
mod methods;
mod raw;
mod typed;

// The borrowed arguments of the Python layer.
pub use into_dlpack::IntoDlpack;
#[cfg(feature = "python")]
pub(crate) use raw::check_rank;
pub use typed::TypedTensor;
#[cfg(feature = "python")]
pub(crate) use typed::ViewRecipe;

#[cfg(test)]
use crate::tensor::Tensor;
#[cfg(test)]
use ndarray::{Axis, IxDyn};
#[cfg(test)]
use raw::RawView;
#[cfg(test)]
use std::{marker::PhantomData, ptr::NonNull};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::error::ErrorKind;
    use ndarray::{Array, Array2, Ix2, Ix3, s};

    /// `as_ndarray` takes a fixed-rank route for one to three axes and the
    /// `IxDyn` one otherwise: every rank gives the array's own elements,
    /// shape and strides, flipped and stepped axes included.
    #[test]
    fn dynamic_views_of_every_rank_are_the_array() {
        for ndim in 0..=5 {
            let shape: Vec<usize> = (0..ndim).map(|axis| 2 + axis % 3).collect();
            let mut a = Array::from_shape_fn(IxDyn(&shape), |ix| {
                ndarray::Dimension::slice(&ix)
                    .iter()
                    .fold(0i32, |n, &i| n * 10 + i as i32)
            });
            if ndim > 0 {
                a.invert_axis(Axis(0));
                a.slice_axis_inplace(Axis(ndim - 1), ndarray::Slice::new(0, None, -2));
            }
            let t = Tensor::try_from(a.clone()).unwrap();
            // SAFETY: nothing writes `t` while the view lives.
            let v = unsafe { t.as_ndarray::<i32>() }.unwrap();
            assert_eq!(v, a.view(), "{ndim}-d");
            assert_eq!(v.strides(), a.strides(), "{ndim}-d");
            assert_eq!(
                v.as_ptr().cast::<u8>(),
                t.data_ptr().cast_const(),
                "{ndim}-d"
            );
        }
    }

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
        // SAFETY: nothing writes this memory while the view lives.
        let v = unsafe { t.as_ndarray::<i64>() }.unwrap();
        assert_eq!(v, expect.view().into_dyn());
        assert_eq!(v.as_ptr(), ptr);
        assert_eq!(v[[0, 0]], 21);
    }

    #[test]
    fn refusals() {
        let t = Tensor::from(Array2::<f32>::zeros((2, 2)));
        assert_eq!(
            // SAFETY: nothing writes this memory while the view lives.
            unsafe { t.as_ndarray::<f64>() }.unwrap_err().kind(),
            ErrorKind::Type
        );
        // SAFETY: nothing writes this memory while the view lives.
        let err = unsafe { t.as_ndarray_dim::<f32, Ix3>() }.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Type);
        assert!(
            err.message()
                .contains("expected a 3-d tensor, got a 2-d tensor")
        );
        assert_eq!(
            // SAFETY: nothing writes this memory while the view lives.
            unsafe { t.as_ndarray_dim::<f32, Ix2>() }.unwrap().dim(),
            (2, 2)
        );
        let zero_d = Tensor::from(ndarray::arr0(5u8));
        // SAFETY: nothing writes this memory while the view lives.
        assert_eq!(unsafe { zero_d.as_ndarray::<u8>() }.unwrap()[[]], 5);
        let empty = Tensor::zeros(&[0, 3], DType::FLOAT32).unwrap();
        // SAFETY: nothing writes this memory while the view lives.
        assert_eq!(unsafe { empty.as_ndarray::<f32>() }.unwrap().len(), 0);
        let deep = Tensor::zeros(&[1; 64], DType::UINT16).unwrap();
        // SAFETY: nothing writes this memory while the view lives.
        assert_eq!(unsafe { deep.as_ndarray::<u16>() }.unwrap().ndim(), 64);
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
