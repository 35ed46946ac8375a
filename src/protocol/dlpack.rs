//! DLPack spoke (core, no Python): managed tensors in and out, on dlpark.
//!
//! Import takes ownership of a `Managed` tensor, validates it once into a
//! [`Tensor`], and keeps the `Managed` itself as the owner, so the
//! producer's deleter runs exactly once, when the last view is gone (or
//! immediately, if validation refuses it). Export builds a fresh managed
//! tensor per call whose `manager_ctx` is a clone of the tensor's owner.

use std::mem::MaybeUninit;
use std::ptr::NonNull;

use dlpark::dlpack::FromRawError;
use dlpark::ffi::{DLManagedTensorVersioned, DLTensor};
use dlpark::{DlpackFlags, Managed, ManagedTensorBase, legacy, versioned};

use crate::descriptor::Source;
use crate::descriptor::{Claims, Descriptor};
use crate::device::Device;
use crate::dtype::{DType, Element};
use crate::error::{Cause, Error, Result};
use crate::layout::{Layout, MAX_NDIM};
use crate::owner::{Allocation, Holder, RustVec};
use crate::tensor::Tensor;

/// Why dlpark refused to take a raw managed tensor: an incompatible major
/// version, or a NULL pointer.
pub(crate) fn from_raw_cause(error: &FromRawError) -> Cause {
    match error {
        FromRawError::Version { .. } => Cause::Version,
        _ => Cause::Pointer,
    }
}

/// Whether a legacy (unversioned) import may be written through.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LegacyWrites {
    /// NumPy's rule: a legacy capsule cannot say "read-only", so it is.
    Refused,
    /// The caller vouches that the producer allows writes.
    Allowed,
}

/// Reads and checks a managed tensor's descriptor. `legacy` is `None` for a
/// versioned tensor, whose `READ_ONLY` flag decides.
#[inline(always)]
fn parse<M: ManagedTensorBase>(
    managed: &Managed<M>,
    legacy: Option<LegacyWrites>,
) -> Result<Descriptor> {
    // SAFETY: a `Managed` owns a live descriptor whose shape and strides stay
    // readable and immutable while it is owned.
    let tensor = unsafe { managed.tensor() };
    let ndim = usize::try_from(tensor.ndim).map_err(|_| {
        Error::value(
            Cause::Layout,
            format!("DLPack tensor has a negative ndim {}", tensor.ndim),
        )
    })?;
    if ndim > MAX_NDIM {
        return Err(Error::value(
            Cause::Layout,
            format!("DLPack tensor has ndim {ndim}, more than the maximum of {MAX_NDIM}"),
        ));
    }
    let shape: &[i64] = match ndim {
        0 => &[],
        _ if tensor.shape.is_null() => {
            return Err(Error::value(
                Cause::Layout,
                format!("DLPack tensor has ndim {ndim} but a NULL shape"),
            ));
        }
        // SAFETY: a non-NULL shape of a live descriptor holds `ndim` extents.
        _ => unsafe { std::slice::from_raw_parts(tensor.shape, ndim) },
    };
    // NULL strides mean compact row-major, whatever version the producer
    // declares (legacy and pre-1.2 producers rely on it; NumPy reads it so).
    let strides: Option<&[i64]> = (ndim > 0 && !tensor.strides.is_null()).then(|| {
        // SAFETY: a non-NULL strides array of a live descriptor has `ndim` entries.
        unsafe { std::slice::from_raw_parts(tensor.strides, ndim) }
    });
    let flags = managed.flags();
    let dtype = DType::from_dlpack_flagged(
        tensor.dtype,
        flags.contains(DlpackFlags::IS_SUBBYTE_TYPE_PADDED),
    )?;
    // `data + byte_offset` is the first logical element.
    let offset = usize::try_from(tensor.byte_offset).unwrap_or(usize::MAX);
    let mut claims = Claims {
        what: "DLPack tensor",
        base: tensor.data.cast::<u8>(),
        offset,
        // Filled in below, where the claims keep it: a layout built apart
        // and moved in was copied 16 bytes at a time right after its dims
        // were written 8 bytes at a time, stalling store forwarding.
        layout: Layout::SCALAR,
        dtype,
        device: Device::from_dlpack(tensor.device),
        readonly: match legacy {
            None => flags.contains(DlpackFlags::READ_ONLY),
            Some(LegacyWrites::Refused) => true,
            Some(LegacyWrites::Allowed) => false,
        },
        source: Source::Dlpack,
        len: None,
    };
    claims
        .layout
        .fill_element_strides(shape, strides, dtype.itemsize())?;
    // Checked in place, before they move into the descriptor.
    Descriptor::check(&claims)?;
    // SAFETY: the claims just passed every check of `Descriptor::new`.
    Ok(unsafe { Descriptor::new_proved(claims) })
}

