//! Array interface spoke, core half (NumPy's protocol, version 3, no
//! Python): the `PyArrayInterface` struct both ways, and its checks.
//!
//! The Python half (`src/python/array_interface/`) reads `__array_struct__`
//! capsules and `__array_interface__` dicts, owns what keeps their memory
//! alive, and publishes a tensor's own.
//!
//! ```
//! use dlbridge::{Cause, DType};
//! use dlbridge::protocol::array_interface::{NOTSWAPPED, PyArrayInterface, describe_struct};
//!
//! // A producer's 2x3 float64 interface, read: the same memory, checked.
//! let data = [0.0f64; 6];
//! let mut shape = [2isize, 3];
//! let mut interface = PyArrayInterface {
//!     two: 2,
//!     nd: 2,
//!     typekind: b'f' as _,
//!     itemsize: 8,
//!     flags: NOTSWAPPED,
//!     shape: shape.as_mut_ptr(),
//!     strides: std::ptr::null_mut(),
//!     data: data.as_ptr().cast_mut().cast(),
//!     descr: std::ptr::null_mut(),
//! };
//! let d = describe_struct(&interface, |_| Ok(()), DType::opaque).unwrap();
//! assert_eq!((d.data_ptr().cast_const(), d.layout().shape()), (data.as_ptr().cast(), &[2, 3][..]));
//!
//! // Data in non-native byte order: refused.
//! interface.flags &= !NOTSWAPPED;
//! let err = describe_struct(&interface, |_| Ok(()), DType::opaque).unwrap_err();
//! assert_eq!(err.cause(), Cause::ByteOrder);
//! ```

use std::ffi::{c_char, c_int, c_void};
use std::ptr::NonNull;

use crate::descriptor::Source;
use crate::descriptor::{Claims, Descriptor};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Cause, Error, Result};
use crate::layout::{Layout, MAX_NDIM};
use crate::protocol::typestr::{self, Parsed};
use crate::tensor::Tensor;

/// NumPy's `PyArrayInterface` (`ndarraytypes.h`), 56 bytes on LP64.
///
/// ```
/// use dlbridge::{Cause, DType};
/// use dlbridge::protocol::array_interface::{
///     ALIGNED, C_CONTIGUOUS, NOTSWAPPED, PyArrayInterface, describe_struct,
/// };
///
/// // What a producer of a read-only int16 vector fills in (no WRITEABLE flag).
/// let data = [1i16, 2, 3];
/// let mut shape = [3isize];
/// let mut interface = PyArrayInterface {
///     two: 2,
///     nd: 1,
///     typekind: b'i' as _,
///     itemsize: 2,
///     flags: C_CONTIGUOUS | ALIGNED | NOTSWAPPED,
///     shape: shape.as_mut_ptr(),
///     strides: std::ptr::null_mut(),
///     data: data.as_ptr().cast_mut().cast(),
///     descr: std::ptr::null_mut(),
/// };
/// let d = describe_struct(&interface, |_| Ok(()), DType::opaque).unwrap();
/// assert_eq!((d.dtype(), d.layout().strides()), (DType::INT16, &[2][..]));
///
/// // Not the struct at all: refused.
/// interface.two = 3;
/// let err = describe_struct(&interface, |_| Ok(()), DType::opaque).unwrap_err();
/// assert_eq!(err.cause(), Cause::Capsule);
/// ```
#[repr(C)]
pub struct PyArrayInterface {
    /// Always 2: a sanity check that this is the struct.
    pub two: c_int,
    /// Number of dimensions.
    pub nd: c_int,
    /// The typestr's kind character (`b i u f c V ...`).
    pub typekind: c_char,
    /// Bytes per element.
    pub itemsize: c_int,
    /// `C_CONTIGUOUS`, `ALIGNED`, `NOTSWAPPED`, `WRITEABLE`, ... below.
    pub flags: c_int,
    /// `nd` extents (NULL when `nd == 0`).
    pub shape: *mut isize,
    /// `nd` byte strides, or NULL for C-contiguous.
    pub strides: *mut isize,
    /// The first element.
    pub data: *mut c_void,
    /// A descr list (a Python object, never read by the core), valid only
    /// with `ARR_HAS_DESCR`.
    pub descr: *mut c_void,
}

