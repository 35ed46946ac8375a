//! dlbridge against plain dlpark 0.10 (its `ndarray` feature) on the
//! Rust-only DLPack jobs, side by side in one process (no Python).
//!
//! Run with `make bench-dlpark`, or
//! `cargo bench --no-default-features --bench vs_dlpark` (append
//! `-- <filter>` to run some rows only, e.g. `-- export`). Criterion prints
//! its own report per routine; then, unless a filter is given, an
//! interleaved summary runs both sides of every row in alternating batches
//! (the fairer comparison on a busy machine) and prints the medians and the
//! dlbridge/dlpark ratio per row.
//!
//! Rows (f32; `4x4` is an `Array2`, `32d` an `ArrayD` of 32 axes, four of
//! extent 2 and the rest 1, so both hold 64 bytes):
//! - `export`: an owned `ndarray` array handed out as a versioned DLPack
//!   managed tensor, its raw pointer taken, and the consumer's call of the
//!   deleter (which frees the array). dlbridge: `IntoDlpack::into_dlpack`
//!   (straight from the array, no `Tensor` in between); dlpark:
//!   `dynamic::Initialized::try_from(Box<Array>)` then `finish`.
//! - `import_viewd`, `import_view2`: a versioned managed tensor (made by
//!   dlpark's export in the untimed setup, the same producer for both)
//!   taken in, viewed as `ArrayViewD` / `ArrayView2`, and released (its
//!   deleter runs). dlbridge: `Tensor::try_from` then `as_ndarray` /
//!   `as_ndarray_dim`; dlpark: `ArrayViewD::try_from_dlpack` (then
//!   `into_dimensionality::<Ix2>` for the fixed rank) and the `Managed`'s drop.
//! - `round_trip`: array -> versioned managed tensor -> `ArrayViewD` ->
//!   released, each library end to end.
//!
//! Every routine consumes a fresh input made outside the timing.
//!
//! `VS_DLPARK_SUMMARY_ONLY=1` skips Criterion and prints the summary alone
//! (`=3`: three summaries in one process, to see how much a row moves with
//! the heap's state: the 32-d round trip, a few heap blocks of 256-600
//! bytes per call, swings 2-3x on both sides in glibc's bins).
//! For a profile, `VS_DLPARK_ONLY=<row>:<dlbridge|dlpark>` (e.g.
//! `export/4x4:dlbridge`) skips Criterion and runs that one routine on
//! 100,000 inputs, e.g. under
//! `valgrind --tool=callgrind --toggle-collect='*vs_dlpark*batch*'`
//! (`VS_DLPARK_REPEAT=<n>` runs it n times, for `perf record`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use dlbridge::{IntoDlpack, Tensor};
use dlpark::allocation::dynamic;
use dlpark::ffi::DLManagedTensorVersioned;
use dlpark::{Managed, TryFromDlpack};
use ndarray::{Array2, ArrayD, ArrayViewD, Ix2, IxDyn};

type Versioned = Managed<DLManagedTensorVersioned>;

fn array_4x4() -> Array2<f32> {
    Array2::from_shape_fn((4, 4), |(i, j)| (i * 4 + j) as f32)
}

fn array_32d() -> ArrayD<f32> {
    let shape: Vec<usize> = (0..32).map(|axis| if axis < 4 { 2 } else { 1 }).collect();
    ArrayD::from_elem(IxDyn(&shape), 1.0)
}

/// The consumer's side of an export: the raw pointer's deleter, called once.
fn consume(raw: *mut DLManagedTensorVersioned) {
    // SAFETY: `raw` was just released by `Managed::into_raw`, so this call
    // owns it; its deleter is called exactly once, as DLPack requires.
    unsafe {
        if let Some(deleter) = (*raw).deleter {
            deleter(raw);
        }
    }
}

