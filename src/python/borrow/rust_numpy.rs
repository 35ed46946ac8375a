//! Joining rust-numpy's borrow registry, so that a dlbridge extension and a
//! rust-numpy extension cannot alias a NumPy array mutably either.
//!
//! rust-numpy (0.16 and later) keeps its registry behind a capsule at
//! `numpy._core.multiarray._RUST_NUMPY_BORROW_CHECKING_API` (`numpy.core`
//! before NumPy 2): a `#[repr(C)]` struct `{ u64 version; void *flags;
//! acquire, acquire_mut, release, release_mut }`, each function taking
//! `(flags, PyArrayObject *)`, version 1, later versions only appending
//! fields. Its keys are the base object at the end of the array's `base`
//! chain and the array's byte range, data pointer and stride gcd.
//!
//! When a dlbridge borrow meets NumPy loaded, one of two things holds, and
//! is decided once per binary:
//!
//! - **The capsule is there** (a rust-numpy extension borrowed first): a
//!   dlbridge borrow of an object that is a `numpy.ndarray` is taken in
//!   rust-numpy's registry too (released in the same order), so each side
//!   sees the other's borrows of that array. A version below 1 is no ABI
//!   dlbridge knows: dlbridge then keeps to its own registry (the joint
//!   guarantee is lost; nothing else changes).
//! - **It is not there**: dlbridge publishes one whose functions forward to
//!   dlbridge's registry, keying each array by its memory (the same
//!   [`BorrowKey`] as every other producer), with rust-numpy's semantics
//!   (`acquire_mut` of a non-writable array returns -2). Every rust-numpy
//!   extension loaded later uses it, so rust-numpy borrows and dlbridge
//!   borrows of any producer live in one registry. Its `flags` is the
//!   address of dlbridge's shared `BorrowApi`, which is how every dlbridge
//!   binary recognises it and skips the second registration.
//!
//! What it cannot do: with rust-numpy's own registry in place, a dlbridge
//! borrow of NumPy memory reached through another object (a torch tensor
//! from `torch.from_numpy`, a `memoryview`) is not seen by rust-numpy, whose
//! keys are NumPy base objects; and NumPy first imported *during* a held
//! dlbridge borrow finds no capsule, so a rust-numpy extension would create
//! its own without that borrow.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyCapsule, PyDict};

use super::capsule::{self, BorrowApi};
use crate::borrow::key::BorrowKey;

const ATTRIBUTE: &str = "_RUST_NUMPY_BORROW_CHECKING_API";
const CAPSULE_NAME: &CStr = c"_RUST_NUMPY_BORROW_CHECKING_API";

type Acquire = unsafe extern "C" fn(*mut c_void, *mut ffi::PyObject) -> c_int;
type Release = unsafe extern "C" fn(*mut c_void, *mut ffi::PyObject);

/// rust-numpy's `Shared` (src/borrow/shared.rs), version 1.
#[repr(C)]
pub(crate) struct RustNumpyApi {
    version: u64,
    flags: *mut c_void,
    acquire: Acquire,
    acquire_mut: Acquire,
    release: Release,
    release_mut: Release,
}

/// How this binary's borrows of NumPy arrays meet rust-numpy's.
pub(crate) enum Joined {
    /// rust-numpy's own registry: take NumPy arrays there too.
    Theirs {
        api: &'static RustNumpyApi,
        ndarray: Py<PyAny>,
    },
    /// One registry for both (dlbridge's, published as rust-numpy's), or an
    /// unknown rust-numpy version: nothing more to do.
    Nothing,
}

// SAFETY: the API struct is immutable and lives forever (its capsule is
// leaked); its functions are called with the GIL held only.
unsafe impl Sync for Joined {}
// SAFETY: as above.
unsafe impl Send for Joined {}