/// Row-major contiguous.
pub const C_CONTIGUOUS: c_int = 0x1;
/// Column-major contiguous.
pub const F_CONTIGUOUS: c_int = 0x2;
/// The data and strides are aligned for the dtype.
pub const ALIGNED: c_int = 0x100;
/// Native byte order.
pub const NOTSWAPPED: c_int = 0x200;
/// The memory may be written.
pub const WRITEABLE: c_int = 0x400;
/// `descr` is valid.
pub const ARR_HAS_DESCR: c_int = 0x800;

/// Checks a `PyArrayInterface` into a [`Descriptor`].
///
/// `records` is asked about a flagged `descr` (a Python object the core does
/// not read) and `resolve_void` names opaque `V<n>` elements (from the
/// exporting object's dtype, say); both are the caller's.
///
/// # Errors
///
/// What `records` or `resolve_void` return, and
/// - `Value` ([`Cause::Capsule`]): a first field other than 2;
/// - `Value` ([`Cause::Layout`]): `nd` outside `[0, MAX_NDIM]`, a NULL
///   `shape` with axes, or a shape and strides that
///   [`Layout::from_signed`] refuses;
/// - `Buffer` ([`Cause::ByteOrder`]): flags without `NOTSWAPPED`;
/// - `Value` ([`Cause::DType`]): an itemsize below 1, or a `resolve_void`
///   dtype whose itemsize is not the struct's;
/// - `Value` or `Buffer` ([`Cause::DType`]): a `typekind` and itemsize
///   that [`typestr::from_typekind`] refuses;
/// - `Buffer` ([`Cause::Pointer`]): NULL `data` with elements to address;
/// - `Value` ([`Cause::Pointer`]): a span that wraps around the address
///   space.
pub fn describe_struct(
    interface: &PyArrayInterface,
    records: impl FnOnce(*mut c_void) -> Result<()>,
    resolve_void: impl FnOnce(usize) -> Result<DType>,
) -> Result<Descriptor> {
    if interface.two != 2 {
        return Err(Error::value(
            Cause::Capsule,
            format!(
                "__array_struct__ is not a PyArrayInterface (its first field is {}, not 2)",
                interface.two
            ),
        ));
    }
    let ndim = usize::try_from(interface.nd)
        .ok()
        .filter(|&n| n <= MAX_NDIM)
        .ok_or_else(|| {
            Error::value(
                Cause::Layout,
                format!(
                    "__array_struct__ has nd {}, outside [0, {MAX_NDIM}]",
                    interface.nd
                ),
            )
        })?;
    let flags = interface.flags;
    if flags & NOTSWAPPED == 0 {
        return Err(Error::buffer(
            Cause::ByteOrder,
            format!(
                "__array_struct__ data is not in native byte order (flags {flags:#x} lack NOTSWAPPED)"
            ),
        ));
    }
    if flags & ARR_HAS_DESCR != 0 && !interface.descr.is_null() {
        records(interface.descr)?;
    }
    let itemsize = usize::try_from(interface.itemsize)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            Error::value(
                Cause::DType,
                format!("__array_struct__ has itemsize {}", interface.itemsize),
            )
        })?;
    let parsed = typestr::from_typekind(interface.typekind as u8, itemsize)?;
    let dtype = match parsed {
        Parsed::DType(dtype) => dtype,
        Parsed::Void(itemsize) => resolve_void(itemsize)?,
    };
    let shape = read_dims(interface.shape, ndim, "shape")?;
    let strides = if interface.strides.is_null() {
        None
    } else {
        Some(read_dims(interface.strides, ndim, "strides")?)
    };
    let layout = Layout::from_signed(&shape, strides.as_deref(), itemsize)?;
    Descriptor::new(Claims {
        what: "__array_struct__",
        base: interface.data.cast::<u8>(),
        offset: 0,
        layout,
        dtype,
        device: Device::CPU,
        readonly: flags & WRITEABLE == 0,
        source: Source::ArrayStruct,
        len: None,
    })
}

fn read_dims(values: *const isize, ndim: usize, what: &str) -> Result<Vec<i64>> {
    if ndim == 0 {
        return Ok(Vec::new());
    }
    if values.is_null() {
        return Err(Error::value(
            Cause::Layout,
            format!("__array_struct__ has nd {ndim} but a NULL {what}"),
        ));
    }
    // SAFETY: a non-NULL shape/strides array of a PyArrayInterface has `nd`
    // entries, alive as long as the capsule.
    let values = unsafe { std::slice::from_raw_parts(values, ndim) };
    Ok(values.iter().map(|&v| v as i64).collect())
}

