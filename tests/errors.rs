//! Every core module's refusals say why: a Rust caller matches on
//! `Error::cause()`, never on the message. One representative refusal (or a
//! few) per module, each with the cause and the Python class it maps to.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

mod common;

use common::Spec;
use dlbridge::protocol::array_interface::{self, PyArrayInterface};
use dlbridge::protocol::buffer::{self, PyBufferFields};
use dlbridge::protocol::{pep3118, typestr};
use dlbridge::{
    Cause, Claims, DType, Descriptor, Device, Error, ErrorKind, Layout, Source, Tensor,
};
use dlpark::Managed;
use dlpark::ffi::{DLDataType, DLDataTypeCode, DLDevice, DLManagedTensorVersioned};

#[track_caller]
fn assert_refused(err: Error, cause: Cause, kind: ErrorKind) {
    assert_eq!((err.cause(), err.kind()), (cause, kind), "{err}");
}

// ------------------------------------------------------------- DLPack --

/// The shared producer (`common::produce`) with a descriptor of this file's
/// kind, versioned.
fn produce(
    shape: &[i64],
    strides: &[i64],
    dtype: DLDataType,
    device: DLDevice,
    null_data: bool,
    released: &Arc<AtomicUsize>,
) -> Managed<DLManagedTensorVersioned> {
    let spec = Spec {
        shape: shape.to_vec(),
        strides: strides.to_vec(),
        dtype,
        device,
        null_data,
        ..Spec::default()
    };
    common::produce(spec, released)
}

#[test]
fn dlpack_imports_of_lying_producers_say_why() {
    let refused = |shape: &[i64], strides: &[i64], dtype, null_data| {
        let released = Arc::new(AtomicUsize::new(0));
        let managed = produce(shape, strides, dtype, DLDevice::CPU, null_data, &released);
        let err = Tensor::try_from(managed).unwrap_err();
        assert_eq!(released.load(Ordering::SeqCst), 1, "released on refusal");
        err
    };
    let f32 = DLDataType::F32;
    let null = refused(&[2, 3], &[3, 1], f32, true);
    assert_refused(null, Cause::Pointer, ErrorKind::Buffer);
    let unknown = DLDataType {
        code: DLDataTypeCode(99),
        bits: 8,
        lanes: 1,
    };
    let dtype = refused(&[2, 3], &[3, 1], unknown, false);
    assert_refused(dtype, Cause::DType, ErrorKind::Buffer);
    let negative = refused(&[2, -3], &[3, 1], f32, false);
    assert_refused(negative, Cause::Layout, ErrorKind::Value);
    let deep = refused(&[1; 65], &[1; 65], f32, false);
    assert_refused(deep, Cause::Layout, ErrorKind::Value);
    let overflow = refused(&[3], &[i64::MAX / 2], f32, false);
    assert_refused(overflow, Cause::Layout, ErrorKind::Value);
    // A span that fits isize but reaches below address 0.
    let wraps = refused(&[3], &[-(i64::MAX / 8)], f32, false);
    assert_refused(wraps, Cause::Pointer, ErrorKind::Value);
}

#[test]
fn dlpack_exports_and_devices_say_why() {
    let t = Tensor::zeros(&[3], DType::FLOAT32).unwrap();
    let readonly = t.to_readonly().to_dlpack_legacy().err().unwrap();
    assert_refused(readonly, Cause::Readonly, ErrorKind::Buffer);

    let fp4 =
        DType::from_dlpack_flagged(DType::from_name("float4_e2m1fn").unwrap().to_dlpack(), true)
            .unwrap();
    let padded = Tensor::zeros(&[3], fp4)
        .unwrap()
        .to_dlpack_legacy()
        .err()
        .unwrap();
    assert_refused(padded, Cause::DType, ErrorKind::Buffer);

    let released = Arc::new(AtomicUsize::new(0));
    let cuda = DLDevice {
        device_type: dlpark::ffi::DLDeviceType::CUDA,
        device_id: 0,
    };
    let gpu =
        Tensor::try_from(produce(&[2], &[1], DLDataType::F32, cuda, false, &released)).unwrap();
    assert_refused(gpu.copy().unwrap_err(), Cause::Device, ErrorKind::Buffer);
    // SAFETY: nothing writes this memory while the view lives.
    let view = unsafe { gpu.as_ndarray::<f32>() }.unwrap_err();
    assert_refused(view, Cause::Device, ErrorKind::Buffer);
}

