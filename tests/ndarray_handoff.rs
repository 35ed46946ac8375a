//! The Rust handoff: every element type through `as_ndarray` (any strides,
//! 0-d, empty, 64-d), fixed-rank views, the mutable-view rules, and owners
//! released exactly once when the last view goes, on any thread.
//!
//! `live_buffers()` is process-wide, so every test here takes `serial()`.

use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use dlbridge::{DType, Element, ErrorKind, Tensor, TypedTensor, live_buffers};
use dlpark::DlpackFlags;
use dlpark::ffi::{DLDevice, DLManagedTensorVersioned};
use dlpark::metadata::Dynamic;
use half::{bf16, f16};
use ndarray::{Array, ArrayD, Axis, Ix0, Ix1, Ix2, Ix3, IxDyn, ShapeBuilder, arr0, array, s};
use num_complex::Complex;

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Element types with distinct, checkable sample values.
trait Sample: Element + PartialEq + Debug {
    fn sample(i: usize) -> Self;
}

macro_rules! sample_int {
    ($($t:ty),*) => {$(
        impl Sample for $t {
            fn sample(i: usize) -> Self {
                (i % 100) as $t
            }
        }
    )*};
}
sample_int!(i8, i16, i32, i64, u8, u16, u32, u64);

impl Sample for bool {
    fn sample(i: usize) -> Self {
        i.is_multiple_of(3)
    }
}
impl Sample for f16 {
    fn sample(i: usize) -> Self {
        f16::from_f32(i as f32 * 0.5)
    }
}
impl Sample for bf16 {
    fn sample(i: usize) -> Self {
        bf16::from_f32(i as f32 * 0.5)
    }
}
impl Sample for f32 {
    fn sample(i: usize) -> Self {
        i as f32 * 0.25
    }
}
impl Sample for f64 {
    fn sample(i: usize) -> Self {
        i as f64 * 0.125
    }
}
impl Sample for Complex<f32> {
    fn sample(i: usize) -> Self {
        Complex::new(i as f32, -(i as f32))
    }
}
impl Sample for Complex<f64> {
    fn sample(i: usize) -> Self {
        Complex::new(-(i as f64), i as f64 * 2.0)
    }
}

/// A foreign producer's context: owns the data, counts its own release.
struct Producer<T> {
    _data: Vec<T>,
    released: Arc<AtomicUsize>,
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        self.released.fetch_add(1, Ordering::SeqCst);
    }
}

/// Memory from a (simulated) foreign DLPack producer: element strides,
/// byte offset and READ_ONLY as given.
fn foreign<T: Element>(
    mut data: Vec<T>,
    shape: &[i64],
    strides: &[i64],
    byte_offset: u64,
    readonly: bool,
    released: &Arc<AtomicUsize>,
) -> Tensor {
    let ptr = data.as_mut_ptr().cast();
    let ctx = Box::new(Producer {
        _data: data,
        released: Arc::clone(released),
    });
    let mut init = Dynamic::new(shape.to_vec(), strides.to_vec())
        .initialize_as::<DLManagedTensorVersioned>(ctx)
        .unwrap();
    init.set_data(ptr)
        .set_dtype(T::DTYPE.to_dlpack())
        .set_device(DLDevice::CPU)
        .set_byte_offset(byte_offset);
    let flags = if readonly {
        DlpackFlags::READ_ONLY
    } else {
        DlpackFlags::empty()
    };
    // SAFETY: the flags describe memory this test owns.
    unsafe { init.set_flags_unchecked(flags) };
    // SAFETY: the Vec in the context outlives the managed tensor, and the
    // shape/strides/offset given by each test stay inside it.
    Tensor::try_from(unsafe { init.finish() }).unwrap()
}

