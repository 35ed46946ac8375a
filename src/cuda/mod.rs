//! CUDA streams, honestly: what the protocols say about them, and the
//! driver calls that keep their promises.
//!
//! dlbridge never reads device memory, but it stands between a producer
//! that may still be writing a CUDA array on one stream and a consumer that
//! will read it on another. The two GPU protocols put the duty on different
//! sides:
//!
//! - **The CUDA array interface** (v3): the producer names the `stream` its
//!   work was queued on (`None`: nothing to wait for) and the *consumer*
//!   synchronises on it before use. dlbridge, consuming, does so at import
//!   ([`driver::synchronize`], a host wait on that stream, what Numba does)
//!   unless asked not to; producing, it names the legacy default stream
//!   (`1`), on which every CUDA tensor it holds is ready (below).
//! - **DLPack**: the consumer passes `__dlpack__(stream=...)` and the
//!   *producer* makes that stream wait for its work. dlbridge, producing,
//!   records an event on the legacy default stream and makes the
//!   consumer's stream wait on it ([`driver::make_wait`]); consuming, it
//!   calls `__dlpack__` without a stream, which DLPack defines as "the
//!   consumer uses the legacy default stream".
//!
//! So the one invariant: **a CUDA tensor dlbridge holds is ready on the
//! legacy default stream** (work queued there after the import sees the
//! producer's writes). What the caller must still do: keep the producer's
//! stream alive until the import returns, and order their own later writes
//! (dlbridge sees no kernel launches).
//!
//! The driver (`libcuda.so.1`, `nvcuda.dll`) is opened at run time, the
//! first time a synchronisation or a pointer query needs it, never at
//! import and never at build time; without one, the calls that need it
//! refuse with [`Cause::Stream`](crate::Cause::Stream) and say so.
//!
//! ```
//! use dlbridge::cuda::Stream;
//!
//! // The numbers both protocols use are the driver's own handles.
//! assert_eq!(Stream::from_cuda_array_interface(1).unwrap(), Stream::LEGACY);
//! assert_eq!(Stream::from_dlpack(-1).unwrap(), None); // "do not synchronise"
//! assert!(Stream::from_cuda_array_interface(0).is_err()); // disallowed
//! ```

pub mod driver;
mod stream;

pub use stream::Stream;

/// Whether a device type's streams are CUDA streams (CUDA memory and CUDA
/// managed memory), the ones dlbridge synchronises.
///
/// ```
/// use dlbridge::Device;
/// use dlbridge::cuda::is_cuda;
///
/// assert!(is_cuda(Device { device_type: 2, device_id: 1 }));
/// assert!(!is_cuda(Device::CPU));
/// ```
pub fn is_cuda(device: crate::Device) -> bool {
    matches!(device.device_type, CUDA | CUDA_MANAGED)
}

/// DLPack's `kDLCUDA`.
pub(crate) const CUDA: u32 = 2;
/// DLPack's `kDLCUDAManaged`.
pub(crate) const CUDA_MANAGED: u32 = 13;
