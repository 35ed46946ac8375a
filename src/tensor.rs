//! The hub: one validated, owned handle to tensor memory.

use std::fmt;
use std::sync::Arc;

use crate::descriptor::{Claims, Descriptor, Source};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Cause, Error, Result};
use crate::layout::Layout;
use crate::owner::{Allocation, Holder, RustBuffer};

/// A view of tensor memory: validated layout + dtype + device + data pointer
/// + readonly flag + the owner that keeps the memory alive.
///
/// Cloning a `Tensor` makes another view of the same memory (the owner is
/// shared); the owner is released exactly once, when the last view and the
/// last export made from it are gone. `Tensor` is `Send + Sync` and may be
/// dropped on any thread.
///
/// ```
/// use dlbridge::{DType, Tensor};
///
/// let t = Tensor::zeros(&[2, 3], DType::FLOAT32).unwrap();
/// assert_eq!((t.shape(), t.strides()), (&[2, 3][..], &[12, 4][..]));
/// let round_trip = Tensor::try_from(t.to_dlpack_versioned().unwrap()).unwrap();
/// assert_eq!(round_trip.data_ptr(), t.data_ptr());
/// ```
#[derive(Clone)]
pub struct Tensor {
    data: *mut u8,
    layout: Layout,
    dtype: DType,
    device: Device,
    readonly: bool,
    source: Source,
    owner: Holder,
}

// Every import and export moves a `Tensor`; at 192 bytes rustc's moves
// became `memcpy` calls (two per `asarray`), at 184 they are inline.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(size_of::<Tensor>() <= 184);

// SAFETY: `data` is an address inside memory kept alive by `owner`, which is
// `Send + Sync`; the tensor itself never dereferences it outside `unsafe`
// accessors whose callers uphold the aliasing rules.
unsafe impl Send for Tensor {}
// SAFETY: as above; shared access exposes only metadata.
unsafe impl Sync for Tensor {}

impl Tensor {
    /// A tensor over checked memory: the only way one is built.
    ///
    /// # Safety
    ///
    /// For a non-empty layout on the CPU, every byte in the descriptor's
    /// span around its data pointer must be readable (and writable unless
    /// it is readonly) for as long as `owner` lives. For other devices the
    /// pointer is never dereferenced.
    ///
    /// An owner whose [`Allocation::is_rust_owned`] returns `true` must be
    /// the only way to reach that memory: nothing outside this tensor and
    /// its clones may read or write it while the owner lives (the safe
    /// `as_ndarray_mut` hands out `&mut` on that promise).
    #[inline(always)]
    pub unsafe fn from_descriptor(descriptor: Descriptor, owner: Arc<dyn Allocation>) -> Self {
        // SAFETY: forwarded from the caller.
        unsafe { Self::from_held(descriptor, Holder::shared(owner)) }
    }

    /// [`Tensor::from_descriptor`] with the owner in a [`Holder`] (held
    /// inline, with no `Arc`, until the tensor is first cloned).
    ///
    /// # Safety
    ///
    /// As for [`Tensor::from_descriptor`].
    #[inline(always)]
    pub(crate) unsafe fn from_held(descriptor: Descriptor, owner: Holder) -> Self {
        let Descriptor {
            data,
            layout,
            dtype,
            device,
            readonly,
            source,
        } = descriptor;
        Self {
            data,
            layout,
            dtype,
            device,
            readonly,
            source,
            owner,
        }
    }

    fn allocate(shape: &[usize], dtype: DType, zeroed: bool) -> Result<Self> {
        let layout = Layout::contiguous(shape, dtype.itemsize())?;
        let buffer = RustBuffer::allocate(layout.nbytes(), zeroed)?;
        let descriptor = Descriptor::new(Claims {
            what: "Rust-owned block",
            base: buffer.as_ptr(),
            offset: 0,
            layout,
            dtype,
            device: Device::CPU,
            readonly: false,
            source: Source::Rust,
            // The block was sized from this very layout: nothing to bound.
            len: None,
        })?;
        // SAFETY: the buffer holds the layout's `nbytes` bytes, C-contiguous,
        // owned by the owner moved in with it.
        Ok(unsafe { Self::from_held(descriptor, Holder::new(buffer)) })
    }

