//! Array interface spoke (NumPy's protocol, version 3): `__array_struct__`
//! capsules and `__array_interface__` dicts, both ways.
//!
//! # Import
//!
//! - `__array_struct__` is a capsule with a NULL name holding a
//!   `PyArrayInterface`. Its destructor may free the data (NumPy's
//!   `test_cstruct`), so **the capsule** is the owner: a reference to it is
//!   wrapped in its owner before anything is validated, and released once,
//!   when the last view is gone, however long after the source object died.
//! - `__array_interface__` is a dict. Its `data` is `(pointer, readonly)`
//!   memory that **the object** keeps alive (so the object is the owner), or
//!   a buffer exporter (absent or `None`: the object itself) whose acquired
//!   `Py_buffer` is the owner and whose `len` bounds the layout.
//!
//! Both refuse what the hub cannot carry: byte-swapped data, structured
//! records, masks, non-numeric kinds (see [`typestr`](super::typestr)).
//! NumPy shows `ml_dtypes` elements (bfloat16, float8) as opaque `V2`/`V1`;
//! for those the object's `dtype.name` says what they are.
//!
//! # Export
//!
//! `Tensor.__array_interface__` is built once per Python `Tensor` (it is
//! immutable) and handed out as a shallow copy, so a consumer that edits its
//! dict cannot change the next one. `Tensor.__array_struct__` is a fresh
//! capsule per call whose block holds the `PyArrayInterface` and a clone of
//! the tensor: the interface's shape and strides point into that clone's
//! layout, and the clone keeps the memory alive until the capsule dies.

use std::ffi::{CStr, c_char, c_int, c_void};

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::layout::{Layout, MAX_NDIM};
use crate::owner::Owner;
use crate::protocol::buffer;
use crate::protocol::typestr::{self, Parsed};
use crate::python::lookup::protocol_attribute;
use crate::python::names::{shown, type_name};
use crate::python::owner::{PyBufferView, PyOwner};
use crate::tensor::{Source, Tensor, check_data};

/// NumPy's `PyArrayInterface` (`ndarraytypes.h`), 56 bytes on LP64.
#[repr(C)]
struct PyArrayInterface {
    /// Always 2: a sanity check that this is the struct.
    two: c_int,
    nd: c_int,
    typekind: c_char,
    itemsize: c_int,
    flags: c_int,
    shape: *mut isize,
    strides: *mut isize,
    data: *mut c_void,
    /// A descr list, valid only with `ARR_HAS_DESCR`.
    descr: *mut ffi::PyObject,
}

const C_CONTIGUOUS: c_int = 0x1;
const F_CONTIGUOUS: c_int = 0x2;
const ALIGNED: c_int = 0x100;
const NOTSWAPPED: c_int = 0x200;
const WRITEABLE: c_int = 0x400;
const ARR_HAS_DESCR: c_int = 0x800;

// ---------------------------------------------------------------- import --

/// `from_array_interface`: `__array_struct__` first, then `__array_interface__`.
pub(crate) fn import(object: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    try_import(object)?.ok_or_else(|| {
        PyTypeError::new_err(format!(
            "{} has neither __array_struct__ nor __array_interface__",
            type_name(object)
        ))
    })
}

/// Imports through `__array_struct__`, then `__array_interface__`; `Ok(None)`
/// when the object offers neither. Each attribute is evaluated at most once
/// (see `python::lookup`), and an error raised while evaluating one
/// (`AttributeError` included) is the producer's, returned as is.
///
/// A struct that cannot be carried (`BufferError`) gives the dict a chance:
/// the two describe the same memory, and the dict may say more (a `descr`).
pub(crate) fn try_import(object: &Bound<'_, PyAny>) -> PyResult<Option<Tensor>> {
    let py = object.py();
    let mut refusal = None;
    if let Some(capsule) = protocol_attribute(object, intern!(py, "__array_struct__"))? {
        match import_struct(object, &capsule) {
            Ok(tensor) => return Ok(Some(tensor)),
            Err(err) if err.is_instance_of::<pyo3::exceptions::PyBufferError>(py) => {
                refusal = Some(err)
            }
            Err(err) => return Err(err),
        }
    }
    if let Some(interface) = protocol_attribute(object, intern!(py, "__array_interface__"))? {
        return import_dict(object, &interface).map(Some);
    }
    refusal.map_or(Ok(None), Err)
}

