//! CUDA array interface spoke, core half (Numba's specification, version 3,
//! no Python): a `__cuda_array_interface__` dict's fields, checked into a
//! [`Descriptor`] of device memory with the host array interface's own
//! parsers (typestr, byte order, shape and strides), and the fields of a
//! tensor's own.
//!
//! The Python half (`src/python/cuda_array_interface/`) reads the dict,
//! asks the driver where the pointer lives when there is one, synchronises
//! on the producer's `stream` (see [`crate::cuda`]) and keeps the producer
//! alive.
//!
//! ```
//! use dlbridge::{Cause, Device, DType};
//! use dlbridge::protocol::cuda_array_interface::{Fields, describe};
//!
//! let gpu = Device { device_type: 2, device_id: 0 };
//! let fields = Fields {
//!     version: 3,
//!     typestr: "<f4",
//!     shape: &[2, 3],
//!     strides: None,
//!     data: (0x7f00_0000_0000, false),
//!     masked: false,
//!     stream: Some(1),
//! };
//! let (d, stream) = describe(&fields, gpu, DType::opaque).unwrap();
//! assert_eq!((d.layout().strides(), d.dtype()), (&[12, 4][..], DType::FLOAT32));
//! assert_eq!(stream.unwrap().handle(), 1);
//!
//! // Stream 0 is disallowed by the specification.
//! let err = describe(&Fields { stream: Some(0), ..fields }, gpu, DType::opaque).unwrap_err();
//! assert_eq!(err.cause(), Cause::Stream);
//! ```

use crate::cuda::Stream;
use crate::descriptor::{Claims, Descriptor, Source};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Cause, Error, Result};
use crate::layout::Layout;
use crate::protocol::typestr::{self, Parsed};
use crate::tensor::Tensor;

/// The versions read: 3 (with `stream`) and 2 (PyTorch still exports it;
/// it has no `stream`, so any there is ignored as the specification says).
pub const VERSIONS: [i64; 2] = [2, 3];

/// What a `__cuda_array_interface__` dict holds, once its Python values are
/// read into plain ones (`descr`, whose records the caller checks, aside).
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    /// `version`.
    pub version: i64,
    /// `typestr`, as the host array interface's.
    pub typestr: &'a str,
    /// `shape`.
    pub shape: &'a [i64],
    /// `strides` in bytes; `None` (absent or `None`) for C-contiguous.
    pub strides: Option<&'a [i64]>,
    /// `data`: the device pointer and the readonly flag.
    pub data: (usize, bool),
    /// Whether `mask` is present and not `None`.
    pub masked: bool,
    /// `stream`, when present and not `None` (a version 3 key).
    pub stream: Option<i128>,
}

/// Checks `fields` into a descriptor on `device`, and the stream the
/// consumer must synchronise on (`None`: nothing to wait for).
///
/// `resolve_void` names opaque `V<n>` elements (from the exporting object's
/// dtype, say), as for the host array interface.
///
/// # Errors
///
/// What `resolve_void` returns, and, all naming the offending value:
/// - `Value` ([`Cause::Version`]): a version other than 2 or 3;
/// - `Buffer` ([`Cause::ProducerState`]): a mask (dlbridge cannot carry it);
/// - those of [`typestr::parse_typestr`] (a malformed typestr, non-native
///   byte order, a kind with no DLPack dtype);
/// - those of [`Layout::from_signed`] (negative or overflowing extents,
///   strides of the wrong length, more than 64 axes);
/// - `Value` ([`Cause::Stream`]): stream `0` or a value that is no handle;
/// - those of [`Descriptor::new`] (a NULL pointer with elements to address).
pub fn describe(
    fields: &Fields<'_>,
    device: Device,
    resolve_void: impl FnOnce(usize) -> Result<DType>,
) -> Result<(Descriptor, Option<Stream>)> {
    if !VERSIONS.contains(&fields.version) {
        return Err(Error::value(
            Cause::Version,
            format!(
                "__cuda_array_interface__ version {} is not supported (dlbridge reads versions 2 and 3)",
                fields.version
            ),
        ));
    }
    if fields.masked {
        return Err(Error::buffer(
            Cause::ProducerState,
            "__cuda_array_interface__ has a mask; masked arrays cannot be carried without losing it",
        ));
    }
    let dtype = match typestr::parse_typestr(fields.typestr)? {
        Parsed::DType(dtype) => dtype,
        Parsed::Void(itemsize) => resolve_void(itemsize)?,
    };
    let layout = Layout::from_signed(fields.shape, fields.strides, dtype.itemsize())?;
    let stream = match fields.stream {
        Some(value) if fields.version >= 3 => Some(Stream::from_cuda_array_interface(value)?),
        _ => None,
    };
    let (address, readonly) = fields.data;
    let descriptor = Descriptor::new(Claims {
        what: "__cuda_array_interface__",
        // Device memory: an address dlbridge never dereferences, so a pointer
        // without provenance (Miri's strict provenance accepts it).
        base: std::ptr::without_provenance_mut(address),
        offset: 0,
        layout,
        dtype,
        device,
        readonly,
        source: Source::CudaArrayInterface,
        len: None,
    })?;
    Ok((descriptor, stream))
}

