//! The Arrow C Data Interface's two structs, built for a tensor and released
//! by their own callbacks (pure Rust: the capsules around them are in
//! `super`).
//!
//! A C-contiguous tensor of shape `(d0, d1, ..., dn)` becomes `n` nested
//! FixedSizeLists (`+w:d1`, ..., `+w:dn`) over one primitive array of all
//! the elements, whose data buffer *is* the tensor's memory. Every level, the
//! root and each child, keeps its own clone of the tensor (and so of its
//! owner): the C Data Interface lets a consumer move a child out and release
//! the parent, so no level may depend on another to keep the memory alive.
//! The owner is released exactly once, when the last level is released.

use std::ffi::{CStr, CString, c_char, c_void};
use std::ptr;

use crate::dtype::DType;
use crate::error::{Cause, Error, Result};
use crate::tensor::Tensor;

/// `ARROW_FLAG_NULLABLE`: the fields are nullable, as pyarrow exports them
/// (the arrays themselves hold no nulls: `null_count` is 0).
const ARROW_FLAG_NULLABLE: i64 = 2;

/// `struct ArrowSchema` of the C Data Interface.
#[repr(C)]
pub(crate) struct ArrowSchema {
    pub(crate) format: *const c_char,
    pub(crate) name: *const c_char,
    pub(crate) metadata: *const c_char,
    pub(crate) flags: i64,
    pub(crate) n_children: i64,
    pub(crate) children: *mut *mut ArrowSchema,
    pub(crate) dictionary: *mut ArrowSchema,
    pub(crate) release: Option<unsafe extern "C" fn(*mut ArrowSchema)>,
    pub(crate) private_data: *mut c_void,
}

/// `struct ArrowArray` of the C Data Interface.
#[repr(C)]
pub(crate) struct ArrowArray {
    pub(crate) length: i64,
    pub(crate) null_count: i64,
    pub(crate) offset: i64,
    pub(crate) n_buffers: i64,
    pub(crate) n_children: i64,
    pub(crate) buffers: *mut *const c_void,
    pub(crate) children: *mut *mut ArrowArray,
    pub(crate) dictionary: *mut ArrowArray,
    pub(crate) release: Option<unsafe extern "C" fn(*mut ArrowArray)>,
    pub(crate) private_data: *mut c_void,
}

/// The Arrow format string of a primitive dtype Arrow stores as the tensor
/// does: one native-endian element after another. `bool` is not one of them
/// (Arrow's booleans are bits, a tensor's are bytes).
pub(crate) fn primitive_format(dtype: DType) -> Option<&'static str> {
    Some(match dtype {
        DType::INT8 => "c",
        DType::UINT8 => "C",
        DType::INT16 => "s",
        DType::UINT16 => "S",
        DType::INT32 => "i",
        DType::UINT32 => "I",
        DType::INT64 => "l",
        DType::UINT64 => "L",
        DType::FLOAT16 => "e",
        DType::FLOAT32 => "f",
        DType::FLOAT64 => "g",
        _ => return None,
    })
}