/// dlpark's export of an owned array (its `ndarray` feature).
fn dlpark_export<D: ndarray::Dimension>(array: ndarray::Array<f32, D>) -> Versioned {
    let initialized: dynamic::Initialized<DLManagedTensorVersioned> =
        Box::new(array).try_into().unwrap();
    // SAFETY: dlpark's own builder filled in a complete descriptor over the
    // boxed array, which its context keeps alive until the deleter runs.
    unsafe { initialized.finish() }
}

/// dlbridge's import of a managed tensor as an `ArrayViewD`, then release.
fn dlbridge_import_viewd(managed: Versioned) {
    let tensor = Tensor::try_from(managed).unwrap();
    // SAFETY: nothing writes this memory while the view lives.
    black_box(&unsafe { tensor.as_ndarray::<f32>() }.unwrap());
}

/// dlpark's view of a managed tensor as an `ArrayViewD`, then release.
fn dlpark_import_viewd(managed: Versioned) {
    // SAFETY: the managed tensor comes from dlpark's own export of a live
    // array, readable for as long as `managed` lives, which outlives the view.
    let view = unsafe { ArrayViewD::<f32>::try_from_dlpack(&managed, ()) }.unwrap();
    black_box(&view);
}

fn dlbridge_import_view2(managed: Versioned) {
    let tensor = Tensor::try_from(managed).unwrap();
    // SAFETY: nothing writes this memory while the view lives.
    black_box(&unsafe { tensor.as_ndarray_dim::<f32, Ix2>() }.unwrap());
}

fn dlpark_import_view2(managed: Versioned) {
    // SAFETY: as in `dlpark_import_viewd`.
    let view = unsafe { ArrayViewD::<f32>::try_from_dlpack(&managed, ()) }.unwrap();
    black_box(&view.into_dimensionality::<Ix2>().unwrap());
}

/// A dlbridge or dlpark routine: consumes one input made by its setup.
type Routine<I> = fn(I);

/// One row: the input maker, then dlbridge's and dlpark's routines.
struct Row<I> {
    name: &'static str,
    setup: fn() -> I,
    dlbridge: Routine<I>,
    dlpark: Routine<I>,
}

/// A row with its input type erased: times `n` calls of one side
/// (`true`: dlbridge) on inputs made before the clock starts.
trait Timed {
    fn name(&self) -> &'static str;
    fn batch(&self, dlbridge: bool, n: usize) -> Duration;
    fn criterion(&self, c: &mut Criterion);
}