// -------------------------------------------------------------- Layout --

#[test]
fn layouts_say_why() {
    let negative = Layout::from_signed(&[2, -3], None, 4).unwrap_err();
    assert_refused(negative, Cause::Layout, ErrorKind::Value);
    let deep = Layout::contiguous(&[1; 65], 4).unwrap_err();
    assert_refused(deep, Cause::Layout, ErrorKind::Value);
    let strides = Layout::from_signed(&[2, 3], Some(&[12]), 4).unwrap_err();
    assert_refused(strides, Cause::Layout, ErrorKind::Value);
    let huge = Layout::contiguous(&[usize::MAX / 2, 4], 4).unwrap_err();
    assert_refused(huge, Cause::Layout, ErrorKind::Value);

    let layout = Layout::contiguous(&[4], 4).unwrap();
    let outside = layout.check_within(8, 16).unwrap_err();
    assert_refused(outside, Cause::Pointer, ErrorKind::Buffer);
    let odd = Layout::from_signed(&[2, 2], Some(&[6, 3]), 2).unwrap();
    let mut elements = [0i64; 2];
    let fractional = odd.element_strides_into(&mut elements).unwrap_err();
    assert_refused(fractional, Cause::Layout, ErrorKind::Buffer);
}

// ---------------------------------------------------------- Descriptor --

fn claims(base: *mut u8, offset: usize, len: Option<usize>) -> Claims<'static> {
    Claims {
        what: "test",
        base,
        offset,
        layout: Layout::contiguous(&[4], 4).unwrap(),
        dtype: DType::FLOAT32,
        device: Device::CPU,
        readonly: false,
        source: Source::Rust,
        len,
    }
}

#[test]
fn descriptors_say_why() {
    let mut bytes = [0u8; 32];
    let base = bytes.as_mut_ptr();
    assert!(Descriptor::new(claims(base, 16, Some(32))).is_ok());
    let refused = |p| Descriptor::new(p).unwrap_err();
    let null = refused(claims(std::ptr::null_mut(), 0, None));
    assert_refused(null, Cause::Pointer, ErrorKind::Buffer);
    let outside = refused(claims(base, 20, Some(32)));
    assert_refused(outside, Cause::Pointer, ErrorKind::Buffer);
    let beyond = refused(claims(base, 40, Some(32)));
    assert_refused(beyond, Cause::Pointer, ErrorKind::Value);
    let wraps = refused(claims(base, usize::MAX - 7, None));
    assert_refused(wraps, Cause::Pointer, ErrorKind::Value);
    let high = std::ptr::without_provenance_mut(usize::MAX - 8);
    let span_wraps = refused(claims(high, 0, None));
    assert_refused(span_wraps, Cause::Pointer, ErrorKind::Value);
    let mut wrong = claims(base, 0, None);
    wrong.dtype = DType::FLOAT64;
    assert_refused(refused(wrong), Cause::DType, ErrorKind::Value);
}

// ------------------------------------------------ the buffer protocol --

fn fields(buf: *mut u8, len: isize) -> PyBufferFields<'static> {
    PyBufferFields {
        buf,
        len,
        readonly: false,
        format: Some(b"f"),
        itemsize: 4,
        ndim: 1,
        shape: None,
        strides: None,
        has_suboffsets: false,
    }
}

