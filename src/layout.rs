//! Shape and byte-stride arithmetic, validated once, overflow-checked.
//!
//! A [`Layout`] is the proof that a shape/strides pair is sane: at most
//! [`MAX_NDIM`] axes, no negative extent, an element count and a byte span
//! that fit in `isize`, one stride per axis. Every spoke builds one at import
//! and every export trusts it. Strides are kept in **bytes** (as NumPy, the
//! buffer protocol and the array interface do) and converted to DLPack's
//! element strides only on the way out, when they divide the itemsize.
//!
//! ```
//! use dlbridge::Layout;
//!
//! // DLPack counts strides in elements; they are bytes from the start.
//! let l = Layout::from_element_strides(&[2, 3], Some(&[3, 1]), 4).unwrap();
//! assert_eq!((l.strides(), l.is_c_contiguous()), (&[12, 4][..], true));
//!
//! // Reversed: the span reaches below the first element, and back out to
//! // DLPack the stride is -1 element.
//! let reversed = Layout::from_signed(&[3], Some(&[-8]), 8).unwrap();
//! assert_eq!(reversed.span(), (-16, 8));
//! let mut elements = [0i64; 1];
//! reversed.element_strides_into(&mut elements).unwrap();
//! assert_eq!(elements, [-1]);
//! ```

use crate::error::{Cause, Error, Result};

/// The most axes a layout may have (NumPy's `NPY_MAXDIMS`, CPython's `PyBUF_MAX_NDIM`).
pub const MAX_NDIM: usize = 64;

/// Axes stored without a heap allocation (most tensors have at most this many).
const INLINE_NDIM: usize = 6;

/// Shape and strides, inline for small ranks. The arrays never move while
/// the layout is alive at one address, so exporters may hand out pointers
/// into them (the buffer protocol does).
///
/// The word-sized tag is deliberate: it is the niche that `Option<Tensor>`
/// and `Result<Tensor, _>` use, and a whole word keeps every move of those
/// aligned. With a one-byte tag, rustc copied the 175 bytes after it at odd
/// offsets on each wrap and unwrap, stalling store forwarding (10% of an
/// import's time in a profile).
#[derive(Clone, PartialEq, Eq)]
#[repr(u64)]
enum Dims {
    /// The first `ndim` (the layout's) of each array are the axes.
    Inline {
        shape: [usize; INLINE_NDIM],
        strides: [isize; INLINE_NDIM],
    },
    /// Shape then strides (as `usize` bits) in one allocation: one
    /// `malloc` and `free` per layout of more than [`INLINE_NDIM`] axes,
    /// not two.
    Heap { values: Box<[usize]> },
}

/// `values` (a `usize` slice) read as `isize`s.
#[inline(always)]
fn as_isizes(values: &[usize]) -> &[isize] {
    // SAFETY: `usize` and `isize` have the same size and alignment, and
    // every bit pattern is valid for both; the borrow is carried over.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<isize>(), values.len()) }
}

/// `values` read as `isize`s, mutably.
#[inline(always)]
fn as_isizes_mut(values: &mut [usize]) -> &mut [isize] {
    // SAFETY: as in `as_isizes`; the exclusive borrow is carried over.
    unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast::<isize>(), values.len()) }
}

impl Dims {
    /// `ndim` zero extents and strides, for the constructor to fill in place.
    #[inline(always)]
    fn zeroed(ndim: usize) -> Self {
        if ndim <= INLINE_NDIM {
            Self::Inline {
                shape: [0; INLINE_NDIM],
                strides: [0; INLINE_NDIM],
            }
        } else {
            Self::Heap {
                values: vec![0; 2 * ndim].into(),
            }
        }
    }

    /// The extents and strides of `ndim` axes (the count `zeroed` was given).
    #[inline(always)]
    fn parts_mut(&mut self, ndim: usize) -> (&mut [usize], &mut [isize]) {
        match self {
            Self::Inline { shape, strides } => (&mut shape[..ndim], &mut strides[..ndim]),
            Self::Heap { values } => {
                let (shape, strides) = values.split_at_mut(values.len() / 2);
                (shape, as_isizes_mut(strides))
            }
        }
    }

    #[inline(always)]
    fn shape(&self, ndim: usize) -> &[usize] {
        match self {
            Self::Inline { shape, .. } => &shape[..ndim],
            Self::Heap { values } => &values[..values.len() / 2],
        }
    }

    #[inline(always)]
    fn strides(&self, ndim: usize) -> &[isize] {
        match self {
            Self::Inline { strides, .. } => &strides[..ndim],
            Self::Heap { values } => as_isizes(&values[values.len() / 2..]),
        }
    }
}