fn every_layout<T: Sample>() {
    let a = Array::from_shape_fn((3, 4, 5), |(i, j, k)| T::sample(i * 20 + j * 5 + k));
    let expect = a.clone();

    // C order, zero-copy both ways: the tensor's pointer is the array's.
    let ptr = a.as_ptr();
    let t = Tensor::from(a);
    assert_eq!(t.dtype(), T::DTYPE);
    assert_eq!(t.data_ptr().cast_const(), ptr.cast::<u8>());
    let size = size_of::<T>() as isize;
    assert_eq!(t.strides(), &[20 * size, 5 * size, size]);
    // SAFETY: nothing writes this memory while the view lives.
    let v = unsafe { t.as_ndarray::<T>() }.unwrap();
    assert_eq!(v.as_ptr(), ptr);
    assert_eq!(v, expect.view().into_dyn());
    // SAFETY: nothing writes this memory while the view lives.
    let fixed = unsafe { t.as_ndarray_dim::<T, Ix3>() }.unwrap();
    assert_eq!(fixed, expect.view());
    assert_eq!(
        // SAFETY: nothing writes this memory while the view lives.
        unsafe { t.as_ndarray_dim::<T, Ix2>() }.unwrap_err().kind(),
        ErrorKind::Type
    );

    // F order.
    let f = expect.clone().reversed_axes();
    let f_expect = f.clone();
    let tf = Tensor::from(f);
    assert_eq!(tf.strides(), &[size, 5 * size, 20 * size]);
    assert_eq!(
        // SAFETY: nothing writes this memory while the view lives.
        unsafe { tf.as_ndarray::<T>() }.unwrap(),
        f_expect.view().into_dyn()
    );

    // Negative and stepped strides, in Rust-owned memory ...
    let mut n = expect.clone();
    n.invert_axis(Axis(1));
    n.slice_collapse(s![..;2, .., 1..;-2]);
    let n_expect = n.clone();
    let n_first = n.as_ptr();
    let tn = Tensor::from(n);
    assert!(tn.strides().iter().filter(|&&s| s < 0).count() == 2);
    // SAFETY: nothing writes this memory while the view lives.
    let vn = unsafe { tn.as_ndarray::<T>() }.unwrap();
    assert_eq!(vn, n_expect.view().into_dyn());
    assert_eq!(vn.as_ptr(), n_first, "index [0, 0, 0] is the data pointer");
    assert_eq!(vn[[1, 3, 1]], n_expect[[1, 3, 1]]);
    // ... and through DLPack, where the owner is a managed tensor.
    let imported = Tensor::try_from(tn.to_dlpack_versioned().unwrap()).unwrap();
    assert_eq!(imported.data_ptr(), tn.data_ptr());
    assert_eq!(
        // SAFETY: nothing writes this memory while the view lives.
        unsafe { imported.as_ndarray::<T>() }.unwrap(),
        n_expect.view().into_dyn()
    );

    // A foreign producer with negative element strides and a byte offset.
    let released = Arc::new(AtomicUsize::new(0));
    let data: Vec<T> = (0..12).map(T::sample).collect();
    let ft = foreign(
        data,
        &[3, 4],
        &[-4, -1],
        (11 * size_of::<T>()) as u64,
        false,
        &released,
    );
    // SAFETY: nothing writes this memory while the view lives.
    let fv = unsafe { ft.as_ndarray_dim::<T, Ix2>() }.unwrap();
    let want = Array::from_shape_fn((3, 4), |(i, j)| T::sample(11 - 4 * i - j));
    assert_eq!(fv, want.view());
    drop(ft);
    assert_eq!(released.load(Ordering::SeqCst), 1);

    // 0-d.
    let zero_d = Tensor::from(arr0(T::sample(7)));
    assert_eq!(zero_d.ndim(), 0);
    assert_eq!(
        // SAFETY: nothing writes this memory while the view lives.
        unsafe { zero_d.as_ndarray::<T>() }.unwrap()[[]],
        T::sample(7)
    );
    assert_eq!(
        // SAFETY: nothing writes this memory while the view lives.
        unsafe { zero_d.as_ndarray_dim::<T, Ix0>() }.unwrap()[()],
        T::sample(7)
    );

    // Empty, including an inverted empty axis.
    let mut e = Array::<T, _>::from_shape_vec((2, 0, 3), Vec::new()).unwrap();
    e.invert_axis(Axis(2));
    let te = Tensor::from(e);
    // SAFETY: nothing writes this memory while the view lives.
    let ve = unsafe { te.as_ndarray::<T>() }.unwrap();
    assert_eq!(ve.shape(), &[2, 0, 3]);
    assert_eq!(ve.len(), 0);
    assert_eq!(ve.iter().count(), 0);

    // 64 axes, three of them longer than 1.
    let mut shape = vec![1usize; 64];
    (shape[0], shape[31], shape[63]) = (2, 3, 2);
    let deep = ArrayD::from_shape_fn(IxDyn(&shape), |ix| {
        T::sample(ix[0] * 100 + ix[31] * 10 + ix[63])
    });
    let deep_expect = deep.clone();
    let td = Tensor::try_from(deep).unwrap();
    assert_eq!(td.ndim(), 64);
    // SAFETY: nothing writes this memory while the view lives.
    let vd = unsafe { td.as_ndarray::<T>() }.unwrap();
    assert_eq!(vd, deep_expect.view());
    let mut ix = vec![0usize; 64];
    (ix[0], ix[31], ix[63]) = (1, 2, 1);
    assert_eq!(vd[IxDyn(&ix)], T::sample(121));
    let td_back = Tensor::try_from(td.to_dlpack_versioned().unwrap()).unwrap();
    assert_eq!(
        // SAFETY: nothing writes this memory while the view lives.
        unsafe { td_back.as_ndarray::<T>() }.unwrap(),
        deep_expect.view()
    );

    // Mutable: write through the safe path, read the data back.
    let mut m = Tensor::from(Array::from_elem((2, 3).f(), T::sample(0)));
    m.as_ndarray_mut_dim::<T, Ix2>()
        .unwrap()
        .assign(&Array::from_shape_fn((2, 3), |(i, j)| T::sample(i * 3 + j)));
    // SAFETY: nothing writes this memory while the view lives.
    let got = unsafe { m.as_ndarray_dim::<T, Ix2>() }.unwrap();
    assert_eq!(got[[1, 2]], T::sample(5));
    assert_eq!(got[[0, 1]], T::sample(1));
}

