//! Constraints in the argument type, checked once: fixed extents,
//! contiguity, device and writability, beside [`TypedTensor`]'s dtype and
//! rank (nanobind's `nb::ndarray<float, nb::shape<-1, 3>, nb::c_contig>`).
//!
//! A constraint is a zero-sized marker type implementing [`Constraint`];
//! several combine as a tuple. `()` is no constraint, and costs nothing.
//!
//! ```
//! use dlbridge::constraints::{CContig, Shape2, Writable};
//! use dlbridge::{Tensor, TypedTensor};
//! use ndarray::{Ix2, array};
//!
//! // Any number of rows of 3 float32 values, C-contiguous and writable.
//! type Points = TypedTensor<f32, Ix2, (Shape2<-1, 3>, CContig, Writable)>;
//!
//! let ok = Points::new(Tensor::from(array![[0.0f32, 1.0, 2.0], [3.0, 4.0, 5.0]]));
//! assert!(ok.is_ok());
//!
//! let err = Points::new(Tensor::from(array![[0.0f32, 1.0], [2.0, 3.0]])).unwrap_err();
//! assert_eq!(err.message(), "expected shape [any, 3], got shape [2, 2]");
//!
//! let t = Tensor::from(array![[0.0f32, 1.0, 2.0]]).to_readonly();
//! let err = Points::new(t).unwrap_err();
//! assert_eq!(err.message(), "expected a writable tensor, got a read-only one (shape [1, 3])");
//! ```
//!
//! Every mismatch is a `TypeError` (as a wrong dtype or rank is) naming
//! what was expected and what came.
//!
//! [`TypedTensor`]: crate::TypedTensor

use crate::device::Device;
use crate::error::{Cause, Error, Result};
use crate::layout::Layout;
use crate::tensor::Tensor;

/// What a constraint looks at: a tensor's layout, writability and device
/// (a borrowed argument has these without a [`Tensor`] around them).
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    layout: &'a Layout,
    readonly: bool,
    device: Device,
}

impl<'a> Subject<'a> {
    /// The parts of `tensor`.
    pub fn of(tensor: &'a Tensor) -> Self {
        Self::new(tensor.layout(), tensor.readonly(), tensor.device())
    }

    /// A layout, whether the memory is read-only, and where it lives.
    pub fn new(layout: &'a Layout, readonly: bool, device: Device) -> Self {
        Self {
            layout,
            readonly,
            device,
        }
    }

    /// The layout.
    pub fn layout(&self) -> &'a Layout {
        self.layout
    }

    /// Extents per axis.
    pub fn shape(&self) -> &'a [usize] {
        self.layout.shape()
    }

    /// Byte strides per axis.
    pub fn strides(&self) -> &'a [isize] {
        self.layout.strides()
    }

    /// Whether the producer forbids writes.
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// Where the memory lives.
    pub fn device(&self) -> Device {
        self.device
    }
}

