//! Export: a tensor as the C Data Interface's two structs, released by
//! their own callbacks (the capsules around them are the Python layer's).
//!
//! A C-contiguous tensor of shape `(d0, d1, ..., dn)` becomes `n` nested
//! FixedSizeLists (`+w:d1`, ..., `+w:dn`) over one primitive array of all
//! the elements, whose data buffer *is* the tensor's memory; asked for
//! `arrow.fixed_shape_tensor` (a consumer's `requested_schema`), one
//! FixedSizeList of `d1 * ... * dn` values with the extension's metadata.
//! Every level, the root and each child, keeps its own clone of the tensor
//! (and so of its owner): the C Data Interface lets a consumer move a child
//! out and release the parent, so no level may depend on another to keep
//! the memory alive. The owner is released exactly once, when the last
//! level is released.
//!
//! `requested_schema` is honoured whole or refused: its formats must be
//! the export's, it may ask for no dictionary, and the only extension type
//! it may name is `arrow.fixed_shape_tensor` (of the tensor's element shape,
//! unpermuted); its names, flags and other metadata are copied into the
//! export's schema.

use std::ffi::{CStr, CString, c_char, c_void};
use std::ptr;

use super::ffi::{ARROW_FLAG_NULLABLE, ArrowArray, ArrowSchema};
use super::format::primitive_format;
use super::metadata::{self, Metadata};
use crate::dtype::DType;
use crate::error::{Cause, Error, Result};
use crate::tensor::Tensor;

/// The element's format string, after every refusal a tensor can meet
/// (device, dtype, rank, layout, alignment), made before anything is
/// allocated.
fn element_format(tensor: &Tensor) -> Result<&'static str> {
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
    Ok(element)
}

/// The format strings of an export of `shape`, outermost first: `+w:<extent>`
/// for every axis after the first, then the element's.
fn formats_of(shape: &[usize], element: &str) -> Result<Vec<String>> {
    let mut formats = Vec::with_capacity(shape.len());
    for &extent in &shape[1..] {
        if i32::try_from(extent).is_err() {
            return Err(Error::buffer(
                Cause::Layout,
                format!(
                    "a tensor of shape {shape:?} cannot be exported to Arrow: the extent {extent} \
                     is more than a FixedSizeList's int32 size"
                ),
            ));
        }
        formats.push(format!("+w:{extent}"));
    }
    formats.push(element.to_owned());
    Ok(formats)
}

/// One level of a schema to export.
pub(crate) struct SchemaLevel {
    format: String,
    name: CString,
    metadata: Option<Vec<u8>>,
    flags: i64,
}

/// What an export is: its schema's levels and the shape its array levels
/// follow (the tensor's, or `[d0, d1 * ... * dn]` for
/// `arrow.fixed_shape_tensor`).
pub(crate) struct Plan {
    pub(crate) schema: Vec<SchemaLevel>,
    pub(crate) shape: Vec<usize>,
}

/// One level of a consumer's `requested_schema`.
pub(crate) struct RequestedLevel {
    format: String,
    name: CString,
    metadata: Metadata,
    flags: i64,
    dictionary: bool,
}