#[test]
fn every_element_type_through_every_layout() {
    let _serial = serial();
    every_layout::<bool>();
    every_layout::<i8>();
    every_layout::<i16>();
    every_layout::<i32>();
    every_layout::<i64>();
    every_layout::<u8>();
    every_layout::<u16>();
    every_layout::<u32>();
    every_layout::<u64>();
    every_layout::<f16>();
    every_layout::<bf16>();
    every_layout::<f32>();
    every_layout::<f64>();
    every_layout::<Complex<f32>>();
    every_layout::<Complex<f64>>();
}

#[test]
fn views_refuse_what_they_cannot_express() {
    let _serial = serial();
    let t = Tensor::from(array![[1.0f32, 2.0], [3.0, 4.0]]);
    // SAFETY: nothing writes this memory while the view lives.
    let err = unsafe { t.as_ndarray::<f64>() }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Type);
    assert_eq!(
        err.message(),
        "expected dtype float64, got float32 (shape [2, 2])"
    );
    // SAFETY: nothing writes this memory while the view lives.
    let err = unsafe { t.as_ndarray_dim::<f32, Ix1>() }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Type);
    assert_eq!(
        err.message(),
        "expected a 1-d tensor, got a 2-d tensor (shape [2, 2])"
    );

    // A pointer one byte off the element alignment.
    let released = Arc::new(AtomicUsize::new(0));
    let odd = foreign(vec![0u16; 8], &[4], &[1], 1, false, &released);
    // SAFETY: nothing writes this memory while the view lives.
    let err = unsafe { odd.as_ndarray::<u16>() }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Buffer);
    assert!(err.message().contains("not aligned"), "{err}");
    let as_i16 = odd.view(DType::INT16).unwrap();
    // SAFETY: nothing writes this memory while the view lives.
    assert!(unsafe { as_i16.as_ndarray::<u16>() }.is_err());
    drop(as_i16);
    drop(odd);
    assert_eq!(released.load(Ordering::SeqCst), 1);
}

