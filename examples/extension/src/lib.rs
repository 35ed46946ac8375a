//! `dlbridge_example`: a Python extension written on dlbridge.
//!
//! Functions take their arguments as `ReadonlyTensor` (read during the
//! call, under a tracked shared borrow), `ReadwriteTensor` (written, under
//! an exclusive one) or `Tensor` (kept, or handed back), so NumPy arrays, PyTorch tensors, `memoryview`s, `bytes`, objects with
//! only `__array_interface__`, and `dlbridge.Tensor`s all come in with no
//! copy; results are Rust-owned arrays handed out as `dlbridge.Tensor`s, which
//! `np.from_dlpack` / `torch.from_dlpack` take with no copy.
//!
//! `add_one`, `add` and `copy_into` write into their arguments in safe
//! code: a `ReadwriteTensor` argument holds an exclusive, tracked borrow of
//! the array's memory (refused for `add(a, b, a)`, `copy_into(a, a)`,
//! overlapping slices, or memory another extension holds), a
//! `ReadonlyTensor` a shared one.
//!
//! The `np_*` functions are the same operations written the usual way, with
//! rust-numpy: the NumPy-only baseline of `bench.py`'s timings (they refuse
//! anything but a NumPy array of the exact dtype).

use std::thread;

use dlbridge::constraints::{CContig, Cpu, FContig, Shape2, Writable};
use dlbridge::{
    AnyDtype, Element, Framework, Native, ReadonlyTensor, ReadwriteTensor, Tensor, TypedTensor,
};
use ndarray::{ArrayD, Ix1, Ix2, IxDyn, Order};
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

/// Calls `$f::<T>($t)` (or `$f::<T>$args`) with `T` the Rust type of
/// `$t`'s dtype.
macro_rules! dispatch {
    ($t:expr, $f:ident, [$($ty:ty),*]) => {
        dispatch!($t, $f($t), [$($ty),*])
    };
    ($t:expr, $f:ident $args:tt, [$($ty:ty),*]) => {
        match $t.dtype() {
            $(d if d == <$ty as Element>::DTYPE => $f::<$ty> $args,)*
            d => Err(PyTypeError::new_err(format!(
                "{}: unsupported dtype {d}",
                stringify!($f)
            ))),
        }
    };
}

fn sum_as<T: Real>(x: &ReadonlyTensor<'_>) -> PyResult<f64> {
    // Contiguous memory (either order) is summed as a slice: a
    // dynamic-rank ndarray view costs more than the 16 additions it drives.
    if let Some(values) = x.as_slice::<T>()? {
        return Ok(values.iter().map(|&v| v.to_f64()).sum());
    }
    Ok(x.as_ndarray::<T>()?.iter().map(|&v| v.to_f64()).sum())
}

