//! The spokes' core halves: one module per protocol, each parsing a
//! descriptor into the hub's checked [`Descriptor`](crate::Descriptor) or
//! rendering a tensor back, with no Python in sight (the Python halves live
//! under `src/python/<protocol>/`). A spoke never calls another spoke.

pub mod array_interface;
pub mod buffer;
pub(crate) mod dlpack;
pub mod pep3118;
pub mod typestr;
