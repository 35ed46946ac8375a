//! `dlbridge_example`: a Python extension written on dlbridge.
//!
//! Every function takes `dlbridge::Tensor` (or a [`TypedTensor`]) arguments,
//! so NumPy arrays, PyTorch tensors, `memoryview`s, `bytes`, objects with
//! only `__array_interface__`, and `dlbridge.Tensor`s all come in with no
//! copy; results are Rust-owned arrays handed out as `dlbridge.Tensor`s, which
//! `np.from_dlpack` / `torch.from_dlpack` take with no copy.
//!
//! `add_one` and `add` write into their arguments in safe code: a
//! `ReadwriteTensor` argument holds an exclusive, tracked borrow of the
//! array's memory (refused for `add(a, b, a)`, overlapping slices, or memory
//! another extension holds), `ReadonlyTensor` a shared one.
//!
//! The `np_*` functions are the same operations written the usual way, with
//! rust-numpy: the NumPy-only baseline of `bench.py`'s timings (they refuse
//! anything but a NumPy array of the exact dtype).

use std::thread;

use dlbridge::{Element, ReadonlyTensor, ReadwriteTensor, Tensor, TypedTensor};
use ndarray::{ArrayD, Ix2, IxDyn};
use numpy::{IntoPyArray, PyArray1, PyArrayDyn, PyReadonlyArrayDyn, PyReadwriteArrayDyn};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// Element types this example computes with, read as `f64`.
trait Real: Element {
    fn to_f64(self) -> f64;
}

macro_rules! real {
    ($($t:ty => |$x:ident| $e:expr),* $(,)?) => {$(
        impl Real for $t {
            fn to_f64(self) -> f64 {
                let $x = self;
                $e
            }
        }
    )*};
}

real! {
    f64 => |x| x,
    f32 => |x| f64::from(x),
    half::f16 => |x| f64::from(x),
    half::bf16 => |x| f64::from(x),
    i64 => |x| x as f64,
    i32 => |x| f64::from(x),
    i16 => |x| f64::from(x),
    i8 => |x| f64::from(x),
    u64 => |x| x as f64,
    u32 => |x| f64::from(x),
    u16 => |x| f64::from(x),
    u8 => |x| f64::from(x),
    bool => |x| f64::from(u8::from(x)),
}

/// Calls `$f::<T>($t)` with `T` the Rust type of `$t`'s dtype.
macro_rules! dispatch {
    ($t:expr, $f:ident, [$($ty:ty),*]) => {
        match $t.dtype() {
            $(d if d == <$ty as Element>::DTYPE => $f::<$ty>($t),)*
            d => Err(PyTypeError::new_err(format!(
                "{}: unsupported dtype {d}",
                stringify!($f)
            ))),
        }
    };
}

fn sum_as<T: Real>(x: &Tensor) -> PyResult<f64> {
    Ok(x.as_ndarray::<T>()?.iter().map(|&v| v.to_f64()).sum())
}

/// The sum of any real array (any dtype NumPy and PyTorch use), as a float.
#[pyfunction]
fn sum(x: Tensor) -> PyResult<f64> {
    dispatch!(
        &x,
        sum_as,
        [
            f64,
            f32,
            half::f16,
            half::bf16,
            i64,
            i32,
            i16,
            i8,
            u64,
            u32,
            u16,
            u8,
            bool
        ]
    )
}

/// The sum of a float64 array: the dtype is checked at the boundary.
#[pyfunction]
fn sum_f64(x: TypedTensor<f64>) -> f64 {
    x.view().sum()
}

/// The trace of a 2-d float64 matrix: dtype *and* rank checked at the
/// boundary (a `TypeError` names what was expected and what came).
#[pyfunction]
fn trace(m: TypedTensor<f64, Ix2>) -> f64 {
    m.view().diag().sum()
}

fn scale_as<T: Element + std::ops::Mul<Output = T>>(x: &Tensor, k: T) -> PyResult<Tensor> {
    let scaled: ArrayD<T> = x.as_ndarray::<T>()?.mapv(|v| v * k);
    Ok(Tensor::try_from(scaled)?)
}