/// The export of `tensor`, honouring `request` (read by [`read_request`];
/// `Some(None)` is a schema of another structure than a chain of single
/// children).
///
/// # Errors
///
/// `Buffer`: a tensor Arrow cannot take without a copy (see
/// [`element_format`]), or a request that asks for anything but this
/// export: other formats, a dictionary, an extension type other than
/// `arrow.fixed_shape_tensor` of the tensor's element shape.
/// `Value`: a requested `arrow.fixed_shape_tensor` with malformed metadata.
pub(crate) fn plan(tensor: &Tensor, request: Option<Option<&[RequestedLevel]>>) -> Result<Plan> {
    let element = element_format(tensor)?;
    let nested = formats_of(tensor.shape(), element)?;
    let Some(request) = request else {
        let schema = nested
            .into_iter()
            .enumerate()
            .map(|(depth, format)| SchemaLevel {
                format,
                name: if depth == 0 { c"" } else { c"item" }.to_owned(),
                metadata: None,
                flags: ARROW_FLAG_NULLABLE,
            })
            .collect();
        return Ok(Plan {
            schema,
            shape: tensor.shape().to_vec(),
        });
    };
    let shown = |formats: &[String]| format!("{:?}", formats.join(" of "));
    let mismatch = |wanted: Option<&[RequestedLevel]>, exported: &[String]| {
        let wanted = wanted.map(|levels| {
            levels
                .iter()
                .map(|level| level.format.clone())
                .collect::<Vec<_>>()
        });
        Error::buffer(
            Cause::DType,
            format!(
                "requested_schema asks for Arrow type {}, but a tensor of shape {:?} exports as \
                 {} without a copy (cast the Arrow array instead: pa.array(t).cast(type))",
                wanted.map_or_else(|| "of another structure".to_owned(), |w| shown(&w)),
                tensor.shape(),
                shown(exported)
            ),
        )
    };
    let Some(levels) = request else {
        return Err(mismatch(None, &nested));
    };
    if let Some(level) = levels.iter().find(|level| level.dictionary) {
        return Err(Error::buffer(
            Cause::DType,
            format!(
                "requested_schema asks for a dictionary-encoded Arrow type (indices {:?}), but a \
                 tensor exports its values, never dictionary indices (encode the Arrow array \
                 instead: pa.array(t).dictionary_encode())",
                level.format
            ),
        ));
    }
    for (depth, level) in levels.iter().enumerate() {
        let Some(name) = metadata::get(&level.metadata, metadata::EXTENSION_NAME) else {
            continue;
        };
        if name != metadata::FIXED_SHAPE_TENSOR || depth > 0 {
            return Err(Error::buffer(
                Cause::DType,
                format!(
                    "requested_schema asks for the Arrow extension type {:?} (storage {:?}), \
                     which dlbridge cannot vouch for the {} tensor's values: it exports no \
                     extension type but arrow.fixed_shape_tensor (wrap the export yourself: \
                     pa.ExtensionArray.from_storage(type, pa.array(t)))",
                    String::from_utf8_lossy(name),
                    level.format,
                    tensor.dtype()
                ),
            ));
        }
        let parameters = metadata::get(&level.metadata, metadata::EXTENSION_METADATA);
        let requested = metadata::parse_fixed_shape_tensor(parameters.unwrap_or(b""))?;
        let element_shape = &tensor.shape()[1..];
        if requested.shape != element_shape || requested.non_identity_permutation().is_some() {
            return Err(Error::buffer(
                Cause::Layout,
                format!(
                    "requested_schema asks for an arrow.fixed_shape_tensor of shape {:?}{}, but \
                     the tensor's elements have shape {element_shape:?}, unpermuted (reshape or \
                     transpose the tensor first)",
                    requested.shape,
                    requested
                        .permutation
                        .as_ref()
                        .map_or_else(String::new, |p| format!(" and permutation {p:?}"))
                ),
            ));
        }
    }
    let Some(shape) = grouped_shape(tensor.shape(), levels, element) else {
        return Err(mismatch(Some(levels), &nested));
    };
    let formats = formats_of(&shape, element)?;
    let schema = levels
        .iter()
        .zip(formats)
        .map(|(level, format)| SchemaLevel {
            format,
            name: level.name.clone(),
            metadata: (!level.metadata.is_empty()).then(|| metadata::encode(&level.metadata)),
            flags: level.flags,
        })
        .collect();
    Ok(Plan { schema, shape })
}

