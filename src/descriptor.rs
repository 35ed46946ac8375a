//! The one validated description of tensor memory that a spoke hands the hub.
//!
//! A spoke reads its protocol into [`Claims`]: what the producer says of
//! its memory (pointer, offset, layout, dtype, device, readonly, and the
//! length it knows the memory has, if it knows one), nothing checked yet. It
//! turns them into a [`Descriptor`] with
//! [`Descriptor::new`], which runs every check a pointer from another
//! program needs. A `Descriptor` exists only if the checks passed (dlpark's
//! `validate() -> TensorRef` habit), and a [`Tensor`](crate::Tensor) is built
//! only from a `Descriptor` and an owner
//! ([`Tensor::from_descriptor`](crate::Tensor::from_descriptor)), so no
//! spoke can forget one.
//!
//! ```
//! use dlbridge::{Claims, DType, Descriptor, Device, Layout, Source};
//!
//! let bytes = [0u8; 16];
//! let claims = Claims {
//!     what: "example",
//!     base: bytes.as_ptr().cast_mut(),
//!     offset: 0,
//!     layout: Layout::contiguous(&[4], 4).unwrap(),
//!     dtype: DType::FLOAT32,
//!     device: Device::CPU,
//!     readonly: true,
//!     source: Source::Rust,
//!     len: Some(bytes.len()),
//! };
//! assert!(Descriptor::new(claims).is_ok());
//!
//! // Twenty bytes of float32 do not fit in sixteen: refused.
//! let too_long = Claims {
//!     what: "example",
//!     base: bytes.as_ptr().cast_mut(),
//!     offset: 4,
//!     layout: Layout::contiguous(&[4], 4).unwrap(),
//!     dtype: DType::FLOAT32,
//!     device: Device::CPU,
//!     readonly: true,
//!     source: Source::Rust,
//!     len: Some(bytes.len()),
//! };
//! assert!(Descriptor::new(too_long).is_err());
//! ```

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Cause, Error, Result};
use crate::layout::Layout;

/// Which protocol a tensor's memory came through.
///
/// ```
/// use dlbridge::{Source, Tensor};
///
/// let t = Tensor::from(vec![1u8, 2]);
/// assert_eq!(t.source(), Source::Rust);
/// let back = Tensor::try_from(t.to_dlpack_versioned().unwrap()).unwrap();
/// assert_eq!((back.source(), back.source().as_str()), (Source::Dlpack, "dlpack"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A DLPack managed tensor (capsule, `__dlpack__`, or Rust `Dlpack`).
    Dlpack,
    /// An exact `numpy.ndarray` read from its own fields (the tensor its
    /// `__dlpack__` would describe, with no capsule made).
    Ndarray,
    /// A PEP 3118 buffer.
    Buffer,
    /// An `__array_struct__` capsule.
    ArrayStruct,
    /// An `__array_interface__` dict.
    ArrayInterface,
    /// A `__cuda_array_interface__` dict (device memory).
    CudaArrayInterface,
    /// An Arrow C Data Interface array (`__arrow_c_array__`, `__arrow_c_stream__`).
    Arrow,
    /// Memory allocated or handed over by Rust.
    Rust,
}

impl Source {
    /// The name Python sees in `Tensor.source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dlpack => "dlpack",
            Self::Ndarray => "ndarray",
            Self::Buffer => "buffer",
            Self::ArrayStruct => "array_struct",
            Self::ArrayInterface => "array_interface",
            Self::CudaArrayInterface => "cuda_array_interface",
            Self::Arrow => "arrow",
            Self::Rust => "rust",
        }
    }
}

