//! The registry shared by every binary in the process: a versioned C ABI in
//! a capsule at `sys._dlbridge_borrow_registry`.
//!
//! Its C declaration is in the parent module's docs (`dlbridge::borrow`).
//!
//! Every call is made with the GIL held (an attached thread); the state also
//! sits behind a mutex, so a free-threaded build keeps it consistent (there,
//! two binaries borrowing for the first time at the same instant could each
//! create one; with the GIL, the check and the set cannot interleave). The first
//! binary that needs the registry creates it and sets the attribute; every
//! later one (another extension, linking any dlbridge version, or code in
//! another language that speaks this ABI) finds it there and uses its
//! functions, whoever compiled them. An extension module is never unloaded,
//! so the functions stay valid; the state and the capsule are never freed
//! (each binary keeps a reference), so a cached pointer never dangles.
//!
//! Why `sys`: it exists before any extension loads and in every interpreter,
//! needs no import, and belongs to no package, so two extensions built on
//! different dlbridge versions (or with no `dlbridge` Python package
//! installed at all) meet at the same place. A version only appends fields,
//! so a binary that knows version N accepts any version ≥ N (rust-numpy's
//! rule); this one needs 1.

use std::ffi::{CStr, c_int, c_void};
use std::ptr::NonNull;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyCapsule;

use super::key::BorrowKey;
use super::registry::{Conflict, Registry};
use crate::error::{Cause, Error};

/// The `sys` attribute that holds the capsule.
pub(crate) const ATTRIBUTE: &str = "_dlbridge_borrow_registry";
/// The capsule's name.
pub(crate) const CAPSULE_NAME: &CStr = c"dlbridge.borrow_registry";
/// The ABI version this binary publishes and needs.
pub(crate) const VERSION: u64 = 1;

/// The capsule's pointer (see the module docs for the C declaration).
#[repr(C)]
pub(crate) struct BorrowApi {
    pub(crate) version: u64,
    pub(crate) state: *mut c_void,
    pub(crate) acquire:
        unsafe extern "C" fn(*mut c_void, *const BorrowKey, c_int, *mut Conflict) -> c_int,
    pub(crate) release: unsafe extern "C" fn(*mut c_void, *const BorrowKey, c_int) -> c_int,
    /// Read by other binaries and by tests (`held` in the C declaration).
    #[allow(dead_code)]
    pub(crate) held: unsafe extern "C" fn(*mut c_void) -> usize,
}

/// Locks the state, whatever a panicking holder left (the registry's
/// methods leave it consistent at every step).
fn lock(state: *mut c_void) -> std::sync::MutexGuard<'static, Registry> {
    // SAFETY: `state` is the `Mutex<Registry>` leaked by `create`, never freed.
    let mutex = unsafe { &*state.cast::<Mutex<Registry>>() };
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

unsafe extern "C" fn acquire(
    state: *mut c_void,
    key: *const BorrowKey,
    exclusive: c_int,
    out: *mut Conflict,
) -> c_int {
    // No panic may cross this boundary: one becomes a refusal.
    std::panic::catch_unwind(|| {
        // SAFETY: the ABI: `key` points to a valid key for the call.
        let key = unsafe { *key };
        match lock(state).acquire(key, exclusive != 0) {
            Ok(()) => 0,
            Err(conflict) => {
                if !out.is_null() {
                    // SAFETY: the ABI: a non-NULL `out` is writable.
                    unsafe { out.write(conflict) };
                }
                -1
            }
        }
    })
    .unwrap_or(-1)
}

unsafe extern "C" fn release(state: *mut c_void, key: *const BorrowKey, exclusive: c_int) -> c_int {
    std::panic::catch_unwind(|| {
        // SAFETY: the ABI: `key` points to a valid key for the call.
        let key = unsafe { *key };
        if lock(state).release(key, exclusive != 0) {
            0
        } else {
            -1
        }
    })
    .unwrap_or(-1)
}

unsafe extern "C" fn held(state: *mut c_void) -> usize {
    std::panic::catch_unwind(|| lock(state).len()).unwrap_or(0)
}

