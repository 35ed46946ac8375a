//! Framework-native returns: a [`Tensor`] handed to Python as the caller's
//! own array type, with no copy.
//!
//! A Rust function that computes a result usually wants to give it back in
//! the framework its caller works in (the Array API habit: `xp.sum(x)`
//! returns an array of `x`'s library). [`Native`] is that return value:
//!
//! | [`Framework`] | made by | owner released by |
//! | --- | --- | --- |
//! | `NumPy` | NumPy's C API (`PyArray_NewFromDescr`, base object) | the base object's destructor |
//! | `Torch` | torch's DLPack exchange table (`managed_tensor_to_py_object_no_sync`) | torch's call of the DLPack deleter |
//! | `Jax` | `jax.numpy.from_dlpack` of a `dlbridge.Tensor` | the `dlbridge.Tensor`'s deleter |
//! | `Memoryview` | `memoryview(dlbridge.Tensor)` | the `dlbridge.Tensor` |
//! | `Dlbridge` | `dlbridge.Tensor` | the `dlbridge.Tensor` |
//!
//! Each keeps the memory alive through the tensor's owner and releases it
//! exactly once, when the last Python object over the memory goes. NumPy,
//! PyTorch and JAX are imported on first use only, so none is a run-time
//! dependency: asking for an absent one raises `ImportError` naming it.
//!
//! Read-only memory stays read-only (NumPy's `WRITEABLE` flag cleared, the
//! `memoryview` read-only); torch has no read-only tensors, so a read-only
//! tensor is refused as a `torch.Tensor` (`BufferError`) rather than handed
//! out writable. JAX arrays are immutable and JAX copies memory that is not
//! 64-byte aligned (dlbridge's own allocations are; a `Vec` handed over
//! usually is not). Without `jax_enable_x64` (its default) JAX would narrow
//! 64-bit types to 32 bits, so those are refused as a `jax.Array`.
//!
//! ```no_run
//! use dlbridge::{Framework, Native, ReadonlyTensor, Tensor};
//! use pyo3::prelude::*;
//!
//! /// `x * k` in `x`'s own framework: an ndarray for an ndarray, a
//! /// torch.Tensor for a torch.Tensor, ...
//! #[pyfunction]
//! fn scale_like(x: &Bound<'_, PyAny>, k: f64) -> PyResult<Native> {
//!     let t: ReadonlyTensor<'_, f64> = x.extract()?;
//!     let out = Tensor::try_from(t.view().mapv(|v| v * k))?;
//!     Ok(Native::like(out, x))
//! }
//!
//! /// A new `numpy.ndarray` over Rust-owned memory.
//! #[pyfunction]
//! fn arange_numpy(n: usize) -> Native {
//!     Native::new(Tensor::from((0..n).map(|i| i as f64).collect::<Vec<_>>()), Framework::NumPy)
//! }
//! ```

mod base;
mod numpy;
mod torch;

use pyo3::ffi;
use pyo3::prelude::*;

use crate::error::{Cause, Error};
use crate::python::errors::framework_missing;
use crate::python::known_types::{self, KnownType};
use crate::tensor::Tensor;

/// A Python array library a tensor can be returned as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Framework {
    /// `numpy.ndarray`.
    NumPy,
    /// `torch.Tensor` (CPU tensors; torch has no read-only tensors).
    Torch,
    /// `jax.Array`.
    Jax,
    /// The builtin `memoryview` (CPU, the buffer protocol's formats).
    Memoryview,
    /// `dlbridge.Tensor`, which speaks every protocol.
    Dlbridge,
}

impl Framework {
    /// The framework `obj` belongs to: `NumPy` for an `numpy.ndarray` (or a
    /// subclass), `Torch` for a `torch.Tensor`, `Jax` for a `jax.Array`,
    /// `Memoryview` for a `memoryview`, and `Dlbridge` for anything else
    /// (a `dlbridge.Tensor`, `bytes`, an array-interface object, ...), the
    /// one type that speaks every protocol.
    ///
    /// Recognised by the base types in the type's method resolution order,
    /// each by identity with the loaded framework's own type object (a class
    /// that only takes a framework type's name is not that framework):
    /// nothing is imported and no attribute is read.
    pub fn of(obj: &Bound<'_, PyAny>) -> Self {
        // SAFETY: `obj` is live; its type pointer is valid.
        let ty = unsafe { ffi::Py_TYPE(obj.as_ptr()) };
        if ty == std::ptr::addr_of_mut!(ffi::PyMemoryView_Type) {
            return Self::Memoryview;
        }
        match known_types::find_in_mro(obj.py(), ty) {
            Some((KnownType::NdArray, _)) => Self::NumPy,
            Some((KnownType::TorchTensorBase, _)) => Self::Torch,
            Some((KnownType::JaxArray, _)) => Self::Jax,
            Some((KnownType::ChunkedArray, _)) | None => Self::Dlbridge,
        }
    }