/// `x * k` as a new Rust-owned array: float32 stays float32, every other
/// real dtype becomes float64.
#[pyfunction]
fn scale(x: Tensor, k: f64) -> PyResult<Tensor> {
    if x.dtype() == <f32 as Element>::DTYPE {
        return scale_as::<f32>(&x, k as f32);
    }
    if x.dtype() == <f64 as Element>::DTYPE {
        return scale_as::<f64>(&x, k);
    }
    let widened: ArrayD<f64> = dispatch!(
        &x,
        to_f64_array,
        [
            half::f16,
            half::bf16,
            i64,
            i32,
            i16,
            i8,
            u64,
            u32,
            u16,
            u8,
            bool
        ]
    )?;
    Ok(Tensor::try_from(widened.mapv(|v| v * k))?)
}

fn to_f64_array<T: Real>(x: &Tensor) -> PyResult<ArrayD<f64>> {
    Ok(x.as_ndarray::<T>()?.mapv(Real::to_f64))
}

/// `[0.0, 1.0, ..., n - 1]` as a Rust-owned float64 array (a `Vec` handed
/// over with no copy).
#[pyfunction]
fn arange(n: usize) -> Tensor {
    Tensor::from((0..n).map(|i| i as f64).collect::<Vec<f64>>())
}

fn add_one_as<T: Element + std::ops::AddAssign + From<u8>>(x: &Tensor) -> PyResult<()> {
    // SAFETY: this function holds the GIL from start to end, runs no Python
    // code and does not release the GIL while the view lives, and `x` is its
    // only array argument: nothing else reads or writes these elements
    // until the view is dropped at the end of this function.
    let mut view = unsafe { x.as_ndarray_mut_unchecked::<T, IxDyn>() }?;
    view.mapv_inplace(|mut v| {
        v += T::from(1u8);
        v
    });
    Ok(())
}

/// Adds one to every element, in place. Readonly inputs (a read-only NumPy
/// array, `bytes`, a readonly `memoryview`) are refused with `BufferError`.
#[pyfunction]
fn add_one_inplace(x: Tensor) -> PyResult<()> {
    dispatch!(&x, add_one_as, [f64, f32, i64, i32, i16, u64, u32, u16, u8])
}

// --- Safe writes: tracked borrows ----------------------------------------

/// Adds one to every element of a float64 array, in place, in safe code:
/// the exclusive borrow is refused (`BufferError`) for readonly memory and
/// for memory another borrow holds (here or in another extension).
#[pyfunction]
fn add_one(mut x: ReadwriteTensor<'_, f64>) {
    x.view_mut().mapv_inplace(|v| v + 1.0);
}

/// `out[...] = x + y` (float64, one shape). `out` may not overlap `x` or `y`
/// (`add(a, b, a)`, or `out` a slice overlapping one of them, is a
/// `BufferError`); `x` and `y` may be the same array.
#[pyfunction]
fn add(
    x: ReadonlyTensor<'_, f64>,
    y: ReadonlyTensor<'_, f64>,
    mut out: ReadwriteTensor<'_, f64>,
) -> PyResult<()> {
    if x.shape() != y.shape() || x.shape() != out.shape() {
        return Err(PyValueError::new_err(format!(
            "add: shapes {:?}, {:?} and out {:?} differ",
            x.shape(),
            y.shape(),
            out.shape()
        )));
    }
    ndarray::Zip::from(out.view_mut())
        .and(&x.view())
        .and(&y.view())
        .for_each(|o, &a, &b| *o = a + b);
    Ok(())
}

/// Calls `callback()` while holding an exclusive borrow of `x` (what a long
/// computation that calls back into Python looks like to the registry).
#[pyfunction]
fn hold_mut(x: ReadwriteTensor<'_, f64>, callback: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let result = callback.call0()?.unbind();
    drop(x);
    Ok(result)
}

/// Calls `callback()` while holding a shared borrow of `x`.
#[pyfunction]
fn hold(x: ReadonlyTensor<'_, f64>, callback: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let result = callback.call0()?.unbind();
    drop(x);
    Ok(result)
}

/// The address of the first element as this extension saw it: equal to the
/// producer's own pointer when nothing was copied.
#[pyfunction]
fn data_ptr(x: Tensor) -> usize {
    x.data_ptr() as usize
}

/// `(shape, byte strides, dtype, readonly, source)` as this extension saw them.
#[pyfunction]
fn describe(x: Tensor) -> (Vec<usize>, Vec<isize>, String, bool, &'static str) {
    (
        x.shape().to_vec(),
        x.strides().to_vec(),
        x.dtype().name(),
        x.readonly(),
        x.source().as_str(),
    )
}