/// `None` until NumPy is loaded (no rust-numpy borrow can exist before).
pub(crate) fn joined(py: Python<'_>) -> Option<&'static Joined> {
    static JOINED: PyOnceLock<Joined> = PyOnceLock::new();
    if let Some(joined) = JOINED.get(py) {
        return Some(joined);
    }
    let numpy = numpy_module(py)?;
    // A failure to read NumPy's module leaves dlbridge's registry alone in
    // charge, as an unknown version does.
    let joined = join(py, &numpy).unwrap_or(Joined::Nothing);
    Some(JOINED.get_or_init(py, || joined))
}

/// `numpy` from the interpreter's module table (`sys.modules`), never
/// imported here. Until NumPy loads, every tracked borrow asks, so the
/// question is one dictionary lookup of an interned key: no `sys` import,
/// no attribute read, and no `KeyError` made and dropped for the answer no.
fn numpy_module(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    // SAFETY: attached; a borrowed reference to the interpreter's module
    // dict (NULL only before the interpreter is initialised).
    let modules = unsafe { Bound::from_borrowed_ptr_or_opt(py, ffi::PyImport_GetModuleDict()) }?;
    let modules = modules.cast_into::<PyDict>().ok()?;
    modules.get_item(intern!(py, "numpy")).ok().flatten()
}

/// Whether NumPy 2 (whose descriptor layout and core module name differ).
static NUMPY2: AtomicBool = AtomicBool::new(true);

#[cold]
fn join(py: Python<'_>, numpy: &Bound<'_, PyAny>) -> PyResult<Joined> {
    let version: String = numpy.getattr("__version__")?.extract()?;
    let numpy2 = !version.starts_with("1.");
    NUMPY2.store(numpy2, Ordering::Relaxed);
    let core = py.import(if numpy2 {
        "numpy._core.multiarray"
    } else {
        "numpy.core.multiarray"
    })?;
    let ours = capsule::api(py)?;
    let published = match core.getattr(ATTRIBUTE) {
        Ok(published) => published.cast_into::<PyCapsule>()?,
        Err(_) => {
            let api = Box::into_raw(Box::new(RustNumpyApi {
                version: 1,
                flags: std::ptr::from_ref(ours).cast_mut().cast(),
                acquire: forward_acquire,
                acquire_mut: forward_acquire_mut,
                release: forward_release,
                release_mut: forward_release_mut,
            }));
            // SAFETY: `api` is valid and leaked (never freed): no destructor.
            let capsule = unsafe {
                PyCapsule::new_with_pointer(py, NonNull::new_unchecked(api.cast()), CAPSULE_NAME)
            }?;
            core.setattr(ATTRIBUTE, &capsule)?;
            capsule
        }
    };
    let pointer = published
        .pointer_checked(Some(CAPSULE_NAME))?
        .cast::<RustNumpyApi>();
    // Kept for the life of the process, as rust-numpy keeps it.
    std::mem::forget(published);
    // SAFETY: every version starts with its `u64` version.
    let version = unsafe { pointer.cast::<u64>().read() };
    if version < 1 {
        return Ok(Joined::Nothing);
    }
    // SAFETY: version ≥ 1: the version-1 fields are there, never freed.
    let api = unsafe { pointer.as_ref() };
    if api.flags == std::ptr::from_ref(ours).cast_mut().cast() {
        return Ok(Joined::Nothing);
    }
    Ok(Joined::Theirs {
        api,
        ndarray: numpy.getattr("ndarray")?.unbind(),
    })
}

/// A borrow taken in rust-numpy's registry, released on drop.
pub(crate) struct NumpyBorrow<'py> {
    api: &'static RustNumpyApi,
    /// Keeps the thread attached for `'py` (the release needs it).
    _py: Python<'py>,
    array: Py<PyAny>,
    exclusive: bool,
}

/// Why rust-numpy refused.
pub(crate) enum Refusal {
    Borrowed,
    NotWritable,
}

impl NumpyBorrow<'_> {
    /// Takes `object` in rust-numpy's registry when it has its own and
    /// `object` is a NumPy array; `Ok(None)` when there is nothing to take.
    pub(crate) fn acquire<'py>(
        object: &Bound<'py, PyAny>,
        exclusive: bool,
    ) -> Result<Option<NumpyBorrow<'py>>, Refusal> {
        let Some(Joined::Theirs { api, ndarray }) = joined(object.py()) else {
            return Ok(None);
        };
        if !object
            .is_instance(ndarray.bind(object.py()))
            .unwrap_or(false)
        {
            return Ok(None);
        }
        let acquire = if exclusive {
            api.acquire_mut
        } else {
            api.acquire
        };
        // SAFETY: rust-numpy's contract: attached, `object` is an ndarray.
        match unsafe { acquire(api.flags, object.as_ptr()) } {
            0 => Ok(Some(NumpyBorrow {
                api,
                _py: object.py(),
                array: object.clone().unbind(),
                exclusive,
            })),
            -2 => Err(Refusal::NotWritable),
            _ => Err(Refusal::Borrowed),
        }
    }
}