#[inline(always)]
fn import<M: ManagedTensorBase>(managed: Managed<M>, legacy: Option<LegacyWrites>) -> Result<Tensor>
where
    Managed<M>: Allocation,
{
    // On refusal `managed` drops here and the producer's deleter runs once.
    let descriptor = parse(&managed, legacy)?;
    // SAFETY: the producer guarantees the described memory stays valid until
    // its deleter runs, and the deleter runs only when this owner drops.
    Ok(unsafe { Tensor::from_held(descriptor, Holder::new(managed)) })
}

/// One heap block per export: the managed-tensor header, a share of the
/// tensor's owner, and the shape and strides right after them (DLPack's
/// `int64_t` arrays, `2 * ndim` of them, however many axes). The header
/// is the first field of a `repr(C)` struct, so the deleter turns the
/// `self` pointer it is given back into the block and frees everything at
/// once, exactly once.
///
/// Why not dlpark's own export (`Managed` over a `ManagerCtx` holding a
/// shape-and-strides provider): that path allocates the context, its shape
/// and strides vectors and the header separately, and every export is on
/// the hot path of `np.from_dlpack(t)` and `torch.from_dlpack(t)`. One block
/// means one `malloc` and one `free` per export; `make bench-rust` measures
/// it (`dlpack_export`, beside `dlpack_import`), and the exchange benchmark
/// row `np.from_dlpack(t)` is where it shows against NumPy's own export.
/// The dims trail the head (sized per export, as dlpark's own dynamic
/// allocation does) rather than sitting in a fixed inline array with a
/// second allocation past six axes: one block for any rank, and no unused
/// slots to allocate.
#[repr(C)]
struct ExportHead<M> {
    header: M,
    owner: Holder,
    /// The axes, which size the block (kept here, out of the consumer's
    /// reach, rather than read back from the header).
    ndim: usize,
}

/// The layout of an export block for `ndim` axes and the byte offset of
/// its dims; `ndim <= MAX_NDIM`, so the sizes cannot overflow.
fn block_layout<M>(ndim: usize) -> (std::alloc::Layout, usize) {
    let dims = std::alloc::Layout::array::<i64>(2 * ndim).unwrap_or_else(|_| unreachable!());
    let (layout, offset) = std::alloc::Layout::new::<ExportHead<M>>()
        .extend(dims)
        .unwrap_or_else(|_| unreachable!());
    (layout.pad_to_align(), offset)
}

/// The deleter of every managed tensor dlbridge exports.
///
/// # Safety
///
/// `header` must come from [`finish_block`] and not have been deleted.
unsafe extern "C" fn delete_export<M>(header: *mut M) {
    // No panic may cross into the consumer's C code: dropping the owner
    // runs foreign release code, so contain anything that unwinds.
    let freed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let head = header.cast::<ExportHead<M>>();
        // SAFETY: `header` is the first field of a live block that
        // `fill_block` allocated with `block_layout::<M>(ndim)` and
        // `finish_block` completed; it is dropped and freed once, here.
        unsafe {
            let (layout, _) = block_layout::<M>((*head).ndim);
            std::ptr::drop_in_place(head);
            std::alloc::dealloc(head.cast(), layout);
        }
    }));
    if freed.is_err() {
        std::process::abort();
    }
}

impl TryFrom<versioned::Dlpack> for Tensor {
    type Error = Error;

