//! The registry shared by every binary in the process: a versioned C ABI in
//! a capsule at `sys._dlbridge_borrow_registry`.
//!
//! Its C declaration is in the parent module's docs (`dlbridge::borrow`).
//!
//! Every call is made with the GIL held (an attached thread); the state also
//! sits behind a lock (`crate::borrow::lock`), so a free-threaded build keeps it consistent (there,
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

use std::ffi::CStr;
use std::ptr::NonNull;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyCapsule;

pub(crate) use crate::borrow::abi::BorrowApi;
use crate::borrow::abi::VERSION;
use crate::error::{Cause, Error};

/// The `sys` attribute that holds the capsule.
pub(crate) const ATTRIBUTE: &str = "_dlbridge_borrow_registry";
/// The capsule's name.
pub(crate) const CAPSULE_NAME: &CStr = c"dlbridge.borrow_registry";
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
    let api = BorrowApi::leak();
    // SAFETY: `api` is a valid, leaked (never freed) `BorrowApi`, so the
    // capsule needs no destructor.
    unsafe { PyCapsule::new_with_pointer(py, api.cast(), CAPSULE_NAME) }
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
            let key = crate::borrow::key::BorrowKey::new(0x4000, &[4], &[8], 8);
            api.acquire(&key, true).unwrap();
            let conflict = api.acquire(&key, false).unwrap_err();
            assert_eq!((conflict.key, conflict.exclusive), (key, 1));
            assert!(api.release(&key, true));
            assert!(!api.release(&key, true));
        });
    }
}