/// A validated shape with byte strides.
///
/// ```
/// use dlbridge::{Cause, ErrorKind, Layout};
///
/// // A 2x3 float32 matrix, transposed: column-major byte strides.
/// let t = Layout::new(&[3, 2], Some(&[4, 12]), 4).unwrap();
/// assert!(t.is_f_contiguous() && !t.is_c_contiguous());
/// assert_eq!((t.size(), t.nbytes(), t.span()), (6, 24, (0, 24)));
///
/// // One stride for two axes: refused.
/// let err = Layout::new(&[2, 2], Some(&[8]), 4).unwrap_err();
/// assert_eq!((err.kind(), err.cause()), (ErrorKind::Value, Cause::Layout));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Layout {
    dims: Dims,
    /// Bytes per element, stored in 32 bits beside the rank and the two
    /// flags (one word for the four) so that a `Tensor` stays within 184
    /// bytes with its three-word owner (every import moves one; at 192,
    /// rustc's moves became `memcpy` calls on the import path).
    itemsize: u32,
    /// The number of axes (at most [`MAX_NDIM`]).
    ndim: u8,
    size: usize,
    /// Lowest byte touched, relative to the first logical element (`<= 0`).
    low: isize,
    /// One past the highest byte touched, relative to the first logical element.
    high: isize,
    c_contiguous: bool,
    f_contiguous: bool,
}

impl std::fmt::Debug for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layout")
            .field("shape", &self.shape())
            .field("strides", &self.strides())
            .field("itemsize", &self.itemsize)
            .finish()
    }
}

fn overflow(what: &str) -> Error {
    Error::value(Cause::Layout, format!("{what} does not fit in isize"))
}

impl Layout {
    /// Validates a shape given as signed integers (as DLPack and Python carry
    /// them) with optional byte strides; `None` means C-contiguous.
    ///
    /// # Errors
    ///
    /// `Value` ([`Cause::Layout`]) for more than [`MAX_NDIM`] axes, strides
    /// whose count is not the number of axes, a negative extent, or an
    /// element count, byte size, stride or byte span that does not fit in
    /// `isize` (or an itemsize above `u32::MAX`).
    pub fn from_signed(
        shape: &[i64],
        byte_strides: Option<&[i64]>,
        itemsize: usize,
    ) -> Result<Self> {
        Self::from_signed_scaled(shape, byte_strides, 1, itemsize)
    }

    /// Like [`Layout::from_signed`] with strides counted in elements (DLPack's
    /// convention), scaled to bytes here, overflow-checked.
    ///
    /// # Errors
    ///
    /// As [`Layout::from_signed`]; a stride that overflows when scaled to
    /// bytes is among them.
    // The DLPack import fills its claims' layout in place instead
    // (`fill_element_strides`, the same checks).
    #[inline(always)]
    pub fn from_element_strides(
        shape: &[i64],
        element_strides: Option<&[i64]>,
        itemsize: usize,
    ) -> Result<Self> {
        Self::from_signed_scaled(shape, element_strides, itemsize as i64, itemsize)
    }

    #[inline(always)]
    fn from_signed_scaled(
        shape: &[i64],
        strides: Option<&[i64]>,
        unit: i64,
        itemsize: usize,
    ) -> Result<Self> {
        // Built from `blank` where it is returned: going through
        // `SCALAR` and `try_fill_signed_scaled` cost this constructor 1.5-2 ns
        // (`make bench-rust`, `layout/from_element_strides`).
        let mut layout = Self::blank(shape.len(), strides)?;
        layout.write_signed_scaled(shape, strides, unit)?;
        layout.complete(strides.is_none(), itemsize)?;
        Ok(layout)
    }

    /// A zero-axis layout of one 1-byte element (what
    /// `Layout::contiguous(&[], 1)` builds): the placeholder that
    /// [`Layout::fill_element_strides`] overwrites in place.
    pub(crate) const SCALAR: Self = Self {
        dims: Dims::Inline {
            shape: [0; INLINE_NDIM],
            strides: [0; INLINE_NDIM],
        },
        itemsize: 1,
        ndim: 0,
        size: 1,
        low: 0,
        high: 1,
        c_contiguous: true,
        f_contiguous: true,
    };

    /// [`Layout::from_element_strides`] written into `self`, where its
    /// keeper (the DLPack import's claims) already holds it, instead of
    /// returned in a `Result<Layout>`: unwrapping that carrier copied the
    /// freshly written dims out and back in 16-byte loads of 8-byte stores,
    /// which stalled store forwarding on every import. The checks are the
    /// same; on an error `self` is [`Layout::SCALAR`] again.
    ///
    /// # Errors
    ///
    /// As [`Layout::from_element_strides`].
    #[inline(always)]
    pub(crate) fn fill_element_strides(
        &mut self,
        shape: &[i64],
        element_strides: Option<&[i64]>,
        itemsize: usize,
    ) -> Result<()> {
        let filled = self.try_fill_signed_scaled(shape, element_strides, itemsize as i64, itemsize);
        if filled.is_err() {
            // Never leave a half-checked layout behind (nor leak its dims).
            *self = Self::SCALAR;
        }
        filled
    }