    /// Takes ownership of a versioned managed tensor; `READ_ONLY` makes the
    /// tensor readonly. A refused tensor is released before returning.
    ///
    /// # Errors
    ///
    /// Those of [`Tensor::from_dlpack_legacy_writable`]; a float4/float6
    /// element is accepted when the tensor is flagged
    /// `IS_SUBBYTE_TYPE_PADDED`.
    #[inline]
    fn try_from(managed: versioned::Dlpack) -> Result<Self> {
        import(managed, None)
    }
}

impl TryFrom<legacy::Dlpack> for Tensor {
    type Error = Error;

    /// Takes ownership of a legacy managed tensor. The legacy ABI has no
    /// flags, so it cannot say its memory is read-only; like NumPy, dlbridge
    /// imports it **read-only** (JAX exports only legacy capsules, and its
    /// arrays are immutable). [`Tensor::from_dlpack_legacy_writable`] is the
    /// explicit opt-in. A refused tensor is released before returning.
    ///
    /// # Errors
    ///
    /// Those of [`Tensor::from_dlpack_legacy_writable`].
    fn try_from(managed: legacy::Dlpack) -> Result<Self> {
        import(managed, Some(LegacyWrites::Refused))
    }
}

impl Tensor {
    /// Takes ownership of a legacy managed tensor as **writable**: the
    /// caller vouches that the producer allows writes to its memory, which
    /// the legacy ABI cannot say (`TryFrom<legacy::Dlpack>` imports it
    /// read-only). A refused tensor is released before returning.
    ///
    /// # Errors
    ///
    /// The refusals of every DLPack import:
    /// - `Value` ([`Cause::Layout`]): a negative `ndim` or one above
    ///   [`MAX_NDIM`](crate::MAX_NDIM), a NULL `shape` with axes, a negative
    ///   extent, or a shape or strides whose sizes overflow `isize`;
    /// - `Buffer` ([`Cause::DType`]): a dtype dlbridge does not know (see
    ///   [`DType::from_dlpack`]), packed sub-byte elements included;
    /// - `Value` ([`Cause::Pointer`]): `data + byte_offset`, or the span
    ///   around it, wraps around the address space;
    /// - `Buffer` ([`Cause::Pointer`]): NULL `data` with elements to address.
    pub fn from_dlpack_legacy_writable(managed: legacy::Dlpack) -> Result<Self> {
        import(managed, Some(LegacyWrites::Allowed))
    }
}

/// What an export block's header says besides its dims: the first
/// element, where it lives, its dtype and the versioned flags.
struct Header {
    data: *mut u8,
    device: Device,
    dtype: DType,
    flags: DlpackFlags,
}

