#![no_main]
//! Arbitrary shapes and byte strides: validated or refused, never a panic,
//! and an accepted layout's span really bounds every element.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<i64>, Option<Vec<i64>>, u8)| {
    let (shape, strides, itemsize) = input;
    let Ok(layout) = dlbridge::Layout::from_signed(&shape, strides.as_deref(), usize::from(itemsize)) else {
        return;
    };
    assert!(layout.ndim() <= dlbridge::MAX_NDIM);
    if layout.size() > 0 {
        let (low, high) = layout.span();
        // The first and last elements along every axis lie inside the span.
        for (&extent, &stride) in layout.shape().iter().zip(layout.strides()) {
            let far = (extent as isize - 1) * stride;
            assert!(far >= low && far + itemsize as isize <= high);
        }
    }
});
