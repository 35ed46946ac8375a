"""docs/errors.md's "Arrow in" rows and the requested_schema rows of issue
20 (item 6): one case each, for tests/python/test_error_matrix.py."""

from __future__ import annotations

import datetime
import decimal

import numpy as np
import pyarrow as pa

import dlbridge
from cbuild import arrow_producer


class Returns:
    """Answers `__arrow_c_array__` with whatever it is given."""

    def __init__(self, value):
        self.value = value

    def __arrow_c_array__(self, requested_schema=None):
        return self.value() if callable(self.value) else self.value


class ArrowOnly:
    def __init__(self, inner):
        self.inner = inner

    def __arrow_c_array__(self, requested_schema=None):
        return self.inner.__arrow_c_array__(requested_schema)


class StreamOnly:
    def __init__(self, make):
        self.make = make

    def __arrow_c_stream__(self, requested_schema=None):
        return self.make()


def lying(lie, list_size=0, fmt=b"i"):
    """An asarray of helpers/arrow_producer.c's pair telling `lie` (enum Lie)."""
    return lambda: dlbridge.asarray(Returns(lambda: arrow_producer().make_pair(fmt, list_size, lie)))


def tensor_metadata(json, storage):
    """A pair whose schema claims arrow.fixed_shape_tensor with `json`."""
    field = pa.field("", storage.type, metadata={
        "ARROW:extension:name": "arrow.fixed_shape_tensor", "ARROW:extension:metadata": json})
    return Returns(lambda: (field.__arrow_c_schema__(), storage.__arrow_c_array__()[1]))


FSL6 = pa.FixedSizeListArray.from_arrays(np.arange(12, dtype=np.float32), 6)


def request_null_format():
    schema, _ = arrow_producer().make_pair(b"i", 0, 17)
    dlbridge.zeros(3, dtype="int32").__arrow_c_array__(schema)


def request_bad_tensor_metadata():
    field = pa.field("", pa.list_(pa.float32(), 6), metadata={
        "ARROW:extension:name": "arrow.fixed_shape_tensor", "ARROW:extension:metadata": "{}"})
    dlbridge.zeros((2, 6)).__arrow_c_array__(field.__arrow_c_schema__())


CASES = {
    "arrow-in-length": lying(1),
    "arrow-in-offset": lying(3),
    "arrow-in-child-short": lying(4, 4),
    "arrow-in-null-data": lying(5),
    "arrow-in-buffer-count": lying(7),
    "arrow-in-format": lying(8),
    "arrow-in-null-format": lying(17),
    "arrow-in-null-count": lying(11),
    "arrow-in-released": lying(15),
    "arrow-in-metadata-length": lying(18),
    "arrow-in-tensor-metadata": lambda: dlbridge.asarray(tensor_metadata('{"shape": [-1]}', FSL6)),
    "arrow-in-tensor-storage": lambda: dlbridge.asarray(tensor_metadata('{"shape": [4]}', FSL6)),
    "arrow-in-nulls": lambda: dlbridge.asarray(pa.array([1.0, None])),
    "arrow-in-dlpack-type-error": lambda: dlbridge.asarray(pa.array([True])),
    "arrow-in-bool": lambda: dlbridge.asarray(ArrowOnly(pa.array([True]))),
    "arrow-in-string": lambda: dlbridge.asarray(ArrowOnly(pa.array(["a"]))),
    "arrow-in-dictionary": lambda: dlbridge.asarray(ArrowOnly(pa.array(["a"]).dictionary_encode())),
    "arrow-in-decimal": lambda: dlbridge.asarray(ArrowOnly(pa.array([decimal.Decimal("1.5")]))),
    "arrow-in-temporal": lambda: dlbridge.asarray(ArrowOnly(pa.array([datetime.date(2020, 1, 1)]))),
    "arrow-in-list": lambda: dlbridge.asarray(ArrowOnly(pa.array([[1, 2]]))),
    "arrow-in-struct": lambda: dlbridge.asarray(ArrowOnly(pa.array([{"a": 1}]))),
    "arrow-in-extension": lambda: dlbridge.asarray(
        ArrowOnly(pa.ExtensionArray.from_storage(pa.bool8(), pa.array([1], pa.int8())))),
    "arrow-in-misaligned": lying(12),
    "arrow-in-stream-empty": lambda: dlbridge.asarray(StreamOnly(lambda: arrow_producer().make_stream(0, 0))),
    "arrow-in-stream-chunks": lambda: dlbridge.asarray(StreamOnly(lambda: arrow_producer().make_stream(2, 0))),
    "arrow-in-stream-failed": lambda: dlbridge.asarray(StreamOnly(lambda: arrow_producer().make_stream(1, 1))),
    "arrow-in-not-pair": lambda: dlbridge.asarray(Returns(3)),
    "arrow-in-not-capsule": lambda: dlbridge.asarray(Returns((pa.int8().__arrow_c_schema__(), 3))),
    "arrow-requested-dictionary": lambda: pa.array(
        dlbridge.zeros(3, dtype="int8"), type=pa.dictionary(pa.int8(), pa.string())),
    "arrow-requested-extension": lambda: dlbridge.zeros(3, dtype="int8").__arrow_c_array__(pa.bool8().__arrow_c_schema__()),
    "arrow-requested-tensor-shape": lambda: dlbridge.zeros((4, 2, 3)).__arrow_c_array__(
        pa.fixed_shape_tensor(pa.float32(), (3, 2)).__arrow_c_schema__()),
    "arrow-requested-null-format": request_null_format,
    "arrow-requested-tensor-metadata": request_bad_tensor_metadata,
}