/// Imports an `__array_struct__` capsule; the capsule becomes the owner.
pub(crate) fn import_struct(
    object: &Bound<'_, PyAny>,
    capsule: &Bound<'_, PyAny>,
) -> PyResult<Tensor> {
    let ptr = capsule.as_ptr();
    // SAFETY: `capsule` is a live reference and the thread is attached.
    if unsafe { ffi::PyCapsule_CheckExact(ptr) } == 0 {
        return Err(PyTypeError::new_err(format!(
            "__array_struct__ of {} is a {}, not a capsule",
            type_name(object),
            type_name(capsule)
        )));
    }
    // Own the capsule before reading anything out of it: every refusal below
    // drops this reference, and the capsule's destructor runs when it should.
    let owner = PyOwner::new(capsule.clone().unbind());
    // SAFETY: a capsule; GetName returns its (possibly NULL) name and cannot fail.
    let name = unsafe { ffi::PyCapsule_GetName(ptr) };
    if !name.is_null() {
        // SAFETY: capsule names are NUL-terminated strings that outlive the capsule.
        let name = unsafe { CStr::from_ptr(name) };
        return Err(Error::value(format!(
            "__array_struct__ capsule is named {name:?}; a PyArrayInterface capsule has no name"
        ))
        .into());
    }
    // SAFETY: the name was checked to be NULL, the name this pointer is under.
    let raw = unsafe { ffi::PyCapsule_GetPointer(ptr, std::ptr::null()) };
    if raw.is_null() {
        return Err(PyErr::take(capsule.py())
            .unwrap_or_else(|| Error::value("__array_struct__ capsule holds NULL").into()));
    }
    // SAFETY: an unnamed `__array_struct__` capsule holds a PyArrayInterface
    // (the protocol's contract) that lives as long as the capsule, which
    // `owner` keeps alive; it is only read.
    let interface = unsafe { &*raw.cast::<PyArrayInterface>() };
    let parts = describe_struct(object, interface)?;
    // SAFETY: the producer keeps `data` valid over the described layout for
    // as long as the capsule lives, and the owner holds the capsule.
    Ok(unsafe {
        Tensor::from_parts(
            parts.data,
            parts.layout,
            parts.dtype,
            Device::CPU,
            parts.readonly,
            Source::ArrayStruct,
            Owner::Python(owner),
        )
    })
}

/// What an array-interface source describes, before its owner moves in.
struct Described {
    data: *mut u8,
    layout: Layout,
    dtype: DType,
    readonly: bool,
}

