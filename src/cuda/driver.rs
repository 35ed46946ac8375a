//! The CUDA driver, opened at run time (`libloading`), the first time a
//! synchronisation or a pointer query needs it.
//!
//! Nothing here runs at import or at build time: a machine without a GPU
//! pays nothing, and a call that needs the driver where there is none
//! refuses with [`Cause::Stream`] naming why the library could not be
//! loaded. The library is loaded once and kept for the life of the process
//! (a failure is remembered too); [`use_library`] names another file (a test
//! double, an unusual install) for the next load.
//!
//! ```
//! use dlbridge::cuda::{Stream, driver};
//! use dlbridge::{Cause, Device};
//!
//! let gpu = Device { device_type: 2, device_id: 0 };
//! // Same stream: nothing to order, the driver is not needed.
//! assert!(driver::make_wait(gpu, Stream::LEGACY, Stream::LEGACY).is_ok());
//! // SAFETY: no file is there, so nothing is loaded or called.
//! unsafe { driver::use_library(Some("/nonexistent/libcuda.so.1".as_ref())) };
//! let err = driver::synchronize(gpu, Stream::PER_THREAD).unwrap_err();
//! assert_eq!(err.cause(), Cause::Stream);
//! assert!(err.message().contains("needs the CUDA driver"), "{err}");
//! // SAFETY: the system's driver, as before.
//! unsafe { driver::use_library(None) }; // back to the system's driver
//! ```

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::Stream;
use crate::device::Device;
use crate::error::{Cause, Error, Result};

/// The driver's file name where it is installed system-wide.
#[cfg(windows)]
pub const LIBRARY: &str = "nvcuda.dll";
/// The driver's file name where it is installed system-wide.
#[cfg(not(windows))]
pub const LIBRARY: &str = "libcuda.so.1";

type CuResult = c_int;
type Handle = *mut c_void;

/// `CU_POINTER_ATTRIBUTE_IS_MANAGED`.
const IS_MANAGED: c_int = 8;
/// `CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL`.
const DEVICE_ORDINAL: c_int = 9;
/// `CU_EVENT_DISABLE_TIMING`: an ordering-only event, the cheapest kind.
const EVENT_DISABLE_TIMING: c_uint = 0x2;

/// The entry points dlbridge calls, copied out of the loaded library.
struct Driver {
    get_error_name: unsafe extern "C" fn(CuResult, *mut *const c_char) -> CuResult,
    pointer_get_attribute: unsafe extern "C" fn(*mut c_void, c_int, u64) -> CuResult,
    device_get: unsafe extern "C" fn(*mut c_int, c_int) -> CuResult,
    primary_ctx_retain: unsafe extern "C" fn(*mut Handle, c_int) -> CuResult,
    primary_ctx_release: unsafe extern "C" fn(c_int) -> CuResult,
    ctx_push: unsafe extern "C" fn(Handle) -> CuResult,
    ctx_pop: unsafe extern "C" fn(*mut Handle) -> CuResult,
    event_create: unsafe extern "C" fn(*mut Handle, c_uint) -> CuResult,
    event_record: unsafe extern "C" fn(Handle, Handle) -> CuResult,
    stream_wait_event: unsafe extern "C" fn(Handle, Handle, c_uint) -> CuResult,
    event_destroy: unsafe extern "C" fn(Handle) -> CuResult,
    stream_synchronize: unsafe extern "C" fn(Handle) -> CuResult,
}

/// The file to load next, and what the last load gave.
struct State {
    path: Option<PathBuf>,
    loaded: Option<std::result::Result<&'static Driver, String>>,
}

static STATE: Mutex<State> = Mutex::new(State {
    path: None,
    loaded: None,
});

/// Loads the driver from `path` instead of the system's [`LIBRARY`] the
/// next time it is needed (`None`: the system's again), forgetting what an
/// earlier load gave. A library loaded before stays mapped (nothing it
/// handed out is ever dangling).
///
/// # Safety
///
/// `path`, when given, names a library that is sound to load into this
/// process (its initialisers run) and, if it exports the driver's entry
/// points (`cuInit`, `cuPointerGetAttribute`, `cuStreamSynchronize`, ...),
/// implements them with the CUDA driver API's prototypes and meaning: the
/// crate calls them through those prototypes, as `libloading::Library::new`
/// and `Library::get` require of their callers.
pub unsafe fn use_library(path: Option<&Path>) {
    let mut state = STATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    state.path = path.map(Path::to_path_buf);
    state.loaded = None;
}

