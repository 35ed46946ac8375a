//! Where a tensor's memory lives, in DLPack's terms.
//!
//! ```
//! use dlbridge::{Device, Tensor};
//!
//! // Rust-owned memory is host memory; a device travels as DLPack's `DLDevice`.
//! let t = Tensor::from(vec![1u8, 2, 3]);
//! assert_eq!(t.device(), Device::CPU);
//! let cuda = Device { device_type: 2, device_id: 1 };
//! assert_eq!(Device::from_dlpack(cuda.to_dlpack()), cuda);
//! assert_eq!((cuda.type_name(), cuda.is_cpu()), ("cuda", false));
//! ```

use crate::error::{Cause, Error, Result};
use dlpark::ffi::{DLDevice, DLDeviceType};

/// A DLPack device: `(device_type, device_id)`, e.g. `(1, 0)` for CPU.
///
/// dlbridge never touches memory that is not on the CPU: such tensors pass
/// through DLPack import and export unchanged, and every protocol that would
/// need to read them (the buffer protocol, the array interface, `copy()`,
/// `as_ndarray`) refuses them with [`Device::ensure_cpu`].
///
/// ```
/// use dlbridge::{Cause, Device};
///
/// let rocm = Device { device_type: 10, device_id: 0 };
/// assert_eq!(rocm.to_string(), "rocm:0");
/// assert!(Device::CPU.ensure_cpu("copy()").is_ok());
/// let err = rocm.ensure_cpu("copy()").unwrap_err();
/// assert_eq!(err.cause(), Cause::Device);
/// assert_eq!(err.message(), "copy() needs CPU memory, but the tensor is on device rocm:0");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Device {
    /// `DLDeviceType` (1 CPU, 2 CUDA, 3 CUDAHost, 10 ROCm, ...).
    pub device_type: u32,
    /// The device ordinal (0 for CPU).
    pub device_id: i32,
}

impl Device {
    /// Host memory, `(1, 0)`.
    pub const CPU: Self = Self {
        device_type: 1,
        device_id: 0,
    };

    /// Whether the memory is ordinary host memory that dlbridge may address.
    pub fn is_cpu(self) -> bool {
        self.device_type == DLDeviceType::CPU.0
    }

    /// Refuses non-CPU memory for a protocol that must read it; `protocol`
    /// names the reader in the message.
    ///
    /// # Errors
    ///
    /// `Buffer` ([`Cause::Device`]) for any device other than the CPU.
    pub fn ensure_cpu(self, protocol: &str) -> Result<()> {
        if self.is_cpu() {
            Ok(())
        } else {
            Err(Error::buffer(
                Cause::Device,
                format!("{protocol} needs CPU memory, but the tensor is on device {self}"),
            ))
        }
    }

    /// The DLPack `DLDevice`.
    pub fn to_dlpack(self) -> DLDevice {
        DLDevice {
            device_type: DLDeviceType(self.device_type),
            device_id: self.device_id,
        }
    }

    /// From a DLPack `DLDevice`.
    pub fn from_dlpack(device: DLDevice) -> Self {
        Self {
            device_type: device.device_type.0,
            device_id: device.device_id,
        }
    }

    /// The DLPack name of the device type (`"cpu"`, `"cuda"`, ...).
    pub fn type_name(self) -> &'static str {
        TYPE_NAMES
            .iter()
            .find(|&&(code, _)| code == self.device_type)
            .map_or("unknown", |&(_, name)| name)
    }
}

/// DLPack's device types and the names dlbridge prints them by.
const TYPE_NAMES: [(u32, &str); 16] = [
    (1, "cpu"),
    (2, "cuda"),
    (3, "cuda_host"),
    (4, "opencl"),
    (7, "vulkan"),
    (8, "metal"),
    (9, "vpi"),
    (10, "rocm"),
    (11, "rocm_host"),
    (12, "ext_dev"),
    (13, "cuda_managed"),
    (14, "oneapi"),
    (15, "webgpu"),
    (16, "hexagon"),
    (17, "maia"),
    (18, "trn"),
];