impl Drop for NumpyBorrow<'_> {
    fn drop(&mut self) {
        let release = if self.exclusive {
            self.api.release_mut
        } else {
            self.api.release
        };
        // SAFETY: as in `acquire`; this array was acquired with this kind.
        unsafe { release(self.api.flags, self.array.as_ptr()) };
    }
}

// --- dlbridge's registry published as rust-numpy's ---------------------------

/// `PyArrayObject_fields` up to `flags` (NumPy's public ABI, 1.x and 2.x).
#[repr(C)]
struct ArrayFields {
    ob_base: ffi::PyObject,
    data: *mut c_char,
    nd: c_int,
    dimensions: *const usize,
    strides: *const isize,
    base: *mut ffi::PyObject,
    descr: *const u8,
    flags: c_int,
}

const NPY_ARRAY_WRITEABLE: c_int = 0x0400;

/// The key of an ndarray's memory.
///
/// # Safety
///
/// `array` is a live ndarray and the thread is attached.
unsafe fn array_key(array: *mut ffi::PyObject) -> BorrowKey {
    // SAFETY: the caller's promise: an ndarray starts with these fields.
    let fields = unsafe { &*array.cast::<ArrayFields>() };
    // After the object head: `typeobj`, four `char`s and `int type_num`
    // (16 bytes on 64-bit), then `elsize`: an `int` in NumPy 1.x, an
    // `npy_intp` after a new 64-bit `flags` in NumPy 2.
    let head = size_of::<ffi::PyObject>() + size_of::<*const c_void>() + 4 + size_of::<c_int>();
    // SAFETY: a live descriptor of the running NumPy's layout.
    let itemsize = unsafe {
        if NUMPY2.load(Ordering::Relaxed) {
            fields.descr.add(head + 8).cast::<isize>().read_unaligned() as usize
        } else {
            fields.descr.add(head).cast::<c_int>().read_unaligned() as usize
        }
    };
    let nd = usize::try_from(fields.nd).unwrap_or(0);
    let (shape, strides) = if nd == 0 {
        (&[][..], &[][..])
    } else {
        // SAFETY: `nd` extents and strides, alive with the array.
        unsafe {
            (
                std::slice::from_raw_parts(fields.dimensions, nd),
                std::slice::from_raw_parts(fields.strides, nd),
            )
        }
    };
    BorrowKey::new(fields.data.addr(), shape, strides, itemsize)
}

unsafe fn forward(flags: *mut c_void, array: *mut ffi::PyObject, exclusive: bool) -> c_int {
    // SAFETY: `flags` is the shared `BorrowApi` (set by `join`), and rust-numpy
    // calls with a live ndarray, attached.
    unsafe {
        let api = &*flags.cast::<BorrowApi>();
        let key = array_key(array);
        if api.acquire(&key, exclusive).is_ok() {
            0
        } else {
            -1
        }
    }
}

unsafe extern "C" fn forward_acquire(flags: *mut c_void, array: *mut ffi::PyObject) -> c_int {
    // SAFETY: rust-numpy's contract, passed on.
    unsafe { forward(flags, array, false) }
}

unsafe extern "C" fn forward_acquire_mut(flags: *mut c_void, array: *mut ffi::PyObject) -> c_int {
    // SAFETY: rust-numpy passes a live ndarray.
    if unsafe { (*array.cast::<ArrayFields>()).flags } & NPY_ARRAY_WRITEABLE == 0 {
        return -2;
    }
    // SAFETY: rust-numpy's contract, passed on.
    unsafe { forward(flags, array, true) }
}

unsafe fn forward_release_kind(flags: *mut c_void, array: *mut ffi::PyObject, exclusive: bool) {
    // SAFETY: as in `forward`.
    unsafe {
        let api = &*flags.cast::<BorrowApi>();
        let key = array_key(array);
        // An array whose shape was changed in place while borrowed gives
        // another key, which is not held: that borrow then stays recorded
        // (a refusal later, never an alias).
        api.release(&key, exclusive);
    }
}

unsafe extern "C" fn forward_release(flags: *mut c_void, array: *mut ffi::PyObject) {
    // SAFETY: rust-numpy's contract, passed on.
    unsafe { forward_release_kind(flags, array, false) }
}

unsafe extern "C" fn forward_release_mut(flags: *mut c_void, array: *mut ffi::PyObject) {
    // SAFETY: rust-numpy's contract, passed on.
    unsafe { forward_release_kind(flags, array, true) }
}