/// The format strings of the export, outermost first: `+w:<extent>` for
/// every axis after the first, then the element's format. Every refusal
/// (device, dtype, rank, layout, alignment) is made here, before anything
/// is allocated.
pub(crate) fn formats(tensor: &Tensor) -> Result<Vec<String>> {
    tensor.device().ensure_cpu("the Arrow C data interface")?;
    let dtype = tensor.dtype();
    let Some(element) = primitive_format(dtype) else {
        let why = if dtype == DType::BOOL {
            "Arrow's booleans are bit-packed and a bool tensor has a byte per element, so only a \
             copy could give them (pa.array(np.asarray(t)) makes one)"
        } else {
            "Arrow has no type with its layout"
        };
        return Err(Error::buffer(
            Cause::DType,
            format!("a {dtype} tensor cannot be exported to Arrow: {why}"),
        ));
    };
    if tensor.ndim() == 0 {
        return Err(Error::buffer(
            Cause::Layout,
            "a 0-d tensor cannot be exported to Arrow, whose arrays have a length",
        ));
    }
    if !tensor.layout().is_c_contiguous() {
        return Err(Error::buffer(
            Cause::Layout,
            format!(
                "a tensor with strides {:?} cannot be exported to Arrow without a copy: Arrow \
                 needs C-contiguous memory (t.copy() makes a contiguous copy)",
                tensor.strides()
            ),
        ));
    }
    if tensor.size() != 0 && !(tensor.data_ptr() as usize).is_multiple_of(tensor.itemsize()) {
        return Err(Error::buffer(
            Cause::Pointer,
            format!(
                "a {dtype} tensor at address {:#x} cannot be exported to Arrow: its elements are \
                 not aligned to their size, which Arrow's readers assume",
                tensor.data_ptr() as usize
            ),
        ));
    }
    let mut formats = Vec::with_capacity(tensor.ndim());
    for &extent in &tensor.shape()[1..] {
        if i32::try_from(extent).is_err() {
            return Err(Error::buffer(
                Cause::Layout,
                format!(
                    "a tensor of shape {:?} cannot be exported to Arrow: the extent {extent} is \
                     more than a FixedSizeList's int32 size",
                    tensor.shape()
                ),
            ));
        }
        formats.push(format!("+w:{extent}"));
    }
    formats.push(element.to_owned());
    Ok(formats)
}

/// What a schema level owns: its format string and its child.
struct SchemaPrivate {
    format: CString,
    children: Vec<*mut ArrowSchema>,
}

/// A schema for `formats` (outermost first, as [`formats`] gives them): the
/// root is named `""`, each child `"item"` (pyarrow's names).
pub(crate) fn new_schema(formats: &[String]) -> Box<ArrowSchema> {
    schema_level(formats, c"")
}

fn schema_level(formats: &[String], name: &'static CStr) -> Box<ArrowSchema> {
    let children = match formats {
        [_, rest @ ..] if !rest.is_empty() => vec![Box::into_raw(schema_level(rest, c"item"))],
        _ => Vec::new(),
    };
    // Format strings are built above from ASCII digits and letters: no NUL.
    let format = CString::new(formats[0].as_str()).unwrap_or_default();
    let mut private = Box::new(SchemaPrivate { format, children });
    Box::new(ArrowSchema {
        format: private.format.as_ptr(),
        name: name.as_ptr(),
        metadata: ptr::null(),
        flags: ARROW_FLAG_NULLABLE,
        n_children: private.children.len() as i64,
        children: if private.children.is_empty() {
            ptr::null_mut()
        } else {
            private.children.as_mut_ptr()
        },
        dictionary: ptr::null_mut(),
        release: Some(release_schema),
        private_data: Box::into_raw(private).cast(),
    })
}

/// What an array level owns: its share of the tensor, its buffer pointers
/// (the validity bitmap is NULL: no nulls) and its child.
struct ArrayPrivate {
    _tensor: Tensor,
    buffers: [*const c_void; 2],
    children: Vec<*mut ArrowArray>,
}

/// A non-NULL, 64-byte-aligned address for the data buffer of an empty
/// tensor (Arrow's readers may not be handed NULL for a buffer).
#[repr(C, align(64))]
struct EmptyData([u8; 64]);
static EMPTY_DATA: EmptyData = EmptyData([0; 64]);

/// An array of `tensor`'s elements, zero-copy; `tensor` must have passed
/// [`formats`] (CPU, a primitive dtype, C-contiguous, at least one axis).
pub(crate) fn new_array(tensor: &Tensor) -> Box<ArrowArray> {
    let data = if tensor.size() == 0 {
        (&raw const EMPTY_DATA).cast::<c_void>()
    } else {
        tensor.data_ptr().cast_const().cast::<c_void>()
    };
    array_level(tensor, tensor.shape(), 1, data)
}

