//! dlbridge moves tensors between DLPack, the Python buffer protocol and
//! NumPy's array interface without copying a byte, and hands them to and
//! from Rust (`ndarray`) just as cheaply.
//!
//! # One hub, many spokes
//!
//! ```text
//!   foreign object ──import──▶ Tensor ──export──▶ protocol view
//!   DLPack capsule               │               DLPack capsule (legacy / versioned)
//!   Py_buffer                    │ as_ndarray    Py_buffer
//!   __array_struct__ capsule     │ From<Array>   __array_struct__ capsule
//!   __array_interface__ dict     ▼               __array_interface__ dict
//!                          ndarray views
//! ```
//!
//! Every conversion goes through [`Tensor`]: a layout validated once at
//! import ([`Layout`]), a [`DType`], a [`Device`], a data pointer, a readonly
//! flag and an owner that releases the producer exactly once. A protocol
//! module (a *spoke*) parses its protocol into those parts or renders them
//! back, and knows nothing of the other protocols.
//!
//! ```
//! use dlbridge::Tensor;
//! use ndarray::array;
//!
//! // Rust-owned memory out through DLPack and back in: one allocation throughout.
//! let t = Tensor::from(array![[1.0f32, 2.0], [3.0, 4.0]]);
//! let dlpack = t.to_dlpack_versioned().unwrap();
//! let back = Tensor::try_from(dlpack).unwrap();
//! assert_eq!(back.data_ptr(), t.data_ptr());
//! // SAFETY: nothing writes this memory while the view lives.
//! assert_eq!(unsafe { back.as_ndarray::<f32>() }.unwrap()[[1, 0]], 3.0);
//! ```
//!
//! With the `python` feature (on for the Python package) the crate is also
//! the `dlbridge._native` extension module.

// Every fallible public function says when it fails (`# Errors`), and every
// one that can panic says when (`# Panics`).
#![warn(clippy::missing_errors_doc, clippy::missing_panics_doc)]

pub mod borrow;
pub mod cuda;
mod descriptor;
mod device;
mod dtype;
mod error;
mod layout;
mod owner;
pub mod protocol;
#[cfg(feature = "python")]
mod python;
mod tensor;
mod view;

pub use crate::view::IntoDlpack;
pub use crate::view::TypedTensor;
pub use crate::view::constraints;
pub use descriptor::{Claims, Descriptor, Source};
pub use device::{Device, DeviceRequest};
pub use dtype::{DType, Element};
pub use error::{Cause, Error, ErrorKind, Result};
pub use layout::{Layout, MAX_NDIM};
pub use owner::{Allocation, live_buffers};
#[cfg(feature = "python")]
#[doc = include_str!("python/guide.md")]
pub mod extension_guide {}
#[cfg(feature = "python")]
pub use python::arg::{
    Access, AnyDtype, ArgElement, Exclusive, ReadonlyTensor, ReadwriteTensor, Shared, TensorArg,
};
/// The test hook of cargo feature `testing` (off by default): an extension
/// crate's tests see its own copy of the fast-path counters.
#[cfg(feature = "testing")]
pub use python::fast_path::fast_path_counts;
#[cfg(feature = "python")]
pub use python::framework::{Framework, Native};
pub use tensor::Tensor;

/// The `dlpark` crate whose types appear in dlbridge's signatures
/// (`Tensor::to_dlpack_versioned` returns a `dlpark::versioned::Dlpack`):
/// the same version, without a second dependency line to keep in step.
pub use dlpark;

/// What a Rust extension usually names: `use dlbridge::prelude::*;`.
///
/// ```
/// use dlbridge::prelude::*;
///
/// let t = Tensor::from(vec![1.0f32, 2.0]);
/// assert_eq!(t.dtype(), DType::FLOAT32);
/// let d: dlbridge::dlpark::versioned::Dlpack = t.to_dlpack_versioned().unwrap();
/// assert_eq!(Tensor::try_from(d).unwrap().shape(), &[2]);
/// ```
pub mod prelude {
    pub use crate::constraints::{CContig, Constraint, FContig, Writable};
    #[cfg(feature = "python")]
    pub use crate::{AnyDtype, Framework, Native, ReadonlyTensor, ReadwriteTensor};
    pub use crate::{DType, Element, Error, IntoDlpack, Tensor, TypedTensor};
}
