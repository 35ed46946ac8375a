//! A C Stream Interface producer read for its one chunk: the schema and
//! the one array, moved out, the stream released. A tensor is one block of
//! memory, so a stream of several chunks is refused (never concatenated: a
//! copy), as is one of none.

use std::ffi::{CStr, c_int};

use super::ffi::{ArrowArray, ArrowArrayStream, ArrowSchema};
use super::malformed;
use crate::error::{Cause, Error, Result};

/// Owns a moved-in stream and releases it when dropped.
struct Stream(ArrowArrayStream);

impl Drop for Stream {
    fn drop(&mut self) {
        if let Some(release) = self.0.release {
            // SAFETY: the stream is ours (moved in), released once: the
            // callback sets `release` to NULL.
            unsafe { release(&mut self.0) };
        }
    }
}

/// Releases an array on drop unless taken.
struct Chunk(ArrowArray);

impl Drop for Chunk {
    fn drop(&mut self) {
        if let Some(release) = self.0.release {
            // SAFETY: a struct the stream handed over, ours to release once.
            unsafe { release(&mut self.0) };
        }
    }
}

/// Releases a schema on drop unless taken.
struct Schema(ArrowSchema);

impl Drop for Schema {
    fn drop(&mut self) {
        if let Some(release) = self.0.release {
            // SAFETY: as for `Chunk`.
            unsafe { release(&mut self.0) };
        }
    }
}

impl Stream {
    /// The producer's error after a failed call, in its words.
    fn failed(&mut self, call: &str, code: c_int) -> Error {
        let message = self
            .0
            .get_last_error
            // SAFETY: the stream is valid; the string, if any, lives until
            // the next call on the stream and is copied at once.
            .map(|last_error| unsafe { last_error(&mut self.0) })
            .filter(|p| !p.is_null())
            // SAFETY: a non-NULL last error is a NUL-terminated string.
            .map(|p| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
            .unwrap_or_default();
        Error::value(
            Cause::ProducerState,
            format!("the Arrow stream's {call} failed with error {code}: {message}"),
        )
    }

    fn next(&mut self) -> Result<Chunk> {
        let get_next = self.0.get_next.ok_or_else(null_callback)?;
        let mut chunk = Chunk(ArrowArray::released());
        // SAFETY: a valid stream and an out-struct to move the chunk into.
        let code = unsafe { get_next(&mut self.0, &mut chunk.0) };
        if code != 0 {
            return Err(self.failed("get_next", code));
        }
        Ok(chunk)
    }
}

/// A stream that is not one chunk: `BufferError`.
fn one_tensor(why: &str) -> Error {
    Error::buffer(
        Cause::Layout,
        format!("an Arrow stream is imported as one tensor, one block of memory, but {why}"),
    )
}

fn null_callback() -> Error {
    malformed("the ArrowArrayStream has a NULL callback")
}

/// Reads the one chunk of `stream` and releases the stream.
///
/// # Safety
///
/// `stream` was moved out of a producer: released, or a valid stream of
/// the C Stream Interface.
///
/// # Errors
///
/// - `Value`: a released stream, a NULL callback, a callback that fails
///   (with the producer's last error).
/// - `Buffer`: no chunk, or more than one.
pub(crate) unsafe fn one_chunk(stream: ArrowArrayStream) -> Result<(ArrowSchema, ArrowArray)> {
    let mut stream = Stream(stream);
    if stream.0.release.is_none() {
        return Err(malformed("the ArrowArrayStream has already been released"));
    }
    let get_schema = stream.0.get_schema.ok_or_else(null_callback)?;
    let mut schema = Schema(ArrowSchema::released());
    // SAFETY: a valid stream and an out-struct to move the schema into.
    let code = unsafe { get_schema(&mut stream.0, &mut schema.0) };
    if code != 0 {
        return Err(stream.failed("get_schema", code));
    }
    let first = stream.next()?;
    if first.0.release.is_none() {
        return Err(one_tensor(
            "it holds no chunk (an empty result has no array to share)",
        ));
    }
    let second = stream.next()?;
    if second.0.release.is_some() {
        return Err(one_tensor(
            "it holds more than one chunk (combine them first, a copy: pyarrow \
             chunked_array.combine_chunks(), polars Series.rechunk())",
        ));
    }
    // Taken out of their guards, unreleased: the caller owns them now.
    let take_schema = std::mem::replace(&mut schema.0, ArrowSchema::released());
    let take_array = {
        let mut first = first;
        std::mem::replace(&mut first.0, ArrowArray::released())
    };
    Ok((take_schema, take_array))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::arrow::export::{new_array, new_schema, plan};
    use crate::tensor::Tensor;
    use std::ffi::{c_char, c_void};

    /// A stream over `chunks` copies of one tensor's export.
    struct Private {
        tensor: Tensor,
        chunks: usize,
        fail: bool,
    }

    unsafe extern "C" fn get_schema(stream: *mut ArrowArrayStream, out: *mut ArrowSchema) -> c_int {
        // SAFETY: private_data is the test's Private.
        let private = unsafe { &*(*stream).private_data.cast::<Private>() };
        if private.fail {
            return 5;
        }
        let plan = plan(&private.tensor, None).unwrap();
        // SAFETY: `out` is the consumer's struct to move into.
        unsafe { out.write(*new_schema(&plan.schema)) };
        0
    }

    unsafe extern "C" fn get_next(stream: *mut ArrowArrayStream, out: *mut ArrowArray) -> c_int {
        // SAFETY: as above.
        let private = unsafe { &mut *(*stream).private_data.cast::<Private>() };
        let array = if private.chunks == 0 {
            ArrowArray::released()
        } else {
            private.chunks -= 1;
            *new_array(&private.tensor, private.tensor.shape())
        };
        // SAFETY: as above.
        unsafe { out.write(array) };
        0
    }

    unsafe extern "C" fn last_error(_: *mut ArrowArrayStream) -> *const c_char {
        c"no schema today".as_ptr()
    }

    unsafe extern "C" fn release(stream: *mut ArrowArrayStream) {
        // SAFETY: private_data is a leaked Box<Private>, freed once.
        unsafe {
            drop(Box::from_raw((*stream).private_data.cast::<Private>()));
            (*stream).release = None;
        }
    }

    fn stream(t: &Tensor, chunks: usize, fail: bool) -> ArrowArrayStream {
        let private = Box::new(Private {
            tensor: t.clone(),
            chunks,
            fail,
        });
        ArrowArrayStream {
            get_schema: Some(get_schema),
            get_next: Some(get_next),
            get_last_error: Some(last_error),
            release: Some(release),
            private_data: Box::into_raw(private).cast::<c_void>(),
        }
    }

    #[test]
    fn one_chunk_is_taken_and_the_rest_refused() {
        let t = Tensor::from(vec![1i64, 2, 3]);
        // SAFETY: streams just made.
        unsafe {
            let (schema, array) = one_chunk(stream(&t, 1, false)).unwrap();
            let back = crate::protocol::arrow::import::import(schema, array).unwrap();
            assert_eq!(back.data_ptr(), t.data_ptr());
            drop(back);
            assert_eq!(t.owner().holders(), 1);
            for (chunks, fail, fragment) in [
                (0, false, "no chunk"),
                (2, false, "more than one chunk"),
                (1, true, "get_schema failed with error 5: no schema today"),
            ] {
                let err = one_chunk(stream(&t, chunks, fail)).err().unwrap();
                assert!(err.message().contains(fragment), "{err}");
                assert_eq!(t.owner().holders(), 1);
            }
        }
    }
}
