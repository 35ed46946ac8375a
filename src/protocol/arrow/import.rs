//! Import: a producer's `ArrowSchema` and `ArrowArray` (moved out of their
//! capsules by the Python layer) as a read-only tensor, zero-copy.
//!
//! A primitive array is a 1-d tensor; nested FixedSizeLists of a primitive
//! an N-d C-contiguous tensor; the canonical `arrow.fixed_shape_tensor`
//! extension type its element shape (its `permutation` as strides). Every
//! field is checked before any buffer is used: NULL buffers, negative
//! lengths and offsets, offsets past the end of a child, buffer and child
//! counts that do not match the format, formats that are not Arrow's. The
//! only producer memory read is what the schema describes: its strings and
//! metadata, and a validity bitmap whose `null_count` is unknown (-1) or
//! which covers more than the slots imported.
//!
//! The owner is the [`Imported`] pair: the array's `release` (and the
//! schema's) runs exactly once, when the last view of the tensor is gone.

use std::ffi::CStr;
use std::sync::Arc;

use super::ffi::{ArrowArray, ArrowSchema};
use super::format::{Format, parse_format};
use super::metadata::{self, FixedShapeTensor};
use super::{malformed, no_tensor};
use crate::descriptor::{Claims, Descriptor, Source};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Cause, Error, Result};
use crate::layout::Layout;
use crate::owner::Allocation;
use crate::tensor::Tensor;

/// The moved-in schema and array, released once each when dropped.
pub(crate) struct Imported {
    schema: ArrowSchema,
    array: ArrowArray,
}

// SAFETY: the structs are owned here alone (moved out of the producer's
// capsules); their release callbacks are the only code that touches them,
// once, from `Drop`. The C Data Interface leaves the thread a consumer
// releases on to the consumer: producers' callbacks take any lock they need
// (pyarrow's and polars' free C++/Rust memory; a Python-backed buffer takes
// the interpreter's lock itself).
unsafe impl Send for Imported {}
// SAFETY: nothing is reachable through `&Imported`.
unsafe impl Sync for Imported {}

impl Allocation for Imported {}

impl Drop for Imported {
    fn drop(&mut self) {
        // SAFETY: each struct is ours (moved in) and released at most once:
        // a released struct has a NULL release.
        unsafe {
            if let Some(release) = self.array.release {
                release(&mut self.array);
            }
            if let Some(release) = self.schema.release {
                release(&mut self.schema);
            }
        }
    }
}

/// The tensor type a schema describes: the element, the FixedSizeList
/// sizes outermost first, and the extension's parameters if it is
/// `arrow.fixed_shape_tensor`.
#[derive(Debug)]
struct ArrowType {
    dtype: DType,
    sizes: Vec<usize>,
    tensor: Option<FixedShapeTensor>,
}

/// Imports a moved-in pair as a read-only tensor whose owner is the pair.
/// On any refusal the pair is released before this returns.
///
/// # Safety
///
/// `schema` and `array` were moved out of a producer (copied, the
/// originals marked released): each is released, or a valid struct of the
/// C Data Interface whose pointers stay valid until it is released, with
/// `array`'s buffers as long as its fields say (the C Data Interface's
/// contract, which only a lying producer breaks).
///
/// # Errors
///
/// - `Value`: a malformed pair (a released struct, a NULL format, buffer
///   or child that the format needs, a negative length or offset, an offset
///   past a child's end, buffer or child counts other than the format's,
///   unknown formats, malformed `arrow.fixed_shape_tensor` parameters).
/// - `Buffer`: a valid array that has no zero-copy tensor (nulls, booleans,
///   dictionaries, strings, decimals, temporal types, other extension
///   types, an element not aligned to its size).
pub(crate) unsafe fn import(schema: ArrowSchema, array: ArrowArray) -> Result<Tensor> {
    let owner = Imported { schema, array };
    if owner.schema.release.is_none() || owner.array.release.is_none() {
        let which = if owner.schema.release.is_none() {
            "ArrowSchema"
        } else {
            "ArrowArray"
        };
        return Err(malformed(format!("the {which} has already been released")));
    }
    // SAFETY: the caller's contract: an unreleased, valid schema.
    let arrow_type = unsafe { read_type(&owner.schema)? };
    // SAFETY: the caller's contract: an unreleased, valid array.
    let descriptor = unsafe { read_array(&owner.array, &arrow_type)? };
    // SAFETY: the descriptor's span lies in the array's data buffer, which
    // stays valid until the array is released, when `owner` drops.
    Ok(unsafe { Tensor::from_descriptor(descriptor, Arc::new(owner)) })
}

