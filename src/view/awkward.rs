//! The owned arrays every "built without checks" test runs over (test-only):
//! each kind of layout an `ndarray::Array` can hold, once, so the tests
//! that compare an unchecked path with the checked one cannot drift apart
//! in what they cover.

use ndarray::{Array, ArrayD, Axis, IxDyn, ShapeBuilder, s};

/// 0-d, 1-d reversed and stepped, empty, length-1 axes (sliced, and built
/// with strides that are never applied, up to ones that overflow in
/// bytes), negative and stepped strides, permuted axes, the inline ranks
/// and past them (8, 9 and 64 axes). Values differ per element in most
/// (the zeros arrays test shapes and strides alone), so a wrong stride
/// reads a wrong value where a test compares values.
pub(crate) fn arrays() -> Vec<ArrayD<f64>> {
    let grid = || Array::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f64).into_dyn();
    let mut flipped = grid();
    flipped.invert_axis(Axis(1));
    let mut stepped = grid();
    stepped.slice_collapse(s![..;2, ..;-3]);
    let mut one = grid();
    one.slice_collapse(s![1..2, ..;4]); // both axes of length 1
    let mut cube = Array::from_shape_fn((2, 3, 4), |(i, j, k)| (i * 12 + j * 4 + k) as f64);
    cube.swap_axes(0, 2);
    cube.invert_axis(Axis(1));
    let shape: Vec<usize> = (0..9).map(|axis| 1 + axis % 2).collect();
    let mut wide = Array::from_shape_fn(IxDyn(&shape), |ix| {
        ndarray::Dimension::slice(&ix).iter().sum::<usize>() as f64
    });
    wide.invert_axis(Axis(3));
    let mut line = Array::from_iter((0..7).map(f64::from));
    line.slice_collapse(s![..;-2]);
    let mut all = vec![
        ndarray::arr0(1.0).into_dyn(),
        line.into_dyn(),
        ArrayD::zeros(IxDyn(&[0, 3])),
        ArrayD::zeros(IxDyn(&[3, 0, 2])),
        grid(),
        grid().reversed_axes(),
        flipped,
        stepped,
        one,
        cube.into_dyn(),
        ArrayD::zeros(IxDyn(&[1, 1, 1, 1, 1, 7])),
        ArrayD::zeros(IxDyn(&[2, 1, 3, 1, 2, 1, 2, 1])),
        wide,
        ArrayD::zeros(IxDyn(&[1; 64])),
    ];
    // A shape builder keeps whatever stride a length-1 axis is given
    // (slicing zeroes it); the last two overflow in bytes for `f64`.
    let unapplied = [
        5,
        -7,
        isize::MAX / 4,
        isize::MIN / 2,
        isize::MAX,
        isize::MIN + 1,
    ];
    for odd in unapplied {
        let raw = (1, 3).strides((odd as usize, 1));
        all.push(
            Array::from_shape_vec(raw, vec![1.0, 2.0, 3.0])
                .unwrap()
                .into_dyn(),
        );
        let raw = (3, 1, 2).strides((2, odd as usize, 1));
        let values = (0..6).map(f64::from).collect();
        all.push(Array::from_shape_vec(raw, values).unwrap().into_dyn());
    }
    all
}

/// Calls `$fixed` with `$array` at its fixed rank (`Ix0` to `Ix6`), or
/// `$dynamic` with it as it is past six axes: a test of a path generic over
/// `D: Dimension` runs each rank's own instance, not only `IxDyn`'s.
macro_rules! at_fixed_rank {
    ($array:expr, $fixed:expr, $dynamic:expr) => {{
        let array: ndarray::ArrayD<f64> = $array;
        match array.ndim() {
            0 => $fixed(array.into_dimensionality::<ndarray::Ix0>().unwrap()),
            1 => $fixed(array.into_dimensionality::<ndarray::Ix1>().unwrap()),
            2 => $fixed(array.into_dimensionality::<ndarray::Ix2>().unwrap()),
            3 => $fixed(array.into_dimensionality::<ndarray::Ix3>().unwrap()),
            4 => $fixed(array.into_dimensionality::<ndarray::Ix4>().unwrap()),
            5 => $fixed(array.into_dimensionality::<ndarray::Ix5>().unwrap()),
            6 => $fixed(array.into_dimensionality::<ndarray::Ix6>().unwrap()),
            _ => $dynamic(array),
        }
    }};
}
pub(crate) use at_fixed_rank;

/// The list covers what it says: every rank from 0 to 6 and past it, an
/// empty array, a negative stride, a length-1 axis with a stride that
/// overflows in bytes, and strides that are not the contiguous ones.
#[test]
fn the_arrays_cover_each_kind() {
    let all = arrays();
    for ndim in [0, 1, 2, 3, 6, 8, 9, 64] {
        assert!(all.iter().any(|a| a.ndim() == ndim), "{ndim}-d");
    }
    assert!(all.iter().any(|a| a.is_empty()));
    assert!(all.iter().any(|a| a.strides().iter().any(|&s| s < 0)));
    assert!(all.iter().any(|a| {
        let steps = a.shape().iter().zip(a.strides());
        steps
            .filter(|&(&n, _)| n == 1)
            .any(|(_, &s)| s.checked_mul(8).is_none())
    }));
    assert!(
        all.iter()
            .any(|a| !a.is_standard_layout() && a.t().is_standard_layout())
    );
    assert!(
        all.iter()
            .any(|a| !a.is_standard_layout() && !a.t().is_standard_layout())
    );
}