    /// A Rust-owned, zero-filled, C-contiguous tensor.
    ///
    /// # Errors
    ///
    /// `Value` ([`Cause::Layout`]) for more than [`MAX_NDIM`](crate::MAX_NDIM)
    /// axes or a shape whose element count or byte size does not fit in
    /// `isize`; `Memory` ([`Cause::Allocation`]) when the allocator cannot
    /// supply the bytes (`Value`, same cause, for a size too large to ask
    /// for at all).
    pub fn zeros(shape: &[usize], dtype: DType) -> Result<Self> {
        Self::allocate(shape, dtype, true)
    }

    /// A Rust-owned, C-contiguous tensor whose bytes are uninitialised
    /// (reading them gives arbitrary values, as with `np.empty`).
    ///
    /// # Errors
    ///
    /// `Value` ([`Cause::Layout`]) for more than [`MAX_NDIM`](crate::MAX_NDIM)
    /// axes or a shape whose element count or byte size does not fit in
    /// `isize`; `Memory` ([`Cause::Allocation`]) when the allocator cannot
    /// supply the bytes (`Value`, same cause, for a size too large to ask
    /// for at all).
    pub fn empty(shape: &[usize], dtype: DType) -> Result<Self> {
        Self::allocate(shape, dtype, false)
    }

    /// A Rust-owned C-contiguous copy (CPU only).
    ///
    /// ```
    /// use dlbridge::Tensor;
    /// use ndarray::{array, s};
    ///
    /// let mut a = array![[1, 2, 3], [4, 5, 6]];
    /// a.slice_collapse(s![.., ..;2]); // columns 0 and 2: strided
    /// let t = Tensor::from(a);
    /// let c = t.copy().unwrap();
    /// assert!(c.layout().is_c_contiguous() && !t.layout().is_c_contiguous());
    /// // SAFETY: nothing writes this memory while the view lives.
    /// assert_eq!(unsafe { c.as_ndarray::<i32>() }.unwrap(), unsafe { t.as_ndarray::<i32>() }.unwrap());
    /// ```
    ///
    /// # Errors
    ///
    /// `Buffer` ([`Cause::Device`]) for a tensor that is not in CPU memory;
    /// `Memory` ([`Cause::Allocation`]) when the copy cannot be allocated.
    pub fn copy(&self) -> Result<Self> {
        self.device.ensure_cpu("copy()")?;
        let copy = Self::empty(self.shape(), self.dtype)?;
        // SAFETY: `self` is readable over its span (construction invariant)
        // and `copy` is a fresh, exclusively owned block of `nbytes` bytes.
        unsafe { copy_to_c_order(self.data, &self.layout, copy.data) };
        Ok(copy)
    }

    /// The same bytes reinterpreted as another dtype, by NumPy's rule for
    /// `ndarray.view`: with the same itemsize any layout may be viewed
    /// (`uint16` as `bfloat16`); with another, the last axis must be
    /// contiguous and its bytes a whole number of new items, and only its
    /// extent changes (`bfloat16` as `uint8` doubles it).
    ///
    /// ```
    /// use dlbridge::{DType, Tensor};
    ///
    /// let bits = Tensor::from(vec![0x3f80u16, 0x4000]); // bfloat16 1.0 and 2.0
    /// let bf16 = bits.view(DType::BFLOAT16).unwrap();
    /// // SAFETY: nothing writes this memory while the view lives.
    /// assert_eq!(unsafe { bf16.as_ndarray::<half::bf16>() }.unwrap()[[1]].to_f32(), 2.0);
    /// assert_eq!(bf16.view(DType::UINT8).unwrap().shape(), &[4]);
    /// assert_eq!(bits.view(DType::FLOAT32).unwrap().shape(), &[1]);
    /// assert!(bits.view(DType::FLOAT64).is_err()); // 4 bytes hold no 8-byte item
    /// ```
    ///
    /// # Errors
    ///
    /// `Value` ([`Cause::DType`]) when the itemsizes differ and the tensor
    /// is 0-d, its last axis is not contiguous, or that axis's bytes are
    /// not a multiple of the new itemsize.
    pub fn view(&self, dtype: DType) -> Result<Self> {
        let (old, new) = (self.dtype.itemsize(), dtype.itemsize());
        if old == new {
            return Ok(Self {
                dtype,
                ..self.clone()
            });
        }
        let refuse = |why: String| {
            Error::value(
                Cause::DType,
                format!(
                    "cannot view {} ({old} bytes) as {dtype} ({new} bytes): {why}",
                    self.dtype
                ),
            )
        };
        let (Some(&extent), Some(&stride)) = (self.shape().last(), self.strides().last()) else {
            return Err(refuse("a 0-d tensor cannot change its itemsize".into()));
        };
        if extent > 1 && stride != old as isize {
            return Err(refuse(format!(
                "the last axis (stride {stride} bytes) must be contiguous to change the itemsize"
            )));
        }
        // `extent * old` is inside the validated byte size.
        let bytes = extent * old;
        if bytes % new != 0 {
            return Err(refuse(format!(
                "the last axis holds {bytes} bytes, not a multiple of {new}"
            )));
        }
        let (mut shape, mut strides) = (self.shape().to_vec(), self.strides().to_vec());
        let last = shape.len() - 1;
        (shape[last], strides[last]) = (bytes / new, new as isize);
        self.relaid(dtype, &shape, &strides)
    }