/// A check a tensor must pass to become a `TypedTensor<T, D, C>`.
pub trait Constraint {
    /// Checks the tensor described by `subject`.
    ///
    /// # Errors
    ///
    /// `Type` naming what was expected and what came.
    fn check(subject: &Subject<'_>) -> Result<()>;
}

/// No constraint.
impl Constraint for () {
    #[inline(always)]
    fn check(_: &Subject<'_>) -> Result<()> {
        Ok(())
    }
}

macro_rules! tuple_constraint {
    ($($c:ident),+) => {
        /// Every constraint of the tuple, in order.
        impl<$($c: Constraint),+> Constraint for ($($c,)+) {
            #[inline(always)]
            fn check(subject: &Subject<'_>) -> Result<()> {
                $($c::check(subject)?;)+
                Ok(())
            }
        }
    };
}

tuple_constraint!(A);
tuple_constraint!(A, B);
tuple_constraint!(A, B, C);
tuple_constraint!(A, B, C, D);
tuple_constraint!(A, B, C, D, E);
tuple_constraint!(A, B, C, D, E, F);

fn extents(shape: &[isize]) -> String {
    let parts: Vec<String> = shape
        .iter()
        .map(|&n| {
            if n < 0 {
                "any".to_owned()
            } else {
                n.to_string()
            }
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

fn check_shape(subject: &Subject<'_>, expected: &[isize]) -> Result<()> {
    let shape = subject.shape();
    let fits = shape.len() == expected.len()
        && shape
            .iter()
            .zip(expected)
            .all(|(&n, &e)| e < 0 || n as isize == e);
    if fits {
        return Ok(());
    }
    Err(Error::type_error(
        Cause::Layout,
        format!("expected shape {}, got shape {shape:?}", extents(expected)),
    ))
}

macro_rules! shape_constraint {
    ($(#[$doc:meta])* $name:ident < $($n:ident),+ >) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $name<$(const $n: isize),+>;

        impl<$(const $n: isize),+> Constraint for $name<$($n),+> {
            fn check(subject: &Subject<'_>) -> Result<()> {
                check_shape(subject, &[$($n),+])
            }
        }
    };
}

shape_constraint!(
    /// One axis of extent `A` (`-1`: any).
    Shape1<A>
);
shape_constraint!(
    /// Two axes of extents `A`, `B` (`-1`: any).
    Shape2<A, B>
);
shape_constraint!(
    /// Three axes of extents `A`, `B`, `C` (`-1`: any).
    Shape3<A, B, C>
);
shape_constraint!(
    /// Four axes of extents `A`, `B`, `C`, `D` (`-1`: any).
    Shape4<A, B, C, D>
);

/// C-contiguous (row-major, no gaps).
#[derive(Clone, Copy, Debug, Default)]
pub struct CContig;

impl Constraint for CContig {
    fn check(tensor: &Subject<'_>) -> Result<()> {
        if tensor.layout().is_c_contiguous() {
            return Ok(());
        }
        Err(Error::type_error(
            Cause::Layout,
            format!(
                "expected a C-contiguous tensor, got shape {:?} with byte strides {:?}",
                tensor.shape(),
                tensor.strides()
            ),
        ))
    }
}

/// F-contiguous (column-major, no gaps).
#[derive(Clone, Copy, Debug, Default)]
pub struct FContig;

impl Constraint for FContig {
    fn check(tensor: &Subject<'_>) -> Result<()> {
        if tensor.layout().is_f_contiguous() {
            return Ok(());
        }
        Err(Error::type_error(
            Cause::Layout,
            format!(
                "expected an F-contiguous tensor, got shape {:?} with byte strides {:?}",
                tensor.shape(),
                tensor.strides()
            ),
        ))
    }
}

/// Writable memory (a read-only NumPy array, `bytes` or a JAX array is
/// refused).
#[derive(Clone, Copy, Debug, Default)]
pub struct Writable;

impl Constraint for Writable {
    fn check(tensor: &Subject<'_>) -> Result<()> {
        if !tensor.readonly() {
            return Ok(());
        }
        Err(Error::type_error(
            Cause::Readonly,
            format!(
                "expected a writable tensor, got a read-only one (shape {:?})",
                tensor.shape()
            ),
        ))
    }
}

/// Memory on devices of DLPack device type `DEVICE_TYPE` (`1`: CPU, `2`:
/// CUDA, ...; see [`Device`]). [`Cpu`] and [`Cuda`] name the usual two.
/// A `TypedTensor` is always on the CPU (its views read the memory); the
/// device constraints serve [`Checked`] arguments, which are not viewed.
#[derive(Clone, Copy, Debug, Default)]
pub struct OnDevice<const DEVICE_TYPE: u32>;

/// Memory on the CPU.
pub type Cpu = OnDevice<1>;
/// Memory on a CUDA device.
pub type Cuda = OnDevice<2>;

impl<const DEVICE_TYPE: u32> Constraint for OnDevice<DEVICE_TYPE> {
    fn check(tensor: &Subject<'_>) -> Result<()> {
        let device = tensor.device();
        if device.device_type == DEVICE_TYPE {
            return Ok(());
        }
        let wanted = Device {
            device_type: DEVICE_TYPE,
            device_id: 0,
        };
        Err(Error::type_error(
            Cause::Device,
            format!(
                "expected a tensor on a {} device, got one on {device}",
                wanted.type_name()
            ),
        ))
    }
}

/// A [`Tensor`] that passed the constraints `C`, with no dtype, rank or
/// device assumed (so it may live on a GPU): the argument type for
/// functions that hand memory on rather than read it.
///
/// ```
/// use dlbridge::constraints::{CContig, Checked, Cpu};
/// use dlbridge::{DType, Tensor};
///
/// let t = Tensor::zeros(&[2, 3], DType::UINT8).unwrap();
/// let checked = Checked::<(Cpu, CContig)>::new(t).unwrap();
/// assert_eq!(checked.tensor().shape(), &[2, 3]);
/// ```
#[derive(Clone, Debug)]
pub struct Checked<C: Constraint> {
    tensor: Tensor,
    _constraint: std::marker::PhantomData<fn() -> C>,
}

impl<C: Constraint> Checked<C> {
    /// Checks `tensor` once.
    ///
    /// # Errors
    ///
    /// `Type` from the first constraint it fails.
    pub fn new(tensor: Tensor) -> Result<Self> {
        C::check(&Subject::of(&tensor))?;
        Ok(Self {
            tensor,
            _constraint: std::marker::PhantomData,
        })
    }

    /// The tensor.
    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    /// Gives the tensor back.
    pub fn into_tensor(self) -> Tensor {
        self.tensor
    }
}

impl<C: Constraint> std::ops::Deref for Checked<C> {
    type Target = Tensor;

    fn deref(&self) -> &Tensor {
        &self.tensor
    }
}