struct ApiPtr(NonNull<BorrowApi>);
// SAFETY: the pointee is immutable after publication and lives forever; its
// functions lock the state themselves.
unsafe impl Send for ApiPtr {}
// SAFETY: as above.
unsafe impl Sync for ApiPtr {}

/// The process's registry, found or created once per binary.
pub(crate) fn api(py: Python<'_>) -> PyResult<&'static BorrowApi> {
    static API: PyOnceLock<ApiPtr> = PyOnceLock::new();
    let ptr = API.get_or_try_init(py, || find_or_create(py).map(ApiPtr))?;
    // SAFETY: a published `BorrowApi` of version ≥ 1 (checked), never freed.
    Ok(unsafe { ptr.0.as_ref() })
}

#[cold]
fn find_or_create(py: Python<'_>) -> PyResult<NonNull<BorrowApi>> {
    let sys = py.import("sys")?;
    let published = match sys.getattr(ATTRIBUTE) {
        Ok(published) => published,
        Err(_) => {
            let capsule = create(py)?;
            sys.setattr(ATTRIBUTE, &capsule)?;
            capsule.into_any()
        }
    };
    let unusable = || {
        Error::type_error(
            Cause::Capsule,
            format!(
                "sys.{ATTRIBUTE} is not a dlbridge borrow registry (a capsule named {})",
                CAPSULE_NAME.to_string_lossy()
            ),
        )
    };
    let capsule = published.cast_into::<PyCapsule>().map_err(|_| unusable())?;
    let pointer = capsule
        .pointer_checked(Some(CAPSULE_NAME))
        .map_err(|_| unusable())?
        .cast::<BorrowApi>();
    // SAFETY: every version of the ABI starts with its `u64` version.
    let version = unsafe { pointer.cast::<u64>().read() };
    if version < VERSION {
        return Err(Error::value(
            Cause::Version,
            format!("the borrow registry at sys.{ATTRIBUTE} has version {version}, older than the {VERSION} this dlbridge needs"),
        )
        .into());
    }
    // Never released: cached pointers into it stay valid for the process.
    std::mem::forget(capsule);
    Ok(pointer)
}

fn create(py: Python<'_>) -> PyResult<Bound<'_, PyCapsule>> {
    let state = Box::into_raw(Box::new(Mutex::new(Registry::default())));
    let api = Box::into_raw(Box::new(BorrowApi {
        version: VERSION,
        state: state.cast(),
        acquire,
        release,
        held,
    }));
    // SAFETY: `api` is a valid, leaked (never freed) `BorrowApi`, so the
    // capsule needs no destructor.
    unsafe { PyCapsule::new_with_pointer(py, NonNull::new_unchecked(api.cast()), CAPSULE_NAME) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_once_and_shared() {
        Python::initialize();
        Python::attach(|py| {
            let api = api(py).unwrap();
            assert!(api.version >= VERSION);
            let published = py.import("sys").unwrap().getattr(ATTRIBUTE).unwrap();
            let capsule = published.cast::<PyCapsule>().unwrap();
            assert_eq!(
                capsule
                    .pointer_checked(Some(CAPSULE_NAME))
                    .unwrap()
                    .as_ptr(),
                std::ptr::from_ref(api).cast_mut().cast()
            );
            // Through the C functions, as another binary would call them.
            let key = BorrowKey::new(0x4000 as *const c_void, &[4], &[8], 8);
            let mut conflict = Conflict::NONE;
            // SAFETY: the ABI's contract: valid state, key and out pointers.
            unsafe {
                assert_eq!((api.acquire)(api.state, &key, 1, &mut conflict), 0);
                assert_eq!((api.acquire)(api.state, &key, 0, &mut conflict), -1);
                assert_eq!((conflict.key, conflict.exclusive), (key, 1));
                assert_eq!((api.release)(api.state, &key, 1), 0);
                assert_eq!((api.release)(api.state, &key, 1), -1);
            }
        });
    }
}