/// What a producer says of its memory, as a spoke read it out of its
/// protocol: unchecked claims, which [`Descriptor::new`] checks (or
/// refuses) before anything reads through them.
///
/// ```
/// use dlbridge::{Claims, DType, Descriptor, Device, Layout, Source};
///
/// // Four int32 read backwards: the first logical element is the last in
/// // memory, 12 bytes in, and the stride is -4 bytes.
/// let block = [1i32, 2, 3, 4];
/// let claims = Claims {
///     what: "reversed block",
///     base: block.as_ptr().cast_mut().cast(),
///     offset: 12,
///     layout: Layout::new(&[4], Some(&[-4]), 4).unwrap(),
///     dtype: DType::INT32,
///     device: Device::CPU,
///     readonly: true,
///     source: Source::Rust,
///     len: Some(16),
/// };
/// let d = Descriptor::new(claims).unwrap();
/// assert_eq!(d.data_ptr().cast_const(), block[3..].as_ptr().cast());
/// assert_eq!(d.layout().span(), (-12, 4));
/// ```
#[derive(Debug)]
pub struct Claims<'a> {
    /// Names the source in messages (`"DLPack tensor"`, `"buffer"`, ...).
    pub what: &'a str,
    /// The pointer as the producer gave it (DLPack's `data`, `Py_buffer.buf`).
    pub base: *mut u8,
    /// Bytes from `base` to the first logical element (DLPack's
    /// `byte_offset`, an array-interface `offset`).
    pub offset: usize,
    /// Shape and byte strides, validated on their own already.
    pub layout: Layout,
    /// The element type; its itemsize must be the layout's.
    pub dtype: DType,
    /// Where the memory lives (addresses are only checked on the CPU).
    pub device: Device,
    /// Whether writes are forbidden.
    pub readonly: bool,
    /// The protocol the memory came through.
    pub source: Source,
    /// Bytes the producer says lie at `base` (a buffer's `len`), when the
    /// layout must fit in them; `None` when the producer states no length.
    pub len: Option<usize>,
}

/// Tensor memory whose description passed every check: a non-NULL pointer
/// wherever there are elements to address, an address (and, on the CPU, a
/// whole span) that does not wrap around the address space, a layout inside
/// the known length, and a dtype of the layout's itemsize.
///
/// ```
/// use dlbridge::{Cause, Claims, DType, Descriptor, Device, Layout, Source};
///
/// let claims = |base: *mut u8| Claims {
///     what: "example",
///     base,
///     offset: 0,
///     layout: Layout::contiguous(&[2, 2], 2).unwrap(),
///     dtype: DType::FLOAT16,
///     device: Device::CPU,
///     readonly: true,
///     source: Source::Rust,
///     len: None,
/// };
/// let mut bytes = [0u8; 8];
/// let d = Descriptor::new(claims(bytes.as_mut_ptr())).unwrap();
/// assert_eq!((d.dtype(), d.layout().nbytes()), (DType::FLOAT16, 8));
///
/// // NULL, with four elements to address: refused.
/// let err = Descriptor::new(claims(std::ptr::null_mut())).unwrap_err();
/// assert_eq!(err.cause(), Cause::Pointer);
/// ```
#[derive(Debug, Clone)]
pub struct Descriptor {
    pub(crate) data: *mut u8,
    pub(crate) layout: Layout,
    pub(crate) dtype: DType,
    pub(crate) device: Device,
    pub(crate) readonly: bool,
    pub(crate) source: Source,
}

impl Descriptor {
    /// Runs every check on `claims`.
    ///
    /// # Errors
    ///
    /// - `Value` ([`Cause::DType`]): the dtype's itemsize is not the layout's.
    /// - `Value` ([`Cause::Pointer`]): `base + offset`, or (on the CPU, for
    ///   a non-empty layout) the span around it, wraps around the address
    ///   space; an `offset` beyond `len`.
    /// - `Buffer` ([`Cause::Pointer`]): a non-empty layout that reaches
    ///   outside `len` bytes, or a NULL `base` with elements to address.
    /// - `Value` ([`Cause::Layout`]): with `len`, an `offset` or `len` that
    ///   does not fit in `isize`.
    #[inline(always)]
    pub fn new(claims: Claims<'_>) -> Result<Self> {
        // The checks read the claims in place, and their refusals are built
        // out of line: a descriptor is made on every import, and moving its
        // layout through a call or two showed up as `memcpy` in profiles.
        check(&claims)?;
        Ok(Self::assemble(claims))
    }