/// Returns its argument: in as any protocol, out as a `dlbridge.Tensor` of
/// the same memory.
#[pyfunction]
fn identity(x: Tensor) -> Tensor {
    x
}

/// Drops the argument's Rust view on a new Rust thread (without the GIL).
#[pyfunction]
fn drop_on_thread(py: Python<'_>, x: Tensor) -> PyResult<()> {
    py.detach(move || thread::spawn(move || drop(x)).join())
        .map_err(|_| PyTypeError::new_err("the dropping thread panicked"))
}

/// Rust-owned buffers of *this* extension's copy of dlbridge not yet freed
/// (each binary that links dlbridge counts its own).
#[pyfunction]
fn live_buffers() -> usize {
    dlbridge::live_buffers()
}

// --- The NumPy-only baseline (rust-numpy) -----------------------------------

/// Baseline of `data_ptr`.
#[pyfunction]
fn np_data_ptr(x: PyReadonlyArrayDyn<'_, f64>) -> usize {
    x.as_array().as_ptr() as usize
}

/// Baseline of `sum` / `sum_f64`.
#[pyfunction]
fn np_sum(x: PyReadonlyArrayDyn<'_, f64>) -> f64 {
    x.as_array().sum()
}

/// Baseline of `scale` (float64 only).
#[pyfunction]
fn np_scale<'py>(
    py: Python<'py>,
    x: PyReadonlyArrayDyn<'py, f64>,
    k: f64,
) -> Bound<'py, PyArrayDyn<f64>> {
    x.as_array().mapv(|v| v * k).into_pyarray(py)
}

/// Baseline of `arange`: the `Vec` is handed over with no copy too.
#[pyfunction]
fn np_arange(py: Python<'_>, n: usize) -> Bound<'_, PyArray1<f64>> {
    (0..n)
        .map(|i| i as f64)
        .collect::<Vec<f64>>()
        .into_pyarray(py)
}

/// Baseline of `add_one_inplace` (float64 only; rust-numpy tracks the borrow).
#[pyfunction]
fn np_add_one_inplace(mut x: PyReadwriteArrayDyn<'_, f64>) {
    x.as_array_mut().mapv_inplace(|v| v + 1.0);
}

/// Calls `callback()` while rust-numpy holds a `PyReadwriteArray` of `x`.
#[pyfunction]
fn np_hold_mut(
    x: PyReadwriteArrayDyn<'_, f64>,
    callback: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let result = callback.call0()?.unbind();
    drop(x);
    Ok(result)
}

#[pymodule]
fn dlbridge_example(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sum, m)?)?;
    m.add_function(wrap_pyfunction!(sum_f64, m)?)?;
    m.add_function(wrap_pyfunction!(trace, m)?)?;
    m.add_function(wrap_pyfunction!(scale, m)?)?;
    m.add_function(wrap_pyfunction!(arange, m)?)?;
    m.add_function(wrap_pyfunction!(add_one_inplace, m)?)?;
    m.add_function(wrap_pyfunction!(add_one, m)?)?;
    m.add_function(wrap_pyfunction!(add, m)?)?;
    m.add_function(wrap_pyfunction!(hold_mut, m)?)?;
    m.add_function(wrap_pyfunction!(hold, m)?)?;
    m.add_function(wrap_pyfunction!(data_ptr, m)?)?;
    m.add_function(wrap_pyfunction!(describe, m)?)?;
    m.add_function(wrap_pyfunction!(identity, m)?)?;
    m.add_function(wrap_pyfunction!(drop_on_thread, m)?)?;
    m.add_function(wrap_pyfunction!(live_buffers, m)?)?;
    m.add_function(wrap_pyfunction!(np_data_ptr, m)?)?;
    m.add_function(wrap_pyfunction!(np_sum, m)?)?;
    m.add_function(wrap_pyfunction!(np_scale, m)?)?;
    m.add_function(wrap_pyfunction!(np_arange, m)?)?;
    m.add_function(wrap_pyfunction!(np_add_one_inplace, m)?)?;
    m.add_function(wrap_pyfunction!(np_hold_mut, m)?)?;
    Ok(())
}