    #[inline(always)]
    fn try_fill_signed_scaled(
        &mut self,
        shape: &[i64],
        strides: Option<&[i64]>,
        unit: i64,
        itemsize: usize,
    ) -> Result<()> {
        Self::dims_for(shape.len(), strides)?;
        self.dims = Dims::zeroed(shape.len());
        self.ndim = shape.len() as u8;
        self.write_signed_scaled(shape, strides, unit)?;
        self.complete(strides.is_none(), itemsize)
    }

    /// Writes the extents and the strides (times `unit`), checked, into
    /// dims already sized for them (`strides`, if any, has `shape.len()`
    /// entries).
    #[inline(always)]
    fn write_signed_scaled(
        &mut self,
        shape: &[i64],
        strides: Option<&[i64]>,
        unit: i64,
    ) -> Result<()> {
        let (extents, steps) = self.dims.parts_mut(shape.len());
        for (axis, (&extent, out)) in shape.iter().zip(extents.iter_mut()).enumerate() {
            if extent < 0 {
                return Err(Error::value(
                    Cause::Layout,
                    format!("shape has a negative extent {extent} on axis {axis}"),
                ));
            }
            *out = usize::try_from(extent).map_err(|_| overflow("a shape extent"))?;
        }
        if let Some(strides) = strides {
            for (axis, (&s, out)) in strides.iter().zip(steps.iter_mut()).enumerate() {
                *out = s
                    .checked_mul(unit)
                    .and_then(|bytes| isize::try_from(bytes).ok())
                    .ok_or_else(|| overflow(&format!("stride {s} on axis {axis}")))?;
            }
        }
        Ok(())
    }

    /// Validates a shape with optional byte strides (`None`: C-contiguous).
    ///
    /// # Errors
    ///
    /// `Value` ([`Cause::Layout`]) for more than [`MAX_NDIM`] axes, strides
    /// whose count is not the number of axes, or an element count, byte
    /// size or byte span that does not fit in `isize` (or an itemsize above
    /// `u32::MAX`).
    pub fn new(shape: &[usize], byte_strides: Option<&[isize]>, itemsize: usize) -> Result<Self> {
        let mut layout = Self::blank(shape.len(), byte_strides)?;
        let (extents, steps) = layout.dims.parts_mut(shape.len());
        extents.copy_from_slice(shape);
        if let Some(strides) = byte_strides {
            steps.copy_from_slice(strides);
        }
        layout.complete(byte_strides.is_none(), itemsize)?;
        Ok(layout)
    }

    /// Validates an `ndarray` array's shape and element strides (scaled to
    /// bytes here, saturating), with the checks of [`Layout::new`];
    /// the strides are written into the layout directly instead of through
    /// a byte-stride buffer of [`MAX_NDIM`] entries.
    #[inline(always)]
    pub(crate) fn from_ndarray(
        shape: &[usize],
        element_strides: &[isize],
        itemsize: usize,
    ) -> Result<Self> {
        let mut layout = Self::blank(shape.len(), Some(element_strides))?;
        let (extents, steps) = layout.dims.parts_mut(shape.len());
        extents.copy_from_slice(shape);
        // ndarray keeps every element's offset in isize, so a stride times
        // the itemsize overflows only where it is never applied (an axis of
        // length 1, or an empty array), and such strides may be anything.
        // Saturated, they stay harmless there; anywhere else the span check
        // below refuses them, as it would any stride too large to address.
        for (&s, out) in element_strides.iter().zip(steps.iter_mut()) {
            *out = s.saturating_mul(itemsize as isize);
        }
        layout.complete(false, itemsize)?;
        Ok(layout)
    }

