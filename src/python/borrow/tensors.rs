//! `ReadonlyTensor` and `ReadwriteTensor`: typed tensors holding a tracked
//! borrow of their memory for as long as they live.

use ndarray::{ArrayView, ArrayViewMut, Dimension, IxDyn};
use pyo3::prelude::*;
use pyo3::{Borrowed, Bound, PyAny, Python};

use super::capsule::{self, BorrowApi};
use super::rust_numpy::{NumpyBorrow, Refusal};
use crate::borrow::key::BorrowKey;
use crate::borrow::registry::Conflict;
use crate::descriptor::Source;
use crate::dtype::{DType, Element};
use crate::error::{Cause, Error};
use crate::tensor::Tensor;
use crate::view::TypedTensor;

/// A borrow recorded in the process's registry (and rust-numpy's, when it
/// has its own and the object is a NumPy array), released exactly once, on
/// drop. `Python<'py>` keeps it on an attached thread (it is not `Send`).
pub(crate) struct Guard<'py> {
    _py: Python<'py>,
    api: &'static BorrowApi,
    key: BorrowKey,
    exclusive: bool,
    numpy: Option<NumpyBorrow<'py>>,
}

/// How a refusal names the tensor: dtype, shape and where it came from.
pub(crate) fn describe(dtype: DType, shape: &[usize], source: Source) -> String {
    format!(
        "the {dtype} tensor of shape {shape:?} (source {})",
        source.as_str()
    )
}

fn describe_tensor(tensor: &Tensor) -> String {
    describe(tensor.dtype(), tensor.shape(), tensor.source())
}

fn readonly_error(what: &str) -> PyErr {
    Error::buffer(
        Cause::Readonly,
        format!("cannot borrow {what} mutably: it is readonly"),
    )
    .into()
}

fn conflict_error(what: &str, key: &BorrowKey, exclusive: bool, held: &Conflict) -> PyErr {
    let how = if exclusive { "mutably" } else { "for reading" };
    let (start, end) = (key.start, key.end);
    let (held_start, held_end) = (held.key.start, held.key.end);
    let error = if held.exclusive != 0 {
        Error::buffer(
            Cause::Aliasing,
            format!(
                "cannot borrow {what} {how}: its bytes {start:#x}..{end:#x} overlap a mutable borrow \
                 already held (bytes {held_start:#x}..{held_end:#x}) by another argument or a call still running"
            ),
        )
    } else {
        Error::buffer(
            Cause::Aliasing,
            format!(
                "cannot borrow {what} mutably: its bytes {start:#x}..{end:#x} overlap {} shared borrow(s) \
                 already held (bytes {held_start:#x}..{held_end:#x}) by another argument or a call still running",
                held.readers
            ),
        )
    };
    error.into()
}

impl<'py> Guard<'py> {
    /// Takes a borrow of `key` (the memory of `object`, named by `what` in
    /// a refusal), shared or `exclusive`.
    pub(crate) fn acquire<'b: 'py>(
        object: &Bound<'b, PyAny>,
        key: BorrowKey,
        exclusive: bool,
        what: impl Fn() -> String,
    ) -> PyResult<Self> {
        let py: Python<'py> = object.py();
        let api = capsule::api(py)?;
        if let Err(held) = api.acquire(&key, exclusive) {
            return Err(conflict_error(&what(), &key, exclusive, &held));
        }
        let mut guard = Self {
            _py: py,
            api,
            key,
            exclusive,
            numpy: None,
        };
        // On a refusal `guard` drops here and gives dlbridge's borrow back.
        guard.numpy = match NumpyBorrow::acquire(object, exclusive) {
            Ok(numpy) => numpy,
            Err(Refusal::NotWritable) => return Err(readonly_error(&what())),
            Err(Refusal::Borrowed) => {
                let how = if exclusive { "mutably" } else { "for reading" };
                return Err(Error::buffer(
                    Cause::Aliasing,
                    format!(
                        "cannot borrow {} {how}: a rust-numpy extension holds a conflicting borrow of this \
                         NumPy array (a PyReadwriteArray, or a PyReadonlyArray)",
                        what()
                    ),
                )
                .into());
            }
        };
        Ok(guard)
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        drop(self.numpy.take());
        // This key was acquired with this kind by `acquire` and is released
        // once, here: a refusal (not held) would be a double release
        // somewhere, which tests must see (never a panic in release builds:
        // the borrow is gone either way).
        let released = self.api.release(&self.key, self.exclusive);
        debug_assert!(released, "borrow {:?} released twice", self.key);
    }
}

/// The key of a typed tensor's memory.
fn key_of<T: Element, D: Dimension>(typed: &TypedTensor<T, D>) -> BorrowKey {
    BorrowKey::of_layout(typed.data_ptr().addr(), typed.tensor().layout())
}

/// The accessors both borrow types share (no `&Tensor` is handed out: a
/// clone of it would be an untracked view).
macro_rules! accessors {
    () => {
        /// Extents per axis.
        pub fn shape(&self) -> &[usize] {
            self.typed.shape()
        }

        /// Byte strides per axis.
        pub fn strides(&self) -> &[isize] {
            self.typed.strides()
        }

        /// Number of axes.
        pub fn ndim(&self) -> usize {
            self.typed.ndim()
        }

        /// The element type (`T`'s).
        pub fn dtype(&self) -> DType {
            self.typed.dtype()
        }

        /// Address of the first element.
        pub fn data_ptr(&self) -> *const u8 {
            self.typed.data_ptr().cast_const()
        }

        /// The protocol the memory came through.
        pub fn source(&self) -> Source {
            self.typed.source()
        }

        /// A shared view of the elements (tracked: the registry holds this
        /// argument's borrow for as long as the view can live).
        pub fn view(&self) -> ArrayView<'_, T, D> {
            // SAFETY: the registry holds a borrow of every byte the view
            // covers (shared or exclusive) until `self` drops, so no other
            // tracked view writes them; the view borrows `self`.
            unsafe { self.typed.view() }
        }

        /// Ends the borrow and gives the tensor back (an untracked view again).
        pub fn into_tensor(self) -> Tensor {
            let Self { typed, guard } = self;
            drop(guard);
            typed.into_tensor()
        }
    };
}

