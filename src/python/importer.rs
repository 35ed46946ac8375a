//! The one importer: every entry point that takes a Python array-like
//! (`asarray`, a [`Tensor`] or `TypedTensor` argument, a borrowed argument)
//! calls [`import`] with its [`Options`], and the order, the fast paths and
//! the refusal rules live in one table, [`STAGES`].
//!
//! The first four stages are shortcuts: each takes a common producer the
//! way a later protocol stage would (the same tensor, the same checks),
//! without the walk to it, and one that does not recognise the object (or,
//! for the builtin buffers and the exchange table, cannot take it) passes
//! it on silently, so the protocol stage asks again and answers in its own
//! words. The exception is the field read of an exact `numpy.ndarray`: its
//! refusal (a dtype or layout dlbridge cannot carry) is the answer, for
//! every entry point, since NumPy's own protocols would describe the same
//! array and be refused the same way.
//! The rest are the protocols, in the contract's order
//! (`docs/architecture.md`); what a refusal from each means is
//! [`super::discover`]'s. The entry points differ only in their options,
//! and in what an exact ndarray comes as, which is a type ([`Lend`]): only
//! the borrowed argument's `accept` can be handed a lent descriptor.
//!
//! | entry point | lent ndarray | `__array__` | views first | `copy` |
//! | --- | --- | --- | --- | --- |
//! | `asarray` | no ([`NotLent`]) | yes | yes | asarray's |
//! | `Tensor`, `TypedTensor` | no ([`NotLent`]) | no | no | none |
//! | borrowed arguments | yes ([`Descriptor`]) | no | no | none |

use pyo3::exceptions::PyBufferError;
use pyo3::intern;
use pyo3::prelude::*;

use super::array_dunder;
use super::buffer;
use super::discover;
use super::dlpack::{exchange, ndarray_fields};
use super::fast_path;
use super::home::is_home_binary;
use super::known_types::{self, KnownType};
use super::lookup::{self, OnType};
use super::tensor::PyTensor;
use super::{array_interface, arrow};
use crate::descriptor::Descriptor;
use crate::error::{Cause, Error};
use crate::tensor::Tensor;

/// What an entry point allows the importer to do (what an exact ndarray
/// comes as is its `accept`'s type: [`Lend`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Options {
    /// `__array__` is the last resort for an object no protocol took
    /// (asarray's: see [`Stage::ArrayDunder`]).
    pub(crate) array_dunder: bool,
    /// A stream-only Arrow producer is asked for a zero-copy `__array__`
    /// before its stream ([`Stage::ArrowViewsFirst`]).
    pub(crate) views_first: bool,
    /// asarray's `copy`, passed on to `__array__`; `copy=True` also to the
    /// exchange table (a tensor not on the CPU is handed back: only its
    /// producer can copy it) and to the DLPack stage (which asks the
    /// producer for that copy, as `from_dlpack` does).
    pub(crate) copy: Option<bool>,
    /// Every shortcut is inlined into the entry point, each handing what it
    /// took to `accept` there; otherwise only the first (the exact
    /// ndarray), and the rest run out of line, with one `accept` for them
    /// all. A borrowed argument's extract must stay small enough for PyO3 to
    /// inline it into the function: with more inlined copies of its
    /// `accept` it was not, and `sum_f64(ndarray)` took 1,563 instructions
    /// instead of 1,479.
    pub(crate) every_shortcut_inline: bool,
}

impl Options {
    /// A `Tensor` or `TypedTensor` argument: an owning tensor, the
    /// protocols only.
    pub(crate) const ARGUMENT: Self = Self {
        array_dunder: false,
        views_first: false,
        copy: None,
        every_shortcut_inline: true,
    };

    /// A borrowed argument (whose `accept` takes an exact ndarray lent for
    /// the call: [`Lend`]).
    pub(crate) const BORROWED: Self = Self {
        every_shortcut_inline: false,
        ..Self::ARGUMENT
    };

    /// `asarray(obj, copy=copy)`.
    pub(crate) const fn asarray(copy: Option<bool>) -> Self {
        Self {
            array_dunder: true,
            views_first: true,
            copy,
            every_shortcut_inline: true,
        }
    }
}