    /// [`Layout::from_ndarray`] for an owned `ndarray::Array`, which has
    /// proved what the checks would: its element count and byte size fit in
    /// `isize`, and every element lies in its own allocation, so each
    /// axis's reach and the span do too. Infallible and built in place (no
    /// `Result` to move the layout through), for `Tensor::from(Array)`.
    /// Debug builds compare the result with the checked constructor's.
    ///
    /// # Safety
    ///
    /// `shape` and `element_strides` must be an owned `ndarray::Array`'s (at
    /// most [`MAX_NDIM`] axes), and `itemsize` its element's size.
    #[inline(always)]
    pub(crate) unsafe fn from_owned_ndarray(
        shape: &[usize],
        element_strides: &[isize],
        itemsize: usize,
    ) -> Self {
        debug_assert!(shape.len() <= MAX_NDIM && element_strides.len() == shape.len());
        let mut dims = Dims::zeroed(shape.len());
        let (extents, steps) = dims.parts_mut(shape.len());
        extents.copy_from_slice(shape);
        // Saturating as in `from_ndarray`: only strides never applied (an
        // axis of length 1, an empty array) can overflow.
        for (&s, out) in element_strides.iter().zip(steps.iter_mut()) {
            *out = s.saturating_mul(itemsize as isize);
        }
        let size: usize = extents.iter().product();
        let (mut low, mut high) = (0isize, 0isize);
        if size > 0 {
            high = itemsize as isize;
            for (&extent, &stride) in extents.iter().zip(steps.iter()) {
                // Inside the allocation: no overflow (see the premise).
                let reach = (extent as isize - 1) * stride;
                if reach < 0 {
                    low += reach;
                } else {
                    high += reach;
                }
            }
        }
        let c_contiguous =
            is_contiguous(itemsize, size, extents.iter().rev().zip(steps.iter().rev()));
        let f_contiguous = is_contiguous(itemsize, size, extents.iter().zip(steps.iter()));
        let layout = Self {
            dims,
            itemsize: itemsize as u32,
            ndim: shape.len() as u8,
            size,
            low,
            high,
            c_contiguous,
            f_contiguous,
        };
        debug_assert!(
            Self::from_ndarray(shape, element_strides, itemsize)
                .is_ok_and(|checked| checked == layout),
            "an owned array's layout passes the checks"
        );
        layout
    }

    /// Whether `ndim` axes (and as many strides, if given) may be stored.
    #[inline(always)]
    fn dims_for<T: std::fmt::Debug>(ndim: usize, strides: Option<&[T]>) -> Result<()> {
        if ndim > MAX_NDIM {
            return Err(Error::value(
                Cause::Layout,
                format!("ndim {ndim} exceeds the maximum of {MAX_NDIM} dimensions"),
            ));
        }
        if let Some(strides) = strides
            && strides.len() != ndim
        {
            return Err(Error::value(
                Cause::Layout,
                format!(
                    "strides {strides:?} have {} entries for {ndim} dimensions",
                    strides.len()
                ),
            ));
        }
        Ok(())
    }

    /// A layout of `ndim` zero extents and strides (once the rank and the
    /// strides' length agree), for a constructor to fill in place and
    /// [`Layout::complete`]. Built where it is returned, the layout is not
    /// copied from a `Dims` temporary into it (112 bytes, and the copy
    /// stalled on store forwarding).
    #[inline(always)]
    fn blank<T: std::fmt::Debug>(ndim: usize, strides: Option<&[T]>) -> Result<Self> {
        Self::dims_for(ndim, strides)?;
        Ok(Self {
            dims: Dims::zeroed(ndim),
            itemsize: 0,
            ndim: ndim as u8,
            size: 0,
            low: 0,
            high: 0,
            c_contiguous: false,
            f_contiguous: false,
        })
    }

    /// The checks and derived facts over the filled-in axes, in place;
    /// `contiguous` asks for C strides to be written first.
    #[inline(always)]
    fn complete(&mut self, contiguous: bool, itemsize: usize) -> Result<()> {
        let (shape, strides) = self.dims.parts_mut(usize::from(self.ndim));
        let size = checked_size(shape, itemsize)?;
        if contiguous {
            // `size * itemsize` fits in isize, so every suffix product does.
            c_strides(shape, itemsize, strides);
        }
        let (low, high) = span(shape, strides, itemsize, size)?;
        let c_contiguous = contiguous
            || is_contiguous(itemsize, size, shape.iter().rev().zip(strides.iter().rev()));
        let f_contiguous = is_contiguous(itemsize, size, shape.iter().zip(strides.iter()));
        self.itemsize = narrow(itemsize)?;
        self.size = size;
        self.low = low;
        self.high = high;
        self.c_contiguous = c_contiguous;
        self.f_contiguous = f_contiguous;
        Ok(())
    }

    /// A C-contiguous layout for `shape`: the spans and flags follow from
    /// the shape alone, so only the sizes need checking.
    ///
    /// # Errors
    ///
    /// `Value` ([`Cause::Layout`]) for more than [`MAX_NDIM`] axes, or an
    /// element count or byte size that does not fit in `isize` (or an
    /// itemsize above `u32::MAX`).
    pub fn contiguous(shape: &[usize], itemsize: usize) -> Result<Self> {
        Self::contiguous_in(shape, itemsize, ndarray::Order::RowMajor)
    }

