//! The spokes: one module per protocol, each parsing into the hub's parts or
//! rendering them back. A spoke never calls another spoke. Only the pure
//! parsers are public (for fuzzing and for Rust users); the rest is internal.

#[cfg(feature = "python")]
pub(crate) mod array_interface;
#[cfg(feature = "python")]
pub(crate) mod buffer;
pub(crate) mod dlpack;
#[cfg(feature = "python")]
pub(crate) mod dlpack_exchange;
#[cfg(feature = "python")]
pub(crate) mod dlpack_python;
pub mod pep3118;
pub mod typestr;