/// An export block with everything but its owner written: the header
/// (deleter included), the shape and the element strides, which
/// `write_dims` writes into the block's `ndim` extents and `ndim` strides.
///
/// The dims are written straight into the new block (no zeroing first:
/// for a few axes that was a `memset` call); if `write_dims` refuses them,
/// the block (nothing in it needs dropping yet) is freed before returning.
///
/// # Safety
///
/// When `write_dims` returns `Ok`, it has written every value of both
/// slices; `header.flags` says nothing untrue of the memory (see below).
#[inline(always)]
unsafe fn fill_block<M: ManagedTensorBase>(
    ndim: usize,
    header: Header,
    write_dims: impl FnOnce(&mut [MaybeUninit<i64>], &mut [MaybeUninit<i64>]) -> Result<()>,
) -> Result<NonNull<ExportHead<M>>> {
    let (layout, offset) = block_layout::<M>(ndim);
    // SAFETY: the layout has a non-zero size (the head is never empty).
    let raw = unsafe { std::alloc::alloc(layout) };
    if raw.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: `offset` and `2 * ndim` values lie inside the block just
    // allocated, which nothing else can see.
    let dims = unsafe { raw.add(offset).cast::<i64>() };
    {
        // SAFETY: the `2 * ndim` values lie inside the block, aligned for
        // `i64` (the block layout's `extend`); `MaybeUninit` needs no
        // initialised memory, and the slice is gone before `dims` is used
        // again.
        let values =
            unsafe { std::slice::from_raw_parts_mut(dims.cast::<MaybeUninit<i64>>(), 2 * ndim) };
        let (shape, strides) = values.split_at_mut(ndim);
        if let Err(refused) = write_dims(shape, strides) {
            // SAFETY: allocated above with this layout; nothing in it is
            // initialised that needs dropping.
            unsafe { std::alloc::dealloc(raw, layout) };
            return Err(refused);
        }
    }
    let mut managed = M::from_parts(
        DLTensor {
            data: header.data.cast(),
            device: header.device.to_dlpack(),
            ndim: ndim as i32,
            dtype: header.dtype.to_dlpack(),
            shape: std::ptr::null_mut(),
            strides: std::ptr::null_mut(),
            byte_offset: 0,
        },
        std::ptr::null_mut(),
        Some(delete_export::<M>),
    );
    // SAFETY: every caller passes READ_ONLY only for memory that must not
    // be written, IS_SUBBYTE_TYPE_PADDED only for a padded dtype, and
    // IS_COPIED only for a private copy.
    unsafe { managed.set_flags_unchecked(header.flags) };
    if ndim > 0 {
        let described = managed.tensor_mut();
        described.shape = dims;
        // SAFETY: `dims` holds `2 * ndim` values.
        described.strides = unsafe { dims.add(ndim) };
    }
    let head = raw.cast::<ExportHead<M>>();
    // SAFETY: the block starts with room for an `ExportHead<M>` (offset 0
    // of its layout, suitably aligned); the header and the axis count are
    // written in place, the owner is left to `finish_block`.
    unsafe {
        (&raw mut (*head).header).write(managed);
        (&raw mut (*head).ndim).write(ndim);
        Ok(NonNull::new_unchecked(head))
    }
}

/// [`fill_block`] for a tensor: its extents, and its byte strides
/// converted to element strides (refused when one does not divide).
fn fill_tensor_block<M: ManagedTensorBase>(
    tensor: &Tensor,
    flags: DlpackFlags,
) -> Result<NonNull<ExportHead<M>>> {
    let header = Header {
        data: tensor.data_ptr(),
        device: tensor.device(),
        dtype: tensor.dtype(),
        flags,
    };
    let write_dims = |shape: &mut [MaybeUninit<i64>], strides: &mut [MaybeUninit<i64>]| {
        // The extents and zeroed strides in one pass, so that the strides
        // can be borrowed as initialised values.
        for ((to, stride), &extent) in shape.iter_mut().zip(strides.iter_mut()).zip(tensor.shape())
        {
            to.write(extent as i64);
            stride.write(0);
        }
        // SAFETY: every one of the `ndim` strides was just written (the
        // tensor has `ndim` extents), and `MaybeUninit<i64>` has `i64`'s
        // layout.
        let strides = unsafe { &mut *(std::ptr::from_mut(strides) as *mut [i64]) };
        tensor.layout().element_strides_into(strides)
    };
    // SAFETY: `write_dims` writes every extent and stride before its `Ok`;
    // the caller's flags mirror the tensor (see `export_flags`).
    unsafe { fill_block(tensor.ndim(), header, write_dims) }
}