/// A level's format string, checked to be present and UTF-8.
unsafe fn format_of(schema: &ArrowSchema) -> Result<&str> {
    if schema.format.is_null() {
        return Err(malformed("the ArrowSchema has a NULL format"));
    }
    // SAFETY: a valid schema's format is a NUL-terminated string.
    let format = unsafe { CStr::from_ptr(schema.format) };
    format
        .to_str()
        .map_err(|_| malformed(format!("the ArrowSchema's format {format:?} is not UTF-8")))
}

/// Walks the schema from its root; see [`ArrowType`].
unsafe fn read_type(root: &ArrowSchema) -> Result<ArrowType> {
    let mut sizes = Vec::new();
    let mut level = root;
    let mut tensor = None;
    loop {
        // SAFETY: `level` is the root or a child of a valid schema.
        let format = unsafe { format_of(level)? };
        if !level.dictionary.is_null() {
            return Err(no_tensor(
                format,
                "it is dictionary-encoded: its values are indices into a dictionary, not the \
                 data (decode it first: arr.dictionary_decode())",
            ));
        }
        // SAFETY: a valid schema's metadata is NULL or well encoded.
        let pairs = unsafe { metadata::read(level.metadata)? };
        if let Some(name) = metadata::get(&pairs, metadata::EXTENSION_NAME) {
            if name != metadata::FIXED_SHAPE_TENSOR || !sizes.is_empty() {
                return Err(no_tensor(
                    format,
                    format_args!(
                        "it is the storage of the extension type {:?}, which a tensor would drop \
                         (import the storage explicitly, pyarrow: arr.storage, if that is what \
                         you want)",
                        String::from_utf8_lossy(name)
                    ),
                ));
            }
            let parameters = metadata::get(&pairs, metadata::EXTENSION_METADATA).unwrap_or(b"");
            tensor = Some(metadata::parse_fixed_shape_tensor(parameters)?);
        }
        let Some(parsed) = parse_format(format) else {
            return Err(malformed(format!(
                "the ArrowSchema's format {format:?} is not an Arrow format string"
            )));
        };
        let expected_children = usize::from(matches!(parsed, Format::FixedSizeList(_)));
        if matches!(parsed, Format::NoTensor(_)) {
            // Refused for the type, whatever its children.
        } else if level.n_children != expected_children as i64
            || (expected_children == 1 && level.children.is_null())
        {
            return Err(malformed(format!(
                "the ArrowSchema of format {format:?} has n_children {} (children {:p}); the \
                 format has {expected_children}",
                level.n_children, level.children
            )));
        }
        match parsed {
            Format::NoTensor(why) => {
                return Err(no_tensor(format, why));
            }
            Format::Primitive(dtype) => {
                let arrow_type = ArrowType {
                    dtype,
                    sizes,
                    tensor,
                };
                check_tensor_storage(&arrow_type)?;
                return Ok(arrow_type);
            }
            Format::FixedSizeList(size) => {
                if sizes.len() + 1 >= crate::MAX_NDIM {
                    return Err(malformed(format!(
                        "the ArrowSchema nests more FixedSizeLists than a tensor has axes ({})",
                        crate::MAX_NDIM
                    )));
                }
                sizes.push(size);
                // SAFETY: n_children is 1 and `children` is non-NULL: one
                // child pointer, which a valid schema makes non-NULL.
                let child = unsafe { *level.children };
                // SAFETY: a valid schema's child is a valid schema.
                level = unsafe { child.as_ref() }
                    .ok_or_else(|| malformed("the ArrowSchema has a NULL child"))?;
            }
        }
    }
}

/// `arrow.fixed_shape_tensor`'s storage is one FixedSizeList of a
/// primitive, `prod(shape)` values long.
fn check_tensor_storage(arrow_type: &ArrowType) -> Result<()> {
    let Some(tensor) = &arrow_type.tensor else {
        return Ok(());
    };
    let count = tensor
        .shape
        .iter()
        .try_fold(1usize, |n, &extent| n.checked_mul(extent));
    if arrow_type.sizes.len() != 1 || count != Some(arrow_type.sizes[0]) {
        return Err(malformed(format!(
            "an arrow.fixed_shape_tensor of shape {:?} needs a FixedSizeList of that many \
             values over a primitive type as its storage, not FixedSizeList sizes {:?}",
            tensor.shape, arrow_type.sizes
        )));
    }
    Ok(())
}

