"""`Tensor.copy()` gathers any layout into a C-contiguous Rust-owned block."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import dlbridge

DTYPES = ["u1", "i2", "f4", "f8", "c8", "c16", "?", ml_dtypes.bfloat16]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "view",
    [
        lambda a: a,
        lambda a: a.T,
        lambda a: a[::-2, 1:, ::2],
        lambda a: a.transpose(1, 0, 2)[:, ::-1],
        lambda a: a[:, :, 1],
        lambda a: a[3, ::-1, :],
        lambda a: a[:0],
    ],
)
def test_copy_matches_numpy(dtype, view):
    a = (np.arange(7 * 5 * 3).reshape(7, 5, 3) % 7).astype(dtype)
    v = view(a)
    t = dlbridge.asarray(v).copy()
    assert t.source == "rust"
    assert t.strides == np.ascontiguousarray(v).strides
    c = t.numpy()
    assert c.dtype == v.dtype
    np.testing.assert_array_equal(c, v)
    if v.size:
        assert t.data_ptr != dlbridge.asarray(v).data_ptr
