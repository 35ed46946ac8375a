//! Export and import together, and hand-made (lying) producers, under Miri:
//! every refusal releases the pair once, every import shares the memory.

use std::ffi::{CString, c_char, c_void};
use std::ptr;

use super::export::{new_array, new_schema, plan};
use super::ffi::{ArrowArray, ArrowSchema};
use super::import::import;
use super::metadata;
use crate::error::{Cause, ErrorKind};
use crate::tensor::Tensor;
use crate::{DType, Source};

/// A tensor's export, moved out as a consumer moves it (the structs are
/// movable: nothing points at them).
fn exported(t: &Tensor) -> (ArrowSchema, ArrowArray) {
    let plan = plan(t, None).unwrap();
    (*new_schema(&plan.schema), *new_array(t, &plan.shape))
}

#[test]
fn round_trip_shares_memory_and_releases_once() {
    let t = Tensor::from(ndarray::Array3::<f32>::from_shape_fn(
        (2, 3, 4),
        |(i, j, k)| (i * 12 + j * 4 + k) as f32,
    ));
    let (schema, array) = exported(&t);
    assert_eq!(t.owner().holders(), 4); // t and three array levels
    // SAFETY: a pair just exported and moved out.
    let back = unsafe { import(schema, array) }.unwrap();
    assert_eq!(
        (back.shape(), back.dtype()),
        (&[2, 3, 4][..], DType::FLOAT32)
    );
    assert_eq!((back.data_ptr(), back.readonly()), (t.data_ptr(), true));
    assert_eq!(back.source(), Source::Arrow);
    // SAFETY: nothing writes the memory while the view lives.
    let read = unsafe { back.as_ndarray::<f32>() }.unwrap();
    assert_eq!(read[[1, 2, 3]], 23.0);
    let view = back.clone();
    drop(back);
    assert_eq!(t.owner().holders(), 4); // the view keeps the array
    drop(view);
    assert_eq!(t.owner().holders(), 1); // released once, every level
}

/// Runs `lie` on an exported pair, then imports it: refused, and released.
fn refused(t: &Tensor, lie: impl FnOnce(&mut ArrowSchema, &mut ArrowArray)) -> crate::Error {
    let (mut schema, mut array) = exported(t);
    lie(&mut schema, &mut array);
    // SAFETY: the lies below change counts and lengths, never a pointer to
    // memory that is not there with a count that lets it be read.
    let err = unsafe { import(schema, array) }.err().unwrap();
    assert_eq!(t.owner().holders(), 1, "{err}");
    err
}

/// A change a lying producer makes to an honest pair.
type Lie = dyn FnOnce(&mut ArrowSchema, &mut ArrowArray);