/// An owned `ndarray` array as a versioned managed tensor, with no
/// [`Tensor`] (and so no [`Layout`]) in between: the dims are the array's
/// own extents and element strides, written as they are, and its buffer
/// becomes the owner (counted by [`crate::live_buffers`]).
///
/// `ndim` must be at most [`MAX_NDIM`] (the caller's check for `ArrayD`).
pub(crate) fn array_into_dlpack<T: Element, D: ndarray::Dimension>(
    array: ndarray::Array<T, D>,
) -> Result<versioned::Dlpack> {
    let ndim = array.ndim();
    debug_assert!(ndim <= MAX_NDIM);
    let mut flags = DlpackFlags::empty();
    if T::DTYPE.is_padded_subbyte() {
        flags |= DlpackFlags::IS_SUBBYTE_TYPE_PADDED;
    }
    let header = Header {
        data: array.as_ptr().cast_mut().cast::<u8>(),
        device: Device::CPU,
        dtype: T::DTYPE,
        flags,
    };
    let write_dims = |shape: &mut [MaybeUninit<i64>], strides: &mut [MaybeUninit<i64>]| {
        // An owned array's extents each fit in `isize` (their product over
        // the non-zero ones does), and its strides count elements already,
        // as DLPack's do: nothing to convert.
        for (to, &extent) in shape.iter_mut().zip(array.shape()) {
            to.write(extent as i64);
        }
        // One stride can still be too large in bytes: an axis whose stride
        // is never applied (length 1, or an empty array) keeps whatever it
        // was built with. It gets the compact value, as the `Tensor` path
        // writes it (`Layout::element_strides_into`), not one a consumer
        // would overflow scaling by the itemsize.
        // Checked once after the loop (an OR of their sizes is at least the
        // largest), so the common export pays one OR per axis.
        let fits = isize::MAX as usize / size_of::<T>().max(1);
        let mut widest = 0usize;
        for (to, &stride) in strides.iter_mut().zip(array.strides()) {
            to.write(stride as i64);
            widest |= stride.unsigned_abs();
        }
        if widest > fits {
            compact_overflowing(strides, array.shape(), array.strides(), fits);
        }
        Ok(())
    };
    // SAFETY: `write_dims` writes all `ndim` extents and `ndim` strides
    // (the array has that many of each) and always returns `Ok`; the flags
    // claim no read-only memory (the array is owned and moves in) and
    // padded sub-byte storage exactly when `T`'s dtype is one.
    let block = unsafe { fill_block::<DLManagedTensorVersioned>(ndim, header, write_dims)? };
    // The array's heap buffer is all the owner needs: taking the `Vec`
    // apart does not move it, so the header's `data` (a pointer into it,
    // or dangling and aligned for no elements) stays valid for the owner's
    // life, and every element the dims reach lies in it (ndarray's
    // invariant for an owned array).
    finish_block(block, RustVec::holding(array))
}

/// Rewrites, in `out` (the element strides written), each stride larger
/// than `fits` elements with its axis's compact (row-major) value: the
/// product of the extents after it, each counted as at least 1, saturating
/// (as `Layout::element_strides_into` counts it).
#[cold]
fn compact_overflowing(
    out: &mut [MaybeUninit<i64>],
    shape: &[usize],
    strides: &[isize],
    fits: usize,
) {
    let mut compact: i64 = 1;
    for ((to, &stride), &extent) in out.iter_mut().zip(strides).zip(shape).rev() {
        if stride.unsigned_abs() > fits {
            to.write(compact);
        }
        compact = compact.saturating_mul(extent.max(1) as i64);
    }
}

/// Hands `owner` to a block from [`fill_block`] and makes it a managed
/// tensor.
fn finish_block<M: ManagedTensorBase>(
    block: NonNull<ExportHead<M>>,
    owner: Holder,
) -> Result<Managed<M>> {
    let block = block.as_ptr();
    // SAFETY: the block is fully written but for its owner, which this
    // writes; from here the deleter frees it whole.
    unsafe { (&raw mut (*block).owner).write(owner) };
    // SAFETY: the block's header is a complete managed tensor whose
    // deleter frees the block exactly once; its version is dlpark's own.
    unsafe { Managed::from_raw(block.cast::<M>()) }.map_err(|e| {
        Error::buffer(
            from_raw_cause(&e),
            format!("cannot build a DLPack tensor: {e}"),
        )
    })
}

impl Tensor {
    fn export<M: ManagedTensorBase>(&self, flags: DlpackFlags) -> Result<Managed<M>> {
        let block = fill_tensor_block(self, flags)?;
        finish_block(block, self.owner().clone())
    }

