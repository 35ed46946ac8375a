//! Stream values as the protocols spell them.

use std::num::NonZeroUsize;

use crate::error::{Cause, Error, Result};

/// A CUDA stream, as the driver's `CUstream` handle: `1` is the legacy
/// default stream (`CU_STREAM_LEGACY`), `2` the per-thread default stream
/// (`CU_STREAM_PER_THREAD`), anything else a stream a library created.
/// Both GPU protocols pass these same numbers.
///
/// ```
/// use dlbridge::cuda::Stream;
///
/// let s = Stream::from_cuda_array_interface(0x5555_0000).unwrap();
/// assert_eq!(s.handle(), 0x5555_0000);
/// assert_eq!(Stream::PER_THREAD.handle(), 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stream(NonZeroUsize);

impl Stream {
    /// The legacy default stream (`CU_STREAM_LEGACY`, `1`).
    pub const LEGACY: Self = Self(NonZeroUsize::MIN);
    /// The per-thread default stream (`CU_STREAM_PER_THREAD`, `2`).
    pub const PER_THREAD: Self = Self(NonZeroUsize::MIN.saturating_add(1));

    /// The driver's handle (what `CUstream` holds).
    pub fn handle(self) -> usize {
        self.0.get()
    }

    /// The `stream` of a `__cuda_array_interface__` (v3) that is not `None`.
    ///
    /// # Errors
    ///
    /// `Value` ([`Cause::Stream`]): `0`, which the specification disallows
    /// (it would be ambiguous between the two default streams), or a value
    /// that is no handle (negative, or wider than a pointer).
    pub fn from_cuda_array_interface(value: i128) -> Result<Self> {
        if value == 0 {
            return Err(Error::value(
                Cause::Stream,
                "__cuda_array_interface__ stream 0 is disallowed (None means no \
                 synchronisation, 1 the legacy default stream, 2 the per-thread default stream)",
            ));
        }
        Self::handle_of(value).ok_or_else(|| {
            Error::value(
                Cause::Stream,
                format!("__cuda_array_interface__ stream {value} is not a CUDA stream handle"),
            )
        })
    }

    /// The `stream` argument of `__dlpack__` for a CUDA tensor, which is not
    /// `None` (`None` means the legacy default stream): `-1` asks for no
    /// synchronisation (`Ok(None)`).
    ///
    /// # Errors
    ///
    /// `Value` ([`Cause::Stream`]): `0`, which DLPack disallows for CUDA, or
    /// another value that is no handle (below -1, wider than a pointer).
    pub fn from_dlpack(value: i128) -> Result<Option<Self>> {
        match value {
            -1 => Ok(None),
            0 => Err(Error::value(
                Cause::Stream,
                "__dlpack__ stream 0 is disallowed for CUDA (None or 1 is the legacy default \
                 stream, 2 the per-thread default stream, -1 no synchronisation)",
            )),
            _ => Self::handle_of(value).map(Some).ok_or_else(|| {
                Error::value(
                    Cause::Stream,
                    format!("__dlpack__ stream {value} is not a CUDA stream handle"),
                )
            }),
        }
    }

    /// The stream a DLPack exchange table's `current_work_stream` writes
    /// for a CUDA device: NULL is the default stream of the driver API
    /// (`0`), which is the legacy default stream, so both `0` and `1` read
    /// as [`Stream::LEGACY`].
    ///
    /// ```
    /// use dlbridge::cuda::Stream;
    ///
    /// assert_eq!(Stream::from_work_stream(0), Stream::LEGACY);
    /// assert_eq!(Stream::from_work_stream(2), Stream::PER_THREAD);
    /// ```
    pub fn from_work_stream(handle: usize) -> Self {
        NonZeroUsize::new(handle).map_or(Self::LEGACY, Self)
    }

    /// A positive, pointer-sized value.
    fn handle_of(value: i128) -> Option<Self> {
        usize::try_from(value)
            .ok()
            .and_then(NonZeroUsize::new)
            .map(Self)
    }
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::LEGACY => f.write_str("the legacy default stream"),
            Self::PER_THREAD => f.write_str("the per-thread default stream"),
            Self(handle) => write!(f, "stream {:#x}", handle.get()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn protocol_values() {
        assert_eq!(Stream::LEGACY.handle(), 1);
        assert_eq!(Stream::PER_THREAD.handle(), 2);
        assert_eq!(Stream::from_dlpack(1).unwrap(), Some(Stream::LEGACY));
        assert_eq!(Stream::from_dlpack(2).unwrap(), Some(Stream::PER_THREAD));
        assert_eq!(Stream::from_dlpack(-1).unwrap(), None);
        for bad in [0, -2, i128::from(u64::MAX) + 1] {
            let err = Stream::from_dlpack(bad).unwrap_err();
            assert_eq!((err.kind(), err.cause()), (ErrorKind::Value, Cause::Stream));
            assert!(err.message().contains(&bad.to_string()), "{err}");
        }
        for bad in [0, -1] {
            let err = Stream::from_cuda_array_interface(bad).unwrap_err();
            assert_eq!((err.kind(), err.cause()), (ErrorKind::Value, Cause::Stream));
        }
        assert_eq!(Stream::LEGACY.to_string(), "the legacy default stream");
        assert_eq!(
            Stream::from_cuda_array_interface(0xabc)
                .unwrap()
                .to_string(),
            "stream 0xabc"
        );
    }
}