fn describe_struct(object: &Bound<'_, PyAny>, interface: &PyArrayInterface) -> Result<Described> {
    if interface.two != 2 {
        return Err(Error::value(format!(
            "__array_struct__ is not a PyArrayInterface (its first field is {}, not 2)",
            interface.two
        )));
    }
    let ndim = usize::try_from(interface.nd)
        .ok()
        .filter(|&n| n <= MAX_NDIM)
        .ok_or_else(|| {
            Error::value(format!(
                "__array_struct__ has nd {}, outside [0, {MAX_NDIM}]",
                interface.nd
            ))
        })?;
    let flags = interface.flags;
    if flags & NOTSWAPPED == 0 {
        return Err(Error::buffer(format!(
            "__array_struct__ data is not in native byte order (flags {flags:#x} lack NOTSWAPPED)"
        )));
    }
    if flags & ARR_HAS_DESCR != 0 && !interface.descr.is_null() {
        // SAFETY: with ARR_HAS_DESCR the descr field is a live object owned
        // by the struct; it is borrowed for this check only.
        let descr = unsafe { Bound::from_borrowed_ptr(object.py(), interface.descr) };
        refuse_records(&descr)?;
    }
    let itemsize = usize::try_from(interface.itemsize)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            Error::value(format!(
                "__array_struct__ has itemsize {}",
                interface.itemsize
            ))
        })?;
    let parsed = typestr::from_typekind(interface.typekind as u8, itemsize)?;
    let dtype = resolve(object, parsed)?;
    let shape = read_dims(interface.shape, ndim, "shape")?;
    let strides = if interface.strides.is_null() {
        None
    } else {
        Some(read_dims(interface.strides, ndim, "strides")?)
    };
    let layout = Layout::from_signed(&shape, strides.as_deref(), itemsize)?;
    let data = interface.data.cast::<u8>();
    check_data("__array_struct__", data, data, &layout, true)?;
    Ok(Described {
        data,
        layout,
        dtype,
        readonly: flags & WRITEABLE == 0,
    })
}

fn read_dims(values: *const isize, ndim: usize, what: &str) -> Result<Vec<i64>> {
    if ndim == 0 {
        return Ok(Vec::new());
    }
    if values.is_null() {
        return Err(Error::value(format!(
            "__array_struct__ has nd {ndim} but a NULL {what}"
        )));
    }
    // SAFETY: a non-NULL shape/strides array of a PyArrayInterface has `nd`
    // entries, alive as long as the capsule.
    let values = unsafe { std::slice::from_raw_parts(values, ndim) };
    Ok(values.iter().map(|&v| v as i64).collect())
}

/// A typestr's dtype; opaque `V<n>` bytes become the object's own dtype when
/// it names one of that size (`ml_dtypes`' bfloat16 and float8 kinds), and
/// opaque bytes ([`DType::opaque`]) otherwise, which `Tensor.view` can name.
fn resolve(object: &Bound<'_, PyAny>, parsed: Parsed) -> Result<DType> {
    let itemsize = match parsed {
        Parsed::DType(dtype) => return Ok(dtype),
        Parsed::Void(itemsize) => itemsize,
    };
    let py = object.py();
    let named = object
        .getattr_opt(intern!(py, "dtype"))
        .ok()
        .flatten()
        .and_then(|dtype| dtype.getattr_opt(intern!(py, "name")).ok().flatten())
        .and_then(|name| name.extract::<String>().ok())
        .and_then(|name| DType::from_name(&name).ok())
        .filter(|dtype| dtype.itemsize() == itemsize);
    named.map_or_else(|| DType::opaque(itemsize), Ok)
}

/// Refuses a `descr` that describes structured records (anything but the
/// default `[('', typestr)]`).
fn refuse_records(descr: &Bound<'_, PyAny>) -> Result<()> {
    let Ok(list) = descr.cast::<PyList>() else {
        // NumPy puts a dtype object here; a plain dtype has no fields.
        let fields = descr
            .getattr_opt("fields")
            .ok()
            .flatten()
            .is_some_and(|f| !f.is_none());
        return if fields { Err(records(descr)) } else { Ok(()) };
    };
    let default = list.len() == 1
        && list.get_item(0).ok().is_some_and(|field| {
            field
                .get_item(0)
                .ok()
                .and_then(|name| name.extract::<String>().ok())
                .is_some_and(|name| name.is_empty())
        });
    if default { Ok(()) } else { Err(records(descr)) }
}

fn records(descr: &Bound<'_, PyAny>) -> Error {
    Error::buffer(format!(
        "structured records (descr {}) have no DLPack dtype",
        shown(descr)
    ))
}