    /// The flags every versioned export carries: `READ_ONLY` for a readonly
    /// tensor, `IS_SUBBYTE_TYPE_PADDED` for float4/float6 stored one per
    /// byte (without it, `(code, 4|6, 1)` means packed storage).
    fn export_flags(&self) -> DlpackFlags {
        let mut flags = DlpackFlags::empty();
        if self.readonly() {
            flags |= DlpackFlags::READ_ONLY;
        }
        if self.dtype().is_padded_subbyte() {
            flags |= DlpackFlags::IS_SUBBYTE_TYPE_PADDED;
        }
        flags
    }

    /// The legacy ABI has no flags: it can carry neither read-only memory
    /// nor padded sub-byte elements.
    fn check_legacy(&self) -> Result<()> {
        if self.dtype().is_padded_subbyte() {
            return Err(Error::buffer(
                Cause::DType,
                format!(
                    "cannot export {} over legacy DLPack: its elements are padded to one byte \
                     each, which only the versioned flag IS_SUBBYTE_TYPE_PADDED can say; ask for \
                     max_version >= (1, 0)",
                    self.dtype()
                ),
            ));
        }
        Ok(())
    }

    /// A fresh versioned (DLPack 1.3) managed tensor viewing this memory;
    /// `READ_ONLY` is set when the tensor is readonly.
    ///
    /// # Errors
    ///
    /// `Buffer` ([`Cause::Layout`]) when a byte stride on an axis longer
    /// than 1 of a non-empty tensor is not a multiple of the itemsize
    /// (DLPack strides count elements).
    pub fn to_dlpack_versioned(&self) -> Result<versioned::Dlpack> {
        self.export(self.export_flags())
    }

    /// Like [`Tensor::to_dlpack_versioned`], consuming the tensor.
    ///
    /// # Errors
    ///
    /// As [`Tensor::to_dlpack_versioned`].
    pub fn into_dlpack(self) -> Result<versioned::Dlpack> {
        // The tensor's own share of the owner moves into the export: no
        // reference count goes up here and down again when `self` drops.
        let block = fill_tensor_block(&self, self.export_flags())?;
        finish_block(block, self.into_owner())
    }

    /// A fresh legacy managed tensor viewing this memory. The legacy ABI
    /// has no flags: it cannot say "read-only", nor that sub-byte elements
    /// are padded to a byte each.
    ///
    /// ```
    /// use dlbridge::{Cause, Tensor};
    ///
    /// let t = Tensor::from(vec![1.0f64, 2.0]);
    /// // A legacy tensor cannot say whether it may be written: imported read-only...
    /// assert!(Tensor::try_from(t.to_dlpack_legacy().unwrap()).unwrap().readonly());
    /// // ...and a readonly tensor cannot leave that way at all.
    /// let err = t.to_readonly().to_dlpack_legacy().err().unwrap();
    /// assert_eq!(err.cause(), Cause::Readonly);
    /// ```
    ///
    /// # Errors
    ///
    /// `Buffer` ([`Cause::Readonly`]) for a readonly tensor; `Buffer`
    /// ([`Cause::DType`]) for float4/float6 elements stored one per byte;
    /// `Buffer` ([`Cause::Layout`]) when a byte stride on an axis longer
    /// than 1 of a non-empty tensor is not a multiple of the itemsize
    /// (DLPack strides count elements).
    pub fn to_dlpack_legacy(&self) -> Result<legacy::Dlpack> {
        if self.readonly() {
            return Err(Error::buffer(
                Cause::Readonly,
                "cannot export a readonly tensor over legacy DLPack, which cannot signal \
                 read-only; ask for max_version >= (1, 0)",
            ));
        }
        self.check_legacy()?;
        self.export(DlpackFlags::empty())
    }

    /// A fresh private copy as a versioned managed tensor flagged `IS_COPIED`.
    ///
    /// # Errors
    ///
    /// Those of [`Tensor::copy`]: `Buffer` ([`Cause::Device`]) for memory
    /// not on the CPU, `Memory` ([`Cause::Allocation`]) when the copy cannot
    /// be allocated.
    pub fn to_dlpack_copy(&self) -> Result<versioned::Dlpack> {
        let copy = self.copy()?;
        copy.export(copy.export_flags() | DlpackFlags::IS_COPIED)
    }