    /// A contiguous layout for `shape` in `order` (row-major is C's,
    /// column-major Fortran's); the errors of [`Layout::contiguous`].
    pub(crate) fn contiguous_in(
        shape: &[usize],
        itemsize: usize,
        order: ndarray::Order,
    ) -> Result<Self> {
        Self::dims_for::<isize>(shape.len(), None)?;
        let mut dims = Dims::zeroed(shape.len());
        let (extents, strides) = dims.parts_mut(shape.len());
        extents.copy_from_slice(shape);
        let size = checked_size(extents, itemsize)?;
        let row_major = order == ndarray::Order::RowMajor;
        if row_major {
            c_strides(extents, itemsize, strides);
        } else {
            f_strides(extents, itemsize, strides);
        }
        // Contiguous in the other order too when at most one axis is
        // longer than 1.
        let both = size == 0 || extents.iter().filter(|&&n| n != 1).count() <= 1;
        let high = if size == 0 {
            0
        } else {
            (size * itemsize) as isize
        };
        Ok(Self {
            dims,
            itemsize: narrow(itemsize)?,
            ndim: shape.len() as u8,
            size,
            low: 0,
            high,
            c_contiguous: row_major || both,
            f_contiguous: !row_major || both,
        })
    }

    /// Extents per axis.
    #[inline]
    pub fn shape(&self) -> &[usize] {
        self.dims.shape(usize::from(self.ndim))
    }

    /// Byte strides per axis.
    #[inline]
    pub fn strides(&self) -> &[isize] {
        self.dims.strides(usize::from(self.ndim))
    }

    /// Number of axes.
    #[inline]
    pub fn ndim(&self) -> usize {
        usize::from(self.ndim)
    }

    /// Number of elements.
    #[inline]
    pub fn size(&self) -> usize {
        self.size
    }

    /// Bytes per element.
    #[inline]
    pub fn itemsize(&self) -> usize {
        self.itemsize as usize
    }

    /// `size * itemsize`: the bytes a contiguous copy needs.
    #[inline]
    pub fn nbytes(&self) -> usize {
        self.size * self.itemsize()
    }

    /// The byte range `[low, high)` the elements occupy, relative to the
    /// first logical element (`low <= 0` when some stride is negative).
    #[inline]
    pub fn span(&self) -> (isize, isize) {
        (self.low, self.high)
    }

    /// Row-major contiguous (size-1 axes and empty layouts count as contiguous, as in NumPy).
    #[inline]
    pub fn is_c_contiguous(&self) -> bool {
        self.c_contiguous
    }

    /// Column-major contiguous.
    #[inline]
    pub fn is_f_contiguous(&self) -> bool {
        self.f_contiguous
    }

    /// Whether two different indices may reach overlapping elements (a
    /// stride of 0, rows that overlap): what a mutable view must refuse.
    /// A sufficient test, see [`overlaps_itself`].
    #[cfg_attr(not(feature = "python"), allow(dead_code))] // ReadwriteTensor
    pub(crate) fn overlaps_itself(&self) -> bool {
        if self.c_contiguous || self.f_contiguous {
            // Each element its own `itemsize` bytes: the common case, with
            // no sort.
            return false;
        }
        let axes = self.shape().iter().zip(self.strides());
        overlaps_itself(
            self.size,
            axes.map(|(&extent, &stride)| (stride.unsigned_abs(), extent)),
            self.itemsize(),
        )
    }

    /// Checks that the layout, starting `offset` bytes into a block of `len`
    /// bytes, stays inside it (an empty layout always does).
    ///
    /// # Errors
    ///
    /// `Buffer` ([`Cause::Pointer`]) when some element lies outside the
    /// block; `Value` ([`Cause::Layout`]) for an `offset` or `len` that does
    /// not fit in `isize`.
    pub fn check_within(&self, offset: usize, len: usize) -> Result<()> {
        let offset = isize::try_from(offset).map_err(|_| overflow("the offset"))?;
        let len = isize::try_from(len).map_err(|_| overflow("the buffer length"))?;
        let inside = offset.checked_add(self.low).is_some_and(|start| start >= 0)
            && offset.checked_add(self.high).is_some_and(|end| end <= len);
        if self.size == 0 || inside {
            Ok(())
        } else {
            Err(Error::buffer(
                Cause::Pointer,
                format!(
                    "shape {:?} with strides {:?} at offset {offset} reaches outside a buffer of {len} bytes",
                    self.shape(),
                    self.strides()
                ),
            ))
        }
    }