#[test]
fn bool_views_check_every_byte() {
    let _serial = serial();
    let bytes = Tensor::from(array![[0u8, 1, 1], [1, 0, 2]]);
    let as_bool = bytes.view(DType::BOOL).unwrap();
    // SAFETY: nothing writes this memory while the view lives.
    let err = unsafe { as_bool.as_ndarray::<bool>() }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Value);
    assert_eq!(
        err.message(),
        "not a valid bool tensor: the byte at index [1, 2] is 2, not 0 or 1"
    );
    assert!(TypedTensor::<bool, Ix2>::new(as_bool.clone()).is_err());
    // The index is the logical one, whatever the strides.
    let mut flipped = Array::from_shape_vec((2, 3), vec![0u8, 1, 1, 1, 0, 7]).unwrap();
    flipped.invert_axis(Axis(0));
    flipped.invert_axis(Axis(1));
    let flipped = Tensor::from(flipped).view(DType::BOOL).unwrap();
    // SAFETY: nothing writes this memory while the view lives.
    let err = unsafe { flipped.as_ndarray::<bool>() }.unwrap_err();
    assert!(err.message().contains("index [0, 0] is 7"), "{err}");
    // Valid bytes view fine, and as_ndarray_mut checks too.
    let mut ok = Tensor::from(vec![0u8, 1, 1]).view(DType::BOOL).unwrap();
    assert_eq!(
        // SAFETY: nothing writes this memory while the view lives.
        unsafe { ok.as_ndarray_dim::<bool, Ix1>() }
            .unwrap()
            .to_vec(),
        [false, true, true]
    );
    ok.as_ndarray_mut::<bool>().unwrap()[[0]] = true;
    assert_eq!(
        // SAFETY: nothing writes this memory while the view lives.
        unsafe { ok.as_ndarray_dim::<bool, Ix1>() }
            .unwrap()
            .to_vec(),
        [true; 3]
    );
    let mut bad = Tensor::from(vec![3u8]).view(DType::BOOL).unwrap();
    assert_eq!(
        bad.as_ndarray_mut::<bool>().unwrap_err().kind(),
        ErrorKind::Value
    );
}