#[test]
fn lying_arrays_are_refused_and_released() {
    let t = Tensor::from(ndarray::Array2::<i32>::zeros((2, 3)));
    let leaf = |array: &mut ArrowArray| {
        // SAFETY: the exported 2-d array has one child.
        unsafe { &mut **array.children }
    };
    let cases: Vec<(&str, Box<Lie>)> = vec![
        ("neither may be negative", Box::new(|_, a| a.length = -1)),
        ("neither may be negative", Box::new(|_, a| a.offset = -1)),
        (
            "past the end of any buffer",
            Box::new(|_, a| a.offset = i64::MAX),
        ),
        (
            "FixedSizeList parent needs 9 values",
            Box::new(|_, a| a.offset = 1),
        ),
        (
            "FixedSizeList parent needs 6 values",
            Box::new(move |_, a| leaf(a).length = 5),
        ),
        (
            "n_buffers 2 and n_children 1",
            Box::new(|_, a| a.n_buffers = 2),
        ),
        (
            "n_buffers 2 and n_children 1",
            Box::new(move |_, a| leaf(a).n_children = 1),
        ),
        (
            "n_buffers 1 and n_children 0",
            Box::new(|_, a| a.n_children = 0),
        ),
        ("buffers 0x0", Box::new(|_, a| a.buffers = ptr::null_mut())),
        (
            "null_count 1 but no validity bitmap",
            Box::new(|_, a| a.null_count = 1),
        ),
        ("has null_count -2", Box::new(|_, a| a.null_count = -2)),
        (
            "a NULL data buffer for 6 values",
            Box::new(move |_, a| {
                // SAFETY: the leaf's two buffer slots (its private data).
                unsafe { *leaf(a).buffers.add(1) = ptr::null() }
            }),
        ),
        (
            "not aligned to their 4-byte size",
            Box::new(move |_, a| {
                // SAFETY: as above; the address is compared, never read.
                unsafe {
                    *leaf(a).buffers.add(1) = (*leaf(a).buffers.add(1))
                        .cast::<u8>()
                        .wrapping_add(1)
                        .cast()
                }
            }),
        ),
        (
            "has already been released",
            Box::new(|_, a| a.release = None),
        ),
        (
            "is not an Arrow format string",
            Box::new(|s, _| s.format = c"+w:x".as_ptr()),
        ),
        ("has a NULL format", Box::new(|s, _| s.format = ptr::null())),
        ("has n_children 0", Box::new(|s, _| s.n_children = 0)),
    ];
    for (fragment, lie) in cases {
        let err = if fragment == "has already been released" {
            // The producer's array is released: only the schema is left.
            let (schema, mut array) = exported(&t);
            // SAFETY: releasing the array the way its consumer would.
            unsafe { array.release.unwrap()(&mut array) };
            lie(&mut ArrowSchema::released(), &mut array);
            // SAFETY: a released array and a valid schema.
            unsafe { import(schema, array) }.err().unwrap()
        } else {
            refused(&t, lie)
        };
        assert!(
            err.message().contains(fragment),
            "{fragment:?} not in {err}"
        );
        assert_eq!(t.owner().holders(), 1);
    }
}

#[test]
fn types_without_a_tensor_are_refused() {
    let t = Tensor::from(vec![1u8, 2, 3]);
    for (format, fragment) in [
        (c"b", "bit-packed"),
        (c"u", "strings"),
        (c"d:10,2", "decimals"),
        (c"tsu:UTC", "temporal"),
        (c"+l", "list slots"),
    ] {
        let err = refused(&t, |s, _| s.format = format.as_ptr());
        assert_eq!(err.kind(), ErrorKind::Buffer);
        assert!(err.message().contains(fragment), "{err}");
    }
    let mut dictionary = ArrowSchema::released();
    let err = refused(&t, |s, _| s.dictionary = &mut dictionary);
    assert!(err.message().contains("dictionary-encoded"), "{err}");
}

/// A hand-made producer: one primitive level over `buffers`, released by a
/// callback that counts.
struct Counted {
    releases: usize,
}

unsafe extern "C" fn count_array(array: *mut ArrowArray) {
    // SAFETY: private_data is the test's `Counted`, alive for the test.
    unsafe {
        (*(*array).private_data.cast::<Counted>()).releases += 1;
        (*array).release = None;
    }
}

unsafe extern "C" fn count_schema(schema: *mut ArrowSchema) {
    // SAFETY: as above.
    unsafe {
        (*(*schema).private_data.cast::<Counted>()).releases += 1;
        (*schema).release = None;
    }
}

fn hand_made(
    format: &CString,
    metadata: *const c_char,
    buffers: &mut [*const c_void; 2],
    length: i64,
    null_count: i64,
    counted: &mut Counted,
) -> (ArrowSchema, ArrowArray) {
    let schema = ArrowSchema {
        format: format.as_ptr(),
        metadata,
        release: Some(count_schema),
        private_data: (counted as *mut Counted).cast(),
        ..ArrowSchema::released()
    };
    let array = ArrowArray {
        length,
        null_count,
        n_buffers: 2,
        buffers: buffers.as_mut_ptr(),
        release: Some(count_array),
        private_data: (counted as *mut Counted).cast(),
        ..ArrowArray::released()
    };
    (schema, array)
}

