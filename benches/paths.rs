//! Criterion benches for the Rust-level import and export paths (no Python).
//!
//! Run with `make bench-rust`, or
//! `cargo bench --no-default-features --bench paths` (append `-- <filter>`
//! to run some groups only, e.g. `-- dlpack_`). Criterion reports a mean
//! estimate on its `time:` line; the medians are in
//! `target/criterion/<group>/<bench>/new/estimates.json`.
//!
//! Groups:
//! - `dlpack_import`: `Tensor::try_from` of a versioned and a legacy managed
//!   tensor, made by dlbridge's own export (setup, not timed); the imported
//!   tensor is dropped outside the timing.
//! - `dlpack_export`: `to_dlpack_versioned` / `to_dlpack_legacy` including
//!   the drop of the managed tensor (its deleter runs), and one full round
//!   trip (export, import, drop).
//! - `layout`: the three `Layout` constructors for 1-d, 2-d and 6-d shapes.
//! - `alloc_64B`, `alloc_256MiB`: `Tensor::zeros` / `Tensor::empty` (with
//!   the free) beside `vec![0u8; n]` / `Vec::with_capacity(n)` of the same
//!   byte count, so the ratio to a plain allocation shows.
//! - `ndarray`: typed views of an f32 tensor, and an `ndarray::Array` moved
//!   into a `Tensor` and viewed back.
//! - `copy`: `Tensor::copy` of a C-contiguous and a transposed 256x256 f32
//!   tensor (throughput in bytes copied), beside ndarray's own C-order copy
//!   (`as_standard_layout().into_owned()`) of a view of the same tensor.
//!
//! The bench uses no `unsafe`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use dlbridge::{DType, Layout, Tensor};
use ndarray::{Array2, Array4, Ix2};

/// A 2x3 f32 tensor: the smallest interesting case.
fn small() -> Tensor {
    Tensor::from(Array2::<f32>::zeros((2, 3)))
}

/// A 4-d f32 tensor that is neither C- nor F-contiguous and has one
/// negative stride: shape [4, 8, 2, 6], byte strides [24, 192, -96, 4].
fn strided_4d() -> Tensor {
    let mut array = Array4::<f32>::zeros((8, 2, 4, 6)).permuted_axes([2, 0, 1, 3]);
    array.invert_axis(ndarray::Axis(2));
    let tensor = Tensor::from(array);
    assert_eq!(tensor.shape(), &[4, 8, 2, 6]);
    assert_eq!(tensor.strides(), &[24, 192, -96, 4]);
    assert!(!tensor.layout().is_c_contiguous() && !tensor.layout().is_f_contiguous());
    tensor
}