// ---------------------------------------------------------------- export --

/// The alignment NumPy would require of the dtype's elements.
#[cfg_attr(not(feature = "python"), allow(dead_code))] // the export: Python callers only
fn alignment(dtype: DType) -> usize {
    let itemsize = dtype.itemsize();
    let component = if typestr::typekind_of(dtype) == b'c' {
        itemsize / 2
    } else {
        itemsize
    };
    if component.is_power_of_two() {
        component.min(16)
    } else {
        1
    }
}

/// The `PyArrayInterface.flags` of a tensor's export.
#[cfg_attr(not(feature = "python"), allow(dead_code))] // the export: Python callers only
pub(crate) fn struct_flags(tensor: &Tensor) -> c_int {
    let layout = tensor.layout();
    let align = alignment(tensor.dtype()) as isize;
    let aligned = (tensor.data_ptr() as usize as isize) % align == 0
        && layout.strides().iter().all(|s| s % align == 0);
    let mut flags = NOTSWAPPED;
    if layout.is_c_contiguous() {
        flags |= C_CONTIGUOUS;
    }
    if layout.is_f_contiguous() {
        flags |= F_CONTIGUOUS;
    }
    if aligned || layout.size() == 0 {
        flags |= ALIGNED;
    }
    if !tensor.readonly() {
        flags |= WRITEABLE;
    }
    flags
}

/// One exported `__array_struct__`: the interface and what keeps the
/// memory and the layout arrays it points to alive (`K`: the Python layer's
/// `dlbridge.Tensor` object, whose frozen tensor the interface points into,
/// as a buffer export's view does), in one heap block that never moves.
///
/// Holding the object, not a clone of its tensor in the block (the
/// interface then pointing into the block itself), costs one reference
/// count instead of a 184-byte copy and the owner's shared count (an
/// atomic increment and decrement): `np.asarray` of a struct-only tensor
/// ran 3% behind NumPy's own array with the clone. The handle holds the
/// block through a raw pointer from the start and lends out the interface
/// alone (a `Box` moved around would assert unique access to the whole
/// block at every move).
///
/// Plumbing of `Tensor.__array_struct__` (the Python layer's capsule), not
/// public: a consumer reads a [`PyArrayInterface`], never this block.
#[cfg_attr(not(feature = "python"), allow(dead_code))] // the export: Python callers only
pub(crate) struct StructBlock<K> {
    /// From `Box::into_raw`; freed by `Drop` (or owned by C after `into_raw`).
    block: NonNull<Block<K>>,
}

/// The heap block: `repr(C)` with the interface first, so the block's
/// address is the interface's (a capsule hands consumers that one pointer).
#[repr(C)]
#[cfg_attr(not(feature = "python"), allow(dead_code))] // the export: Python callers only
struct Block<K> {
    interface: PyArrayInterface,
    keep: K,
}

#[cfg_attr(not(feature = "python"), allow(dead_code))] // the export: Python callers only
impl<K> StructBlock<K> {
    /// The interface of `tensor` (CPU only), in a heap block with `keep`,
    /// which keeps `tensor` alive.
    ///
    /// # Errors
    ///
    /// `Buffer` ([`Cause::Device`]) for a tensor that is not in CPU memory;
    /// `Attribute` ([`Cause::DType`]) for a dtype a typekind cannot name
    /// ([`typestr::ensure_named`]).
    ///
    /// # Safety
    ///
    /// `keep` keeps `*tensor` alive, at its address and unchanged, until the
    /// block is freed: the interface points into its layout arrays and its
    /// memory.
    pub(crate) unsafe fn kept(tensor: &Tensor, keep: K) -> Result<Self> {
        let block = Self::allocate(tensor, keep)?;
        // SAFETY: the block is fresh and no one else sees it; `tensor`'s
        // layout arrays live, unmoved, as long as the block (the caller's
        // promise).
        unsafe { point_at_layout(&mut (*block.block.as_ptr()).interface, tensor) };
        Ok(block)
    }