/// The slots `[lo, hi)` of one level (indices relative to its `offset`).
#[derive(Clone, Copy)]
struct Slots {
    lo: usize,
    hi: usize,
}

/// Checks an array level's counts, pointers and nulls over `slots`, and
/// returns its `offset`.
unsafe fn check_level(
    array: &ArrowArray,
    format: &str,
    n_buffers: i64,
    n_children: i64,
    slots: Slots,
    root: bool,
) -> Result<usize> {
    if array.release.is_none() {
        return Err(malformed(format!(
            "a child ArrowArray (format {format:?}) has already been released"
        )));
    }
    let (Ok(length), Ok(offset)) = (usize::try_from(array.length), usize::try_from(array.offset))
    else {
        return Err(malformed(format!(
            "the ArrowArray (format {format:?}) has length {} and offset {}; neither may be \
             negative",
            array.length, array.offset
        )));
    };
    if offset
        .checked_add(length)
        .is_none_or(|end| end > isize::MAX as usize)
    {
        return Err(malformed(format!(
            "the ArrowArray (format {format:?}) has offset {offset} and length {length}, \
             past the end of any buffer"
        )));
    }
    if slots.hi > length {
        return Err(malformed(format!(
            "the child ArrowArray (format {format:?}) has length {length}, but its \
             FixedSizeList parent needs {} values",
            slots.hi
        )));
    }
    if array.n_buffers != n_buffers
        || array.n_children != n_children
        || (n_buffers > 0 && array.buffers.is_null())
        || (n_children > 0 && array.children.is_null())
    {
        return Err(malformed(format!(
            "the ArrowArray of format {format:?} has n_buffers {} and n_children {} (buffers \
             {:p}, children {:p}); the format has {n_buffers} and {n_children}",
            array.n_buffers, array.n_children, array.buffers, array.children
        )));
    }
    if !array.dictionary.is_null() {
        return Err(malformed(format!(
            "the ArrowArray of format {format:?} has a dictionary, which its schema does not"
        )));
    }
    if array.null_count < -1 {
        return Err(malformed(format!(
            "the ArrowArray has null_count {}",
            array.null_count
        )));
    }
    // SAFETY: `buffers` holds n_buffers >= 1 pointers (checked above).
    let validity = unsafe { *array.buffers }.cast::<u8>();
    let nulls = match array.null_count {
        0 => 0,
        n if validity.is_null() => {
            return Err(malformed(format!(
                "the ArrowArray has null_count {n} but no validity bitmap"
            )));
        }
        n if root => {
            if n > 0 {
                n as usize
            } else {
                // SAFETY: a validity bitmap covers offset + length bits.
                unsafe { count_nulls(validity, offset + slots.lo, slots.hi - slots.lo) }
            }
        }
        // SAFETY: as above; a child's nulls may lie outside the slots used.
        _ => unsafe { count_nulls(validity, offset + slots.lo, slots.hi - slots.lo) },
    };
    if nulls > 0 {
        return Err(no_tensor(
            format,
            format_args!(
                "it has {nulls} null(s), and a tensor has no missing values (fill them first: \
                 pyarrow.compute.fill_null, polars fill_null)"
            ),
        ));
    }
    Ok(offset)
}

/// Unset bits of `bitmap` in `[start, start + len)`.
///
/// # Safety
///
/// `bitmap` is readable for `(start + len).div_ceil(8)` bytes.
unsafe fn count_nulls(bitmap: *const u8, start: usize, len: usize) -> usize {
    // SAFETY: the caller's contract.
    let bytes = unsafe { std::slice::from_raw_parts(bitmap, (start + len).div_ceil(8)) };
    unset_bits(bytes, start, len)
}

/// Unset bits of `bytes` (Arrow's LSB-first bit order) in `[start, start + len)`.
fn unset_bits(bytes: &[u8], start: usize, len: usize) -> usize {
    (start..start + len)
        .filter(|&i| bytes[i / 8] & (1 << (i % 8)) == 0)
        .count()
}