/// The export shape a request's formats ask for: the tensor's first
/// extent, then one FixedSizeList size per group of consecutive axes after
/// it (`+w:6` of a `(4, 2, 3)` tensor, as `arrow.fixed_shape_tensor`'s
/// storage is: the same C-contiguous memory, zero-copy); `None` unless the
/// request is such a grouping over the tensor's element format.
fn grouped_shape(shape: &[usize], levels: &[RequestedLevel], element: &str) -> Option<Vec<usize>> {
    let (leaf, lists) = levels.split_last()?;
    if leaf.format != element {
        return None;
    }
    let mut axes = shape[1..].iter();
    let mut grouped = vec![shape[0]];
    for level in lists {
        let size: usize = level.format.strip_prefix("+w:")?.parse().ok()?;
        let mut product = *axes.next()?;
        while product != size {
            product = product.checked_mul(*axes.next()?)?;
            if product > size && size != 0 {
                return None;
            }
        }
        grouped.push(size);
    }
    axes.next().is_none().then_some(grouped)
}

/// Reads a consumer's `requested_schema`, outermost level first, following
/// the one child of each level; `None` when a level has more than one
/// child, or the schema is deeper than any tensor.
///
/// # Safety
///
/// `schema` points to a valid, unreleased `ArrowSchema` that stays alive
/// and unchanged during the call.
///
/// # Errors
///
/// `Value`: a NULL format or malformed metadata.
pub(crate) unsafe fn read_request(
    schema: *const ArrowSchema,
) -> Result<Option<Vec<RequestedLevel>>> {
    let mut levels = Vec::new();
    let mut level = schema;
    loop {
        // SAFETY: the caller's contract for the root; each child pointer of
        // a valid schema is a valid schema.
        let Some(current) = (unsafe { level.as_ref() }) else {
            return Ok(None);
        };
        if current.format.is_null() {
            return Err(super::malformed(
                "requested_schema has a NULL format string",
            ));
        }
        if levels.len() > crate::MAX_NDIM {
            return Ok(None);
        }
        // SAFETY: a valid schema's strings are NUL-terminated, its metadata
        // NULL or well encoded.
        let (format, name, metadata) = unsafe {
            let name = if current.name.is_null() {
                CString::default()
            } else {
                CStr::from_ptr(current.name).to_owned()
            };
            (
                CStr::from_ptr(current.format)
                    .to_string_lossy()
                    .into_owned(),
                name,
                metadata::read(current.metadata)?,
            )
        };
        levels.push(RequestedLevel {
            format,
            name,
            metadata,
            flags: current.flags,
            dictionary: !current.dictionary.is_null(),
        });
        match current.n_children {
            0 => return Ok(Some(levels)),
            // SAFETY: n_children is 1, so `children` holds one pointer.
            1 if !current.children.is_null() => level = unsafe { *current.children },
            _ => return Ok(None),
        }
    }
}

/// What a schema level owns: its strings, its metadata and its child.
struct SchemaPrivate {
    format: CString,
    name: CString,
    metadata: Option<Vec<u8>>,
    children: Vec<*mut ArrowSchema>,
}