    /// The block with `tensor`'s interface, its `shape` and `strides` still
    /// NULL.
    #[inline(always)]
    fn allocate(tensor: &Tensor, keep: K) -> Result<Self> {
        tensor.device().ensure_cpu("the array interface")?;
        typestr::ensure_named(tensor.dtype(), "__array_struct__")?;
        let raw = Box::into_raw(Box::new(Block {
            interface: PyArrayInterface {
                two: 2,
                nd: tensor.ndim() as c_int,
                typekind: typestr::typekind_of(tensor.dtype()) as c_char,
                itemsize: tensor.itemsize() as c_int,
                flags: struct_flags(tensor),
                shape: std::ptr::null_mut(),
                strides: std::ptr::null_mut(),
                data: tensor.data_ptr().cast(),
                descr: std::ptr::null_mut(),
            },
            keep,
        }));
        // SAFETY: Box::into_raw never returns NULL.
        let block = unsafe { NonNull::new_unchecked(raw) };
        Ok(StructBlock { block })
    }

    /// The interface a consumer reads (the tests' view of it).
    #[cfg(test)]
    fn interface(&self) -> &PyArrayInterface {
        // SAFETY: the block is alive while `self` is; this borrows the
        // interface's bytes only, never the tensor's the pointers lead to.
        unsafe { &(*self.block.as_ptr()).interface }
    }

    /// The interface, to adjust (the tests' tampering).
    #[cfg(test)]
    fn interface_mut(&mut self) -> &mut PyArrayInterface {
        // SAFETY: as in `interface`; `&mut self` makes this borrow unique,
        // and it covers the interface's bytes only.
        unsafe { &mut (*self.block.as_ptr()).interface }
    }

    /// Gives the block up, as a pointer to its interface (the block's
    /// address, e.g. for a capsule); [`StructBlock::from_raw`] takes it back.
    pub(crate) fn into_raw(self) -> *mut PyArrayInterface {
        let raw = self.block.as_ptr().cast::<PyArrayInterface>();
        std::mem::forget(self);
        raw
    }

    /// Takes back a block given up by [`StructBlock::into_raw`].
    ///
    /// # Safety
    ///
    /// `raw` came from `into_raw` of a `StructBlock<K>` (this `K`) and is
    /// taken back at most once.
    pub(crate) unsafe fn from_raw(raw: *mut PyArrayInterface) -> Self {
        // SAFETY: by the contract, `raw` is the non-NULL address of a live
        // block (the interface sits at offset 0 of the `repr(C)` block).
        let block = unsafe { NonNull::new_unchecked(raw.cast::<Block<K>>()) };
        StructBlock { block }
    }
}

/// Points `interface`'s `shape` and `strides` at `tensor`'s layout arrays
/// (left NULL for 0-d).
///
/// # Safety
///
/// The arrays outlive every read of the interface; consumers only read
/// them. usize and isize share a layout, and every extent fits in isize
/// (validated by `Layout`).
unsafe fn point_at_layout(interface: &mut PyArrayInterface, tensor: &Tensor) {
    if tensor.ndim() > 0 {
        interface.shape = tensor.shape().as_ptr().cast::<isize>().cast_mut();
        interface.strides = tensor.strides().as_ptr().cast_mut();
    }
}

#[cfg_attr(not(feature = "python"), allow(dead_code))] // the export: Python callers only
impl<K> StructBlock<K> {
    /// Frees the block and hands back what it kept, for a caller that must
    /// release it in its own way (a capsule destructor, which CPython runs
    /// attached but outside any PyO3 frame).
    pub(crate) fn into_keep(self) -> K {
        let raw = self.block.as_ptr();
        std::mem::forget(self);
        // SAFETY: the block came from Box::into_raw in `allocate` and this
        // handle owned it (forgotten above, so it is freed here only).
        let block = unsafe { Box::from_raw(raw) };
        block.keep
    }
}