/// Imports an `__array_interface__` dict.
pub(crate) fn import_dict(
    object: &Bound<'_, PyAny>,
    interface: &Bound<'_, PyAny>,
) -> PyResult<Tensor> {
    let py = object.py();
    let dict = interface.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!(
            "__array_interface__ of {} is a {}, not a dict",
            type_name(object),
            type_name(interface)
        ))
    })?;
    let version = dict.get_item(intern!(py, "version"))?;
    match version.as_ref().map(|v| v.extract::<i64>()) {
        Some(Ok(3)) => {}
        _ => {
            return Err(Error::value(format!(
                "__array_interface__ version {} is not supported (dlbridge reads version 3)",
                version.map_or_else(|| "missing".to_owned(), |v| shown(&v))
            ))
            .into());
        }
    }
    let typestr = required(dict, "typestr")?;
    let typestr: String = if let Ok(text) = typestr.cast::<PyString>() {
        text.to_str()?.to_owned()
    } else if let Ok(bytes) = typestr.cast::<PyBytes>() {
        String::from_utf8_lossy(bytes.as_bytes()).into_owned()
    } else {
        return Err(PyTypeError::new_err(format!(
            "__array_interface__ typestr must be a str, got {}",
            type_name(&typestr)
        )));
    };
    if let Some(mask) = dict.get_item(intern!(py, "mask"))?
        && !mask.is_none()
    {
        return Err(Error::buffer(
            "__array_interface__ has a mask; masked arrays cannot be carried without losing it",
        )
        .into());
    }
    if let Some(descr) = dict.get_item(intern!(py, "descr"))? {
        refuse_records(&descr)?;
    }
    let dtype = resolve(object, typestr::parse_typestr(&typestr)?)?;
    let shape = int_tuple(&required(dict, "shape")?, "shape")?;
    let strides = match dict.get_item(intern!(py, "strides"))? {
        Some(strides) if !strides.is_none() => Some(int_tuple(&strides, "strides")?),
        _ => None,
    };
    let layout = Layout::from_signed(&shape, strides.as_deref(), dtype.itemsize())?;
    let offset = match dict.get_item(intern!(py, "offset"))? {
        Some(offset) if !offset.is_none() => {
            let offset: i64 = offset.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "__array_interface__ offset must be an int, got {offset}"
                ))
            })?;
            usize::try_from(offset).map_err(|_| {
                Error::value(format!(
                    "__array_interface__ offset must be non-negative, got {offset}"
                ))
            })?
        }
        _ => 0,
    };
    let data = dict.get_item(intern!(py, "data"))?;
    match data {
        Some(data) if data.cast::<PyTuple>().is_ok() => {
            if offset != 0 {
                return Err(Error::value(format!(
                    "__array_interface__ offset {offset} with a (pointer, readonly) data tuple: \
                     the offset belongs to buffer data (NumPy ignores it here; dlbridge will not guess)"
                ))
                .into());
            }
            let (address, readonly) = pointer_data(&data)?;
            let data = std::ptr::with_exposed_provenance_mut::<u8>(address);
            check_data("__array_interface__", data, data, &layout, true)?;
            let owner = PyOwner::new(object.clone().unbind());
            // SAFETY: the interface's contract: the object keeps the memory at
            // `address` valid over the layout while it lives, and the owner
            // holds the object.
            Ok(unsafe {
                Tensor::from_parts(
                    data,
                    layout,
                    dtype,
                    Device::CPU,
                    readonly,
                    Source::ArrayInterface,
                    Owner::Python(owner),
                )
            })
        }
        Some(data) if !data.is_none() => buffer_data(&data, layout, dtype, offset),
        _ => buffer_data(object, layout, dtype, offset),
    }
}

fn required<'py>(dict: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    dict.get_item(key)?.ok_or_else(|| {
        Error::value(format!(
            "__array_interface__ has no {key:?} key (it is required)"
        ))
        .into()
    })
}