/// The schema of a [`Plan`].
pub(crate) fn new_schema(levels: &[SchemaLevel]) -> Box<ArrowSchema> {
    let children = match levels {
        [_, rest @ ..] if !rest.is_empty() => vec![Box::into_raw(new_schema(rest))],
        _ => Vec::new(),
    };
    let level = &levels[0];
    // Format strings are built here from ASCII digits and letters: no NUL.
    let format = CString::new(level.format.as_str()).unwrap_or_default();
    let mut private = Box::new(SchemaPrivate {
        format,
        name: level.name.clone(),
        metadata: level.metadata.clone(),
        children,
    });
    Box::new(ArrowSchema {
        format: private.format.as_ptr(),
        name: private.name.as_ptr(),
        metadata: private
            .metadata
            .as_ref()
            .map_or(ptr::null(), |m| m.as_ptr().cast::<c_char>()),
        flags: level.flags,
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

/// An array of `tensor`'s elements, zero-copy, in the [`Plan`]'s shape
/// (`tensor` passed [`plan`]: CPU, a primitive dtype, C-contiguous, at
/// least one axis).
pub(crate) fn new_array(tensor: &Tensor, shape: &[usize]) -> Box<ArrowArray> {
    let data = if tensor.size() == 0 {
        (&raw const EMPTY_DATA).cast::<c_void>()
    } else {
        tensor.data_ptr().cast_const().cast::<c_void>()
    };
    array_level(tensor, shape, 1, data)
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
    let n_children = children.len();
    // Leaked first, then pointed into: the buffer pointers live inside the
    // allocation, and a pointer taken through the Box would not survive
    // `into_raw`'s move of it (Miri's Stacked Borrows).
    let private = Box::into_raw(Box::new(ArrayPrivate {
        _tensor: tensor.clone(),
        buffers,
        children,
    }));
    // SAFETY: `private` was just leaked: valid, and ours alone until the
    // release callback takes it back.
    let (buffers, children) = unsafe {
        (
            (&raw mut (*private).buffers).cast::<*const c_void>(),
            (*private).children.as_mut_ptr(),
        )
    };
    Box::new(ArrowArray {
        length: length as i64,
        null_count: 0,
        offset: 0,
        n_buffers: if n_children == 0 { 2 } else { 1 },
        n_children: n_children as i64,
        buffers,
        children: if n_children == 0 {
            ptr::null_mut()
        } else {
            children
        },
        dictionary: ptr::null_mut(),
        release: Some(release_array),
        private_data: private.cast(),
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
        // SAFETY: private_data is the Box leaked by `new_schema`, taken
        // back once: release is set to None below.
        let private = unsafe { Box::from_raw(schema.private_data.cast::<SchemaPrivate>()) };
        // SAFETY: each child struct was leaked by `new_schema` and is owned
        // by this level alone.
        unsafe { release_children(&private.children, |child| child.release) };
        drop(private);
        schema.release = None;
        schema.private_data = ptr::null_mut();
    });
}

/// Releases the children a level owns and frees their structs: a child
/// the consumer moved out has its release set to NULL, and the move took
/// its resources, so only its struct is freed.
///
/// # Safety
///
/// Each pointer is a live struct leaked from a `Box` by this module and
/// owned by the caller's level alone; none is used afterwards.
unsafe fn release_children<T>(
    children: &[*mut T],
    release_of: fn(&T) -> Option<unsafe extern "C" fn(*mut T)>,
) {
    for &child in children {
        // SAFETY: the caller's promise: a live, owned, leaked struct.
        unsafe {
            if let Some(release) = release_of(&*child) {
                release(child);
            }
            drop(Box::from_raw(child));
        }
    }
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
        // SAFETY: each child struct was leaked by `array_level` and is owned
        // by this level alone.
        unsafe { release_children(&private.children, |child| child.release) };
        drop(private);
        array.release = None;
        array.private_data = ptr::null_mut();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formats(t: &Tensor) -> Result<Vec<String>> {
        plan(t, None).map(|p| p.schema.into_iter().map(|l| l.format).collect())
    }

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
        let array = Box::into_raw(new_array(&t, t.shape()));
        assert_eq!(t.owner().holders(), 3); // t, the root, the child
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
        assert_eq!(t.owner().holders(), 1);
    }

    #[test]
    fn a_moved_child_outlives_its_parent() {
        let t = tensor_2x3();
        let array = Box::into_raw(new_array(&t, t.shape()));
        // SAFETY: the consumer's move of a child, as the C Data Interface
        // describes it: copy the struct, mark the original released, release
        // the parent at once; the moved child is released last.
        unsafe {
            let child = *(*array).children;
            let mut moved = ptr::read(child);
            (*child).release = None;
            (*array).release.unwrap()(array);
            drop(Box::from_raw(array));
            assert_eq!(t.owner().holders(), 2); // the moved child's share
            assert_eq!(*moved.buffers.add(1), t.data_ptr().cast_const().cast());
            moved.release.unwrap()(&mut moved);
            assert!(moved.release.is_none());
        }
        assert_eq!(t.owner().holders(), 1);
    }

    #[test]
    fn schema_reads_back_and_releases() {
        let t = Tensor::from(ndarray::Array3::<i64>::zeros((2, 3, 4)));
        let schema = Box::into_raw(new_schema(&plan(&t, None).unwrap().schema));
        // SAFETY: a schema just built, read, released once and freed.
        unsafe {
            let levels = read_request(schema).unwrap().unwrap();
            let formats: Vec<_> = levels.iter().map(|l| l.format.as_str()).collect();
            assert_eq!(formats, ["+w:3", "+w:4", "l"]);
            // A request equal to the export is honoured, as the export.
            let honoured = plan(&t, Some(Some(&levels))).unwrap();
            assert_eq!(honoured.shape, [2, 3, 4]);
            (*schema).release.unwrap()(schema);
            assert!((*schema).release.is_none());
            drop(Box::from_raw(schema));
        }
    }

    fn request(
        format: &str,
        metadata: Metadata,
        child: Option<RequestedLevel>,
    ) -> Vec<RequestedLevel> {
        let mut levels = vec![RequestedLevel {
            format: format.to_owned(),
            name: CString::default(),
            metadata,
            flags: 0,
            dictionary: false,
        }];
        levels.extend(child);
        levels
    }

    fn leaf(format: &str) -> RequestedLevel {
        request(format, Vec::new(), None).pop().unwrap()
    }

    fn fixed_shape_tensor(json: &str) -> Metadata {
        vec![
            (
                metadata::EXTENSION_NAME.to_vec(),
                metadata::FIXED_SHAPE_TENSOR.to_vec(),
            ),
            (
                metadata::EXTENSION_METADATA.to_vec(),
                json.as_bytes().to_vec(),
            ),
        ]
    }

    #[test]
    fn fixed_shape_tensor_requests() {
        let t = Tensor::from(ndarray::Array3::<f32>::zeros((2, 3, 4)));
        let asked = request(
            "+w:12",
            fixed_shape_tensor(r#"{"shape":[3,4]}"#),
            Some(leaf("f")),
        );
        let plan = plan(&t, Some(Some(&asked))).unwrap();
        assert_eq!(plan.shape, [2, 12]);
        assert!(plan.schema[0].metadata.is_some() && plan.schema[1].metadata.is_none());
        for (json, cause) in [
            (r#"{"shape":[4,3]}"#, Cause::Layout),
            (r#"{"shape":[3,4],"permutation":[1,0]}"#, Cause::Layout),
            (r#"{"shape":3}"#, Cause::Layout),
        ] {
            let asked = request("+w:12", fixed_shape_tensor(json), Some(leaf("f")));
            let err = super::plan(&t, Some(Some(&asked))).err().unwrap();
            assert_eq!(err.cause(), cause, "{json}");
        }
    }

    #[test]
    fn other_requests_are_refused() {
        let t = Tensor::from(vec![1i8, 0]);
        let bool8 = vec![(metadata::EXTENSION_NAME.to_vec(), b"arrow.bool8".to_vec())];
        let mut dictionary = request("c", Vec::new(), None);
        dictionary[0].dictionary = true;
        for asked in [
            request("c", bool8, None),
            dictionary,
            request("C", Vec::new(), None),
        ] {
            let err = plan(&t, Some(Some(&asked))).err().unwrap();
            assert_eq!(err.kind(), crate::ErrorKind::Buffer);
        }
        assert!(plan(&t, Some(None)).is_err());
        // Names, flags and metadata other than an extension's are copied.
        let mut named = request("c", vec![(b"k".to_vec(), b"v".to_vec())], None);
        named[0].name = c"x".to_owned();
        let honoured = plan(&t, Some(Some(&named))).unwrap();
        assert_eq!(honoured.schema[0].name.as_c_str(), c"x");
        assert!(honoured.schema[0].metadata.is_some());
    }
}
