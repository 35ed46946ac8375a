//! The Rust-only story: an ndarray goes out as DLPack, comes back as a
//! Tensor, is read as an ndarray view, and every owner is released once.
//!
//! Run with `cargo run --example handoff` (no Python needed:
//! `cargo run --no-default-features --example handoff`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dlbridge::{DType, Tensor, live_buffers};
use dlpark::ffi::{DLDataType, DLDevice};
use dlpark::metadata::Dynamic;
use ndarray::Array2;

/// A foreign producer's context: owns the data, counts its own release.
struct Producer {
    _data: Vec<f32>,
    released: Arc<AtomicUsize>,
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.released.fetch_add(1, Ordering::SeqCst);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Rust-owned memory out through DLPack and back, one allocation throughout.
    let array = Array2::from_shape_fn((2, 3), |(i, j)| (10 * i + j) as f32);
    let rust_ptr = array.as_ptr();
    let tensor = Tensor::from(array);
    println!(
        "Tensor::from(Array2)     data={:p} live_buffers={}",
        tensor.data_ptr(),
        live_buffers()
    );
    let dlpack = tensor.to_dlpack_versioned()?; // what a consumer (PyTorch, NumPy, ...) receives
    let imported = Tensor::try_from(dlpack)?;
    // SAFETY: nothing writes this memory while the view lives.
    let view = unsafe { imported.as_ndarray::<f32>() }?;
    println!(
        "imported back as ndarray data={:p} same={}\n{view}",
        view.as_ptr(),
        view.as_ptr() == rust_ptr
    );
    assert_eq!(view[[1, 2]], 12.0);
    drop(view);
    drop(tensor);
    assert_eq!(
        live_buffers(),
        1,
        "the imported view still holds the allocation"
    );
    drop(imported);
    assert_eq!(live_buffers(), 0);
    println!("after the last view:     live_buffers={}", live_buffers());

    // 2. A foreign DLPack producer: its deleter runs exactly once, when the last view goes.
    let released = Arc::new(AtomicUsize::new(0));
    let data: Vec<f32> = (0..6).map(|x| x as f32).collect();
    let data_ptr = data.as_ptr().cast_mut().cast();
    let producer = Producer {
        _data: data,
        released: Arc::clone(&released),
    };
    let mut init = Dynamic::new([3_i64, 2], [1_i64, 3]).initialize(Box::new(producer))?; // F-order
    init.set_data(data_ptr)
        .set_dtype(DLDataType::F32)
        .set_device(DLDevice::CPU);
    // SAFETY: data, shape and strides describe the Vec owned by the context,
    // which lives until the deleter runs.
    let foreign = unsafe { init.finish() };
    let t = Tensor::try_from(foreign)?;
    let again = t.view(DType::FLOAT32)?; // a second view, same owner
    println!(
        "foreign F-order tensor:  shape={:?} strides={:?}",
        t.shape(),
        t.strides()
    );
    // SAFETY: nothing writes this memory while the view lives.
    println!("{}", unsafe { t.as_ndarray::<f32>() }?);
    drop(t);
    println!(
        "deleter calls after dropping one view: {}",
        released.load(Ordering::SeqCst)
    );
    assert_eq!(released.load(Ordering::SeqCst), 0);
    std::thread::spawn(move || drop(again))
        .join()
        .expect("drop on another thread");
    println!(
        "deleter calls after the last view (dropped on another thread): {}",
        released.load(Ordering::SeqCst)
    );
    assert_eq!(released.load(Ordering::SeqCst), 1);
    Ok(())
}
