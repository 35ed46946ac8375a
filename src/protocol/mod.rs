//! The spokes' core halves: one module per protocol, each parsing a
//! descriptor into the hub's checked [`Descriptor`](crate::Descriptor) or
//! rendering a tensor back, with no Python in sight (the Python halves live
//! under `src/python/<protocol>/`). A spoke never calls another spoke.
//!
//! ```
//! use dlbridge::DType;
//! use dlbridge::protocol::{pep3118, typestr};
//!
//! // One dtype in the buffer protocol's words and in the array interface's.
//! assert_eq!(pep3118::format_of(DType::INT64), Some(c"q"));
//! assert_eq!(pep3118::parse_format("q").unwrap(), DType::INT64);
//! assert_eq!(typestr::typestr_of(DType::BOOL), "|b1");
//! assert_eq!(typestr::parse_typestr("|b1").unwrap(), typestr::Parsed::DType(DType::BOOL));
//! ```

// The Arrow C Data Interface has Python callers only (the PyCapsule
// interface): without them, its items are tested but unused.
pub mod array_interface;
#[cfg_attr(not(feature = "python"), allow(dead_code))]
pub(crate) mod arrow;
pub mod buffer;
pub mod cuda_array_interface;
pub(crate) mod dlpack;
pub mod pep3118;
pub mod typestr;