    /// A fresh private copy over legacy DLPack (writable, whether or not
    /// this tensor is).
    ///
    /// # Errors
    ///
    /// `Buffer` ([`Cause::DType`]) for float4/float6 elements stored one per
    /// byte, which legacy DLPack cannot describe; then those of
    /// [`Tensor::copy`].
    pub fn to_dlpack_legacy_copy(&self) -> Result<legacy::Dlpack> {
        self.check_legacy()?;
        self.copy()?.export(DlpackFlags::empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn byte_offset_that_wraps_is_refused() {
        let t = Tensor::zeros(&[4], DType::UINT8).unwrap();
        let raw = t.to_dlpack_versioned().unwrap().into_raw();
        // SAFETY: `raw` is the fresh managed tensor just exported, owned here.
        let managed = unsafe {
            (*raw).dl_tensor.byte_offset = u64::MAX - 31;
            Managed::from_raw(raw).unwrap()
        };
        let err = Tensor::try_from(managed).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Value);
        assert!(err.message().contains("wraps around"), "{err}");
    }

    #[test]
    fn managed_tensors_dlpark_refuses_say_why() {
        let t = Tensor::zeros(&[4], DType::UINT8).unwrap();
        let raw = t.to_dlpack_versioned().unwrap().into_raw();
        // SAFETY: `raw` is the fresh managed tensor just exported, owned
        // here; dlpark releases it when it refuses the version.
        let err = unsafe {
            (*raw).version.major += 1;
            Managed::from_raw(raw).err().unwrap()
        };
        assert_eq!(from_raw_cause(&err), Cause::Version);
        // SAFETY: NULL is refused before anything is read.
        let null = unsafe { versioned::Dlpack::from_raw(std::ptr::null_mut()) };
        assert_eq!(from_raw_cause(&null.err().unwrap()), Cause::Pointer);
    }

    #[test]
    fn padded_sub_byte_exports_with_its_flag_and_not_over_legacy() {
        let fp4 = DType::from_dlpack_flagged(
            DType::from_name("float4_e2m1fn").unwrap().to_dlpack(),
            true,
        )
        .unwrap();
        let t = Tensor::zeros(&[3], fp4).unwrap();
        let exported = t.to_dlpack_versioned().unwrap();
        assert!(
            exported
                .flags()
                .contains(DlpackFlags::IS_SUBBYTE_TYPE_PADDED)
        );
        assert_eq!(Tensor::try_from(exported).unwrap().dtype(), fp4);
        assert_eq!(
            t.to_dlpack_legacy().err().map(|e| e.kind()),
            Some(ErrorKind::Buffer)
        );
    }

    #[test]
    fn versioned_round_trip_shares_memory_and_owner() {
        let t = Tensor::zeros(&[2, 3], DType::INT32).unwrap();
        let back = Tensor::try_from(t.to_dlpack_versioned().unwrap()).unwrap();
        assert_eq!(back.data_ptr(), t.data_ptr());
        assert_eq!(back.strides(), t.strides());
        assert_eq!(back.dtype(), DType::INT32);
        assert!(!back.readonly());
        let ro = Tensor::try_from(t.to_readonly().to_dlpack_versioned().unwrap()).unwrap();
        assert!(ro.readonly());
        assert_eq!(
            t.to_readonly().to_dlpack_legacy().err().map(|e| e.kind()),
            Some(ErrorKind::Buffer)
        );
        // A legacy capsule cannot say "read-only": imported read-only,
        // unless the caller vouches for the producer.
        let legacy = Tensor::try_from(t.to_dlpack_legacy().unwrap()).unwrap();
        assert!(legacy.readonly() && legacy.data_ptr() == t.data_ptr());
        let vouched = Tensor::from_dlpack_legacy_writable(t.to_dlpack_legacy().unwrap()).unwrap();
        assert!(!vouched.readonly());
        let copied = t.to_dlpack_copy().unwrap();
        assert!(copied.flags().contains(DlpackFlags::IS_COPIED));
        assert_ne!(Tensor::try_from(copied).unwrap().data_ptr(), t.data_ptr());
    }
}