fn int_tuple(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<i64>> {
    let tuple = value.cast::<PyTuple>().map_err(|_| {
        PyTypeError::new_err(format!(
            "__array_interface__ {what} must be a tuple of ints, got {value}"
        ))
    })?;
    if tuple.len() > MAX_NDIM {
        return Err(Error::value(format!(
            "__array_interface__ {what} has {} entries, more than the maximum of {MAX_NDIM}",
            tuple.len()
        ))
        .into());
    }
    tuple
        .iter()
        .map(|item| {
            item.extract::<i64>().map_err(|_| {
                Error::value(format!(
                    "__array_interface__ {what} {value} has an entry that is not an int in range"
                ))
                .into()
            })
        })
        .collect()
}

/// `data = (pointer, readonly)`.
fn pointer_data(data: &Bound<'_, PyAny>) -> PyResult<(usize, bool)> {
    let tuple = data.cast::<PyTuple>()?;
    if tuple.len() != 2 {
        return Err(PyTypeError::new_err(format!(
            "__array_interface__ data must be a (pointer, readonly) 2-tuple, got {data}"
        )));
    }
    let address = tuple.get_item(0)?;
    let address: usize = address.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "__array_interface__ data pointer must be a non-negative int, got {address}"
        ))
    })?;
    let readonly = tuple.get_item(1)?.is_truthy()?;
    Ok((address, readonly))
}

/// Buffer data: the exporter's bytes, `offset` in, bounded by its `len`.
fn buffer_data(
    exporter: &Bound<'_, PyAny>,
    layout: Layout,
    dtype: DType,
    offset: usize,
) -> PyResult<Tensor> {
    // Writable if the exporter allows it, like NumPy; read-only otherwise.
    let view = match PyBufferView::acquire(exporter, ffi::PyBUF_WRITABLE) {
        Ok(view) => view,
        Err(_) => PyBufferView::acquire(exporter, ffi::PyBUF_SIMPLE).map_err(|err| {
            let refused = Error::buffer(format!(
                "__array_interface__ data ({}) gives no buffer: {err}",
                type_name(exporter)
            ));
            PyErr::from(refused)
        })?,
    };
    let (buf, len, readonly) = buffer::lent_bytes(view.raw())?;
    if offset > len {
        return Err(Error::value(format!(
            "__array_interface__ offset {offset} is beyond its buffer's {len} bytes"
        ))
        .into());
    }
    layout.check_within(offset, len)?;
    let data = buf.wrapping_add(offset);
    check_data("__array_interface__ buffer", buf, data, &layout, true)?;
    // SAFETY: the exporter keeps `buf` valid for `len` bytes until the view is
    // released (when the owner drops), and the layout was checked to lie
    // inside it, `offset` bytes in.
    Ok(unsafe {
        Tensor::from_parts(
            data,
            layout,
            dtype,
            Device::CPU,
            readonly,
            Source::ArrayInterface,
            Owner::PyBuffer(view),
        )
    })
}

// ---------------------------------------------------------------- export --

/// `Tensor.__array_interface__` as a fresh dict (NumPy's keys, version 3).
pub(crate) fn interface_dict<'py>(
    py: Python<'py>,
    tensor: &Tensor,
) -> PyResult<Bound<'py, PyDict>> {
    tensor.device().ensure_cpu("the array interface")?;
    let typestr = typestr::typestr_of(tensor.dtype());
    let dict = PyDict::new(py);
    dict.set_item(
        intern!(py, "data"),
        (tensor.data_ptr() as usize, tensor.readonly()),
    )?;
    let layout = tensor.layout();
    if layout.is_c_contiguous() {
        dict.set_item(intern!(py, "strides"), py.None())?;
    } else {
        dict.set_item(intern!(py, "strides"), PyTuple::new(py, layout.strides())?)?;
    }
    dict.set_item(
        intern!(py, "descr"),
        PyList::new(py, [("", typestr.as_str())])?,
    )?;
    dict.set_item(intern!(py, "typestr"), typestr)?;
    dict.set_item(intern!(py, "shape"), PyTuple::new(py, layout.shape())?)?;
    dict.set_item(intern!(py, "version"), 3)?;
    Ok(dict)
}

