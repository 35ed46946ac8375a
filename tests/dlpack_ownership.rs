//! DLPack ownership from the Rust side: the producer's deleter runs exactly
//! once, on success, on refusal, and from any thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

mod common;

use common::{Spec, produce};
use dlbridge::{DType, ErrorKind, Tensor, live_buffers};
use dlpark::DlpackFlags;
use dlpark::ffi::{DLDataType, DLDevice, DLManagedTensor, DLManagedTensorVersioned};

/// `live_buffers` counts the whole process: the tests that read it exactly
/// take turns.
static LIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn tensor_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Tensor>();
}

#[test]
fn deleter_runs_once_after_the_last_view_for_both_abis() {
    let released = Arc::new(AtomicUsize::new(0));
    let legacy = Tensor::try_from(produce::<DLManagedTensor>(Spec::default(), &released)).unwrap();
    let versioned = Tensor::try_from(produce::<DLManagedTensorVersioned>(
        Spec::default(),
        &released,
    ))
    .unwrap();
    let views = [legacy.clone(), versioned.view(DType::INT32).unwrap()];
    let reexported = Tensor::try_from(legacy.to_dlpack_versioned().unwrap()).unwrap();
    drop((legacy, versioned));
    assert_eq!(released.load(Ordering::SeqCst), 0);
    drop(views);
    assert_eq!(released.load(Ordering::SeqCst), 1, "versioned released");
    drop(reexported);
    assert_eq!(
        released.load(Ordering::SeqCst),
        2,
        "legacy released after re-export"
    );
}

#[test]
fn refusals_release_the_producer_once() {
    let cases: Vec<(Spec, ErrorKind)> = vec![
        (
            Spec {
                null_data: true,
                ..Spec::default()
            },
            ErrorKind::Buffer,
        ),
        (
            Spec {
                dtype: DLDataType {
                    code: dlpark::ffi::DLDataTypeCode(99),
                    bits: 8,
                    lanes: 1,
                },
                ..Spec::default()
            },
            ErrorKind::Buffer,
        ),
        (
            Spec {
                shape: vec![2, -3],
                ..Spec::default()
            },
            ErrorKind::Value,
        ),
        (
            Spec {
                shape: vec![1; 65],
                strides: vec![1; 65],
                ..Spec::default()
            },
            ErrorKind::Value,
        ),
        (
            Spec {
                shape: vec![3],
                strides: vec![i64::MAX / 2],
                ..Spec::default()
            },
            ErrorKind::Value,
        ),
    ];
    for (spec, kind) in cases {
        let released = Arc::new(AtomicUsize::new(0));
        let err =
            Tensor::try_from(produce::<DLManagedTensorVersioned>(spec, &released)).unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        assert_eq!(
            released.load(Ordering::SeqCst),
            1,
            "released once after: {err}"
        );
    }
}

#[test]
fn flags_offsets_and_devices_are_kept() {
    let released = Arc::new(AtomicUsize::new(0));
    let spec = Spec {
        shape: vec![3],
        strides: vec![1],
        byte_offset: 8,
        flags: DlpackFlags::READ_ONLY,
        ..Spec::default()
    };
    let t = Tensor::try_from(produce::<DLManagedTensorVersioned>(spec, &released)).unwrap();
    assert!(t.readonly());
    assert_eq!(
        // SAFETY: nothing writes this memory while the view lives.
        unsafe { t.as_ndarray::<f32>() }
            .unwrap()
            .as_ptr()
            .cast::<u8>(),
        t.data_ptr().cast_const()
    );
    let bytes = t.view(DType::UINT32).unwrap();
    // SAFETY: nothing writes this memory while the view lives.
    let words = unsafe { bytes.as_ndarray::<u32>() }.unwrap();
    assert_eq!(
        words[0],
        u32::from_ne_bytes([8, 9, 10, 11]),
        "byte_offset honoured"
    );

    let cuda = Spec {
        device: DLDevice::cuda(1),
        ..Spec::default()
    };
    let t = Tensor::try_from(produce::<DLManagedTensorVersioned>(cuda, &released)).unwrap();
    assert_eq!((t.device().device_type, t.device().device_id), (2, 1));
    assert_eq!(t.copy().unwrap_err().kind(), ErrorKind::Buffer);
    assert_eq!(
        // SAFETY: nothing writes this memory while the view lives.
        unsafe { t.as_ndarray::<f32>() }.unwrap_err().kind(),
        ErrorKind::Buffer
    );
    let out = t.to_dlpack_versioned().unwrap();
    let round = Tensor::try_from(out).unwrap();
    assert_eq!(round.device(), t.device());
    assert_eq!(round.data_ptr(), t.data_ptr());
}

#[test]
fn owners_release_from_other_threads() {
    let _turn = LIVE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let start = live_buffers();
    let released = Arc::new(AtomicUsize::new(0));
    let foreign = Tensor::try_from(produce::<DLManagedTensor>(Spec::default(), &released)).unwrap();
    let rust = Tensor::zeros(&[1024], DType::FLOAT64).unwrap();
    let exported = rust.to_dlpack_versioned().unwrap();
    assert!(live_buffers() > start);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (f, r) = (foreign.clone(), rust.clone());
            std::thread::spawn(move || drop((f, r)))
        })
        .collect();
    drop((foreign, rust));
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(released.load(Ordering::SeqCst), 1);
    std::thread::spawn(move || drop(exported)).join().unwrap();
    assert_eq!(live_buffers(), start);
}

