"""The cases of docs/errors.md's "Values, never padding" and `view` rows (test_error_matrix.py runs them)."""

from __future__ import annotations

import sys

import ml_dtypes
import numpy as np

import dlbridge
from dlbridge._native import _rebuild_tensor


def bfloat16() -> dlbridge.Tensor:
    return dlbridge.asarray(np.arange(3, dtype=ml_dtypes.bfloat16))


def packed_lanes() -> dlbridge.Tensor:
    return _rebuild_tensor(bytearray(4), 17, 4, 2, (4,), "C", False)


def without_ml_dtypes():
    t = bfloat16()
    saved = sys.modules.get("ml_dtypes")
    sys.modules["ml_dtypes"] = None  # `import ml_dtypes` raises ImportError
    try:
        return t.numpy()
    finally:
        sys.modules["ml_dtypes"] = saved


CASES = {
    "view-itemsize": lambda: dlbridge.zeros(3, dtype="float32").view("float64"),
    "view-itemsize-strided": lambda: dlbridge.asarray(np.zeros((2, 4), np.uint16)[:, ::2]).view("uint8"),
    "view-itemsize-0d": lambda: dlbridge.asarray(np.uint16(3)).view("uint8"),
    "buffer-format-unnamed": lambda: memoryview(bfloat16()),
    "interface-dtype-unnamed": lambda: bfloat16().__array_interface__,
    "struct-dtype-unnamed": lambda: bfloat16().__array_struct__,
    "numpy-packed-lanes": lambda: packed_lanes().numpy(),
    "numpy-no-ml-dtypes": without_ml_dtypes,
}