/// The sum of any real array (any dtype NumPy and PyTorch use), as a float.
/// The argument is only read during the call, so it is borrowed
/// (`ReadonlyTensor`, any dtype): no allocation, no owner.
#[pyfunction]
fn sum(x: ReadonlyTensor<'_>) -> PyResult<f64> {
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

/// The sum of a C-contiguous 1-d float64 array: dtype, rank and
/// contiguity checked once at the boundary (nanobind's
/// `nb::ndarray<double, nb::ndim<1>, nb::c_contig, nb::device::cpu>`).
#[pyfunction]
fn sum_f64(x: ReadonlyTensor<'_, f64, Ix1, CContig>) -> f64 {
    x.view().iter().sum()
}

/// `sum_f64`, but the sum is taken after `callback()` ran, with the view
/// already made: Python code runs while the borrowed argument is in use.
#[pyfunction]
fn sum_after(x: ReadonlyTensor<'_, f64, Ix1>, callback: &Bound<'_, PyAny>) -> PyResult<f64> {
    let view = x.view();
    callback.call0()?;
    Ok(view.sum())
}

/// The sum of a float64 array of any rank and layout.
#[pyfunction]
fn sum_f64_any(x: ReadonlyTensor<'_, f64>) -> f64 {
    x.view().sum()
}

/// The trace of a 2-d float64 matrix: dtype *and* rank checked at the
/// boundary (a `TypeError` names what was expected and what came).
#[pyfunction]
fn trace(m: ReadonlyTensor<'_, f64, Ix2>) -> f64 {
    m.view().diag().sum()
}

/// The trace of a 2-d float64 matrix kept as an owning `TypedTensor`: its
/// view is `unsafe` (an untracked handle on memory others can reach).
#[pyfunction]
fn trace_owned(m: TypedTensor<f64, Ix2>) -> f64 {
    // SAFETY: this function holds the GIL from start to end, runs no Python
    // code, releases no GIL and writes nothing while the view lives, and
    // `m` is its only array argument: no one writes the elements meanwhile.
    unsafe { m.view() }.diag().sum()
}

fn scale_as<T: Element + std::ops::Mul<Output = T>>(
    x: &ReadonlyTensor<'_>,
    k: T,
) -> PyResult<Tensor> {
    let scaled: ArrayD<T> = x.as_ndarray::<T>()?.mapv(|v| v * k);
    Ok(Tensor::try_from(scaled)?)
}

/// `x * k` as a new Rust-owned array: float32 stays float32, every other
/// real dtype becomes float64.
#[pyfunction]
fn scale(x: ReadonlyTensor<'_>, k: f64) -> PyResult<Tensor> {
    scale_ref(&x, k)
}

fn scale_ref(x: &ReadonlyTensor<'_>, k: f64) -> PyResult<Tensor> {
    if x.dtype() == <f32 as Element>::DTYPE {
        return scale_as::<f32>(x, k as f32);
    }
    if x.dtype() == <f64 as Element>::DTYPE {
        return scale_as::<f64>(x, k);
    }
    let widened: ArrayD<f64> = dispatch!(
        x,
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

fn to_f64_array<T: Real>(x: &ReadonlyTensor<'_>) -> PyResult<ArrayD<f64>> {
    Ok(x.as_ndarray::<T>()?.mapv(Real::to_f64))
}

/// `[0.0, 1.0, ..., n - 1]` as a Rust-owned float64 array (a `Vec` handed
/// over with no copy).
#[pyfunction]
fn arange(n: usize) -> Tensor {
    Tensor::from((0..n).map(|i| i as f64).collect::<Vec<f64>>())
}

fn add_one_as<T: Element + std::ops::AddAssign + From<u8>>(
    x: &mut ReadwriteTensor<'_>,
) -> PyResult<()> {
    x.as_ndarray_mut::<T>()?.mapv_inplace(|mut v| {
        v += T::from(1u8);
        v
    });
    Ok(())
}

/// Adds one to every element, in place, any real dtype, in safe code (an
/// untyped `ReadwriteTensor`: an exclusive borrow, the dtype dispatched on
/// at run time). Readonly inputs (a read-only NumPy array, `bytes`, a
/// readonly `memoryview`) are refused with `BufferError`.
#[pyfunction]
fn add_one_inplace(mut x: ReadwriteTensor<'_>) -> PyResult<()> {
    dispatch!(
        &mut x,
        add_one_as,
        [f64, f32, i64, i32, i16, u64, u32, u16, u8]
    )
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

/// `out[...] = x`, in safe code: `x` is read through the guide's reading
/// type (`ReadonlyTensor`, a tracked shared borrow), `out` written through
/// its writing one (`ReadwriteTensor`, an exclusive borrow). Any overlap of
/// the two (`copy_into(a, a)`, `copy_into(a[1:], a[:-1])`, a NumPy view,
/// `torch.from_numpy` or a `memoryview` of the same memory) is refused
/// with `BufferError` before anything is read or written.
#[pyfunction]
fn copy_into(x: ReadonlyTensor<'_, f64>, mut out: ReadwriteTensor<'_, f64>) -> PyResult<()> {
    if x.shape() != out.shape() {
        return Err(PyValueError::new_err(format!(
            "copy_into: shape {:?} of x differs from shape {:?} of out",
            x.shape(),
            out.shape()
        )));
    }
    out.view_mut().assign(&x.view());
    Ok(())
}

fn copy_as<T: Element>(x: &ReadonlyTensor<'_>, out: &mut ReadwriteTensor<'_>) -> PyResult<()> {
    out.as_ndarray_mut::<T>()?.assign(&x.as_ndarray::<T>()?);
    Ok(())
}

/// `copy_into` for any dtype: both arguments untyped (`ReadonlyTensor<'_>`
/// and `ReadwriteTensor<'_>`, the dtype read at run time), tracked alike.
#[pyfunction]
fn copy_into_any(x: ReadonlyTensor<'_>, mut out: ReadwriteTensor<'_>) -> PyResult<()> {
    if x.shape() != out.shape() || x.dtype() != out.dtype() {
        return Err(PyValueError::new_err(format!(
            "copy_into_any: x ({} {:?}) and out ({} {:?}) differ",
            x.dtype(),
            x.shape(),
            out.dtype(),
            out.shape()
        )));
    }
    dispatch!(
        x,
        copy_as(&x, &mut out),
        [f64, f32, i64, i32, i16, i8, u64, u32, u16, u8, bool]
    )
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
fn data_ptr(x: ReadonlyTensor<'_>) -> usize {
    // A shared borrow's pointer is `*const u8`: read, never written through.
    x.data_ptr().addr()
}

/// The address of the first element of a `TypedTensor<f64>` argument (any
/// rank): the owning typed entry point, beside `data_ptr`'s borrowed one.
#[pyfunction]
fn typed_data_ptr(x: TypedTensor<f64>) -> usize {
    x.data_ptr() as usize
}

/// The address of the first element of a borrowed `ReadonlyTensor<f64>`
/// argument and the elements' sum: the typed borrowed entry point, whose
/// view reads the producer's own memory.
#[pyfunction]
fn typed_borrowed_data_ptr(x: ReadonlyTensor<'_, f64>) -> (usize, f64) {
    (x.data_ptr().addr(), x.view().sum())
}

/// An owning tensor made from a borrowed argument on a thread detached
/// from the interpreter (`to_tensor` takes its reference attached).
#[pyfunction]
fn to_tensor_detached(py: Python<'_>, x: ReadonlyTensor<'_>) -> Tensor {
    py.detach(|| x.to_tensor())
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

/// Imports taken through each fast path by *this* extension's copy of
/// dlbridge (the tests check that borrowed arguments take theirs).
#[pyfunction]
fn fast_path_counts() -> std::collections::HashMap<&'static str, u64> {
    dlbridge::fast_path_counts().into_iter().collect()
}

/// `x`'s memory as an owning `dlbridge.Tensor`, made from a borrowed
/// argument (`ReadonlyTensor::to_tensor`): it outlives the call.
#[pyfunction]
fn keep(x: ReadonlyTensor<'_>) -> Tensor {
    x.to_tensor()
}

/// Rust-owned buffers of *this* extension's copy of dlbridge not yet freed
/// (each binary that links dlbridge counts its own).
#[pyfunction]
fn live_buffers() -> usize {
    dlbridge::live_buffers()
}

// --- Constraints in the argument type ------------------------------------------

/// The mean point of `n` 3-d points: a C-contiguous `n x 3` float64 array
/// (checked once, at the boundary; each mismatch is a `TypeError`).
#[pyfunction]
fn centroid(points: ReadonlyTensor<'_, f64, Ix2, (Shape2<-1, 3>, CContig)>) -> [f64; 3] {
    let view = points.view();
    let n = view.nrows().max(1) as f64;
    let mut out = [0.0; 3];
    for row in view.rows() {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v / n;
        }
    }
    out
}

/// The number of columns of an F-contiguous float32 matrix.
#[pyfunction]
fn fortran_columns(m: ReadonlyTensor<'_, f32, Ix2, FContig>) -> usize {
    m.view().ncols()
}

/// The shape of a writable 4x4 float64 block.
#[pyfunction]
fn writable_block(m: TypedTensor<f64, IxDyn, (Shape2<4, 4>, Writable)>) -> Vec<usize> {
    m.shape().to_vec()
}

/// The address of any CPU tensor's memory, any dtype and rank.
#[pyfunction]
fn cpu_address(x: ReadonlyTensor<'_, AnyDtype, IxDyn, Cpu>) -> usize {
    x.data_ptr().addr()
}

// --- Framework-native returns ------------------------------------------------

/// `arange(n)` returned as a real `numpy.ndarray` (NumPy's C API, no copy).
#[pyfunction]
fn arange_numpy(n: usize) -> Native {
    Native::new(arange(n), Framework::NumPy)
}

/// `arange(n)` returned as a real `torch.Tensor` (torch's exchange table).
#[pyfunction]
fn arange_torch(n: usize) -> Native {
    Native::new(arange(n), Framework::Torch)
}

/// `arange(n)` returned as the named framework's array: `"numpy"`,
/// `"torch"`, `"jax"`, `"memoryview"` or `"dlbridge"`.
#[pyfunction]
fn arange_as(n: usize, framework: &str) -> PyResult<Native> {
    let framework = match framework {
        "numpy" => Framework::NumPy,
        "torch" => Framework::Torch,
        "jax" => Framework::Jax,
        "memoryview" => Framework::Memoryview,
        "dlbridge" => Framework::Dlbridge,
        other => return Err(PyTypeError::new_err(format!("unknown framework {other:?}"))),
    };
    Ok(Native::new(arange(n), framework))
}

/// `x` handed back (no copy) as the named framework's array: read-only
/// inputs stay read-only, or are refused where the framework cannot say so.
#[pyfunction]
fn identity_like(x: Tensor, like: &Bound<'_, PyAny>) -> Native {
    Native::like(x, like)
}

/// `scale(x, k)` returned in `x`'s own framework: an ndarray for an
/// ndarray, a torch.Tensor for a torch.Tensor, a dlbridge.Tensor for
/// anything else.
#[pyfunction]
fn scale_like(x: &Bound<'_, PyAny>, k: f64) -> PyResult<Native> {
    let t: ReadonlyTensor<'_> = x.extract()?;
    let scaled = if t.dtype() == <f64 as Element>::DTYPE {
        scale_contiguous::<f64>(&t, k)?
    } else if t.dtype() == <f32 as Element>::DTYPE {
        scale_contiguous::<f32>(&t, k as f32)?
    } else {
        None
    };
    let scaled = match scaled {
        Some(scaled) => scaled,
        None => scale_ref(&t, k)?,
    };
    Ok(Native::like(scaled, x))
}

/// `x * k` for contiguous memory, read as one slice and written as one
/// `Vec` in the same order (`None`: not contiguous, or another dtype).
fn scale_contiguous<T: Element + std::ops::Mul<Output = T>>(
    x: &ReadonlyTensor<'_>,
    k: T,
) -> PyResult<Option<Tensor>> {
    let Some(values) = x.as_slice::<T>()? else {
        return Ok(None);
    };
    let scaled: Vec<T> = values.iter().map(|&v| v * k).collect();
    // The values are in `x`'s memory order: C's, or Fortran's.
    let order = if x.layout().is_c_contiguous() {
        Order::RowMajor
    } else {
        Order::ColumnMajor
    };
    Ok(Some(Tensor::from_shape_vec(x.shape(), order, scaled)?))
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
    m.add_function(wrap_pyfunction!(sum_f64_any, m)?)?;
    m.add_function(wrap_pyfunction!(sum_after, m)?)?;
    m.add_function(wrap_pyfunction!(trace, m)?)?;
    m.add_function(wrap_pyfunction!(trace_owned, m)?)?;
    m.add_function(wrap_pyfunction!(typed_data_ptr, m)?)?;
    m.add_function(wrap_pyfunction!(typed_borrowed_data_ptr, m)?)?;
    m.add_function(wrap_pyfunction!(to_tensor_detached, m)?)?;
    m.add_function(wrap_pyfunction!(scale, m)?)?;
    m.add_function(wrap_pyfunction!(arange, m)?)?;
    m.add_function(wrap_pyfunction!(add_one_inplace, m)?)?;
    m.add_function(wrap_pyfunction!(add_one, m)?)?;
    m.add_function(wrap_pyfunction!(add, m)?)?;
    m.add_function(wrap_pyfunction!(copy_into, m)?)?;
    m.add_function(wrap_pyfunction!(copy_into_any, m)?)?;
    m.add_function(wrap_pyfunction!(hold_mut, m)?)?;
    m.add_function(wrap_pyfunction!(hold, m)?)?;
    m.add_function(wrap_pyfunction!(data_ptr, m)?)?;
    m.add_function(wrap_pyfunction!(describe, m)?)?;
    m.add_function(wrap_pyfunction!(identity, m)?)?;
    m.add_function(wrap_pyfunction!(drop_on_thread, m)?)?;
    m.add_function(wrap_pyfunction!(live_buffers, m)?)?;
    m.add_function(wrap_pyfunction!(fast_path_counts, m)?)?;
    m.add_function(wrap_pyfunction!(keep, m)?)?;
    m.add_function(wrap_pyfunction!(centroid, m)?)?;
    m.add_function(wrap_pyfunction!(fortran_columns, m)?)?;
    m.add_function(wrap_pyfunction!(writable_block, m)?)?;
    m.add_function(wrap_pyfunction!(cpu_address, m)?)?;
    m.add_function(wrap_pyfunction!(arange_numpy, m)?)?;
    m.add_function(wrap_pyfunction!(arange_torch, m)?)?;
    m.add_function(wrap_pyfunction!(arange_as, m)?)?;
    m.add_function(wrap_pyfunction!(identity_like, m)?)?;
    m.add_function(wrap_pyfunction!(scale_like, m)?)?;
    m.add_function(wrap_pyfunction!(np_data_ptr, m)?)?;
    m.add_function(wrap_pyfunction!(np_sum, m)?)?;
    m.add_function(wrap_pyfunction!(np_scale, m)?)?;
    m.add_function(wrap_pyfunction!(np_arange, m)?)?;
    m.add_function(wrap_pyfunction!(np_add_one_inplace, m)?)?;
    m.add_function(wrap_pyfunction!(np_hold_mut, m)?)?;
    Ok(())
}