#[test]
fn buffer_views_say_why() {
    let mut bytes = [0u8; 16];
    let buf = bytes.as_mut_ptr();
    let ok = buffer::describe(&fields(buf, 16)).unwrap();
    assert_eq!(ok.layout().shape(), &[4]);
    let refused = |f: PyBufferFields<'_>| buffer::describe(&f).unwrap_err();
    let null = refused(fields(std::ptr::null_mut(), 16));
    assert_refused(null, Cause::Pointer, ErrorKind::Buffer);
    assert_refused(refused(fields(buf, -1)), Cause::Pointer, ErrorKind::Value);
    let indirect = PyBufferFields {
        has_suboffsets: true,
        ..fields(buf, 16)
    };
    assert_refused(refused(indirect), Cause::Layout, ErrorKind::Buffer);
    let swapped = PyBufferFields {
        format: Some(if cfg!(target_endian = "little") {
            b">f"
        } else {
            b"<f"
        }),
        ..fields(buf, 16)
    };
    assert_refused(refused(swapped), Cause::ByteOrder, ErrorKind::Buffer);
    let itemsize = PyBufferFields {
        itemsize: 8,
        ..fields(buf, 16)
    };
    assert_refused(refused(itemsize), Cause::DType, ErrorKind::Buffer);
    let shape = [8isize];
    let short = PyBufferFields {
        shape: Some(&shape),
        ..fields(buf, 16)
    };
    assert_refused(refused(short), Cause::Pointer, ErrorKind::Buffer);
}

#[test]
fn from_buffer_arguments_say_why() {
    let mut bytes = [0u8; 16];
    let described = buffer::describe(&fields(bytes.as_mut_ptr(), 16)).unwrap();
    let refused = |shape: Option<&[i64]>, offset| {
        buffer::reinterpret(&described, 16, None, shape, offset).unwrap_err()
    };
    assert_refused(refused(None, 20), Cause::Argument, ErrorKind::Value);
    assert_refused(refused(Some(&[3]), 0), Cause::Argument, ErrorKind::Value);
    assert_refused(
        refused(Some(&[-1, -1]), 0),
        Cause::Argument,
        ErrorKind::Value,
    );
}

// --------------------------------------------- typestrs and PEP 3118 --

#[test]
fn type_strings_say_why() {
    let swapped = if cfg!(target_endian = "little") {
        ">"
    } else {
        "<"
    };
    let cases = [
        (format!("{swapped}f4"), Cause::ByteOrder, ErrorKind::Buffer),
        ("<M8[s]".to_owned(), Cause::DType, ErrorKind::Buffer),
        ("|O8".to_owned(), Cause::DType, ErrorKind::Buffer),
        ("<f16".to_owned(), Cause::DType, ErrorKind::Buffer),
        ("<f3".to_owned(), Cause::DType, ErrorKind::Value),
        ("<t8".to_owned(), Cause::DType, ErrorKind::Value),
    ];
    for (text, cause, kind) in cases {
        assert_refused(typestr::parse_typestr(&text).unwrap_err(), cause, kind);
    }
    let formats = [
        (format!("{swapped}f"), Cause::ByteOrder),
        ("!i".to_owned(), Cause::ByteOrder),
        ("T{f:x:}".to_owned(), Cause::DType),
        ("2f".to_owned(), Cause::DType),
        ("40x".to_owned(), Cause::DType),
    ];
    for (format, cause) in formats {
        let err = pep3118::parse_format(&format).unwrap_err();
        assert_refused(err, cause, ErrorKind::Buffer);
    }
    let unknown = DType::from_name("float33").unwrap_err();
    assert_refused(unknown, Cause::DType, ErrorKind::Type);
}

// ------------------------------------------------- __array_struct__ --