/// A `#[pyfunction]` argument holding a **shared borrow** of an array's
/// memory, checked for element type `T` and rank `D` (as [`TypedTensor`]):
/// any number may coexist, and while one lives no [`ReadwriteTensor`]
/// (in this extension or any other, or a rust-numpy `PyReadwriteArray` of
/// the same NumPy array) can borrow overlapping memory. The model and its
/// limits: [`crate::borrow`].
///
/// ```no_run
/// use dlbridge::ReadonlyTensor;
/// use pyo3::prelude::*;
///
/// #[pyfunction]
/// fn total(x: ReadonlyTensor<'_, f64>) -> f64 {
///     x.view().sum()
/// }
/// ```
pub struct ReadonlyTensor<'py, T: Element, D: Dimension = IxDyn> {
    typed: TypedTensor<T, D>,
    guard: Guard<'py>,
}

/// A `#[pyfunction]` argument holding an **exclusive borrow** of an array's
/// memory, checked for element type `T` and rank `D`: [`view_mut`] writes
/// into NumPy arrays, torch tensors, writable buffers, ... in safe code.
///
/// Extraction refuses, with `BufferError`: a readonly array; a layout that
/// reaches one element through two indices; memory overlapping any borrow
/// already held, shared or exclusive, by this call's other arguments
/// (`f(a, a)`, `f(a[1:], a[:2])`), by a call further up the stack, by
/// another extension (whatever dlbridge version it links), or by a
/// rust-numpy extension (NumPy arrays). Interleaved slices (`a[::2]` and
/// `a[1::2]`) do not overlap and may be borrowed together. The borrow ends
/// when the value is dropped, on return or on an error. The model and its
/// limits (what the registry cannot see): [`crate::borrow`].
///
/// ```no_run
/// use dlbridge::{ReadonlyTensor, ReadwriteTensor};
/// use pyo3::prelude::*;
///
/// /// `out = x + y`; refuses an `out` that overlaps `x` or `y`.
/// #[pyfunction]
/// fn add(x: ReadonlyTensor<'_, f64>, y: ReadonlyTensor<'_, f64>, mut out: ReadwriteTensor<'_, f64>) {
///     ndarray::Zip::from(out.view_mut())
///         .and(&x.view())
///         .and(&y.view())
///         .for_each(|o, &a, &b| *o = a + b);
/// }
/// ```
///
/// [`view_mut`]: ReadwriteTensor::view_mut
pub struct ReadwriteTensor<'py, T: Element, D: Dimension = IxDyn> {
    typed: TypedTensor<T, D>,
    guard: Guard<'py>,
}

impl<T: Element, D: Dimension> ReadonlyTensor<'_, T, D> {
    accessors!();
}

impl<T: Element, D: Dimension> ReadwriteTensor<'_, T, D> {
    accessors!();

    /// An exclusive mutable view of the elements.
    ///
    /// # Panics
    ///
    /// Never: writability and distinct elements were checked when the
    /// argument was extracted, and neither can change.
    pub fn view_mut(&mut self) -> ArrayViewMut<'_, T, D> {
        // SAFETY: the registry holds an exclusive borrow of every byte the
        // view covers, so no other tracked view of them exists until `self`
        // drops, and the view borrows `self` mutably (the limits of this
        // guarantee are the module docs' "What it cannot see").
        match unsafe { self.typed.view_mut_unchecked() } {
            Ok(view) => view,
            Err(err) => unreachable!("checked at extraction: {err}"),
        }
    }
}

impl<'py, T: Element, D: Dimension> FromPyObject<'_, 'py> for ReadonlyTensor<'py, T, D> {
    type Error = PyErr;

    /// As [`TypedTensor`], then a shared borrow of the memory.
    fn extract(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        let typed: TypedTensor<T, D> = obj.extract()?;
        let guard = Guard::acquire(&obj, key_of(&typed), false, || describe_tensor(&typed))?;
        Ok(Self { typed, guard })
    }
}

impl<'py, T: Element, D: Dimension> FromPyObject<'_, 'py> for ReadwriteTensor<'py, T, D> {
    type Error = PyErr;

    /// As [`TypedTensor`], then writability, distinct elements and an
    /// exclusive borrow of the memory.
    fn extract(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        let typed: TypedTensor<T, D> = obj.extract()?;
        if typed.readonly() {
            return Err(readonly_error(&describe_tensor(&typed)));
        }
        // Writable, and no element reached through two indices.
        typed.check_writable()?;
        let guard = Guard::acquire(&obj, key_of(&typed), true, || describe_tensor(&typed))?;
        Ok(Self { typed, guard })
    }
}

impl<T: Element, D: Dimension> std::fmt::Debug for ReadonlyTensor<'_, T, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadonlyTensor")
            .field("key", &self.guard.key)
            .finish()
    }
}

impl<T: Element, D: Dimension> std::fmt::Debug for ReadwriteTensor<'_, T, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadwriteTensor")
            .field("key", &self.guard.key)
            .finish()
    }
}