#[test]
fn safe_mutable_views_need_exclusive_rust_owned_memory() {
    let _serial = serial();
    let mut t = Tensor::from(vec![1i32, 2, 3, 4]);
    let ptr = t.data_ptr();
    {
        let mut v = t.as_ndarray_mut::<i32>().unwrap();
        assert_eq!(v.as_mut_ptr().cast::<u8>(), ptr, "no copy");
        v.mapv_inplace(|x| x * 10);
    }
    assert_eq!(
        // SAFETY: nothing writes this memory while the view lives.
        unsafe { t.as_ndarray::<i32>() }
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        [10, 20, 30, 40]
    );

    let shared = |t: &mut Tensor| {
        let err = t.as_ndarray_mut::<i32>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Buffer);
        assert!(err.message().contains("share this memory"), "{err}");
    };
    // Every other view of the owner blocks the safe path while it lives.
    let clone = t.clone();
    shared(&mut t);
    drop(clone);
    let as_u32 = t.view(DType::UINT32).unwrap();
    shared(&mut t);
    drop(as_u32);
    let readonly = t.to_readonly();
    shared(&mut t);
    drop(readonly);
    let export = t.to_dlpack_versioned().unwrap();
    shared(&mut t);
    thread::spawn(move || drop(export)).join().unwrap();
    t.as_ndarray_mut::<i32>().unwrap()[[0]] = 5;

    // Imported memory is never provably exclusive, even with one view.
    let mut imported = Tensor::try_from(t.to_dlpack_versioned().unwrap()).unwrap();
    let err = imported.as_ndarray_mut::<i32>().unwrap_err();
    assert!(err.message().contains("imported through dlpack"), "{err}");
    // The unchecked path writes it (nothing else touches it meanwhile).
    {
        // SAFETY: `t` and `imported` are not used while the view lives.
        let mut v = unsafe { imported.as_ndarray_mut_unchecked::<i32, Ix1>() }.unwrap();
        v[3] = -1;
    }
    drop(imported);
    assert_eq!(
        // SAFETY: nothing writes this memory while the view lives.
        unsafe { t.as_ndarray::<i32>() }
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        [5, 20, 30, -1]
    );

    // Fresh allocations and copies are exclusive.
    let mut z = Tensor::zeros(&[2, 2], DType::FLOAT64).unwrap();
    z.as_ndarray_mut::<f64>().unwrap().fill(1.5);
    let mut c = z.copy().unwrap();
    assert_ne!(c.data_ptr(), z.data_ptr());
    c.as_ndarray_mut::<f64>().unwrap()[[0, 0]] = 0.0;
    // SAFETY: nothing writes this memory while the view lives.
    assert_eq!(unsafe { z.as_ndarray::<f64>() }.unwrap().sum(), 6.0);
    // SAFETY: nothing writes this memory while the view lives.
    assert_eq!(unsafe { c.as_ndarray::<f64>() }.unwrap().sum(), 4.5);
    // Dtype and rank are still checked.
    assert_eq!(
        c.as_ndarray_mut::<f32>().unwrap_err().kind(),
        ErrorKind::Type
    );
    assert_eq!(
        c.as_ndarray_mut_dim::<f64, Ix3>().unwrap_err().kind(),
        ErrorKind::Type
    );
}

#[test]
fn readonly_memory_is_never_viewed_mutably() {
    let _serial = serial();
    let t = Tensor::from(vec![1.0f32; 4]);
    // The only view left is readonly: the exclusivity check would pass.
    let mut ro = t.to_readonly();
    drop(t);
    let err = ro.as_ndarray_mut::<f32>().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Buffer);
    assert!(err.message().contains("readonly"), "{err}");
    // SAFETY: nothing else views the memory; the call must refuse anyway.
    let err = unsafe { ro.as_ndarray_mut_unchecked::<f32, IxDyn>() }.unwrap_err();
    assert!(err.message().contains("readonly"), "{err}");
    let mut typed = TypedTensor::<f32>::new(ro).unwrap();
    assert!(typed.view_mut().is_err());
    // SAFETY: as above.
    assert!(unsafe { typed.view_mut_unchecked() }.is_err());
    // SAFETY: nothing writes this memory while the view lives.
    assert_eq!(unsafe { typed.view() }.sum(), 4.0, "reading is fine");

    // DLPack READ_ONLY from a foreign producer.
    let released = Arc::new(AtomicUsize::new(0));
    let flagged = foreign(vec![0u8; 4], &[4], &[1], 0, true, &released);
    assert!(flagged.readonly());
    // SAFETY: as above.
    let err = unsafe { flagged.as_ndarray_mut_unchecked::<u8, Ix1>() }.unwrap_err();
    assert!(err.message().contains("readonly"), "{err}");
    drop(flagged);
    assert_eq!(released.load(Ordering::SeqCst), 1);
}