/// Whether a driver can be loaded (loading it if it was not yet), and if
/// not, why: the message names the library and the loader's or `cuInit`'s
/// complaint.
///
/// # Errors
///
/// `Buffer` ([`Cause::Stream`]) when no driver can be loaded or `cuInit`
/// fails (no GPU).
pub fn available() -> Result<()> {
    driver("using CUDA streams").map(|_| ())
}

fn driver(doing: &str) -> Result<&'static Driver> {
    let mut state = STATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if state.loaded.is_none() {
        let path = state.path.clone().unwrap_or_else(|| PathBuf::from(LIBRARY));
        state.loaded = Some(load(&path));
    }
    match state.loaded.as_ref() {
        Some(Ok(driver)) => Ok(driver),
        Some(Err(why)) => Err(Error::buffer(
            Cause::Stream,
            format!("{doing} needs the CUDA driver, which is not available: {why}"),
        )),
        None => unreachable!("loaded just above"),
    }
}

fn load(path: &Path) -> std::result::Result<&'static Driver, String> {
    if cfg!(miri) {
        // Miri runs no foreign code: as if no driver were installed.
        return Err(format!("cannot load {} under Miri", path.display()));
    }
    // SAFETY: loading runs the library's initialisers; the CUDA driver's are
    // made to run in any process (every CUDA program dlopens it so). A path
    // given to the unsafe `use_library` comes with its caller's promise that
    // it is such a library.
    let library = unsafe { libloading::Library::new(path) }.map_err(|e| {
        format!(
            "cannot load the CUDA driver library {}: {}",
            path.display(),
            with_source(&e)
        )
    })?;
    macro_rules! symbol {
        ($name:literal) => {
            // SAFETY: the type is the symbol's C prototype in cuda.h (CUresult
            // is a C enum, an int; handles are pointers; CUdeviceptr is a
            // 64-bit integer). The pointer is copied out and used only while
            // the library stays loaded, which is forever (leaked below).
            *unsafe { library.get($name) }.map_err(|e| {
                format!(
                    "{} has no {}: {}",
                    path.display(),
                    String::from_utf8_lossy(&$name[..$name.len() - 1]),
                    with_source(&e)
                )
            })?
        };
    }
    let init: unsafe extern "C" fn(c_uint) -> CuResult = symbol!(b"cuInit\0");
    let driver = Driver {
        get_error_name: symbol!(b"cuGetErrorName\0"),
        pointer_get_attribute: symbol!(b"cuPointerGetAttribute\0"),
        device_get: symbol!(b"cuDeviceGet\0"),
        primary_ctx_retain: symbol!(b"cuDevicePrimaryCtxRetain\0"),
        primary_ctx_release: symbol!(b"cuDevicePrimaryCtxRelease_v2\0"),
        ctx_push: symbol!(b"cuCtxPushCurrent_v2\0"),
        ctx_pop: symbol!(b"cuCtxPopCurrent_v2\0"),
        event_create: symbol!(b"cuEventCreate\0"),
        event_record: symbol!(b"cuEventRecord\0"),
        stream_wait_event: symbol!(b"cuStreamWaitEvent\0"),
        event_destroy: symbol!(b"cuEventDestroy_v2\0"),
        stream_synchronize: symbol!(b"cuStreamSynchronize\0"),
    };
    // SAFETY: cuInit's prototype; it may be called any number of times.
    let status = unsafe { init(0) };
    if status != 0 {
        return Err(format!(
            "cuInit failed with {} (no usable GPU)",
            driver.name(status)
        ));
    }
    // The function pointers above must stay valid for the process.
    std::mem::forget(library);
    Ok(Box::leak(Box::new(driver)))
}