#[test]
fn validity_bitmaps_are_counted_in_the_slots_used() {
    let values = [1.0f64, 2.0, 3.0, 4.0];
    let format = CString::new("g").unwrap();
    for (bitmap, null_count, nulls) in [(0b1111u8, -1, 0), (0b1011, -1, 1), (0b1111, 0, 0)] {
        let bits = [bitmap];
        let mut buffers = [bits.as_ptr().cast(), values.as_ptr().cast()];
        let mut counted = Counted { releases: 0 };
        let (schema, array) = hand_made(
            &format,
            ptr::null(),
            &mut buffers,
            4,
            null_count,
            &mut counted,
        );
        // SAFETY: the buffers are the locals above, alive for the test.
        let result = unsafe { import(schema, array) };
        match result {
            Ok(t) => {
                assert_eq!(
                    (nulls, t.data_ptr().cast_const()),
                    (0, values.as_ptr().cast())
                );
                drop(t);
            }
            Err(err) => assert!(nulls > 0 && err.message().contains("1 null(s)"), "{err}"),
        }
        assert_eq!(counted.releases, 2); // the array and the schema, once each
    }
}

#[test]
fn fixed_shape_tensor_imports_with_its_permutation() {
    // Two tensors of physical shape (2, 3), logical order (3, 2).
    let values: Vec<i16> = (0..12).collect();
    let metadata = metadata::encode(&vec![
        (
            metadata::EXTENSION_NAME.to_vec(),
            metadata::FIXED_SHAPE_TENSOR.to_vec(),
        ),
        (
            metadata::EXTENSION_METADATA.to_vec(),
            br#"{"shape":[2,3],"permutation":[1,0]}"#.to_vec(),
        ),
    ]);
    let storage = Tensor::from(ndarray::Array2::from_shape_vec((2, 6), values).unwrap());
    let (mut schema, array) = exported(&storage);
    schema.metadata = metadata.as_ptr().cast();
    // SAFETY: the export with metadata that outlives the import call.
    let t = unsafe { import(schema, array) }.unwrap();
    assert_eq!((t.shape(), t.strides()), (&[2, 3, 2][..], &[12, 2, 6][..]));
    // SAFETY: nothing writes the memory while the view lives.
    let view = unsafe { t.as_ndarray::<i16>() }.unwrap();
    assert_eq!(view[[1, 2, 1]], 6 + 3 + 2); // physical [1][1][2]
    drop(view);
    drop(t);
    assert_eq!(storage.owner().holders(), 1);

    let lie = metadata::encode(&vec![
        (
            metadata::EXTENSION_NAME.to_vec(),
            metadata::FIXED_SHAPE_TENSOR.to_vec(),
        ),
        (
            metadata::EXTENSION_METADATA.to_vec(),
            br#"{"shape":[4]}"#.to_vec(),
        ),
    ]);
    let err = refused(&storage, |s, _| s.metadata = lie.as_ptr().cast());
    assert_eq!(err.cause(), Cause::Layout);
    let other = metadata::encode(&vec![(
        metadata::EXTENSION_NAME.to_vec(),
        b"arrow.bool8".to_vec(),
    )]);
    let err = refused(&storage, |s, _| s.metadata = other.as_ptr().cast());
    assert!(err.message().contains("\"arrow.bool8\""), "{err}");
}

#[test]
fn offsets_slice_the_elements() {
    let t = Tensor::from(ndarray::Array2::<u8>::from_shape_fn((4, 2), |(i, j)| {
        (i * 2 + j) as u8
    }));
    let (schema, mut array) = exported(&t);
    array.offset = 1;
    array.length = 2;
    // SAFETY: a slice of the export, inside its buffers.
    let sliced = unsafe { import(schema, array) }.unwrap();
    assert_eq!(sliced.shape(), &[2, 2]);
    // SAFETY: nothing writes the memory while the view lives.
    let view = unsafe { sliced.as_ndarray::<u8>() }.unwrap();
    assert_eq!(view.iter().copied().collect::<Vec<_>>(), [2, 3, 4, 5]);
}