#[test]
fn self_overlapping_layouts_are_not_viewed_mutably() {
    let _serial = serial();
    let released = Arc::new(AtomicUsize::new(0));
    // A writable broadcast (stride 0), as `torch.expand` produces.
    let broadcast = foreign((0..3u64).collect(), &[4, 3], &[0, 1], 0, false, &released);
    // SAFETY: nothing writes this memory while the view lives.
    let v = unsafe { broadcast.as_ndarray_dim::<u64, Ix2>() }.unwrap();
    assert_eq!(v.row(3).to_vec(), [0, 1, 2], "shared views may repeat");
    // SAFETY: nothing else views the memory; the call must refuse anyway.
    let err = unsafe { broadcast.as_ndarray_mut_unchecked::<u64, Ix2>() }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Buffer);
    assert!(err.message().contains("two indices"), "{err}");
    // Overlapping rows.
    let rows = foreign((0..8u64).collect(), &[3, 4], &[2, 1], 0, false, &released);
    // SAFETY: as above.
    assert!(unsafe { rows.as_ndarray_mut_unchecked::<u64, Ix2>() }.is_err());
    drop((broadcast, rows));
    assert_eq!(released.load(Ordering::SeqCst), 2);
}

#[test]
fn typed_tensors_check_once() {
    let _serial = serial();
    let m: TypedTensor<f64, Ix2> = Tensor::from(array![[1.0, 2.0], [3.0, 4.0]])
        .try_into()
        .unwrap();
    // SAFETY: nothing writes this memory while the view lives.
    assert_eq!(unsafe { m.view() }.diag().sum(), 5.0);
    assert_eq!(m.shape(), &[2, 2], "derefs to the tensor");
    let ptr = m.data_ptr();
    let back: Tensor = m.clone().into_tensor();
    assert_eq!(back.data_ptr(), ptr);
    // Typed views travel to other threads.
    // SAFETY: nothing writes this memory while the view lives.
    let sum = thread::spawn(move || unsafe { m.view() }.sum())
        .join()
        .unwrap();
    assert_eq!(sum, 10.0);

    let err = TypedTensor::<f32, Ix2>::new(back.clone()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Type);
    assert!(
        err.message()
            .contains("expected dtype float32, got float64")
    );
    let err = TypedTensor::<f64, Ix3>::new(back).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Type);
    assert!(
        err.message()
            .contains("expected a 3-d tensor, got a 2-d tensor")
    );

    let mut owned = TypedTensor::from(Array::<u8, _>::zeros((2, 2)));
    owned.view_mut().unwrap()[[1, 1]] = 9;
    assert_eq!(owned.view_mut().unwrap()[[1, 1]], 9);
    let other = owned.clone();
    assert!(owned.view_mut().is_err(), "a clone shares the memory");
    assert!(owned.may_share_memory(&other));
}

#[test]
fn may_share_memory_compares_byte_spans() {
    let _serial = serial();
    let a = Tensor::from(Array::from_shape_fn((4, 4), |(i, j)| (i * 4 + j) as u8));
    let b = Tensor::from(vec![0u8; 16]);
    assert!(a.may_share_memory(&a.clone()));
    assert!(!a.may_share_memory(&b));
    let imported = Tensor::try_from(a.to_dlpack_versioned().unwrap()).unwrap();
    assert!(
        a.may_share_memory(&imported),
        "different owners, same bytes"
    );
    let empty = Tensor::zeros(&[0], DType::UINT8).unwrap();
    assert!(!a.may_share_memory(&empty));
}