    /// Writes DLPack element strides (byte strides divided by the itemsize)
    /// into `out`. An axis whose stride cannot matter (extent 1, or an empty
    /// tensor) gets its compact value when its own is not a whole number of
    /// elements or overflows in bytes; any other stride that is not a
    /// multiple of the itemsize is refused.
    ///
    /// # Errors
    ///
    /// `Buffer` ([`Cause::Layout`]) for a byte stride that is not a multiple
    /// of the itemsize on an axis longer than 1 of a non-empty layout.
    ///
    /// # Panics
    ///
    /// If `out` has fewer entries than the layout has axes (entries past
    /// them are left as they are).
    pub fn element_strides_into(&self, out: &mut [i64]) -> Result<()> {
        let itemsize = self.itemsize().max(1) as isize;
        // Every dtype's itemsize is a power of two: a shift and a mask, not
        // two integer divisions per axis on each export.
        let shift = itemsize.trailing_zeros();
        let whole = |stride: isize| {
            if itemsize.count_ones() == 1 {
                (stride & (itemsize - 1) == 0).then_some(stride >> shift)
            } else {
                (stride % itemsize == 0).then(|| stride / itemsize)
            }
        };
        // The shape and strides are read once (each accessor matches on the
        // inline or heap storage), not per axis.
        let (shape, strides) = (self.shape(), self.strides());
        // Panics (as documented) when `out` is too short.
        let out = &mut out[..shape.len()];
        let mut compact: i64 = 1;
        for (axis, (out, (&extent, &stride))) in out
            .iter_mut()
            .zip(shape.iter().zip(strides))
            .enumerate()
            .rev()
        {
            // A saturated byte stride (only an axis whose stride cannot
            // matter holds one: `from_ndarray` saturates) is not the
            // producer's stride times the itemsize: it gets the compact
            // value too, never a stride a consumer would overflow scaling.
            let saturated = stride == isize::MAX || stride == isize::MIN;
            *out = if let Some(elements) = whole(stride).filter(|_| !saturated) {
                elements as i64
            } else if extent <= 1 || self.size == 0 {
                compact
            } else {
                return Err(Error::buffer(
                    Cause::Layout,
                    format!(
                        "byte stride {stride} on axis {axis} is not a multiple of the itemsize {}; \
                         DLPack strides count elements",
                        self.itemsize
                    ),
                ));
            };
            compact = compact.saturating_mul(extent.max(1) as i64);
        }
        Ok(())
    }
}

/// An itemsize in the 32 bits a `Layout` keeps (no dtype or buffer format
/// comes near: the widest DLPack element is 255 bits times 65,535 lanes).
#[inline]
fn narrow(itemsize: usize) -> Result<u32> {
    u32::try_from(itemsize).map_err(|_| {
        Error::value(
            Cause::Layout,
            format!("itemsize {itemsize} is larger than any element dlbridge can carry"),
        )
    })
}

/// The element count, checked so that it and the byte size fit in isize.
#[inline(always)]
fn checked_size(shape: &[usize], itemsize: usize) -> Result<usize> {
    let mut size: usize = 1;
    for (axis, &extent) in shape.iter().enumerate() {
        // Every extent on its own, whatever the others: a zero elsewhere
        // makes the product 0, and an extent of 2**64 - 1 would then pass
        // into every export (a memoryview shape of -1).
        if isize::try_from(extent).is_err() {
            return Err(overflow(&format!("extent {extent} on axis {axis}")));
        }
        size = size
            .checked_mul(extent)
            .filter(|&s| isize::try_from(s).is_ok())
            .ok_or_else(|| overflow(&format!("the element count of shape {shape:?}")))?;
    }
    size.checked_mul(itemsize)
        .filter(|&n| isize::try_from(n).is_ok())
        .ok_or_else(|| overflow(&format!("the byte size of shape {shape:?}")))?;
    Ok(size)
}

#[inline(always)]
fn c_strides(shape: &[usize], itemsize: usize, strides: &mut [isize]) {
    let mut step = itemsize as isize;
    for (stride, &extent) in strides.iter_mut().zip(shape).rev() {
        *stride = step;
        step = step.saturating_mul(extent.max(1) as isize);
    }
}

/// Column-major byte strides of `shape` (the first axis varies fastest).
#[inline(always)]
fn f_strides(shape: &[usize], itemsize: usize, strides: &mut [isize]) {
    let mut step = itemsize as isize;
    for (stride, &extent) in strides.iter_mut().zip(shape) {
        *stride = step;
        step = step.saturating_mul(extent.max(1) as isize);
    }
}

/// The byte range touched, relative to the first element; checked in isize.
#[inline(always)]
fn span(
    shape: &[usize],
    strides: &[isize],
    itemsize: usize,
    size: usize,
) -> Result<(isize, isize)> {
    if size == 0 {
        return Ok((0, 0));
    }
    let (mut low, mut high) = (0isize, itemsize as isize);
    for (&extent, &stride) in shape.iter().zip(strides) {
        let reach = (extent as isize - 1)
            .checked_mul(stride)
            .ok_or_else(|| overflow(&format!("stride {stride} times extent {extent}")))?;
        if reach < 0 {
            low = low
                .checked_add(reach)
                .ok_or_else(|| overflow("the byte span"))?;
        } else {
            high = high
                .checked_add(reach)
                .ok_or_else(|| overflow("the byte span"))?;
        }
    }
    high.checked_sub(low)
        .ok_or_else(|| overflow("the byte span"))?;
    Ok((low, high))
}

#[inline(always)]
fn is_contiguous<'a>(
    itemsize: usize,
    size: usize,
    axes: impl Iterator<Item = (&'a usize, &'a isize)>,
) -> bool {
    if size == 0 {
        return true;
    }
    let mut expected = itemsize as isize;
    for (&extent, &stride) in axes {
        if extent == 1 {
            continue;
        }
        if stride != expected {
            return false;
        }
        expected *= extent as isize;
    }
    true
}