fn dlpack_import(c: &mut Criterion) {
    let mut group = c.benchmark_group("dlpack_import");
    for (name, tensor) in [("2x3", small()), ("4d_strided", strided_4d())] {
        group.bench_function(BenchmarkId::new("versioned", name), |b| {
            b.iter_batched(
                || tensor.to_dlpack_versioned().unwrap(),
                |managed| Tensor::try_from(black_box(managed)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(BenchmarkId::new("legacy", name), |b| {
            b.iter_batched(
                || tensor.to_dlpack_legacy().unwrap(),
                |managed| Tensor::try_from(black_box(managed)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn dlpack_export(c: &mut Criterion) {
    let mut group = c.benchmark_group("dlpack_export");
    for (name, tensor) in [("2x3", small()), ("4d_strided", strided_4d())] {
        let tensor = &tensor;
        group.bench_function(BenchmarkId::new("versioned+drop", name), |b| {
            b.iter(|| drop(black_box(black_box(tensor).to_dlpack_versioned().unwrap())))
        });
        group.bench_function(BenchmarkId::new("legacy+drop", name), |b| {
            b.iter(|| drop(black_box(black_box(tensor).to_dlpack_legacy().unwrap())))
        });
        group.bench_function(BenchmarkId::new("round_trip+drop", name), |b| {
            b.iter(|| {
                let managed = black_box(tensor).to_dlpack_versioned().unwrap();
                drop(black_box(Tensor::try_from(managed).unwrap()))
            })
        });
    }
    group.finish();
}

/// C-contiguous byte strides for `shape` with `itemsize`.
fn c_strides(shape: &[usize], itemsize: usize) -> Vec<isize> {
    Layout::contiguous(shape, itemsize)
        .unwrap()
        .strides()
        .to_vec()
}

fn layout(c: &mut Criterion) {
    let mut group = c.benchmark_group("layout");
    let shapes: [(&str, &[usize]); 3] = [
        ("1d", &[1024]),
        ("2d", &[256, 256]),
        ("6d", &[2, 3, 4, 5, 6, 7]),
    ];
    let itemsize = 4;
    for (name, shape) in shapes {
        let byte_strides = c_strides(shape, itemsize);
        let signed_shape: Vec<i64> = shape.iter().map(|&n| n as i64).collect();
        let element_strides: Vec<i64> = byte_strides
            .iter()
            .map(|&s| (s / itemsize as isize) as i64)
            .collect();
        group.bench_function(BenchmarkId::new("contiguous", name), |b| {
            b.iter(|| Layout::contiguous(black_box(shape), black_box(itemsize)).unwrap())
        });
        group.bench_function(BenchmarkId::new("new_strided", name), |b| {
            b.iter(|| {
                Layout::new(
                    black_box(shape),
                    Some(black_box(&byte_strides[..])),
                    black_box(itemsize),
                )
                .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("from_element_strides", name), |b| {
            b.iter(|| {
                Layout::from_element_strides(
                    black_box(&signed_shape[..]),
                    Some(black_box(&element_strides[..])),
                    black_box(itemsize),
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

/// `Tensor::zeros` / `Tensor::empty` of `shape` (f32) against a plain `Vec`
/// of the same byte count; every routine frees what it allocated.
fn alloc_group(c: &mut Criterion, group_name: &str, shape: &[usize], samples: usize) {
    let nbytes = shape.iter().product::<usize>() * 4;
    let mut group = c.benchmark_group(group_name);
    group.sample_size(samples);
    group.bench_function("tensor_zeros", |b| {
        b.iter(|| Tensor::zeros(black_box(shape), DType::FLOAT32).unwrap())
    });
    group.bench_function("vec_zeroed", |b| b.iter(|| vec![0u8; black_box(nbytes)]));
    group.bench_function("tensor_empty", |b| {
        b.iter(|| Tensor::empty(black_box(shape), DType::FLOAT32).unwrap())
    });
    group.bench_function("vec_with_capacity", |b| {
        b.iter(|| Vec::<u8>::with_capacity(black_box(nbytes)))
    });
    group.finish();
}

fn alloc(c: &mut Criterion) {
    // 16 f32 = 64 B; 8192 x 8192 f32 = 256 MiB (calloc / mmap territory).
    alloc_group(c, "alloc_64B", &[16], 100);
    alloc_group(c, "alloc_256MiB", &[8192, 8192], 10);
}

fn ndarray_paths(c: &mut Criterion) {
    let mut group = c.benchmark_group("ndarray");
    let tensor = Tensor::zeros(&[256, 256], DType::FLOAT32).unwrap();
    let tensor = &tensor;
    group.bench_function("as_ndarray_f32_dyn", |b| {
        // SAFETY: nothing writes this memory while the view lives.
        b.iter(|| unsafe { black_box(tensor).as_ndarray::<f32>() }.unwrap())
    });
    group.bench_function("as_ndarray_dim_f32_ix2", |b| {
        // SAFETY: nothing writes this memory while the view lives.
        b.iter(|| unsafe { black_box(tensor).as_ndarray_dim::<f32, Ix2>() }.unwrap())
    });
    // Arrays are made in the (untimed) setup; `from_array` leaves the
    // tensor's drop outside the timing, the other two free inside it.
    let make = || Array2::<f32>::zeros((2, 3));
    group.bench_function("from_array_2x3", |b| {
        b.iter_batched(
            make,
            |array| Tensor::from(black_box(array)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("from_array_view_drop_2x3", |b| {
        b.iter_batched(
            make,
            |array| {
                let tensor = Tensor::from(black_box(array));
                // SAFETY: nothing writes this memory while the view lives.
                let view = unsafe { tensor.as_ndarray_dim::<f32, Ix2>() }.unwrap();
                black_box(view[[1, 2]]);
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("baseline_array_drop_2x3", |b| {
        b.iter_batched(make, |array| drop(black_box(array)), BatchSize::SmallInput)
    });
    group.finish();
}

fn copy(c: &mut Criterion) {
    let mut group = c.benchmark_group("copy");
    group.throughput(Throughput::Bytes(256 * 256 * 4));
    // The transposed copy takes ~0.2 ms: 50 samples fit in the 1 s budget.
    group.sample_size(50);
    let contiguous = Tensor::from(Array2::<f32>::zeros((256, 256)));
    let transposed = Tensor::from(Array2::<f32>::zeros((256, 256)).reversed_axes());
    assert!(contiguous.layout().is_c_contiguous());
    assert!(!transposed.layout().is_c_contiguous());
    for (name, tensor) in [
        ("c_contiguous_256x256_f32", &contiguous),
        ("transposed_256x256_f32", &transposed),
    ] {
        group.bench_function(BenchmarkId::new("tensor_copy", name), |b| {
            b.iter(|| black_box(tensor).copy().unwrap())
        });
        // The same C-order copy done by ndarray, from a view of the tensor.
        // SAFETY: nothing writes this memory while the view lives.
        let view = unsafe { tensor.as_ndarray_dim::<f32, Ix2>() }.unwrap();
        group.bench_function(BenchmarkId::new("ndarray_standard_layout", name), |b| {
            b.iter(|| black_box(&view).as_standard_layout().into_owned())
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .without_plots()
}

// `criterion_group!` would generate an undocumented `pub fn`; this is the
// `main` that it and `criterion_main!` expand to, with one configuration.
fn main() {
    let mut criterion = config().configure_from_args();
    dlpack_import(&mut criterion);
    dlpack_export(&mut criterion);
    layout(&mut criterion);
    alloc(&mut criterion);
    ndarray_paths(&mut criterion);
    copy(&mut criterion);
    criterion.final_summary();
}
