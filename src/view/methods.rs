//! `Tensor`'s view methods: shared, exclusive mutable and unchecked mutable.

use ndarray::{ArrayView, ArrayViewD, ArrayViewMut, ArrayViewMutD, Dimension, IxDyn};

use crate::dtype::Element;
use crate::error::Result;
use crate::tensor::Tensor;

use super::raw::{RawView, check_exclusive, check_writable};

impl Tensor {
    /// A zero-copy `ndarray` view of the elements, as Rust type `T`, of any
    /// rank, tracked by no one. Negative strides, 0-d, empty and 64-d
    /// tensors are fine.
    ///
    /// `unsafe` for the reason rust-numpy's `PyArray::as_array` is: a
    /// `Tensor` is one handle on memory that others may reach (its clones,
    /// its exports, the producer it was imported from), and one of them may
    /// be written in safe code meanwhile (a tracked `ReadwriteTensor`
    /// argument of the same memory, in a call this code makes). The safe
    /// reads: a borrowed argument (`ReadonlyTensor`, `ReadwriteTensor`,
    /// feature `python`), whose borrow the registry records; [`Tensor::as_ndarray_mut`] of Rust-owned memory no one else
    /// holds; or a copy ([`Tensor::copy`]).
    ///
    /// ```
    /// use dlbridge::{DType, Tensor};
    /// let t = Tensor::zeros(&[2, 2], DType::FLOAT64).unwrap();
    /// // SAFETY: `t` is Rust-owned and never shared: nothing writes it.
    /// let v = unsafe { t.as_ndarray::<f64>() }.unwrap();
    /// assert_eq!(v.sum(), 0.0);
    /// // SAFETY: as above.
    /// assert!(unsafe { t.as_ndarray::<f32>() }.is_err());
    /// ```
    ///
    /// # Safety
    ///
    /// For as long as the returned view lives, no element it covers may be
    /// written through any other path: no mutable view (tracked, such as a
    /// `ReadwriteTensor` argument of the same memory, or unchecked) from
    /// this tensor, its clones or another tensor importing the same memory;
    /// no raw pointer write; no Python code, foreign library or other
    /// thread (in a Python extension: do not call into Python code that may
    /// write the memory, nor release the GIL while another thread might).
    ///
    /// # Errors
    ///
    /// - `Type` ([`Cause::DType`]): the tensor's dtype is not `T::DTYPE`;
    /// - `Buffer` ([`Cause::Device`]): memory that is not on the CPU;
    /// - `Buffer` ([`Cause::Pointer`]): a data pointer misaligned for `T`;
    /// - `Buffer` ([`Cause::Layout`]): a byte stride on an axis longer than 1
    ///   that is not a multiple of `size_of::<T>()`;
    /// - `Value` ([`Cause::DType`]): for `bool`, a byte other than 0 or 1.
    ///
    /// An empty tensor is refused for its dtype, rank or device only.
    ///
    /// [`Cause::DType`]: crate::Cause::DType
    /// [`Cause::Device`]: crate::Cause::Device
    /// [`Cause::Layout`]: crate::Cause::Layout
    /// [`Cause::Pointer`]: crate::Cause::Pointer
    pub unsafe fn as_ndarray<T: Element>(&self) -> Result<ArrayViewD<'_, T>> {
        // Up to three axes, the view is made at its fixed rank and turned
        // dynamic once at the end: built as `IxDyn` from the start, its two
        // 40-byte dims were written piecewise and then moved whole through
        // the recipe, the `StrideShape` and the view, and those wide loads
        // of narrow stores stalled store forwarding (about 30 ns of a 4x4
        // import at equal instructions; `perf annotate` put the samples on
        // those moves). The checks are the same (`RawView::new` for `D`).
        match self.ndim() {
            // SAFETY: the caller's promise, as for this function.
            1 => return Ok(unsafe { self.as_ndarray_dim::<T, ndarray::Ix1>() }?.into_dyn()),
            // SAFETY: as above.
            2 => return Ok(unsafe { self.as_ndarray_dim::<T, ndarray::Ix2>() }?.into_dyn()),
            // SAFETY: as above.
            3 => return Ok(unsafe { self.as_ndarray_dim::<T, ndarray::Ix3>() }?.into_dyn()),
            _ => {}
        }
        // `IxDyn` dims straight from the shape (see `RawView::with_dims`).
        let raw = RawView::<T, IxDyn>::with_dims(self, ndarray::IxDyn)?;
        // SAFETY: as in `as_ndarray_dim`: the view borrows `self`, whose
        // owner keeps the memory alive; no writer is the caller's promise.
        Ok(unsafe { raw.view() })
    }

    /// Like [`Tensor::as_ndarray`], with a fixed rank: `D` is `Ix0` … `Ix6`
    /// (or `IxDyn` for any). A tensor of another rank is a `TypeError`
    /// naming both ranks.
    ///
    /// ```
    /// use dlbridge::Tensor;
    /// use ndarray::{Ix1, Ix2, array};
    /// let t = Tensor::from(array![[1i32, 2, 3], [4, 5, 6]]);
    /// // SAFETY: `t` is Rust-owned and never shared: nothing writes it.
    /// let m = unsafe { t.as_ndarray_dim::<i32, Ix2>() }.unwrap();
    /// assert_eq!(m.row(1).sum(), 15);
    /// // SAFETY: as above.
    /// let err = unsafe { t.as_ndarray_dim::<i32, Ix1>() }.unwrap_err();
    /// assert_eq!(err.message(), "expected a 1-d tensor, got a 2-d tensor (shape [2, 3])");
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`Tensor::as_ndarray`], and `Type` ([`Cause::Layout`]) for a
    /// tensor whose rank is not `D`'s.
    ///
    /// # Safety
    ///
    /// That of [`Tensor::as_ndarray`].
    ///
    /// [`Cause::Layout`]: crate::Cause::Layout
    pub unsafe fn as_ndarray_dim<T: Element, D: Dimension>(&self) -> Result<ArrayView<'_, T, D>> {
        let raw = RawView::<T, D>::new(self)?;
        // SAFETY: the view borrows `self`, whose owner keeps the memory
        // alive; that nothing writes it meanwhile is the caller's promise.
        Ok(unsafe { raw.view() })
    }

    /// A mutable view of Rust-owned memory that no one else can see.
    ///
    /// Succeeds only for a writable tensor whose memory Rust owns (from
    /// [`Tensor::zeros`], [`Tensor::empty`], [`Tensor::copy`], or an
    /// `ndarray::Array` or `Vec` moved in) and that has no clone and no
    /// export alive, and whose layout reaches each element once. The module
    /// docs argue why this is sound. For imported memory use the `unsafe`
    /// [`Tensor::as_ndarray_mut_unchecked`].
    ///
    /// ```
    /// use dlbridge::Tensor;
    /// let mut t = Tensor::from(vec![1.0f32, 2.0, 3.0]);
    /// t.as_ndarray_mut::<f32>().unwrap().mapv_inplace(|x| x * 10.0);
    /// assert_eq!(t.as_ndarray_mut::<f32>().unwrap().sum(), 60.0);
    ///
    /// let other = t.clone(); // a second view of the same memory
    /// assert!(t.as_ndarray_mut::<f32>().is_err());
    /// drop(other);
    /// assert!(t.to_readonly().as_ndarray_mut::<f32>().is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`Tensor::as_ndarray`], and
    /// - `Buffer` ([`Cause::Readonly`]): a readonly tensor;
    /// - `Buffer` ([`Cause::Aliasing`]): memory Rust does not own (anything
    ///   imported), another clone or export of it alive, or a layout that
    ///   reaches one element through two indices.
    ///
    /// [`Cause::Aliasing`]: crate::Cause::Aliasing
    /// [`Cause::Readonly`]: crate::Cause::Readonly
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
    /// assert_eq!(t.as_ndarray_mut_dim::<i64, Ix2>().unwrap()[[1, 2]], 7);
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`Tensor::as_ndarray_mut`], and `Type` ([`Cause::Layout`]) for
    /// a tensor whose rank is not `D`'s.
    ///
    /// [`Cause::Layout`]: crate::Cause::Layout
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
    /// // SAFETY: the mutable view is gone and nothing else writes.
    /// assert_eq!(unsafe { alias.as_ndarray::<u8>() }.unwrap()[[0]], 9);
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`Tensor::as_ndarray_dim`], and `Buffer` ([`Cause::Readonly`])
    /// for a readonly tensor, `Buffer` ([`Cause::Aliasing`]) for a layout that
    /// reaches one element through two indices.
    ///
    /// [`Cause::Aliasing`]: crate::Cause::Aliasing
    /// [`Cause::Readonly`]: crate::Cause::Readonly
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