#[test]
fn array_structs_say_why() {
    let mut data = [0f32; 6];
    let mut shape = [2isize, 3];
    let (data, shape) = (data.as_mut_ptr(), shape.as_mut_ptr());
    let interface = |flags| PyArrayInterface {
        two: 2,
        nd: 2,
        typekind: b'f' as std::ffi::c_char,
        itemsize: 4,
        flags,
        shape,
        strides: std::ptr::null_mut(),
        data: data.cast(),
        descr: std::ptr::null_mut(),
    };
    let refused = |i: PyArrayInterface| {
        array_interface::describe_struct(&i, |_| Ok(()), DType::opaque).unwrap_err()
    };
    let swapped = interface(0x501);
    assert_refused(refused(swapped), Cause::ByteOrder, ErrorKind::Buffer);
    let not_a_struct = PyArrayInterface {
        two: 3,
        ..interface(0x701)
    };
    assert_refused(refused(not_a_struct), Cause::Capsule, ErrorKind::Value);
    let deep = PyArrayInterface {
        nd: 65,
        ..interface(0x701)
    };
    assert_refused(refused(deep), Cause::Layout, ErrorKind::Value);
    let null = PyArrayInterface {
        data: std::ptr::null_mut(),
        ..interface(0x701)
    };
    assert_refused(refused(null), Cause::Pointer, ErrorKind::Buffer);
}

// ------------------------------------------------------------- views --

#[test]
fn views_say_why() {
    let t = Tensor::from(vec![1.0f32, 2.0, 3.0, 4.0]);
    assert_refused(
        // SAFETY: nothing writes this memory while the view lives.
        unsafe { t.as_ndarray::<f64>() }.unwrap_err(),
        Cause::DType,
        ErrorKind::Type,
    );
    // SAFETY: nothing writes this memory while the view lives.
    let rank = unsafe { t.as_ndarray_dim::<f32, ndarray::Ix2>() }.unwrap_err();
    assert_refused(rank, Cause::Layout, ErrorKind::Type);
    // 16 bytes re-count as two float64; 12 bytes hold no whole one.
    assert_eq!(t.view(DType::FLOAT64).unwrap().shape(), &[2]);
    let three = Tensor::from(vec![1.0f32, 2.0, 3.0]);
    let itemsize = three.view(DType::FLOAT64).unwrap_err();
    assert_refused(itemsize, Cause::DType, ErrorKind::Value);

    let mut readonly = t.to_readonly();
    let write = readonly.as_ndarray_mut::<f32>().unwrap_err();
    assert_refused(write, Cause::Readonly, ErrorKind::Buffer);

    let mut shared = t.clone();
    let aliased = shared.as_ndarray_mut::<f32>().unwrap_err();
    assert_refused(aliased, Cause::Aliasing, ErrorKind::Buffer);
    let released = Arc::new(AtomicUsize::new(0));
    let producer = produce(&[4], &[1], DLDataType::F32, DLDevice::CPU, false, &released);
    let mut imported = Tensor::try_from(producer).unwrap();
    let foreign = imported.as_ndarray_mut::<f32>().unwrap_err();
    assert_refused(foreign, Cause::Aliasing, ErrorKind::Buffer);

    let bools = Tensor::from(vec![0u8, 1, 2]).view(DType::BOOL).unwrap();
    // SAFETY: nothing writes this memory while the view lives.
    let invalid = unsafe { bools.as_ndarray::<bool>() }.unwrap_err();
    assert_refused(invalid, Cause::DType, ErrorKind::Value);

    let deep = ndarray::ArrayD::<u8>::zeros(vec![1; 65]);
    let axes = Tensor::try_from(deep).unwrap_err();
    assert_refused(axes, Cause::Layout, ErrorKind::Value);
}

// -------------------------------------------------------- allocation --

#[test]
fn allocations_say_why() {
    // Fits isize as a layout, but not with the alignment slack on top.
    let err = Tensor::zeros(&[isize::MAX as usize - 8], DType::UINT8).unwrap_err();
    assert_refused(err, Cause::Allocation, ErrorKind::Value);
}