    /// A descriptor of claims whose every check the caller has already
    /// proved by other means (a Rust `ndarray::Array`: a live allocation,
    /// never NULL, whose elements' offsets all fit in `isize`, of an
    /// [`Element`](crate::dtype::Element) type whose size is its dtype's).
    /// Debug builds run the checks all the same.
    ///
    /// # Safety
    ///
    /// `claims` must pass every check of [`Descriptor::new`].
    #[inline(always)]
    pub(crate) unsafe fn new_proved(claims: Claims<'_>) -> Self {
        debug_assert!(check(&claims).is_ok(), "unproved claims: {claims:?}");
        Self::assemble(claims)
    }

    /// Every check of [`Descriptor::new`], on claims where they lie: a
    /// spoke that built its claims in place checks them there before they
    /// move (the move right after the layout's narrow writes stalled store
    /// forwarding), then makes the descriptor with
    /// [`Descriptor::new_proved`].
    ///
    /// # Errors
    ///
    /// As [`Descriptor::new`].
    #[inline(always)]
    pub(crate) fn check(claims: &Claims<'_>) -> Result<()> {
        check(claims)
    }

    /// The descriptor of checked claims.
    #[inline(always)]
    fn assemble(claims: Claims<'_>) -> Self {
        Self {
            // The address is computed, never dereferenced, so wrapping
            // arithmetic is exact; non-CPU "pointers" may be handles, which
            // DLPack consumers sum with the offset all the same.
            data: claims.base.wrapping_add(claims.offset),
            layout: claims.layout,
            dtype: claims.dtype,
            device: claims.device,
            readonly: claims.readonly,
            source: claims.source,
        }
    }

    /// The address of the first logical element.
    #[inline]
    pub fn data_ptr(&self) -> *mut u8 {
        self.data
    }

    /// The validated layout.
    #[inline]
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The element type.
    #[inline]
    pub fn dtype(&self) -> DType {
        self.dtype
    }
}

/// Every check of [`Descriptor::new`], on the claims in place.
#[inline]
fn check(claims: &Claims<'_>) -> Result<()> {
    let layout = &claims.layout;
    if claims.dtype.itemsize() != layout.itemsize() {
        return Err(itemsize_mismatch(claims));
    }
    let Some(first) = claims.base.addr().checked_add(claims.offset) else {
        return Err(offset_wraps(claims));
    };
    if let Some(len) = claims.len {
        if claims.offset > len {
            return Err(offset_beyond(claims, len));
        }
        layout.check_within(claims.offset, len)?;
    }
    if layout.size() > 0 {
        if claims.base.is_null() {
            return Err(null_data(claims));
        }
        let (low, high) = layout.span();
        if claims.device.is_cpu()
            && (first.checked_add_signed(low).is_none() || first.checked_add_signed(high).is_none())
        {
            return Err(span_wraps(claims, first));
        }
    }
    Ok(())
}

#[cold]
fn itemsize_mismatch(claims: &Claims<'_>) -> Error {
    Error::value(
        Cause::DType,
        format!(
            "{} has dtype {} ({} bytes) but a layout of {}-byte items",
            claims.what,
            claims.dtype,
            claims.dtype.itemsize(),
            claims.layout.itemsize()
        ),
    )
}

#[cold]
fn offset_wraps(claims: &Claims<'_>) -> Error {
    Error::value(
        Cause::Pointer,
        format!(
            "{} at {:p} with byte_offset {} wraps around the address space",
            claims.what, claims.base, claims.offset
        ),
    )
}

#[cold]
fn offset_beyond(claims: &Claims<'_>, len: usize) -> Error {
    Error::value(
        Cause::Pointer,
        format!(
            "{} offset {} is beyond its buffer's {len} bytes",
            claims.what, claims.offset
        ),
    )
}

#[cold]
fn null_data(claims: &Claims<'_>) -> Error {
    Error::buffer(
        Cause::Pointer,
        format!(
            "{} has a NULL data pointer for shape {:?}",
            claims.what,
            claims.layout.shape()
        ),
    )
}

#[cold]
fn span_wraps(claims: &Claims<'_>, first: usize) -> Error {
    Error::value(
        Cause::Pointer,
        format!(
            "{} at {first:#x} with strides {:?} wraps around the address space",
            claims.what,
            claims.layout.strides()
        ),
    )
}
