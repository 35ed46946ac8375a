//! The Python side of tracked borrows: the registry published in
//! `sys` (`capsule.rs`), joined with rust-numpy's (`rust_numpy.rs`), and
//! the argument types that hold a borrow while they live (`tensors.rs`).
//! The model, its C ABI and its limits: [`crate::borrow`].

pub(crate) mod capsule;
pub(crate) mod rust_numpy;
pub(crate) mod tensors;

pub use tensors::{ReadonlyTensor, ReadwriteTensor};