impl<K> Drop for StructBlock<K> {
    fn drop(&mut self) {
        // SAFETY: the block came from Box::into_raw in `allocate` and this
        // handle owns it (`into_raw` forgets the handle instead of dropping it).
        drop(unsafe { Box::from_raw(self.block.as_ptr()) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Kept = std::sync::Arc<Tensor>;

    /// A block kept by a shared tensor (standing in for the Python object,
    /// which holds its tensor where it is): `tensor`'s own handle may go.
    fn kept(tensor: &Tensor) -> StructBlock<Kept> {
        let keep = Kept::new(tensor.clone());
        let inner: *const Tensor = &*keep;
        // SAFETY: the `Arc` keeps its tensor alive, at its address and
        // unchanged, as long as the block holds it.
        unsafe { StructBlock::kept(&*inner, keep) }.unwrap()
    }

    /// The interface's shape and strides point into the kept tensor: moving
    /// the handle, giving it up and taking it back must leave them readable
    /// (Miri checks the reads).
    #[test]
    fn struct_block_pointers_survive_moves() {
        let t = Tensor::zeros(&[2, 3], DType::FLOAT32).unwrap();
        let block = kept(&t);
        let mut moved = vec![block];
        let mut block = moved.pop().unwrap();
        block.interface_mut().flags |= WRITEABLE;
        // SAFETY: `raw` came from `into_raw` and is taken back once.
        let block = unsafe { StructBlock::<Kept>::from_raw(block.into_raw()) };
        drop(t);
        let d = describe_struct(block.interface(), |_| Ok(()), DType::opaque).unwrap();
        assert_eq!(d.layout().shape(), &[2, 3][..]);
        assert_eq!(d.layout().strides(), &[12, 4][..]);
    }

    /// A read-only tensor's block says so, and what it keeps holds the
    /// memory and the layout arrays after the tensor it was made from goes.
    #[test]
    fn struct_block_keeps_its_tensor() {
        let t = Tensor::from(vec![1.0f32, 2.0]).to_readonly();
        let block = kept(&t);
        assert_eq!(block.interface().data, t.data_ptr().cast());
        assert_eq!(block.interface().flags & WRITEABLE, 0);
        drop(t);
        // SAFETY: `shape` points at the `nd` extents of the kept tensor.
        assert_eq!(unsafe { *block.interface().shape }, 2);
        // SAFETY: `raw` came from `into_raw` and is taken back exactly once.
        drop(unsafe { StructBlock::<Kept>::from_raw(block.into_raw()) });
    }

    #[test]
    fn struct_layout_matches_numpy() {
        assert_eq!(size_of::<PyArrayInterface>(), 56);
        assert_eq!(std::mem::offset_of!(PyArrayInterface, flags), 16);
        assert_eq!(std::mem::offset_of!(PyArrayInterface, shape), 24);
        assert_eq!(std::mem::offset_of!(PyArrayInterface, data), 40);
        assert_eq!(std::mem::offset_of!(PyArrayInterface, descr), 48);
    }

    fn interface(data: &mut [f32; 6], shape: &mut [isize; 2], flags: c_int) -> PyArrayInterface {
        PyArrayInterface {
            two: 2,
            nd: 2,
            typekind: b'f' as c_char,
            itemsize: 4,
            flags,
            shape: shape.as_mut_ptr(),
            strides: std::ptr::null_mut(),
            data: data.as_mut_ptr().cast(),
            descr: std::ptr::null_mut(),
        }
    }

    #[test]
    fn describe_struct_checks_every_field() {
        let mut data = [0f32; 6];
        let mut shape = [2isize, 3];
        let no_records = |_: *mut c_void| Ok(());
        let no_void = |n: usize| DType::opaque(n);
        let ok = interface(&mut data, &mut shape, 0x701);
        let d = describe_struct(&ok, no_records, no_void).unwrap();
        assert_eq!(
            (d.layout().shape(), d.layout().strides()),
            (&[2, 3][..], &[12, 4][..])
        );
        assert!(!d.readonly);
        let kind =
            |i: PyArrayInterface| describe_struct(&i, no_records, no_void).unwrap_err().kind();
        use crate::error::ErrorKind;
        assert_eq!(
            kind(interface(&mut data, &mut shape, 0x501)),
            ErrorKind::Buffer
        );
        let mut wrong = interface(&mut data, &mut shape, 0x701);
        wrong.two = 3;
        assert_eq!(kind(wrong), ErrorKind::Value);
        let mut null = interface(&mut data, &mut shape, 0x701);
        null.data = std::ptr::null_mut();
        assert_eq!(kind(null), ErrorKind::Buffer);
        let mut deep = interface(&mut data, &mut shape, 0x701);
        deep.nd = 65;
        assert_eq!(kind(deep), ErrorKind::Value);
    }

    #[test]
    fn flags_follow_the_layout() {
        let t = Tensor::zeros(&[2, 3], DType::FLOAT32).unwrap();
        assert_eq!(struct_flags(&t), 0x701);
        assert_eq!(struct_flags(&t.to_readonly()), 0x301);
        let z = Tensor::zeros(&[], DType::COMPLEX128).unwrap();
        assert_eq!(struct_flags(&z), 0x703);
        assert_eq!(alignment(DType::COMPLEX64), 4);
        assert_eq!(alignment(DType::BFLOAT16), 2);
    }
}
