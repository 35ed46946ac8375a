//! The Python side of tracked borrows: the registry published in
//! `sys` (`capsule.rs`), joined with rust-numpy's (`rust_numpy.rs`), and
//! the guard a borrowed argument (`crate::python::arg`) holds while it
//! lives (`guard.rs`).
//! The model, its C ABI and its limits: [`crate::borrow`].

pub(crate) mod capsule;
pub(crate) mod guard;
pub(crate) mod rust_numpy;