/// Checks the array against its type and describes its elements.
unsafe fn read_array(root: &ArrowArray, arrow_type: &ArrowType) -> Result<Descriptor> {
    let length = usize::try_from(root.length).unwrap_or(usize::MAX);
    let mut slots = Slots { lo: 0, hi: 0 };
    let mut level = root;
    let mut first = true;
    for &size in &arrow_type.sizes {
        let format = format!("+w:{size}");
        if first {
            slots.hi = usize::try_from(root.length).unwrap_or(0);
        }
        // SAFETY: a valid array of the schema's type.
        let offset = unsafe { check_level(level, &format, 1, 1, slots, first)? };
        first = false;
        let scale = |slot: usize| {
            (offset + slot)
                .checked_mul(size)
                .filter(|&n| n <= isize::MAX as usize)
        };
        let (Some(lo), Some(hi)) = (scale(slots.lo), scale(slots.hi)) else {
            return Err(malformed(format!(
                "a FixedSizeList of {size} values over {} slots needs more values than an \
                 address space holds",
                slots.hi
            )));
        };
        slots = Slots { lo, hi };
        // SAFETY: n_children is 1 and `children` non-NULL (checked).
        let child = unsafe { *level.children };
        // SAFETY: a valid array's child is a valid array.
        level = unsafe { child.as_ref() }
            .ok_or_else(|| malformed("the ArrowArray has a NULL child"))?;
    }
    let element = super::format::primitive_format(arrow_type.dtype).unwrap_or("?");
    if first {
        slots.hi = usize::try_from(root.length).unwrap_or(0);
    }
    // SAFETY: a valid array of the schema's type.
    let offset = unsafe { check_level(level, element, 2, 0, slots, first)? };
    let itemsize = arrow_type.dtype.itemsize();
    // SAFETY: n_buffers is 2 (checked): the data buffer is the second.
    let data = unsafe { *level.buffers.add(1) }.cast::<u8>().cast_mut();
    let count = slots.hi - slots.lo;
    let byte_offset = (offset + slots.lo)
        .checked_mul(itemsize)
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or_else(|| {
            malformed(format!(
                "the ArrowArray's offset {offset} is past any buffer"
            ))
        })?;
    if count > 0 && data.is_null() {
        return Err(malformed(format!(
            "the ArrowArray of format {element:?} has a NULL data buffer for {count} values"
        )));
    }
    let address = (data as usize).wrapping_add(byte_offset);
    if count > 0 && !address.is_multiple_of(itemsize) {
        return Err(Error::buffer(
            Cause::Pointer,
            format!(
                "the Arrow array's {} values at address {address:#x} are not aligned to their \
                 {itemsize}-byte size, which DLPack requires of a tensor's data (its consumers \
                 read elements in place)",
                arrow_type.dtype
            ),
        ));
    }
    let layout = layout_of(arrow_type, length, itemsize)?;
    Descriptor::new(Claims {
        what: "Arrow array",
        base: data,
        offset: byte_offset,
        layout,
        dtype: arrow_type.dtype,
        device: Device::CPU,
        readonly: true,
        source: Source::Arrow,
        len: None,
    })
}

/// The tensor's layout: `[length, sizes...]` C-contiguous, or for
/// `arrow.fixed_shape_tensor` `[length, logical shape...]` with the
/// permutation's strides (logical axis `i` is physical axis `perm[i]`).
fn layout_of(arrow_type: &ArrowType, length: usize, itemsize: usize) -> Result<Layout> {
    let Some(tensor) = &arrow_type.tensor else {
        let mut shape = vec![length];
        shape.extend_from_slice(&arrow_type.sizes);
        return Layout::contiguous(&shape, itemsize);
    };
    let physical = Layout::contiguous(&tensor.shape, itemsize)?;
    let row = arrow_type.sizes[0]
        .checked_mul(itemsize)
        .and_then(|n| isize::try_from(n).ok())
        .ok_or_else(|| {
            malformed(format!(
                "a tensor of {} values is too large",
                arrow_type.sizes[0]
            ))
        })?;
    let (mut shape, mut strides) = (vec![length], vec![row]);
    match &tensor.permutation {
        Some(perm) => {
            shape.extend(perm.iter().map(|&axis| tensor.shape[axis]));
            strides.extend(perm.iter().map(|&axis| physical.strides()[axis]));
        }
        None => {
            shape.extend_from_slice(&tensor.shape);
            strides.extend_from_slice(physical.strides());
        }
    }
    Layout::new(&shape, Some(&strides), itemsize)
}