/// An error and what caused it (libloading keeps the loader's own words,
/// `dlerror()`'s, in the source).
fn with_source(error: &dyn std::error::Error) -> String {
    match error.source() {
        Some(source) => format!("{error} ({source})"),
        None => error.to_string(),
    }
}

impl Driver {
    /// `CUDA_ERROR_...` (and the number) of a status.
    fn name(&self, status: CuResult) -> String {
        let mut name: *const c_char = std::ptr::null();
        // SAFETY: cuGetErrorName writes a pointer to a static string, or
        // fails for an unknown status and leaves `name` NULL.
        let known = unsafe { (self.get_error_name)(status, &mut name) } == 0 && !name.is_null();
        if known {
            // SAFETY: a NUL-terminated static string of the driver's.
            let name = unsafe { CStr::from_ptr(name) };
            format!("{} ({status})", name.to_string_lossy())
        } else {
            format!("CUDA error {status}")
        }
    }

    fn check(&self, status: CuResult, call: &str, doing: &str) -> Result<()> {
        if status == 0 {
            Ok(())
        } else {
            Err(Error::buffer(
                Cause::Stream,
                format!(
                    "{doing}: the CUDA driver's {call} failed with {}",
                    self.name(status)
                ),
            ))
        }
    }

    /// Runs `body` with the primary context of `device` current (the
    /// context PyTorch, CuPy, Numba and JAX create their streams in), and
    /// makes the previous context current again.
    fn in_context(
        &self,
        device: Device,
        doing: &str,
        body: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let mut ordinal: c_int = 0;
        // SAFETY: cuDeviceGet writes one int.
        let status = unsafe { (self.device_get)(&mut ordinal, device.device_id) };
        self.check(status, "cuDeviceGet", doing)?;
        let mut context: Handle = std::ptr::null_mut();
        // SAFETY: writes one context handle, retained until released below.
        let status = unsafe { (self.primary_ctx_retain)(&mut context, ordinal) };
        self.check(status, "cuDevicePrimaryCtxRetain", doing)?;
        // SAFETY: a context handle the driver just returned.
        let status = unsafe { (self.ctx_push)(context) };
        let pushed = self.check(status, "cuCtxPushCurrent", doing);
        let outcome = pushed.and_then(|()| {
            let outcome = body();
            let mut popped: Handle = std::ptr::null_mut();
            // SAFETY: pops the context pushed above (writes one handle).
            let status = unsafe { (self.ctx_pop)(&mut popped) };
            outcome.and_then(|()| self.check(status, "cuCtxPopCurrent", doing))
        });
        // SAFETY: releases the retain above; the context lives on while its
        // other users (the library that made the streams) retain it.
        let status = unsafe { (self.primary_ctx_release)(ordinal) };
        outcome.and_then(|()| self.check(status, "cuDevicePrimaryCtxRelease", doing))
    }
}

fn stream_handle(stream: Stream) -> Handle {
    // A handle the driver issued (or CU_STREAM_LEGACY / PER_THREAD), passed
    // back to it as the pointer type its prototype names; dlbridge never
    // dereferences it, so it needs no provenance.
    std::ptr::without_provenance_mut(stream.handle())
}

/// Where the driver says the device memory at `address` lives: `Ok(None)`
/// when no driver can be loaded (the caller then decides), the device
/// otherwise (`kDLCUDAManaged` for managed memory, `kDLCUDA` for the rest).
///
/// # Errors
///
/// `Value` ([`Cause::Pointer`]) when the driver does not know the address
/// (host memory, a freed or made-up pointer).
pub fn device_of_pointer(address: usize) -> Result<Option<Device>> {
    let Ok(driver) = driver("looking up a pointer's device") else {
        return Ok(None);
    };
    // Room for any attribute's value (an int, a bool, a handle), zeroed so a
    // narrower write reads back right on little- and big-endian alike for 0.
    let mut ordinal: c_int = 0;
    let mut managed: u64 = 0;
    let query = |attribute: c_int, out: *mut c_void| {
        // SAFETY: cuPointerGetAttribute writes the attribute's value (at most
        // 8 bytes for these two) into `out`, which points at a live local.
        unsafe { (driver.pointer_get_attribute)(out, attribute, address as u64) }
    };
    for (attribute, out, name) in [
        (
            DEVICE_ORDINAL,
            (&raw mut ordinal).cast::<c_void>(),
            "DEVICE_ORDINAL",
        ),
        (IS_MANAGED, (&raw mut managed).cast(), "IS_MANAGED"),
    ] {
        let status = query(attribute, out);
        if status != 0 {
            return Err(Error::value(
                Cause::Pointer,
                format!(
                    "data pointer {address:#x} is not device memory the CUDA driver knows \
                     (cuPointerGetAttribute({name}) failed with {})",
                    driver.name(status)
                ),
            ));
        }
    }
    Ok(Some(Device {
        device_type: if managed != 0 {
            super::CUDA_MANAGED
        } else {
            super::CUDA
        },
        device_id: ordinal,
    }))
}