/// The level for the axes `shape` (the outer axes' extents multiplied into
/// `outer`): a FixedSizeList while axes remain after the first, else the
/// primitive array of every element.
fn array_level(
    tensor: &Tensor,
    shape: &[usize],
    outer: usize,
    data: *const c_void,
) -> Box<ArrowArray> {
    // Every product is at most the tensor's element count, which fits isize.
    let length = outer * shape[0];
    let (children, buffers) = if shape.len() > 1 {
        let child = array_level(tensor, &shape[1..], length, data);
        (vec![Box::into_raw(child)], [ptr::null(), ptr::null()])
    } else {
        (Vec::new(), [ptr::null(), data])
    };
    let mut private = Box::new(ArrayPrivate {
        _tensor: tensor.clone(),
        buffers,
        children,
    });
    Box::new(ArrowArray {
        length: length as i64,
        null_count: 0,
        offset: 0,
        n_buffers: if private.children.is_empty() { 2 } else { 1 },
        n_children: private.children.len() as i64,
        buffers: private.buffers.as_mut_ptr(),
        children: if private.children.is_empty() {
            ptr::null_mut()
        } else {
            private.children.as_mut_ptr()
        },
        dictionary: ptr::null_mut(),
        release: Some(release_array),
        private_data: Box::into_raw(private).cast(),
    })
}

/// Runs `f`, aborting rather than unwinding into the consumer's C code.
fn no_unwind(f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        std::process::abort();
    }
}

/// The schema's `release`: releases the children the consumer did not move
/// out, frees what the level owns and marks it released. The struct itself
/// is not freed: it may live in the consumer's memory (a move).
///
/// # Safety
///
/// `schema` is a schema built by [`new_schema`] (or moved from one).
unsafe extern "C" fn release_schema(schema: *mut ArrowSchema) {
    no_unwind(|| {
        // SAFETY: the caller passes a live struct; a released one (release
        // NULL) is left alone, so a second call does nothing.
        let Some(schema) = (unsafe { schema.as_mut() }) else {
            return;
        };
        if schema.release.is_none() {
            return;
        }
        // SAFETY: private_data is the Box leaked by `schema_level`, taken
        // back once: release is set to None below.
        let private = unsafe { Box::from_raw(schema.private_data.cast::<SchemaPrivate>()) };
        for &child in &private.children {
            // SAFETY: each child struct was leaked by `schema_level` and is
            // owned by this level; a child the consumer moved out has its
            // release set to NULL here, and the move took its resources.
            unsafe {
                if let Some(release) = (*child).release {
                    release(child);
                }
                drop(Box::from_raw(child));
            }
        }
        drop(private);
        schema.release = None;
        schema.private_data = ptr::null_mut();
    });
}

/// The array's `release`, as [`release_schema`]; dropping a level's tensor
/// clone may release the owner (which attaches to the interpreter itself,
/// so any thread may release).
///
/// # Safety
///
/// `array` is an array built by [`new_array`] (or moved from one).
unsafe extern "C" fn release_array(array: *mut ArrowArray) {
    no_unwind(|| {
        // SAFETY: as in `release_schema`.
        let Some(array) = (unsafe { array.as_mut() }) else {
            return;
        };
        if array.release.is_none() {
            return;
        }
        // SAFETY: private_data is the Box leaked by `array_level`, taken back once.
        let private = unsafe { Box::from_raw(array.private_data.cast::<ArrayPrivate>()) };
        for &child in &private.children {
            // SAFETY: as in `release_schema`: owned child structs, released
            // unless moved out, freed here.
            unsafe {
                if let Some(release) = (*child).release {
                    release(child);
                }
                drop(Box::from_raw(child));
            }
        }
        drop(private);
        array.release = None;
        array.private_data = ptr::null_mut();
    });
}