impl<I> Timed for Row<I> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn batch(&self, dlbridge: bool, n: usize) -> Duration {
        let routine = if dlbridge { self.dlbridge } else { self.dlpark };
        let inputs: Vec<I> = (0..n).map(|_| (self.setup)()).collect();
        let start = Instant::now();
        for input in inputs {
            routine(black_box(input));
        }
        start.elapsed()
    }

    fn criterion(&self, c: &mut Criterion) {
        let mut group = c.benchmark_group(self.name);
        for (side, routine) in [("dlbridge", self.dlbridge), ("dlpark", self.dlpark)] {
            group.bench_function(side, |b| {
                b.iter_batched(
                    self.setup,
                    |input| routine(black_box(input)),
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();
    }
}

fn rows() -> Vec<Box<dyn Timed>> {
    vec![
        Box::new(Row {
            name: "export/4x4",
            setup: array_4x4,
            dlbridge: |array| consume(array.into_dlpack().unwrap().into_raw()),
            dlpark: |array| consume(dlpark_export(array).into_raw()),
        }),
        Box::new(Row {
            name: "export/32d",
            setup: array_32d,
            dlbridge: |array| consume(array.into_dlpack().unwrap().into_raw()),
            dlpark: |array| consume(dlpark_export(array).into_raw()),
        }),
        Box::new(Row {
            name: "import_viewd/4x4",
            setup: || dlpark_export(array_4x4()),
            dlbridge: dlbridge_import_viewd,
            dlpark: dlpark_import_viewd,
        }),
        Box::new(Row {
            name: "import_view2/4x4",
            setup: || dlpark_export(array_4x4()),
            dlbridge: dlbridge_import_view2,
            dlpark: dlpark_import_view2,
        }),
        Box::new(Row {
            name: "import_viewd/32d",
            setup: || dlpark_export(array_32d()),
            dlbridge: dlbridge_import_viewd,
            dlpark: dlpark_import_viewd,
        }),
        Box::new(Row {
            name: "round_trip/4x4",
            setup: array_4x4,
            dlbridge: |array| dlbridge_import_viewd(array.into_dlpack().unwrap()),
            dlpark: |array| dlpark_import_viewd(dlpark_export(array)),
        }),
        Box::new(Row {
            name: "round_trip/32d",
            setup: array_32d,
            dlbridge: |array| dlbridge_import_viewd(array.into_dlpack().unwrap()),
            dlpark: |array| dlpark_import_viewd(dlpark_export(array)),
        }),
    ]
}

/// Rounds of the interleaved summary and calls per batch.
const ROUNDS: usize = 31;
const BATCH: usize = 4000;

/// Both sides of every row in alternating batches (the side that goes
/// first alternates too); prints the median ns per call and the ratio.
fn summary(rows: &[Box<dyn Timed>]) {
    let mut samples = vec![[Vec::new(), Vec::new()]; rows.len()];
    for round in 0..ROUNDS {
        for (row, times) in rows.iter().zip(&mut samples) {
            for turn in 0..2 {
                let dlbridge = (round + turn) % 2 == 0;
                let ns = row.batch(dlbridge, BATCH).as_nanos() as f64 / BATCH as f64;
                times[usize::from(!dlbridge)].push(ns);
            }
        }
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    println!("\ninterleaved summary: median ns per call of {ROUNDS} rounds x {BATCH} calls");
    println!(
        "{:<18} {:>10} {:>10} {:>7}",
        "row", "dlbridge", "dlpark", "ratio"
    );
    for (row, [ours, theirs]) in rows.iter().zip(&mut samples) {
        let (ours, theirs) = (median(ours), median(theirs));
        println!(
            "{:<18} {:>10.1} {:>10.1} {:>6.2}x",
            row.name(),
            ours,
            theirs,
            ours / theirs
        );
    }
}

/// Criterion's options that take a value (which is then no filter).
const VALUE_FLAGS: [&str; 12] = [
    "--warm-up-time",
    "--measurement-time",
    "--sample-size",
    "--save-baseline",
    "--baseline",
    "--baseline-lenient",
    "--profile-time",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--nresamples",
    "--color",
];

/// Calls of the one routine `VS_DLPARK_ONLY` names.
const PROFILE_CALLS: usize = 100_000;

fn main() {
    let rows = rows();
    if let Ok(times) = std::env::var("VS_DLPARK_SUMMARY_ONLY") {
        for _ in 0..times.parse::<usize>().unwrap_or(1).max(1) {
            summary(&rows);
        }
        return;
    }
    if let Ok(only) = std::env::var("VS_DLPARK_ONLY") {
        let (name, side) = only.split_once(':').expect("VS_DLPARK_ONLY=<row>:<side>");
        let row = rows
            .iter()
            .find(|row| row.name() == name)
            .expect("VS_DLPARK_ONLY names a row");
        // `VS_DLPARK_REPEAT=<n>`: n batches, for a sampling profiler
        // (`perf record`), which needs more than one batch's few ms.
        let repeat = std::env::var("VS_DLPARK_REPEAT").map_or(1, |n| n.parse().unwrap_or(1));
        for _ in 0..repeat {
            black_box(row.batch(side == "dlbridge", PROFILE_CALLS));
        }
        return;
    }
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .without_plots()
        .configure_from_args();
    for row in &rows {
        row.criterion(&mut criterion);
    }
    criterion.final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not (it
    // only checks that each routine runs). A filter narrows Criterion's
    // rows, and the summary is then left out.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filtered = args.iter().enumerate().any(|(i, arg)| {
        !arg.starts_with('-') && (i == 0 || !VALUE_FLAGS.contains(&args[i - 1].as_str()))
    });
    if args.iter().any(|arg| arg == "--bench") && !filtered {
        summary(&rows);
    }
}