    /// The lanes of a vector dtype (`float32x4`) as a trailing axis of
    /// scalars, over the same bytes: what NumPy can show of it.
    ///
    /// # Errors
    ///
    /// `Buffer` ([`Cause::DType`]) for lanes narrower than a byte (packed
    /// `float4_e2m1fn_x2`: no stride can address half a byte); `Value`
    /// ([`Cause::Layout`]) when the extra axis exceeds the maximum rank.
    pub fn lanes_as_axis(&self) -> Result<Self> {
        let lanes = usize::from(self.dtype.lanes());
        if lanes == 1 {
            return Ok(self.clone());
        }
        let scalar = self.dtype.scalar();
        if !self.dtype.bits().is_multiple_of(8) {
            return Err(Error::buffer(
                Cause::DType,
                format!(
                    "dtype {} packs {lanes} lanes of {} bits into each byte: no array can show \
                     them as an axis",
                    self.dtype,
                    self.dtype.bits()
                ),
            ));
        }
        let (mut shape, mut strides) = (self.shape().to_vec(), self.strides().to_vec());
        shape.push(lanes);
        strides.push(scalar.itemsize() as isize);
        self.relaid(scalar, &shape, &strides)
    }

    /// The same memory with another dtype and layout that covers only
    /// bytes the tensor's own layout covers (the callers' proof).
    fn relaid(&self, dtype: DType, shape: &[usize], strides: &[isize]) -> Result<Self> {
        Ok(Self {
            dtype,
            layout: Layout::new(shape, Some(strides), dtype.itemsize())?,
            ..self.clone()
        })
    }

    /// Extents per axis.
    #[inline]
    pub fn shape(&self) -> &[usize] {
        self.layout.shape()
    }

    /// Strides per axis, in **bytes**.
    #[inline]
    pub fn strides(&self) -> &[isize] {
        self.layout.strides()
    }

    /// The validated layout.
    #[inline]
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Number of axes.
    #[inline]
    pub fn ndim(&self) -> usize {
        self.layout.ndim()
    }

    /// Number of elements.
    #[inline]
    pub fn size(&self) -> usize {
        self.layout.size()
    }

    /// Bytes per element.
    #[inline]
    pub fn itemsize(&self) -> usize {
        self.layout.itemsize()
    }

    /// `size * itemsize`.
    #[inline]
    pub fn nbytes(&self) -> usize {
        self.layout.nbytes()
    }

    /// The element type.
    #[inline]
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Where the memory lives.
    #[inline]
    pub fn device(&self) -> Device {
        self.device
    }

    /// Whether writes through this tensor are forbidden.
    #[inline]
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// Which protocol the memory came through.
    #[inline]
    pub fn source(&self) -> Source {
        self.source
    }

    /// Address of the first logical element (index `[0, ..., 0]`).
    #[inline]
    pub fn data_ptr(&self) -> *mut u8 {
        self.data
    }

    /// The owner's holder, for exports that must keep the memory alive
    /// (its clone shares the owner).
    pub(crate) fn owner(&self) -> &Holder {
        &self.owner
    }

    /// This view's hold on the owner, for an export that consumes the
    /// tensor (an owner this tensor alone held stays unshared).
    pub(crate) fn into_owner(self) -> Holder {
        self.owner
    }

    /// The descriptor and this view's hold on the owner, taken apart (the
    /// inverse of `Tensor::from_held`): an owner this tensor alone held
    /// stays inline, with no shared block to allocate.
    #[cfg_attr(not(feature = "python"), allow(dead_code))] // the layers above use it
    pub(crate) fn into_held_parts(self) -> (Descriptor, Holder) {
        let Self {
            data,
            layout,
            dtype,
            device,
            readonly,
            source,
            owner,
        } = self;
        (
            Descriptor {
                data,
                layout,
                dtype,
                device,
                readonly,
                source,
            },
            owner,
        )
    }

