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

/// A check a tensor must pass to become a `TypedTensor<T, D, C>` or a
/// borrowed argument with constraints `C`.
pub trait Constraint {
    /// Checks a tensor's layout, writability and device (the parts of a
    /// [`Descriptor`](crate::Descriptor) a constraint looks at: an owning
    /// tensor and a borrowed argument both have them).
    ///
    /// # Errors
    ///
    /// `Type` naming what was expected and what came.
    fn check(layout: &Layout, readonly: bool, device: Device) -> Result<()>;
}

/// No constraint.
impl Constraint for () {
    #[inline(always)]
    fn check(_: &Layout, _: bool, _: Device) -> Result<()> {
        Ok(())
    }
}

macro_rules! tuple_constraint {
    ($($c:ident),+) => {
        /// Every constraint of the tuple, in order.
        impl<$($c: Constraint),+> Constraint for ($($c,)+) {
            #[inline(always)]
            fn check(layout: &Layout, readonly: bool, device: Device) -> Result<()> {
                $($c::check(layout, readonly, device)?;)+
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

fn check_shape(layout: &Layout, expected: &[isize]) -> Result<()> {
    let shape = layout.shape();
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
            fn check(layout: &Layout, _: bool, _: Device) -> Result<()> {
                check_shape(layout, &[$($n),+])
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
    fn check(layout: &Layout, _: bool, _: Device) -> Result<()> {
        if layout.is_c_contiguous() {
            return Ok(());
        }
        Err(Error::type_error(
            Cause::Layout,
            format!(
                "expected a C-contiguous tensor, got shape {:?} with byte strides {:?}",
                layout.shape(),
                layout.strides()
            ),
        ))
    }
}

/// F-contiguous (column-major, no gaps).
#[derive(Clone, Copy, Debug, Default)]
pub struct FContig;

impl Constraint for FContig {
    fn check(layout: &Layout, _: bool, _: Device) -> Result<()> {
        if layout.is_f_contiguous() {
            return Ok(());
        }
        Err(Error::type_error(
            Cause::Layout,
            format!(
                "expected an F-contiguous tensor, got shape {:?} with byte strides {:?}",
                layout.shape(),
                layout.strides()
            ),
        ))
    }
}

/// Writable memory (a read-only NumPy array, `bytes` or a JAX array is
/// refused).
#[derive(Clone, Copy, Debug, Default)]
pub struct Writable;

impl Constraint for Writable {
    fn check(layout: &Layout, readonly: bool, _: Device) -> Result<()> {
        if !readonly {
            return Ok(());
        }
        Err(Error::type_error(
            Cause::Readonly,
            format!(
                "expected a writable tensor, got a read-only one (shape {:?})",
                layout.shape()
            ),
        ))
    }
}

/// Memory on devices of DLPack device type `DEVICE_TYPE` (`1`: CPU, `2`:
/// CUDA, ...; see [`Device`]). [`Cpu`] and [`Cuda`] name the usual two.
/// A `TypedTensor` is always on the CPU (its views read the memory); the
/// device constraints serve untyped borrowed arguments (feature `python`:
/// `ReadonlyTensor<'_, AnyDtype, IxDyn, Cpu>`), which may hold memory
/// anywhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct OnDevice<const DEVICE_TYPE: u32>;

/// Memory on the CPU.
pub type Cpu = OnDevice<1>;
/// Memory on a CUDA device.
pub type Cuda = OnDevice<2>;

impl<const DEVICE_TYPE: u32> Constraint for OnDevice<DEVICE_TYPE> {
    fn check(_: &Layout, _: bool, device: Device) -> Result<()> {
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
