//! What the integration tests share: a DLPack producer whose deleter is
//! counted (`Counted`), with whatever descriptor a test asks for (`Spec`).

// Each test crate uses the part it needs.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dlpark::ffi::{DLDataType, DLDevice};
use dlpark::metadata::Dynamic;
use dlpark::{DlpackFlags, Managed, ManagedTensorBase};

/// The producer's context: its 64 bytes, and a count of its deleter's runs.
pub struct Counted {
    _data: Vec<u64>,
    released: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.released.fetch_add(1, Ordering::SeqCst);
    }
}

/// A test descriptor: the defaults are a 2×3 C-contiguous float32 on the CPU.
pub struct Spec {
    pub shape: Vec<i64>,
    pub strides: Vec<i64>,
    pub dtype: DLDataType,
    pub device: DLDevice,
    pub flags: DlpackFlags,
    pub null_data: bool,
    pub byte_offset: u64,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            shape: vec![2, 3],
            strides: vec![3, 1],
            dtype: DLDataType::F32,
            device: DLDevice::CPU,
            flags: DlpackFlags::empty(),
            null_data: false,
            byte_offset: 0,
        }
    }
}

/// A managed tensor of `spec` over the producer's bytes 0, 1, ..., 63;
/// `released` counts its deleter.
pub fn produce<M: ManagedTensorBase>(spec: Spec, released: &Arc<AtomicUsize>) -> Managed<M> {
    // Bytes 0, 1, ..., 63, in u64 words so the block is aligned for every
    // dtype the tests view it as (a Vec<u8> is only 1-aligned: Miri says so).
    let data: Vec<u64> = (0..8u8)
        .map(|w| u64::from_ne_bytes(std::array::from_fn(|i| w * 8 + i as u8)))
        .collect();
    let ptr = if spec.null_data {
        std::ptr::null_mut()
    } else {
        data.as_ptr().cast_mut().cast()
    };
    let ctx = Box::new(Counted {
        _data: data,
        released: Arc::clone(released),
    });
    let mut init = Dynamic::new(spec.shape, spec.strides)
        .initialize_as::<M>(ctx)
        .unwrap();
    init.set_data(ptr)
        .set_dtype(spec.dtype)
        .set_device(spec.device)
        .set_byte_offset(spec.byte_offset);
    // SAFETY: test descriptors; flags describe test memory only.
    unsafe { init.set_flags_unchecked(spec.flags) };
    // SAFETY: the Vec in the context outlives the managed tensor.
    unsafe { init.finish() }
}