#[test]
fn owner_is_released_once_after_the_last_view_on_any_thread() {
    let _serial = serial();
    let start = live_buffers();
    let array = Array::from_shape_fn((64, 8), |(i, j)| (i * 8 + j) as f32);
    let ptr = array.as_ptr();
    let t = Tensor::from(array);
    assert_eq!(live_buffers(), start + 1);
    let views: Vec<Tensor> = (0..4).map(|_| t.clone()).collect();
    let export = t.to_dlpack_versioned().unwrap();
    let typed = TypedTensor::<f32, Ix2>::new(t.view(DType::FLOAT32).unwrap()).unwrap();
    drop(t);
    // Views are dropped on other threads after reading the memory.
    let handles: Vec<_> = views
        .into_iter()
        .map(|v| {
            thread::spawn(move || {
                // SAFETY: nothing writes this memory while the view lives.
                let sum = unsafe { v.as_ndarray::<f32>() }.unwrap().sum();
                drop(v);
                sum
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), (0..512).sum::<i32>() as f32);
    }
    assert_eq!(
        live_buffers(),
        start + 1,
        "the export and typed view remain"
    );
    // SAFETY: nothing writes this memory while the view lives.
    assert_eq!(unsafe { typed.view() }.as_ptr(), ptr);
    thread::spawn(move || drop(typed)).join().unwrap();
    assert_eq!(live_buffers(), start + 1, "the export remains");
    // The DLPack consumer releases it on yet another thread: freed once, now.
    thread::spawn(move || drop(export)).join().unwrap();
    assert_eq!(live_buffers(), start);

    // A last view dropped on another thread while this thread holds nothing.
    let t = Tensor::zeros(&[16], DType::INT64).unwrap();
    assert_eq!(live_buffers(), start + 1);
    thread::spawn(move || drop(t)).join().unwrap();
    assert_eq!(live_buffers(), start);
}

#[test]
fn exclusivity_seen_across_threads_orders_the_memory() {
    let _serial = serial();
    // A clone reads on another thread, then drops; the safe mutable view
    // becomes available only after that drop, and its writes are ordered
    // after the clone's reads (Miri's race detector checks this).
    let mut t = Tensor::from(vec![1u32; 32]);
    let clone = t.clone();
    let reader = thread::spawn(move || {
        // SAFETY: nothing writes this memory while the view lives.
        let sum: u32 = unsafe { clone.as_ndarray::<u32>() }.unwrap().sum();
        drop(clone);
        sum
    });
    loop {
        match t.as_ndarray_mut::<u32>() {
            Ok(mut v) => {
                v.fill(7);
                break;
            }
            Err(_) => thread::yield_now(),
        }
    }
    assert_eq!(reader.join().unwrap(), 32);
    // SAFETY: nothing writes this memory while the view lives.
    assert_eq!(unsafe { t.as_ndarray::<u32>() }.unwrap().sum(), 7 * 32);
}

#[test]
fn array_with_more_than_64_axes_is_refused_not_a_panic() {
    let _serial = serial();
    let deep = ndarray::ArrayD::<u8>::zeros(ndarray::IxDyn(&[1; 65]));
    let err = Tensor::try_from(deep).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Value);
    assert!(err.message().contains("65 axes"), "{err}");
    let fine = ndarray::ArrayD::<u8>::zeros(ndarray::IxDyn(&[1; 64]));
    assert_eq!(Tensor::try_from(fine).unwrap().ndim(), 64);
}

#[test]
fn a_huge_stride_on_a_length_one_axis_is_harmless() {
    let _serial = serial();
    // ndarray lets a length-1 axis have any stride, since it is never
    // applied; times the itemsize this one does not fit in isize.
    let array =
        Array::from_shape_vec((1, 2).strides((1usize << 62, 1)), vec![1.0f32, 2.0]).unwrap();
    let t = Tensor::from(array);
    assert_eq!(t.shape(), &[1, 2]);
    assert_eq!(
        // SAFETY: nothing writes this memory while the view lives.
        unsafe { t.as_ndarray_dim::<f32, Ix2>() }.unwrap(),
        array![[1.0f32, 2.0]]
    );
    let back = Tensor::try_from(t.to_dlpack_versioned().unwrap()).unwrap();
    assert_eq!(back.data_ptr(), t.data_ptr());
    // SAFETY: nothing writes this memory while the view lives.
    assert_eq!(unsafe { back.as_ndarray::<f32>() }.unwrap().sum(), 3.0);
}
