"""`Tensor.__arrow_c_array__(requested_schema)` honours the whole schema or
refuses with BufferError (issue 20, item 6): formats, dictionary, extension
types and their metadata, children; `arrow.fixed_shape_tensor` is exported,
zero-copy, when it is asked for.

  test_fixed_shape_tensor_requested, test_fixed_shape_tensor_round_trip,
  test_grouped_axes_requested, test_names_flags_and_metadata_copied,
  test_extension_types_refused, test_dictionary_refused,
  test_child_extension_refused, test_pa_array_strips_extension_types
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import dlbridge


def imported(t, requested):
    schema, array = t.__arrow_c_array__(requested.__arrow_c_schema__())
    return pa.Array._import_from_c_capsule(schema, array)


def test_fixed_shape_tensor_requested():
    a = np.arange(24, dtype=np.float32).reshape(4, 2, 3)
    t = dlbridge.asarray(a)
    kind = pa.fixed_shape_tensor(pa.float32(), (2, 3), dim_names=["h", "w"])
    arr = imported(t, kind)
    assert isinstance(arr, pa.FixedShapeTensorArray) and arr.type == kind
    assert arr.storage.values.buffers()[1].address == a.ctypes.data  # zero-copy
    assert np.array_equal(arr.to_numpy_ndarray(), a)
    a[0, 0, 0] = 42  # and the same memory
    assert arr.to_numpy_ndarray()[0, 0, 0] == 42


def test_fixed_shape_tensor_round_trip():
    t = dlbridge.asarray(np.arange(12, dtype=np.int64).reshape(2, 2, 3))
    back = dlbridge.asarray(imported(t, pa.fixed_shape_tensor(pa.int64(), (2, 3))))
    assert (back.shape, back.data_ptr) == (t.shape, t.data_ptr)


def test_grouped_axes_requested():
    # fixed_shape_tensor's storage, asked for on its own: the trailing axes
    # as one FixedSizeList, the same C-contiguous memory.
    t = dlbridge.asarray(np.arange(24, dtype=np.float32).reshape(4, 2, 3))
    arr = pa.array(t, type=pa.list_(pa.float32(), 6))
    assert arr.type == pa.list_(pa.float32(), 6) and len(arr) == 4
    assert arr.values.buffers()[1].address == t.data_ptr
    with pytest.raises(BufferError, match=r'asks for Arrow type "\+w:4 of f"'):
        pa.array(t, type=pa.list_(pa.float32(), 4))


def test_names_flags_and_metadata_copied():
    t = dlbridge.asarray(np.arange(3, dtype=np.int32))
    field = pa.field("x", pa.int32(), nullable=False, metadata={"k": "v", "unit": "m"})
    schema, _ = t.__arrow_c_array__(field.__arrow_c_schema__())
    assert pa.Field._import_from_c_capsule(schema).equals(field, check_metadata=True)


class Custom(pa.ExtensionType):
    def __init__(self):
        super().__init__(pa.int8(), "dlbridge.test.custom")

    def __arrow_ext_serialize__(self):
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type, serialized):
        return cls()


EXTENSIONS = [
    (lambda: np.zeros(3, np.int8), pa.bool8(), 'extension type "arrow.bool8"'),
    (lambda: np.zeros((3, 16), np.uint8), pa.uuid(), 'extension type "arrow.uuid"'),
    (lambda: np.zeros(3, np.int8), Custom(), 'extension type "dlbridge.test.custom"'),
    (lambda: np.zeros((4, 2, 3), np.float32), pa.fixed_shape_tensor(pa.float32(), (3, 2)),
     r"fixed_shape_tensor of shape \[3, 2\], but the tensor's elements have shape \[2, 3\]"),
    (lambda: np.zeros((4, 2, 3), np.float32), pa.fixed_shape_tensor(pa.float32(), (2, 3), permutation=[1, 0]),
     r"fixed_shape_tensor of shape \[2, 3\] and permutation \[1, 0\]"),
    (lambda: np.zeros((4, 6), np.float64), pa.fixed_shape_tensor(pa.float32(), (6,)),
     r'asks for Arrow type "\+w:6 of f", but a tensor of shape \[4, 6\] exports as "\+w:6 of g"'),
]


@pytest.mark.parametrize(("make", "kind", "fragment"), EXTENSIONS, ids=[str(k) for _, k, _ in EXTENSIONS])
def test_extension_types_refused(make, kind, fragment):
    live = dlbridge.live_buffers()
    t = dlbridge.asarray(make())
    with pytest.raises(BufferError, match=fragment):
        t.__arrow_c_array__(pa.field("", kind).__arrow_c_schema__())
    del t
    assert dlbridge.live_buffers() == live


def test_dictionary_refused():
    t = dlbridge.asarray(np.zeros(3, np.int8))
    kind = pa.dictionary(pa.int8(), pa.string())
    with pytest.raises(BufferError, match=r'dictionary-encoded Arrow type \(indices "c"\)'):
        t.__arrow_c_array__(kind.__arrow_c_schema__())
    # pyarrow passes the dictionary type as it is: refused, not its AttributeError.
    with pytest.raises(BufferError, match="never dictionary indices"):
        pa.array(t, type=kind)


def test_child_extension_refused():
    t = dlbridge.asarray(np.zeros((2, 3), np.int8))
    with pytest.raises(BufferError, match='extension type "arrow.bool8"'):
        t.__arrow_c_array__(pa.list_(pa.bool8(), 3).__arrow_c_schema__())


def test_pa_array_strips_extension_types():
    # pyarrow 26's pa.array(obj, type=extension) asks any producer for the
    # storage type (the extension's metadata is not in the request), so what
    # it returns is the storage: pyarrow's doing, shown with a recorder.
    asked = []

    class Recorder:
        def __arrow_c_array__(self, requested_schema=None):
            asked.append(pa.Field._import_from_c_capsule(requested_schema))
            return pa.array([1, 0], pa.int8()).__arrow_c_array__()

    assert pa.array(Recorder(), type=pa.bool8()).type == pa.int8()
    assert asked[0].type == pa.int8() and asked[0].metadata is None
    # dlbridge answers that storage request zero-copy, as asked.
    t = dlbridge.asarray(np.arange(12, dtype=np.float32).reshape(2, 2, 3))
    storage = pa.array(t, type=pa.fixed_shape_tensor(pa.float32(), (2, 3)))
    assert storage.type == pa.list_(pa.float32(), 6) and storage.values.buffers()[1].address == t.data_ptr
