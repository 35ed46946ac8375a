//! The Arrow C Data Interface, both ways, with no Python in sight: the
//! structs ([`ffi`]), format strings ([`format`]), schema metadata and the
//! `arrow.fixed_shape_tensor` extension ([`metadata`]), a tensor's export
//! ([`export`]) and a producer's array as a tensor ([`import`]). The
//! PyCapsule interface around them (`__arrow_c_array__`,
//! `__arrow_c_stream__`) is `src/python/arrow/`.

pub(crate) mod export;
pub(crate) mod ffi;
pub(crate) mod format;
pub(crate) mod import;
pub(crate) mod metadata;
pub(crate) mod stream;

#[cfg(test)]
mod tests;