/// What [`import`] took `obj` as; `L` is what an exact ndarray may come as
/// without an owner ([`Lend`]).
pub(crate) enum Imported<'a, 'py, L = NotLent> {
    /// A `dlbridge.Tensor` of this binary: its tensor is cloned (or, by
    /// `asarray`, the object itself returned).
    Home(&'a Bound<'py, PyTensor>),
    /// An exact `numpy.ndarray`'s checked descriptor, no owner: only when
    /// the entry point's `accept` takes a [`Descriptor`] here (the borrowed
    /// argument's); the caller's borrow keeps it alive.
    Lent(L),
    /// A tensor that owns what keeps its memory alive.
    Owned(Tensor),
}

/// What the lent variant holds for every entry point that owns its tensor:
/// nothing can be, so [`Imported::Lent`] cannot be made for them, and
/// [`Imported::into_tensor`] has no lent descriptor to give an owner.
pub(crate) enum NotLent {}

/// What an exact `numpy.ndarray` comes as ([`Stage::NdarrayFields`]):
/// lent ([`Descriptor`], the borrowed argument's) or owned ([`NotLent`],
/// every other entry point's). Sealed by its two implementations.
pub(crate) trait Lend: Sized {
    /// What the field read finds: a lent descriptor, or an owning tensor.
    type Found;

    /// The field read; `Ok(None)` when `obj` is not an exact ndarray.
    fn read(obj: &Bound<'_, PyAny>) -> PyResult<Option<Self::Found>>;

    /// What the read found, as the entry point's `accept` takes it.
    fn imported<'a, 'py>(found: Self::Found) -> Imported<'a, 'py, Self>;
}

impl Lend for Descriptor {
    /// The checked descriptor alone: no owner, for an argument that borrows
    /// the array for the call. Counted as `lent_arguments`.
    type Found = Descriptor;

    #[inline(always)]
    fn read(obj: &Bound<'_, PyAny>) -> PyResult<Option<Descriptor>> {
        ndarray_fields::read_lent(obj)
    }

    #[inline(always)]
    fn imported<'a, 'py>(found: Descriptor) -> Imported<'a, 'py, Self> {
        Imported::Lent(found)
    }
}

impl Lend for NotLent {
    /// An owning tensor, with the array as its owner. Counted as
    /// `ndarray_fields`.
    type Found = Tensor;

    #[inline(always)]
    fn read(obj: &Bound<'_, PyAny>) -> PyResult<Option<Tensor>> {
        ndarray_fields::import(obj)
    }

    #[inline(always)]
    fn imported<'a, 'py>(found: Tensor) -> Imported<'a, 'py, Self> {
        Imported::Owned(found)
    }
}

impl Imported<'_, '_> {
    /// The owning tensor, whichever way it came: a home tensor cloned.
    #[inline(always)]
    pub(crate) fn into_tensor(self) -> Tensor {
        match self {
            Self::Home(tensor) => tensor.get().inner.clone(),
            Self::Lent(not_lent) => match not_lent {},
            Self::Owned(tensor) => tensor,
        }
    }
}

/// One step of the import, in [`STAGES`]' order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Shortcut: an exact `numpy.ndarray`, read from its fields as its
    /// `__dlpack__` would describe it (`ndarray_fields.rs`); lent when the
    /// entry point's `accept` takes it so ([`Lend`]). Counted as
    /// `ndarray_fields` or `lent_arguments`. The commonest input, so it
    /// comes first.
    NdarrayFields,
    /// Shortcut: `memoryview`, `bytes` and `bytearray` speak the buffer
    /// protocol alone, so its answer is the protocols' (a refusal is asked
    /// again there: the builtins' exports have no side effects). Counted as
    /// `builtin_buffer`.
    BuiltinBuffer,
    /// Shortcut: a `dlbridge.Tensor` made by this binary (`home.rs`). The
    /// shortcuts take disjoint types (an exact ndarray, an exact builtin, a
    /// `dlbridge.Tensor`, a type with an exchange table): their order
    /// changes no answer, only what the commonest inputs pay.
    HomeTensor,
    /// Shortcut: a type that publishes a DLPack C exchange table (torch)
    /// and defines `__dlpack__`, as the DLPack stage would ask it first
    /// (`exchange.rs`). Counted as `exchange_api`.
    ExchangeTable,
    /// DLPack: a capsule, or `__dlpack__`.
    Dlpack,
    /// The buffer protocol (PEP 3118).
    BufferProtocol,
    /// `__array_struct__`, then `__array_interface__`.
    ArrayInterface,
    /// `__cuda_array_interface__`: only when no protocol refused, and never
    /// for a buffer exporter.
    CudaArrayInterface,
    /// A stream-only Arrow producer's own zero-copy `__array__(copy=False)`
    /// ([`Options::views_first`], and only when no protocol refused).
    ArrowViewsFirst,
    /// The Arrow PyCapsule interface: `__arrow_c_array__`, then
    /// `__arrow_c_stream__`.
    Arrow,
    /// `__array__`, the last resort ([`Options::array_dunder`]): not asked
    /// when a protocol other than Arrow refused.
    ArrayDunder,
}