/// Blocks the calling thread until the work queued so far on `stream`
/// (a stream of `device`) is done: `cuStreamSynchronize`, what a CUDA array
/// interface consumer does before using the data.
///
/// # Errors
///
/// `Buffer` ([`Cause::Stream`]) when no driver can be loaded, or a driver
/// call fails (the message names it and the `CUDA_ERROR_...`).
pub fn synchronize(device: Device, stream: Stream) -> Result<()> {
    let doing = format!("synchronising on {stream} of {device}");
    let driver = driver(&doing)?;
    driver.in_context(device, &doing, || {
        // SAFETY: a stream handle of this device's context (the caller's
        // promise, the protocol's contract), or one of the default handles.
        let status = unsafe { (driver.stream_synchronize)(stream_handle(stream)) };
        driver.check(status, "cuStreamSynchronize", &doing)
    })
}

/// Makes `consumer` wait (on the device, without blocking the host) for
/// the work queued so far on `producer`: an event recorded on `producer`
/// and `cuStreamWaitEvent` on `consumer`, what a DLPack producer does for
/// the stream its consumer names. Nothing to do (and no driver needed) when
/// they are the same stream.
///
/// # Errors
///
/// `Buffer` ([`Cause::Stream`]) when no driver can be loaded, or a driver
/// call fails (the message names it and the `CUDA_ERROR_...`).
pub fn make_wait(device: Device, consumer: Stream, producer: Stream) -> Result<()> {
    if consumer == producer {
        return Ok(());
    }
    let doing = format!("making {consumer} wait for {producer} on {device}");
    let driver = driver(&doing)?;
    driver.in_context(device, &doing, || {
        let mut event: Handle = std::ptr::null_mut();
        // SAFETY: writes one event handle, destroyed below.
        let status = unsafe { (driver.event_create)(&mut event, EVENT_DISABLE_TIMING) };
        driver.check(status, "cuEventCreate", &doing)?;
        // SAFETY: a live event and stream handles of the current context.
        let recorded = unsafe { (driver.event_record)(event, stream_handle(producer)) };
        let outcome = driver
            .check(recorded, "cuEventRecord", &doing)
            .and_then(|()| {
                // SAFETY: as above; the wait keeps what it needs of the event.
                let waited =
                    unsafe { (driver.stream_wait_event)(stream_handle(consumer), event, 0) };
                driver.check(waited, "cuStreamWaitEvent", &doing)
            });
        // SAFETY: the event made above; destroying it after the wait is
        // queued is allowed (the wait still completes).
        let destroyed = unsafe { (driver.event_destroy)(event) };
        outcome.and_then(|()| driver.check(destroyed, "cuEventDestroy", &doing))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "dlopen is foreign code")]
    fn a_missing_library_is_a_clear_refusal() {
        let error = load(Path::new("/nonexistent/dir/libcuda.so.1"))
            .err()
            .unwrap();
        assert!(error.contains("/nonexistent/dir/libcuda.so.1"), "{error}");
    }

    #[test]
    fn same_stream_needs_no_driver() {
        let gpu = Device {
            device_type: 2,
            device_id: 3,
        };
        assert!(make_wait(gpu, Stream::PER_THREAD, Stream::PER_THREAD).is_ok());
    }
}