    /// A read-only view of the same memory.
    pub fn to_readonly(&self) -> Self {
        Self {
            readonly: true,
            ..self.clone()
        }
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tensor")
            .field("shape", &self.shape())
            .field("strides", &self.strides())
            .field("dtype", &format_args!("{}", self.dtype))
            .field("device", &format_args!("{}", self.device))
            .field("readonly", &self.readonly)
            .field("source", &self.source.as_str())
            .field("data", &self.data)
            .finish()
    }
}

/// Copies the elements of `layout` starting at `src` into `dst` in C order.
///
/// # Safety
///
/// `src` must be readable over `layout.span()`, `dst` writable for
/// `layout.nbytes()` bytes, and the two must not overlap.
pub(crate) unsafe fn copy_to_c_order(src: *const u8, layout: &Layout, dst: *mut u8) {
    if layout.size() == 0 {
        return;
    }
    if layout.is_c_contiguous() {
        // SAFETY: a C-contiguous layout's span is exactly `nbytes` from `src`.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, layout.nbytes()) };
        return;
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        copy_axis(
            src,
            layout.shape(),
            layout.strides(),
            layout.itemsize(),
            dst,
        )
    };
}

/// Copies one axis (and everything under it) and returns the advanced `dst`.
///
/// # Safety
///
/// As for [`copy_to_c_order`], for the sub-layout `shape`/`strides`.
unsafe fn copy_axis(
    src: *const u8,
    shape: &[usize],
    strides: &[isize],
    itemsize: usize,
    dst: *mut u8,
) -> *mut u8 {
    match shape {
        [] => {
            // SAFETY: one element at `src`, room for it at `dst`.
            unsafe { std::ptr::copy_nonoverlapping(src, dst, itemsize) };
            // SAFETY: still inside the destination block (or one past it).
            unsafe { dst.add(itemsize) }
        }
        [extent] if strides[0] == itemsize as isize => {
            let run = extent * itemsize;
            // SAFETY: a contiguous run of `extent` elements on both sides.
            unsafe { std::ptr::copy_nonoverlapping(src, dst, run) };
            // SAFETY: still inside the destination block (or one past it).
            unsafe { dst.add(run) }
        }
        // The innermost axis, strided: one fixed-size move per element
        // (a variable-length `memcpy` call per element was 3x slower).
        [extent] => {
            let stride = strides[0];
            // SAFETY: `extent` elements `stride` apart inside the source
            // span, and `extent * itemsize` bytes of room at `dst`.
            unsafe {
                match itemsize {
                    1 => gather::<u8>(src, stride, *extent, dst),
                    2 => gather::<u16>(src, stride, *extent, dst),
                    4 => gather::<u32>(src, stride, *extent, dst),
                    8 => gather::<u64>(src, stride, *extent, dst),
                    16 => gather::<[u64; 2]>(src, stride, *extent, dst),
                    _ => {
                        for i in 0..*extent {
                            std::ptr::copy_nonoverlapping(
                                src.offset(i as isize * stride),
                                dst.add(i * itemsize),
                                itemsize,
                            );
                        }
                    }
                }
                dst.add(extent * itemsize)
            }
        }
        [extent, rest @ ..] => {
            let mut dst = dst;
            for i in 0..*extent {
                // SAFETY: `i < extent`, so the offset stays inside the span.
                let from = unsafe { src.offset(i as isize * strides[0]) };
                // SAFETY: forwarded from the caller.
                dst = unsafe { copy_axis(from, rest, &strides[1..], itemsize, dst) };
            }
            dst
        }
    }
}

/// Copies `extent` elements of type `T`, `stride` bytes apart, to `dst`.
///
/// # Safety
///
/// Each `src + i * stride` (for `i < extent`) must be readable for
/// `size_of::<T>()` bytes, `dst` writable for `extent` of them, no overlap.
unsafe fn gather<T: Copy>(src: *const u8, stride: isize, extent: usize, dst: *mut u8) {
    let dst = dst.cast::<T>();
    for i in 0..extent {
        // SAFETY: forwarded from the caller; unaligned accesses because
        // neither side promises `T`'s alignment.
        unsafe {
            let value = src.offset(i as isize * stride).cast::<T>().read_unaligned();
            dst.add(i).write_unaligned(value);
        }
    }
}