/// The import order: the first stage that takes the object answers.
pub(crate) const STAGES: [Stage; 11] = [
    Stage::NdarrayFields,
    Stage::BuiltinBuffer,
    Stage::HomeTensor,
    Stage::ExchangeTable,
    Stage::Dlpack,
    Stage::BufferProtocol,
    Stage::ArrayInterface,
    Stage::CudaArrayInterface,
    Stage::ArrowViewsFirst,
    Stage::Arrow,
    Stage::ArrayDunder,
];

/// A protocol's `BufferError`, kept for the final message.
struct Refusal {
    stage: Stage,
    message: String,
}

impl Stage {
    /// A shortcut takes what a later stage would, or passes silently.
    const fn is_shortcut(self) -> bool {
        matches!(
            self,
            Self::HomeTensor | Self::NdarrayFields | Self::BuiltinBuffer | Self::ExchangeTable
        )
    }

    /// The protocol's name in a refusal's message; `None` for a stage whose
    /// errors are not refusals to weigh against the others (they propagate).
    const fn protocol(self) -> Option<&'static str> {
        match self {
            Self::Dlpack => Some("DLPack"),
            Self::BufferProtocol => Some("buffer protocol"),
            Self::ArrayInterface => Some("array interface"),
            Self::CudaArrayInterface => Some("CUDA array interface"),
            Self::Arrow => Some("Arrow PyCapsule interface"),
            _ => None,
        }
    }

    /// Whether the stage is asked, given the options and the refusals so far.
    #[inline(always)]
    fn applies(self, options: Options, refusals: &[Refusal]) -> bool {
        match self {
            // A refusal carries the producer's meaning (a torch tensor's
            // negative bit, which its CUDA array interface drops): not
            // bypassed, neither by the CUDA interface nor by a view.
            Self::CudaArrayInterface => refusals.is_empty(),
            Self::ArrowViewsFirst => options.views_first && refusals.is_empty(),
            // An Arrow refusal alone is dlbridge's (nulls, say), not the
            // producer's: its own `__array__` may answer for it.
            Self::ArrayDunder => {
                options.array_dunder && refusals.iter().all(|r| r.stage == Self::Arrow)
            }
            _ => true,
        }
    }

    /// A shortcut's answer: `Ok(None)` passes the object on.
    #[inline(always)]
    fn shortcut<'a, 'py>(
        self,
        obj: &'a Bound<'py, PyAny>,
        options: Options,
    ) -> PyResult<Option<Imported<'a, 'py>>> {
        match self.take(obj, options, Ok) {
            Ok(answer) => answer.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// A shortcut, in continuation-passing form: what it took is handed to
    /// `accept` right where it was made (whose answer is the import's), or
    /// `accept` is given back when the stage passes the object on. No
    /// carrier between the two: see [`import`].
    #[inline(always)]
    fn take<'a, 'py, L: Lend, R, F>(
        self,
        obj: &'a Bound<'py, PyAny>,
        options: Options,
        accept: F,
    ) -> Result<PyResult<R>, F>
    where
        F: FnOnce(Imported<'a, 'py, L>) -> PyResult<R>,
    {
        match self {
            Self::HomeTensor => {
                if is_home_binary()
                    && let Ok(tensor) = obj.cast::<PyTensor>()
                {
                    return Ok(accept(Imported::Home(tensor)));
                }
            }
            Self::NdarrayFields => match L::read(obj) {
                Ok(Some(found)) => return Ok(accept(L::imported(found))),
                Ok(None) => {}
                Err(err) => return Ok(Err(err)),
            },
            Self::BuiltinBuffer => {
                if buffer::is_builtin_exporter(obj)
                    && let Ok(tensor) = buffer::import(obj)
                {
                    fast_path::BUILTIN_BUFFER.hit();
                    return Ok(accept(Imported::Owned(tensor)));
                }
            }
            Self::ExchangeTable => {
                if let Some(tensor) = exchange::shortcut(obj, options.copy == Some(true)) {
                    return Ok(accept(Imported::Owned(tensor)));
                }
            }
            _ => {}
        }
        Err(accept)
    }

    /// A protocol stage's answer: `Ok(None)` when the object does not
    /// speak it.
    fn protocol_import(
        self,
        obj: &Bound<'_, PyAny>,
        options: Options,
        refusals: &mut Vec<Refusal>,
    ) -> PyResult<Option<Tensor>> {
        match self {
            Self::Dlpack => discover::dlpack(obj, options.copy == Some(true)),
            Self::BufferProtocol => discover::buffer_protocol(obj),
            Self::ArrayInterface => array_interface::try_import(obj),
            Self::CudaArrayInterface => discover::cuda_array_interface(obj),
            Self::ArrowViewsFirst => zero_copy_array(obj),
            Self::Arrow => arrow::try_import(obj),
            Self::ArrayDunder => array_dunder_import(obj, options, refusals),
            _ => Ok(None),
        }
    }
}

/// Imports `obj` through the first of [`STAGES`] that takes it, zero-copy,
/// and hands what it took to `accept`, whose answer is the import's.
///
/// The shortcuts are inlined into each entry point (its options are
/// constants there) and written out, not looped over: each stage is a
/// constant at its line, so its `match` folds away and what it took goes
/// straight to `accept`, built where the entry point's result takes it.
/// Carried out of a loop and back (as `Option<Imported>`, then the entry
/// point's tensor) the tensor was moved three more times, with `memcpy`:
/// `asarray(ndarray)` took 1,276 instructions instead of 1,138. Each entry
/// point marks its `accept` `#[inline(always)]`: called at five sites, a
/// closure is otherwise outlined, and the tensor passed to it through
/// memory. The protocols run in one shared function.
///
/// # Errors
///
/// `TypeError` ([`Cause::NoProtocol`]) for an object that speaks no
/// protocol; `BufferError` ([`Cause::NoProtocol`]) listing each refusal
/// when every protocol it speaks refused; any other exception a stage
/// raises, as it is; and `accept`'s.
#[inline(always)]
pub(crate) fn import<'a, 'py, L: Lend, R>(
    obj: &'a Bound<'py, PyAny>,
    options: Options,
    accept: impl FnOnce(Imported<'a, 'py, L>) -> PyResult<R>,
) -> PyResult<R> {
    const { assert!(first_protocol() == SHORTCUTS) };
    let accept = match STAGES[0].take(obj, options, accept) {
        Ok(answer) => return answer,
        Err(accept) => accept,
    };
    if !options.every_shortcut_inline {
        return match import_out_of_line(obj, options) {
            Ok(tensor) => accept(Imported::Owned(tensor)),
            Err(err) => Err(err),
        };
    }
    let accept = match STAGES[1].take(obj, options, accept) {
        Ok(answer) => return answer,
        Err(accept) => accept,
    };
    let accept = match STAGES[2].take(obj, options, accept) {
        Ok(answer) => return answer,
        Err(accept) => accept,
    };
    let accept = match STAGES[3].take(obj, options, accept) {
        Ok(answer) => return answer,
        Err(accept) => accept,
    };
    match protocols(obj, options) {
        Ok(tensor) => accept(Imported::Owned(tensor)),
        Err(err) => Err(err),
    }
}

/// The stages after the first, out of line (see
/// [`Options::every_shortcut_inline`]), as an owning tensor: one variant
/// for the caller's `accept` to inline, not three. None of them lends
/// ([`NotLent`]): only the first stage reads an exact ndarray.
#[inline(never)]
fn import_out_of_line(obj: &Bound<'_, PyAny>, options: Options) -> PyResult<Tensor> {
    for &stage in &STAGES[1..SHORTCUTS] {
        if let Some(imported) = stage.shortcut(obj, options)? {
            return Ok(imported.into_tensor());
        }
    }
    protocols(obj, options)
}

/// How many shortcuts open [`STAGES`]: the lines [`import`] writes out.
const SHORTCUTS: usize = 4;

/// The index of the first protocol stage in [`STAGES`]; every stage before
/// it is a shortcut, none after it.
const fn first_protocol() -> usize {
    let mut i = 0;
    while i < STAGES.len() && STAGES[i].is_shortcut() {
        i += 1;
    }
    let mut j = i;
    while j < STAGES.len() {
        assert!(!STAGES[j].is_shortcut(), "the shortcuts open STAGES");
        j += 1;
    }
    i
}

/// The protocol stages, for an object no shortcut took.
fn protocols(obj: &Bound<'_, PyAny>, options: Options) -> PyResult<Tensor> {
    let mut refusals = Vec::new();
    if let Some(tensor) = walk(obj, options, &mut refusals)? {
        return Ok(tensor);
    }
    let protocols = if options.array_dunder {
        &format!("{PROTOCOL_LIST}, __array__")
    } else {
        PROTOCOL_LIST
    };
    Err(nothing_took(
        &obj.get_type().name()?.to_string(),
        &refusals,
        protocols,
    ))
}

/// The protocol stages that apply, in order: the tensor of the first that
/// takes `obj`, or `None` with each `BufferError` refusal pushed onto
/// `refusals`. The tensor comes back as an `Option` (no bigger than the
/// tensor), not inside a nested `Result`: every import moves it, and a
/// larger carrier made those moves `memcpy` calls.
fn walk(
    obj: &Bound<'_, PyAny>,
    options: Options,
    refusals: &mut Vec<Refusal>,
) -> PyResult<Option<Tensor>> {
    let py = obj.py();
    for stage in STAGES {
        if stage.is_shortcut() || !stage.applies(options, refusals) {
            continue;
        }
        match stage.protocol_import(obj, options, refusals) {
            Ok(Some(tensor)) => return Ok(Some(tensor)),
            Ok(None) => {}
            Err(err) => match stage.protocol() {
                Some(name) if err.is_instance_of::<PyBufferError>(py) => refusals.push(Refusal {
                    stage,
                    message: format!("{name}: {err}"),
                }),
                _ => return Err(err),
            },
        }
    }
    Ok(None)
}

/// What an object's `__array__` (or a view it gave) returned, through the
/// stages again, never through `__array__` again; the refusals so far are
/// kept (and weighed: a refusal still keeps the CUDA interface out).
fn import_returned(
    array: &Bound<'_, PyAny>,
    refusals: &mut Vec<Refusal>,
) -> PyResult<Option<Tensor>> {
    for &stage in &STAGES[..SHORTCUTS] {
        if let Some(imported) = stage.shortcut(array, Options::ARGUMENT)? {
            return Ok(Some(imported.into_tensor()));
        }
    }
    walk(array, Options::ARGUMENT, refusals)
}

/// [`Stage::ArrayDunder`]: `__array__` (called as NumPy 2 calls it, with
/// asarray's `copy`), and what it returned (an ndarray: NumPy requires
/// one) through the stages. `Ok(None)` when the object has no `__array__`.
fn array_dunder_import(
    obj: &Bound<'_, PyAny>,
    options: Options,
    refusals: &mut Vec<Refusal>,
) -> PyResult<Option<Tensor>> {
    let Some(method) = lookup::protocol_attribute(obj, intern!(obj.py(), "__array__"))? else {
        return Ok(None);
    };
    let array = array_dunder::call(obj, &method, options.copy)?;
    if let Some(tensor) = import_returned(&array, refusals)? {
        return Ok(Some(tensor));
    }
    Err(nothing_took(
        &format!(
            "{} (what {}.__array__ returned)",
            array.get_type().name()?,
            obj.get_type().name()?
        ),
        refusals,
        PROTOCOL_LIST,
    ))
}

/// [`Stage::ArrowViewsFirst`]: a stream-only Arrow producer's own
/// zero-copy view, if it has one: `__array__(copy=False)`, imported through
/// the stages. A pandas or polars `Series` offers `__arrow_c_stream__`
/// beside `__array__`, and its stream costs a table built per call (pandas:
/// 140 µs against 11 µs for its array); a producer that cannot give a view
/// (a pyarrow `ChunkedArray` always copies, so it is not asked, by
/// identity: its refusal costs more than its stream, a speed-only skip,
/// counted as `chunked_array_stream`; a `FixedSizeList` column elsewhere
/// would be an object array) says so, or gives what no protocol takes, and
/// its stream is asked as before. Only for objects without
/// `__arrow_c_array__`: an Arrow array is read from its own buffers.
fn zero_copy_array(obj: &Bound<'_, PyAny>) -> PyResult<Option<Tensor>> {
    let py = obj.py();
    // SAFETY: `obj` is live; its type pointer is valid.
    let ty = unsafe { pyo3::ffi::Py_TYPE(obj.as_ptr()) };
    if known_types::is(py, ty, KnownType::ChunkedArray) {
        fast_path::CHUNKED_ARRAY_STREAM.hit();
        return Ok(None);
    }
    if lookup::on_type(obj, intern!(py, "__arrow_c_stream__")) != OnType::Defined
        || lookup::on_type(obj, intern!(py, "__arrow_c_array__")) == OnType::Defined
        || lookup::on_type(obj, intern!(py, "__array__")) != OnType::Defined
    {
        return Ok(None);
    }
    let Some(method) = lookup::protocol_attribute(obj, intern!(py, "__array__"))? else {
        return Ok(None);
    };
    // Any refusal here (a copy it cannot avoid, NumPy 1's signature) only
    // means "no view": the stream answers.
    let Ok(array) = array_dunder::call(obj, &method, Some(false)) else {
        return Ok(None);
    };
    import_returned(&array, &mut Vec::new())
}

/// The protocols the stages try, for messages.
const PROTOCOL_LIST: &str = "DLPack, the buffer protocol, __array_struct__, __array_interface__, \
     __cuda_array_interface__, __arrow_c_array__, __arrow_c_stream__";

/// The error when no stage took an object: a `TypeError` when no protocol
/// spoke to it, the `BufferError` of every refusal otherwise.
fn nothing_took(type_name: &str, refusals: &[Refusal], protocols: &str) -> PyErr {
    if refusals.is_empty() {
        PyErr::from(Error::type_error(
            Cause::NoProtocol,
            format!("{type_name} speaks no array protocol dlbridge understands ({protocols})"),
        ))
    } else {
        let refusals: Vec<&str> = refusals.iter().map(|r| r.message.as_str()).collect();
        PyErr::from(Error::buffer(
            Cause::NoProtocol,
            format!(
                "no protocol could import {type_name}: {}",
                refusals.join("; ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcuts_come_first_and_array_dunder_last() {
        assert_eq!(STAGES[first_protocol()], Stage::Dlpack);
        assert_eq!(STAGES.last(), Some(&Stage::ArrayDunder));
        let views = STAGES.iter().position(|&s| s == Stage::ArrowViewsFirst);
        let arrow = STAGES.iter().position(|&s| s == Stage::Arrow);
        assert_eq!(
            views.map(|i| i + 1),
            arrow,
            "views are asked right before the stream"
        );
    }

    #[test]
    fn only_asarray_reaches_array_dunder() {
        let asarray = Options::asarray(Some(false));
        assert!(asarray.array_dunder && asarray.views_first);
        assert_eq!(asarray.copy, Some(false));
        for options in [Options::ARGUMENT, Options::BORROWED] {
            assert!(!options.array_dunder && !options.views_first && options.copy.is_none());
        }
    }

    #[test]
    fn a_refusal_keeps_the_cuda_interface_and_array_dunder_out_but_arrow_s_does_not() {
        let refused = |stage| {
            vec![Refusal {
                stage,
                message: String::new(),
            }]
        };
        let asarray = Options::asarray(None);
        assert!(Stage::CudaArrayInterface.applies(asarray, &[]));
        assert!(!Stage::CudaArrayInterface.applies(asarray, &refused(Stage::Dlpack)));
        assert!(!Stage::ArrowViewsFirst.applies(asarray, &refused(Stage::Dlpack)));
        assert!(!Stage::ArrowViewsFirst.applies(Options::ARGUMENT, &[]));
        assert!(Stage::ArrayDunder.applies(asarray, &refused(Stage::Arrow)));
        assert!(!Stage::ArrayDunder.applies(asarray, &refused(Stage::Dlpack)));
        assert!(!Stage::ArrayDunder.applies(Options::ARGUMENT, &[]));
    }
}
