#![no_main]
//! Arbitrary DLPack descriptors imported as a Tensor: accepted or refused,
//! never a panic, and the producer's deleter runs exactly once either way.
//! The data pointer is never dereferenced unless the layout fits the block.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dlpark::ffi::{DLDataType, DLDataTypeCode, DLDevice, DLDeviceType, DLManagedTensorVersioned};
use dlpark::metadata::Dynamic;
use libfuzzer_sys::fuzz_target;

struct Ctx(#[allow(dead_code)] Vec<u8>, Arc<AtomicUsize>);

impl Drop for Ctx {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

fuzz_target!(|input: (Vec<i64>, Vec<i64>, u8, u8, u16, u32, u16, bool)| {
    let (shape, mut strides, code, bits, lanes, device, offset, null_data) = input;
    strides.resize(shape.len(), 1);
    let released = Arc::new(AtomicUsize::new(0));
    let block = vec![0u8; 1 << 16];
    let ptr = if null_data {
        std::ptr::null_mut()
    } else {
        block.as_ptr().wrapping_add(1 << 15).cast_mut().cast()
    };
    let Ok(mut init) = Dynamic::new(shape, strides)
        .initialize_as::<DLManagedTensorVersioned>(Box::new(Ctx(block, Arc::clone(&released))))
    else {
        return;
    };
    init.set_data(ptr)
        .set_dtype(DLDataType { code: DLDataTypeCode(code), bits, lanes })
        .set_device(DLDevice { device_type: DLDeviceType(device % 20), device_id: 0 })
        .set_byte_offset(u64::from(offset));
    // SAFETY: the context owns the block; the importer only reads the data
    // below when the validated span lies inside it.
    let managed = unsafe { init.finish() };
    if let Ok(tensor) = dlbridge::Tensor::try_from(managed) {
        let (low, high) = tensor.layout().span();
        let start = (1isize << 15) + offset as isize;
        if tensor.device().is_cpu() && !null_data && tensor.nbytes() <= 1 << 20 && start + low >= 0 && start + high <= 1 << 16 {
            let _ = tensor.copy().expect("in-bounds CPU tensor copies");
        }
        let _ = tensor.to_dlpack_versioned();
    }
    assert_eq!(released.load(Ordering::SeqCst), 1);
});