/// The alignment NumPy would require of the dtype's elements.
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

fn struct_flags(tensor: &Tensor) -> c_int {
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

/// One exported `__array_struct__`: the interface and the tensor clone that
/// owns what it points to. Boxed, so the layout arrays never move; `repr(C)`
/// with the interface first, so the block's address is the interface's.
#[repr(C)]
struct StructBlock {
    interface: PyArrayInterface,
    tensor: Tensor,
}

/// `Tensor.__array_struct__`: a fresh unnamed capsule per call.
pub(crate) fn struct_capsule<'py>(py: Python<'py>, tensor: &Tensor) -> PyResult<Bound<'py, PyAny>> {
    tensor.device().ensure_cpu("the array interface")?;
    let flags = struct_flags(tensor);
    let mut block = Box::new(StructBlock {
        interface: PyArrayInterface {
            two: 2,
            nd: tensor.ndim() as c_int,
            typekind: typestr::typekind_of(tensor.dtype()) as c_char,
            itemsize: tensor.itemsize() as c_int,
            flags,
            shape: std::ptr::null_mut(),
            strides: std::ptr::null_mut(),
            data: tensor.data_ptr().cast(),
            descr: std::ptr::null_mut(),
        },
        tensor: tensor.clone(),
    });
    if block.tensor.ndim() > 0 {
        // usize and isize share a layout, and every extent fits in isize
        // (validated); the arrays live inside the boxed tensor clone.
        block.interface.shape = block.tensor.shape().as_ptr().cast::<isize>().cast_mut();
        block.interface.strides = block.tensor.strides().as_ptr().cast_mut();
    }
    let raw = Box::into_raw(block);
    // SAFETY: a NULL name is what the protocol requires; the block is
    // `repr(C)` with the interface first, so its address is the interface's,
    // and the capsule owns the block: `free_struct_block` frees it once.
    let capsule =
        unsafe { ffi::PyCapsule_New(raw.cast(), std::ptr::null(), Some(free_struct_block)) };
    if capsule.is_null() {
        // SAFETY: the capsule was not created: the block is still ours alone.
        drop(unsafe { Box::from_raw(raw) });
        return Err(PyErr::fetch(py));
    }
    // SAFETY: PyCapsule_New returned a new reference.
    Ok(unsafe { Bound::from_owned_ptr(py, capsule) })
}

/// Destructor of an exported `__array_struct__` capsule: frees the block
/// (and with it the tensor clone's share of the owner). Nothing here can
/// unwind, and the dying capsule is never turned into a new reference.
unsafe extern "C" fn free_struct_block(capsule: *mut ffi::PyObject) {
    // SAFETY: CPython passes the capsule being destroyed. IsValid only reads
    // it and sets no error (an exception may be in flight while we run);
    // with the NULL name matched, GetPointer cannot fail.
    let block = unsafe {
        if ffi::PyCapsule_IsValid(capsule, std::ptr::null()) != 1 {
            return;
        }
        ffi::PyCapsule_GetPointer(capsule, std::ptr::null())
    };
    // SAFETY: the block came from Box::into_raw in `struct_capsule` and only
    // this destructor, run once per capsule, frees it. Dropping the tensor
    // clone may release a Python owner: the GIL is held here.
    drop(unsafe { Box::from_raw(block.cast::<StructBlock>()) });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_layout_matches_numpy() {
        assert_eq!(size_of::<PyArrayInterface>(), 56);
        assert_eq!(std::mem::offset_of!(PyArrayInterface, flags), 16);
        assert_eq!(std::mem::offset_of!(PyArrayInterface, shape), 24);
        assert_eq!(std::mem::offset_of!(PyArrayInterface, data), 40);
        assert_eq!(std::mem::offset_of!(PyArrayInterface, descr), 48);
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
