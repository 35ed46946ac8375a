//! The spokes: one module per protocol, each parsing into the hub's parts or
//! rendering them back. A spoke never calls another spoke.

#[cfg(feature = "python")]
pub(crate) mod buffer;
pub(crate) mod dlpack;
#[cfg(feature = "python")]
pub(crate) mod dlpack_exchange;
#[cfg(feature = "python")]
pub(crate) mod dlpack_python;
pub(crate) mod pep3118;