    /// The Python type's name, for messages.
    pub fn type_name(self) -> &'static str {
        match self {
            Self::NumPy => "numpy.ndarray",
            Self::Torch => "torch.Tensor",
            Self::Jax => "jax.Array",
            Self::Memoryview => "memoryview",
            Self::Dlbridge => "dlbridge.Tensor",
        }
    }
}

/// A tensor on its way out to Python as a chosen framework's array: a
/// `#[pyfunction]` return type (see the module docs).
#[derive(Clone, Debug)]
pub struct Native {
    tensor: Tensor,
    framework: Framework,
}

impl Native {
    /// `tensor`, to be returned as `framework`'s array.
    #[inline]
    pub fn new(tensor: Tensor, framework: Framework) -> Self {
        Self { tensor, framework }
    }

    /// `tensor`, to be returned in the framework `like` belongs to
    /// ([`Framework::of`]).
    #[inline]
    pub fn like(tensor: Tensor, like: &Bound<'_, PyAny>) -> Self {
        Self::new(tensor, Framework::of(like))
    }

    /// The framework it will be returned as.
    pub fn framework(&self) -> Framework {
        self.framework
    }

    /// The tensor, given back.
    pub fn into_tensor(self) -> Tensor {
        self.tensor
    }
}

impl<'py> IntoPyObject<'py> for Native {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    #[inline]
    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        // The NumPy return called straight from here: the tensor is handed
        // on by pointer, not moved through `into_framework`'s frame first
        // (a `Native` is 192 bytes, whose moves are `memcpy` calls).
        match self.framework {
            Framework::NumPy => numpy::to_ndarray(py, self.tensor),
            framework => self.tensor.into_framework(py, framework),
        }
    }
}

impl Tensor {
    /// The tensor as `framework`'s array over the same memory (feature
    /// `python`); see [`Native`] for the `#[pyfunction]` return type.
    ///
    /// # Errors
    ///
    /// `ImportError` when the framework cannot be imported; `TypeError`
    /// ([`Cause::DType`]) for a dtype the framework has no type for (NumPy
    /// has no `bfloat16`, say); `BufferError` for memory it cannot take: a
    /// device other than the CPU for NumPy and `memoryview` ([`Cause::Device`]),
    /// read-only memory for torch ([`Cause::Readonly`]); any exception the
    /// framework raises itself.
    #[inline]
    pub fn into_framework(
        self,
        py: Python<'_>,
        framework: Framework,
    ) -> PyResult<Bound<'_, PyAny>> {
        match framework {
            Framework::NumPy => numpy::to_ndarray(py, self),
            Framework::Torch => torch::to_torch(py, self),
            Framework::Jax => {
                refuse_jax_narrowing(py, &self)?;
                via_from_dlpack(py, self, "jax.numpy", "from_dlpack")
            }
            Framework::Memoryview => {
                self.device().ensure_cpu("a memoryview")?;
                let tensor = self.into_pyobject(py)?;
                // SAFETY: a live object; the call returns a new reference or
                // NULL with an exception set.
                let view = unsafe { ffi::PyMemoryView_FromObject(tensor.as_ptr()) };
                if view.is_null() {
                    return Err(PyErr::fetch(py));
                }
                // SAFETY: a new, non-NULL reference.
                Ok(unsafe { Bound::from_owned_ptr(py, view) })
            }
            Framework::Dlbridge => self.into_pyobject(py),
        }
    }
}

/// JAX without `jax_enable_x64` (its default) narrows every 64-bit type on
/// import (`float64` to `float32`, `int64` to `int32`, `complex128` to
/// `complex64`), copying and rounding without a word: such a return is
/// refused instead.
fn refuse_jax_narrowing(py: Python<'_>, tensor: &Tensor) -> PyResult<()> {
    use crate::dtype::DType;
    let dtype = tensor.dtype();
    if ![
        DType::FLOAT64,
        DType::INT64,
        DType::UINT64,
        DType::COMPLEX128,
    ]
    .contains(&dtype)
    {
        return Ok(());
    }
    let jax = py
        .import("jax")
        .map_err(|err| framework_missing(py, "jax.Array", "JAX", err))?;
    if jax
        .getattr("config")?
        .getattr("jax_enable_x64")?
        .is_truthy()?
    {
        return Ok(());
    }
    Err(Error::type_error(
        Cause::DType,
        format!(
            "cannot return a {dtype} tensor as a jax.Array: JAX runs without 64-bit types \
             (jax_enable_x64 is off) and would narrow it; enable jax_enable_x64 or return \
             another framework"
        ),
    )
    .into())
}

/// `module.function(dlbridge.Tensor)`: a framework's own DLPack import of
/// the tensor, for frameworks without a C entry point.
pub(crate) fn via_from_dlpack<'py>(
    py: Python<'py>,
    tensor: Tensor,
    module: &str,
    function: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let (returned, package) = match module {
        "torch" => ("torch.Tensor", "PyTorch"),
        _ => ("jax.Array", "JAX"),
    };
    let module = py
        .import(module)
        .map_err(|err| framework_missing(py, returned, package, err))?;
    let tensor = tensor.into_pyobject(py)?;
    module.getattr(function)?.call1((tensor,))
}