/// Whether two different indices of `size` elements `width` units wide,
/// on axes of `(|stride|, extent)` in the same units, may reach overlapping
/// elements. A sufficient test (it may refuse a layout whose elements are
/// in fact distinct, never the reverse): sorted by stride, each axis must
/// step past everything the smaller-strided axes reach.
pub(crate) fn overlaps_itself(
    size: usize,
    axes: impl Iterator<Item = (usize, usize)>,
    width: usize,
) -> bool {
    if size == 0 {
        return false;
    }
    let mut sorted = [(0usize, 0usize); MAX_NDIM];
    let mut n = 0;
    for (stride, extent) in axes {
        if extent > 1 {
            sorted[n] = (stride, extent);
            n += 1;
        }
    }
    let sorted = &mut sorted[..n];
    sorted.sort_unstable();
    let mut reach = 0usize;
    for &(stride, extent) in sorted.iter() {
        if stride < reach.saturating_add(width) {
            return true;
        }
        // Fits: the validated span bounds the sum.
        reach = reach.saturating_add((extent - 1).saturating_mul(stride));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn scalar_is_the_contiguous_zero_axis_layout() {
        assert_eq!(Layout::SCALAR, Layout::contiguous(&[], 1).unwrap());
    }

    #[test]
    fn fill_in_place_matches_the_constructor_and_resets_on_refusal() {
        let cases: [(&[i64], Option<&[i64]>); 5] = [
            (&[4, 4], None),
            (&[4, 4], Some(&[1, 4])),
            (&[2, 1, 3, 1, 2, 1, 2, 2], Some(&[-1, 7, 2, 0, 1, 3, 5, 9])),
            (&[3], Some(&[i64::MAX])),
            (&[2, -1], None),
        ];
        for (shape, strides) in cases {
            // Start from a heap layout, so a refusal must free its dims.
            let mut layout = Layout::from_element_strides(&[1; 8], None, 2).unwrap();
            let filled = layout.fill_element_strides(shape, strides, 4);
            match Layout::from_element_strides(shape, strides, 4) {
                Ok(expected) => {
                    filled.unwrap();
                    assert_eq!(layout, expected);
                }
                Err(expected) => {
                    let err = filled.unwrap_err();
                    assert_eq!(
                        (err.kind(), err.cause()),
                        (expected.kind(), expected.cause())
                    );
                    assert_eq!(layout, Layout::SCALAR);
                }
            }
        }
    }

    #[test]
    fn c_layout_and_flags() {
        let l = Layout::contiguous(&[2, 3, 4], 8).unwrap();
        assert_eq!(l.strides(), &[96, 32, 8]);
        assert!(l.is_c_contiguous() && !l.is_f_contiguous());
        assert_eq!((l.size(), l.nbytes(), l.span()), (24, 192, (0, 192)));
        let f = Layout::new(&[2, 3], Some(&[4, 8]), 4).unwrap();
        assert!(f.is_f_contiguous() && !f.is_c_contiguous());
        let one = Layout::new(&[1, 5, 1], Some(&[999, 2, -7]), 2).unwrap();
        assert!(one.is_c_contiguous(), "size-1 axes do not count");
    }

    #[test]
    fn contiguous_agrees_with_the_general_constructor() {
        let shapes: [&[usize]; 9] = [
            &[],
            &[0],
            &[1],
            &[7],
            &[1, 5, 1],
            &[3, 0, 2],
            &[2, 3, 4],
            &[1; 9],
            &[2, 1, 1, 3, 1, 1, 2, 1],
        ];
        for shape in shapes {
            for itemsize in [1, 2, 8] {
                let general = Layout::new(shape, None, itemsize).unwrap();
                let strides = general.strides().to_vec();
                assert_eq!(Layout::contiguous(shape, itemsize).unwrap(), general);
                assert_eq!(
                    Layout::new(shape, Some(&strides), itemsize).unwrap(),
                    general,
                    "{shape:?}"
                );
                // Column-major: the general constructor on the reversed
                // strides of the reversed shape, read back to front.
                let reversed: Vec<usize> = shape.iter().rev().copied().collect();
                let mut f_strides = Layout::new(&reversed, None, itemsize)
                    .unwrap()
                    .strides()
                    .to_vec();
                f_strides.reverse();
                let fortran = Layout::contiguous_in(shape, itemsize, ndarray::Order::ColumnMajor);
                assert_eq!(
                    fortran.unwrap(),
                    Layout::new(shape, Some(&f_strides), itemsize).unwrap(),
                    "{shape:?} column-major"
                );
            }
        }
    }

    #[test]
    fn negative_strides_span_below_the_first_element() {
        let l = Layout::new(&[4], Some(&[-8]), 8).unwrap();
        assert_eq!(l.span(), (-24, 8));
        assert!(l.check_within(24, 32).is_ok());
        assert_eq!(
            l.check_within(16, 32).unwrap_err().kind(),
            ErrorKind::Buffer
        );
        assert_eq!(
            l.check_within(24, 31).unwrap_err().kind(),
            ErrorKind::Buffer
        );
    }

    #[test]
    fn refusals_are_value_errors() {
        for err in [
            Layout::from_signed(&[2, -1], None, 4).unwrap_err(),
            Layout::new(&[1; 65], None, 4).unwrap_err(),
            Layout::new(&[2, 2], Some(&[8]), 4).unwrap_err(),
            Layout::new(&[usize::MAX / 2, 4], None, 1).unwrap_err(),
            Layout::new(&[1 << 62], None, 4).unwrap_err(),
            Layout::new(&[3], Some(&[isize::MAX]), 1).unwrap_err(),
        ] {
            assert_eq!(err.kind(), ErrorKind::Value, "{err}");
        }
        assert!(Layout::new(&[1; 64], None, 4).is_ok());
        assert!(
            Layout::new(&[0, usize::MAX / 2], None, 1).is_ok(),
            "empty: nothing to address"
        );
    }

    #[test]
    fn every_extent_fits_isize_whatever_the_others() {
        // A zero extent elsewhere makes the element count 0; the extent
        // that does not fit isize is refused all the same, by every
        // constructor (a pickle once carried `(0, 2**64 - 1)` through).
        let huge = isize::MAX as usize + 1;
        for shape in [[0, huge], [huge, 0], [0, usize::MAX]] {
            for err in [
                Layout::new(&shape, None, 1).unwrap_err(),
                Layout::new(&shape, Some(&[1, 1]), 1).unwrap_err(),
                Layout::contiguous(&shape, 2).unwrap_err(),
                Layout::from_ndarray(&shape, &[1, 1], 4).unwrap_err(),
            ] {
                assert_eq!(err.kind(), ErrorKind::Value, "{err}");
                assert!(err.message().contains("does not fit in isize"), "{err}");
            }
        }
        assert!(Layout::new(&[0, isize::MAX as usize], None, 1).is_ok());
    }

    #[test]
    fn element_strides_need_whole_items() {
        let mut out = [0i64; 3];
        Layout::new(&[2, 3, 1], Some(&[24, -8, 3]), 8)
            .unwrap()
            .element_strides_into(&mut out)
            .unwrap();
        assert_eq!(out, [3, -1, 1]);
        let err = Layout::new(&[2], Some(&[12]), 8)
            .unwrap()
            .element_strides_into(&mut out[..1])
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Buffer);
    }

    /// What a `ReadwriteTensor` of any dtype refuses: a layout two of whose
    /// elements (each `itemsize` bytes wide) share a byte. Every layout the
    /// test accepts really has disjoint elements (brute force), with strides
    /// that are not whole elements too; the obvious overlaps are refused.
    #[test]
    fn overlaps_itself_is_sufficient_in_bytes() {
        let layout = |shape: &[usize], strides: &[isize], itemsize| {
            Layout::new(shape, Some(strides), itemsize).unwrap()
        };
        assert!(!layout(&[3, 4], &[32, 8], 8).overlaps_itself());
        assert!(
            !layout(&[3, 4], &[-32, 8], 8).overlaps_itself(),
            "reversed rows"
        );
        assert!(layout(&[3], &[0], 8).overlaps_itself(), "broadcast");
        assert!(
            layout(&[3, 4], &[16, 8], 8).overlaps_itself(),
            "rows overlap"
        );
        assert!(
            layout(&[2], &[4], 8).overlaps_itself(),
            "half an element apart"
        );
        assert!(!layout(&[2], &[4], 4).overlaps_itself());
        assert!(!layout(&[0, 3], &[0, 0], 8).overlaps_itself(), "empty");
        let (max_extent, max_stride) = if cfg!(miri) { (3, 4) } else { (4, 9) };
        let mut accepted = 0;
        for itemsize in [1, 2, 3] {
            for e0 in 0..max_extent {
                for e1 in 0..max_extent {
                    for s0 in 0..max_stride {
                        for s1 in 0..max_stride {
                            let l = layout(&[e0, e1], &[s0 as isize, s1 as isize], itemsize);
                            if l.overlaps_itself() {
                                continue;
                            }
                            accepted += 1;
                            let mut seen = std::collections::HashSet::new();
                            for i in 0..e0 {
                                for j in 0..e1 {
                                    for byte in 0..itemsize {
                                        assert!(
                                            seen.insert(i * s0 + j * s1 + byte),
                                            "{e0}x{e1} strides {s0},{s1} itemsize {itemsize} accepted but overlaps"
                                        );
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