/// The format strings of a consumer's schema, outermost first, following
/// the one child of each nested level; `None` when a level has other than
/// one child below a nested type (no tensor exports as that), or the schema
/// is deeper than any tensor.
///
/// # Safety
///
/// `schema` points to a valid, unreleased `ArrowSchema` that stays alive
/// and unchanged during the call.
pub(crate) unsafe fn read_formats(schema: *const ArrowSchema) -> Option<Vec<String>> {
    let mut formats = Vec::new();
    let mut level = schema;
    loop {
        // SAFETY: the caller's contract for the root; each child pointer of
        // a valid schema is a valid schema.
        let current = unsafe { level.as_ref() }?;
        if current.format.is_null() || formats.len() > crate::MAX_NDIM {
            return None;
        }
        // SAFETY: a valid schema's format is a NUL-terminated string.
        let format = unsafe { CStr::from_ptr(current.format) };
        formats.push(format.to_string_lossy().into_owned());
        match current.n_children {
            0 => return Some(formats),
            // SAFETY: n_children is 1, so `children` holds one pointer.
            1 if !current.children.is_null() => level = unsafe { *current.children },
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn tensor_2x3() -> Tensor {
        Tensor::from(ndarray::Array2::<f32>::zeros((2, 3)))
    }

    #[test]
    fn formats_nest_fixed_size_lists() {
        assert_eq!(formats(&tensor_2x3()).unwrap(), ["+w:3", "f"]);
        assert_eq!(formats(&Tensor::from(vec![1u16, 2])).unwrap(), ["S"]);
        let err = formats(&Tensor::from(vec![true])).unwrap_err();
        assert_eq!(err.cause(), Cause::DType);
    }

    #[test]
    fn every_level_holds_the_owner_until_released_once() {
        let t = tensor_2x3();
        let array = Box::into_raw(new_array(&t));
        assert_eq!(Arc::strong_count(t.owner()), 3); // t, the root, the child
        // SAFETY: `array` was just built; it is released twice (the second
        // call must do nothing) and then freed.
        unsafe {
            assert_eq!(((*array).length, (*array).n_children), (2, 1));
            let child = *(*array).children;
            assert_eq!(((*child).length, (*child).n_buffers), (6, 2));
            assert_eq!(*(*child).buffers.add(1), t.data_ptr().cast_const().cast());
            let release = (*array).release.unwrap();
            release(array);
            assert!((*array).release.is_none());
            release(array);
            drop(Box::from_raw(array));
        }
        assert_eq!(Arc::strong_count(t.owner()), 1);
    }

    #[test]
    fn a_moved_child_outlives_its_parent() {
        let t = tensor_2x3();
        let array = Box::into_raw(new_array(&t));
        // SAFETY: the consumer's move of a child, as the C Data Interface
        // describes it: copy the struct, mark the original released, release
        // the parent at once; the moved child is released last.
        unsafe {
            let child = *(*array).children;
            let mut moved = ptr::read(child);
            (*child).release = None;
            (*array).release.unwrap()(array);
            drop(Box::from_raw(array));
            assert_eq!(Arc::strong_count(t.owner()), 2); // the moved child's share
            assert_eq!(*moved.buffers.add(1), t.data_ptr().cast_const().cast());
            moved.release.unwrap()(&mut moved);
            assert!(moved.release.is_none());
        }
        assert_eq!(Arc::strong_count(t.owner()), 1);
    }

    #[test]
    fn schema_reads_back_and_releases() {
        let formats = formats(&Tensor::from(ndarray::Array3::<i64>::zeros((2, 3, 4)))).unwrap();
        let schema = Box::into_raw(new_schema(&formats));
        // SAFETY: a schema just built, read, released once and freed.
        unsafe {
            assert_eq!(read_formats(schema).unwrap(), ["+w:3", "+w:4", "l"]);
            (*schema).release.unwrap()(schema);
            assert!((*schema).release.is_none());
            drop(Box::from_raw(schema));
        }
    }
}
