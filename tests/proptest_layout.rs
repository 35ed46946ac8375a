//! Property tests (bounded, run in CI) for the pure-Rust validators: layouts,
//! dtypes, PEP 3118 formats and whole DLPack descriptors. None of them may
//! panic on any input, and what they accept must agree with brute force.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dlbridge::protocol::pep3118;
use dlbridge::{DType, ErrorKind, Layout, Tensor};
use dlpark::ffi::{DLDataType, DLDataTypeCode, DLDevice, DLManagedTensorVersioned};
use dlpark::metadata::Dynamic;
use proptest::prelude::*;

/// Byte offsets of every element, relative to the first, by enumeration.
fn offsets(shape: &[usize], strides: &[isize]) -> Vec<isize> {
    let mut out = vec![0isize];
    for (&extent, &stride) in shape.iter().zip(strides) {
        out = out
            .iter()
            .flat_map(|&base| (0..extent as isize).map(move |i| base + i * stride))
            .collect();
    }
    out
}

fn shape_and_strides() -> impl Strategy<Value = (Vec<usize>, Vec<isize>, usize)> {
    (0usize..5, prop::sample::select(vec![1usize, 2, 4, 8])).prop_flat_map(|(ndim, itemsize)| {
        (
            prop::collection::vec(0usize..5, ndim),
            prop::collection::vec(-40isize..40, ndim),
            Just(itemsize),
        )
    })
}

proptest! {
    // Under Miri (make miri) every step is interpreted, hundreds of times
    // slower: a few cases still take each path through its UB checks.
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 12 } else { 512 },
        ..ProptestConfig::default()
    })]

    #[test]
    fn layout_span_and_contiguity_match_brute_force((shape, strides, itemsize) in shape_and_strides()) {
        let layout = Layout::new(&shape, Some(&strides), itemsize).unwrap();
        let all = offsets(&shape, &strides);
        let size: usize = shape.iter().product();
        prop_assert_eq!(layout.size(), size);
        if size > 0 {
            let low = *all.iter().min().unwrap();
            let high = *all.iter().max().unwrap() + itemsize as isize;
            prop_assert_eq!(layout.span(), (low, high));
            let c_order: Vec<isize> = (0..size as isize).map(|i| i * itemsize as isize).collect();
            prop_assert_eq!(layout.is_c_contiguous(), all == c_order);
        } else {
            prop_assert!(layout.is_c_contiguous() && layout.is_f_contiguous());
        }
    }

    #[test]
    fn contiguous_layouts_fill_nbytes(shape in prop::collection::vec(0usize..6, 0..6), itemsize in 1usize..17) {
        let layout = Layout::contiguous(&shape, itemsize).unwrap();
        prop_assert!(layout.is_c_contiguous());
        prop_assert!(layout.check_within(0, layout.nbytes()).is_ok());
        if layout.nbytes() > 0 {
            prop_assert_eq!(layout.check_within(0, layout.nbytes() - 1).unwrap_err().kind(), ErrorKind::Buffer);
        }
    }

    #[test]
    fn signed_layouts_never_panic(
        shape in prop::collection::vec(any::<i64>(), 0..70),
        strides in prop::collection::vec(any::<i64>(), 0..70),
        itemsize in 0usize..64,
    ) {
        if let Ok(layout) = Layout::from_signed(&shape, Some(&strides), itemsize) {
            prop_assert!(layout.ndim() <= dlbridge::MAX_NDIM);
            prop_assert_eq!(layout.strides().len(), layout.shape().len());
        }
    }

    #[test]
    fn dtypes_never_panic_and_name_consistently(code in any::<u8>(), bits in any::<u8>(), lanes in any::<u16>()) {
        let triple = DLDataType { code: DLDataTypeCode(code), bits, lanes };
        if let Ok(dtype) = DType::from_dlpack(triple) {
            prop_assert!(dtype.itemsize() > 0);
            prop_assert_eq!(dtype.itemsize() * 8, usize::from(bits) * usize::from(lanes));
            if lanes == 1 {
                prop_assert_eq!(DType::from_name(&dtype.name()).unwrap(), dtype);
            }
        }
    }

    #[test]
    fn pep3118_formats_never_panic(format in "[@=<>!^]?[0-9]?[a-zA-Z?{}:]{0,4}") {
        if let Ok(dtype) = pep3118::parse_format(&format) {
            prop_assert!(dtype.itemsize() > 0);
        }
    }

    #[test]
    fn dlpack_descriptors_are_accepted_or_released_once(
        ndim in 0usize..8,
        raw_shape in prop::collection::vec(-2i64..6, 8),
        raw_strides in prop::collection::vec(-12i64..12, 8),
        code in 0u8..20,
        bits in prop::sample::select(vec![1u8, 4, 6, 8, 16, 32, 64, 128]),
        offset in 0u64..16,
    ) {
        let released = Arc::new(AtomicUsize::new(0));
        struct Ctx(#[allow(dead_code)] Vec<u8>, Arc<AtomicUsize>);
        impl Drop for Ctx {
            fn drop(&mut self) {
                self.1.fetch_add(1, Ordering::SeqCst);
            }
        }
        let data = vec![0u8; 16384];
        // Point into the middle so negative strides stay inside the block.
        let ptr = data.as_ptr().wrapping_add(8192).cast_mut().cast();
        let mut init = Dynamic::new(raw_shape[..ndim].to_vec(), raw_strides[..ndim].to_vec())
            .initialize_as::<DLManagedTensorVersioned>(Box::new(Ctx(data, Arc::clone(&released))))
            .unwrap();
        init.set_data(ptr)
            .set_dtype(DLDataType { code: DLDataTypeCode(code), bits, lanes: 1 })
            .set_device(DLDevice::CPU)
            .set_byte_offset(offset);
        // SAFETY: the context owns the block the descriptor points into.
        let managed = unsafe { init.finish() };
        match Tensor::try_from(managed) {
            Ok(tensor) => {
                prop_assert_eq!(tensor.ndim(), ndim);
                let (low, high) = tensor.layout().span();
                prop_assert!(low >= -8192 && high <= 8192, "span {:?} leaves the block", (low, high));
                let copy = tensor.copy().unwrap();
                prop_assert_eq!(copy.shape(), tensor.shape());
                let again = Tensor::try_from(tensor.to_dlpack_versioned().unwrap()).unwrap();
                prop_assert_eq!(again.strides(), tensor.strides());
                prop_assert_eq!(again.data_ptr(), tensor.data_ptr());
                drop((tensor, again));
            }
            Err(err) => prop_assert!(matches!(err.kind(), ErrorKind::Value | ErrorKind::Buffer)),
        }
        prop_assert_eq!(released.load(Ordering::SeqCst), 1);
    }
}