/// An owner one tensor holds alone is kept inline until the tensor is first
/// cloned: every way out of that state releases the producer exactly once.
#[test]
fn a_uniquely_held_owner_is_released_once_whatever_shares_it() {
    let released = Arc::new(AtomicUsize::new(0));
    let count = || released.load(Ordering::SeqCst);
    let import = || {
        Tensor::try_from(produce::<DLManagedTensorVersioned>(
            Spec::default(),
            &released,
        ))
        .unwrap()
    };
    // Imported and dropped: no clone, no shared block.
    drop(import());
    assert_eq!(count(), 1);
    // Imported and exported again by move: the export holds it alone.
    let exported = import().into_dlpack().unwrap();
    assert_eq!(count(), 1);
    drop(Tensor::try_from(exported).unwrap());
    assert_eq!(count(), 2);
    // A clone exported by move, the original dropped first, then the export.
    let original = import();
    let exported = original.clone().into_dlpack().unwrap();
    drop(original);
    assert_eq!(count(), 2);
    drop(exported);
    assert_eq!(count(), 3);
    // An export by reference of a unique tensor, dropped before it.
    let original = import();
    let exported = original.to_dlpack_versioned().unwrap();
    drop(original);
    assert_eq!(count(), 3);
    drop(exported);
    assert_eq!(count(), 4);
    // Clones racing on threads (the first clone moves the owner to a block).
    let original = import();
    let clones: Vec<Tensor> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4).map(|_| scope.spawn(|| original.clone())).collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    drop(original);
    // Four clones still hold it: not released yet.
    assert_eq!(count(), 4);
    let mut clones = clones;
    let last = clones.pop().unwrap();
    std::thread::scope(|scope| {
        for clone in clones {
            scope.spawn(move || drop(clone));
        }
    });
    // Three clones dropped on their threads; the last one still holds it.
    assert_eq!(count(), 4);
    drop(last);
    assert_eq!(count(), 5);
}

/// A Rust array held alone, cloned, exported and released: `live_buffers`
/// is exact, and the safe mutable view sees the clones come and go.
#[test]
fn a_uniquely_held_array_is_freed_once_and_mutable_alone_again() {
    let _turn = LIVE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let start = live_buffers();
    let mut t = Tensor::from(ndarray::Array2::<f32>::zeros((4, 4)));
    assert_eq!(live_buffers(), start + 1);
    assert!(t.as_ndarray_mut::<f32>().is_ok(), "held alone");
    let clone = t.clone();
    assert!(t.as_ndarray_mut::<f32>().is_err(), "shared with a clone");
    let exported = clone.into_dlpack().unwrap();
    assert!(t.as_ndarray_mut::<f32>().is_err(), "shared with an export");
    drop(exported);
    assert!(t.as_ndarray_mut::<f32>().is_ok(), "alone again");
    drop(t);
    assert_eq!(live_buffers(), start);
    // Exported by move and released by the consumer alone.
    let exported = Tensor::from(vec![1.0f64; 3]).into_dlpack().unwrap();
    assert_eq!(live_buffers(), start + 1);
    drop(exported);
    assert_eq!(live_buffers(), start);
}

/// An array exported straight to DLPack (`IntoDlpack`, no `Tensor` in
/// between): its buffer is counted while the managed tensor lives and
/// freed once, by the consumer's deleter call, by a drop, or after a
/// re-import on another thread; a refused `ArrayD` counts nothing.
#[test]
fn an_array_exported_straight_is_freed_once_by_its_consumer() {
    use dlbridge::IntoDlpack;
    let _turn = LIVE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let start = live_buffers();
    // The consumer calls the raw deleter.
    let raw = ndarray::Array2::<f32>::zeros((4, 4))
        .into_dlpack()
        .unwrap()
        .into_raw();
    assert_eq!(live_buffers(), start + 1);
    // SAFETY: `raw` was just released by `into_raw`, so this call owns it;
    // its deleter runs exactly once.
    unsafe { ((*raw).deleter.unwrap())(raw) };
    assert_eq!(live_buffers(), start);
    // Dropped as a `Managed`.
    drop(ndarray::arr0(1u8).into_dlpack().unwrap());
    assert_eq!(live_buffers(), start);
    // Imported back, shared, and released from other threads.
    let array = ndarray::Array::from_shape_fn((2, 3, 4), |(i, j, k)| (i + j + k) as f64);
    let data = array.as_ptr();
    let tensor = Tensor::try_from(array.into_dlpack().unwrap()).unwrap();
    assert_eq!(tensor.data_ptr().cast_const(), data.cast());
    assert_eq!(live_buffers(), start + 1);
    let clones: Vec<Tensor> = (0..3).map(|_| tensor.clone()).collect();
    drop(tensor);
    std::thread::scope(|scope| {
        for clone in clones {
            scope.spawn(move || drop(clone));
        }
    });
    assert_eq!(live_buffers(), start);
    // Refused before anything is counted.
    let wide = ndarray::ArrayD::<u8>::zeros(ndarray::IxDyn(&[1; 65]));
    assert_eq!(
        wide.into_dlpack().err().map(|e| e.kind()),
        Some(ErrorKind::Value)
    );
    assert_eq!(live_buffers(), start);
}
