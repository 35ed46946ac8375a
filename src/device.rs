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
        match self.device_type {
            1 => "cpu",
            2 => "cuda",
            3 => "cuda_host",
            4 => "opencl",
            7 => "vulkan",
            8 => "metal",
            9 => "vpi",
            10 => "rocm",
            11 => "rocm_host",
            12 => "ext_dev",
            13 => "cuda_managed",
            14 => "oneapi",
            15 => "webgpu",
            16 => "hexagon",
            17 => "maia",
            18 => "trn",
            _ => "unknown",
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.type_name(), self.device_id)
    }
}