/// The `data` pointer a tensor's interface publishes: its address, or `0`
/// for an empty tensor, as the specification asks.
pub fn data_pointer(tensor: &Tensor) -> usize {
    if tensor.layout().size() == 0 {
        0
    } else {
        tensor.data_ptr().addr()
    }
}

/// Refuses a tensor whose memory is not CUDA memory: the interface is for
/// device pointers, and a consumer that probes with `hasattr` must move on
/// (`AttributeError`).
///
/// # Errors
///
/// `Attribute` ([`Cause::Device`]) for memory on any other device.
pub fn ensure_exportable(tensor: &Tensor) -> Result<()> {
    if crate::cuda::is_cuda(tensor.device()) {
        Ok(())
    } else {
        Err(Error::attribute(
            Cause::Device,
            format!(
                "a tensor on device {} has no __cuda_array_interface__ (it is for CUDA memory; \
                 use DLPack, the buffer protocol or __array_interface__)",
                tensor.device()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const GPU: Device = Device {
        device_type: 2,
        device_id: 1,
    };

    fn fields() -> Fields<'static> {
        Fields {
            version: 3,
            typestr: "<i8",
            shape: &[4],
            strides: Some(&[-8]),
            data: (0x1000, true),
            masked: false,
            stream: None,
        }
    }

    fn refusal(fields: Fields<'_>) -> (ErrorKind, Cause, String) {
        let err = describe(&fields, GPU, DType::opaque).unwrap_err();
        (err.kind(), err.cause(), err.message().to_owned())
    }

    #[test]
    fn accepts_what_the_specification_allows() {
        let (d, stream) = describe(&fields(), GPU, DType::opaque).unwrap();
        assert_eq!(stream, None);
        assert_eq!(d.layout().strides(), &[-8]);
        assert_eq!(d.data_ptr().addr(), 0x1000);
        // A device pointer is never checked against the host's address space.
        let high = Fields {
            data: (usize::MAX - 8, false),
            shape: &[1 << 20],
            strides: None,
            ..fields()
        };
        assert!(describe(&high, GPU, DType::opaque).is_ok());
        // Empty arrays may say 0.
        let empty = Fields {
            data: (0, false),
            shape: &[0, 3],
            strides: None,
            ..fields()
        };
        assert!(describe(&empty, GPU, DType::opaque).is_ok());
        // Version 2 has no stream: one there is not read.
        let v2 = Fields {
            version: 2,
            stream: Some(0),
            ..fields()
        };
        assert_eq!(describe(&v2, GPU, DType::opaque).unwrap().1, None);
        let on_stream = Fields {
            stream: Some(0xdead_0000),
            ..fields()
        };
        let stream = describe(&on_stream, GPU, DType::opaque).unwrap().1;
        assert_eq!(stream.unwrap().handle(), 0xdead_0000);
    }

    #[test]
    fn refusals_name_the_value() {
        for (bad, kind, cause, fragment) in [
            (
                Fields {
                    version: 4,
                    ..fields()
                },
                ErrorKind::Value,
                Cause::Version,
                "version 4",
            ),
            (
                Fields {
                    masked: true,
                    ..fields()
                },
                ErrorKind::Buffer,
                Cause::ProducerState,
                "mask",
            ),
            (
                Fields {
                    typestr: ">f4",
                    ..fields()
                },
                ErrorKind::Buffer,
                Cause::ByteOrder,
                "\">f4\"",
            ),
            (
                Fields {
                    shape: &[2, -3],
                    strides: None,
                    ..fields()
                },
                ErrorKind::Value,
                Cause::Layout,
                "-3",
            ),
            (
                Fields {
                    shape: &[1 << 62, 8],
                    strides: None,
                    ..fields()
                },
                ErrorKind::Value,
                Cause::Layout,
                "isize",
            ),
            (
                Fields {
                    stream: Some(0),
                    ..fields()
                },
                ErrorKind::Value,
                Cause::Stream,
                "stream 0",
            ),
            (
                Fields {
                    data: (0, false),
                    ..fields()
                },
                ErrorKind::Buffer,
                Cause::Pointer,
                "NULL",
            ),
        ] {
            let (k, c, message) = refusal(bad);
            assert_eq!((k, c), (kind, cause), "{message}");
            assert!(
                message.contains(fragment),
                "{fragment:?} not in {message:?}"
            );
        }
    }
}