/// A device as a caller names one: a type, and an ordinal or none
/// (`"cuda"`, `torch.device("cuda")`: "the CUDA device", which is the
/// tensor's own when it is on one, else device 0).
///
/// ```
/// use dlbridge::{Device, DeviceRequest};
///
/// let gpu1 = Device { device_type: 2, device_id: 1 };
/// let any_gpu = DeviceRequest::parse("cuda").unwrap();
/// assert_eq!(any_gpu.resolve(Some(gpu1)), gpu1);
/// assert_eq!(any_gpu.resolve(Some(Device::CPU)), Device { device_type: 2, device_id: 0 });
/// assert_eq!(DeviceRequest::parse("cuda:1").unwrap().resolve(None), gpu1);
/// assert_eq!(DeviceRequest::parse("cpu").unwrap().resolve(None), Device::CPU);
/// assert!(DeviceRequest::parse("gpu").is_none() && DeviceRequest::parse("CPU").is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceRequest {
    /// `DLDeviceType`.
    pub device_type: u32,
    /// The ordinal, if the caller named one.
    pub device_id: Option<i32>,
}

impl DeviceRequest {
    /// A device string: a DLPack device type name (`"cpu"`, `"cuda"`,
    /// `"rocm"`, ...; lower case, as PyTorch and the Array API spell them),
    /// optionally followed by `:` and a decimal ordinal that fits `i32`.
    /// `None` for anything else (`"gpu"`, `"CPU"`, `"cuda:"`, `"cuda:-1"`).
    pub fn parse(text: &str) -> Option<Self> {
        let (name, index) = match text.split_once(':') {
            Some((name, index)) => (name, Some(index)),
            None => (text, None),
        };
        let device_type = TYPE_NAMES
            .iter()
            .find(|&&(_, known)| known == name)
            .map(|&(code, _)| code)?;
        let device_id = match index {
            None => None,
            Some(index) if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) => {
                Some(index.parse::<i32>().ok()?)
            }
            Some(_) => return None,
        };
        Some(Self {
            device_type,
            device_id,
        })
    }

    /// The device meant, given the one the tensor is on (if known): a
    /// request without an ordinal takes the tensor's when the types agree,
    /// and 0 otherwise.
    pub fn resolve(self, current: Option<Device>) -> Device {
        let device_id = self.device_id.unwrap_or_else(|| {
            current
                .filter(|c| c.device_type == self.device_type)
                .map_or(0, |c| c.device_id)
        });
        Device {
            device_type: self.device_type,
            device_id,
        }
    }
}

impl From<Device> for DeviceRequest {
    fn from(device: Device) -> Self {
        Self {
            device_type: device.device_type,
            device_id: Some(device.device_id),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.type_name(), self.device_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_strings() {
        let cuda = |id| {
            Some(DeviceRequest {
                device_type: 2,
                device_id: id,
            })
        };
        assert_eq!(DeviceRequest::parse("cuda"), cuda(None));
        assert_eq!(DeviceRequest::parse("cuda:0"), cuda(Some(0)));
        assert_eq!(
            DeviceRequest::parse("cuda:2147483647"),
            cuda(Some(i32::MAX))
        );
        assert_eq!(
            DeviceRequest::parse("rocm:1").map(|r| r.device_type),
            Some(10)
        );
        for bad in [
            "",
            "gpu",
            "CPU",
            "Cuda",
            "cuda:",
            "cuda:-1",
            "cuda:+1",
            "cuda: 1",
            "cuda:1:2",
            "cuda:2147483648",
            "unknown",
        ] {
            assert_eq!(DeviceRequest::parse(bad), None, "{bad:?}");
        }
        for (code, name) in TYPE_NAMES {
            let device = Device {
                device_type: code,
                device_id: 0,
            };
            assert_eq!(device.type_name(), name);
            assert_eq!(DeviceRequest::parse(name).unwrap().resolve(None), device);
        }
    }

    #[test]
    fn requests_resolve_against_the_tensors_device() {
        let gpu3 = Device {
            device_type: 2,
            device_id: 3,
        };
        let any_gpu = DeviceRequest::parse("cuda").unwrap();
        assert_eq!(any_gpu.resolve(Some(gpu3)), gpu3);
        assert_eq!(any_gpu.resolve(None).device_id, 0);
        assert_eq!(DeviceRequest::from(gpu3).resolve(Some(Device::CPU)), gpu3);
    }
}
