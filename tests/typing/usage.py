"""Type-checked, never run: what a user writes against dlbridge's stubs.

`make typing` runs `mypy --strict` on this file (and stubtest on the
package); `assert_type` fails the check if an annotation drifts.
"""

from __future__ import annotations

from typing import Any, assert_type

import numpy as np
import numpy.typing as npt

import dlbridge


def exchange(a: npt.NDArray[np.float32]) -> None:
    t = dlbridge.asarray(a)
    assert_type(t, dlbridge.Tensor)
    assert_type(t.shape, tuple[int, ...])
    assert_type(t.device, tuple[int, int])
    assert_type(t.numpy(), npt.NDArray[Any])
    # The protocols out, as type checkers see them.
    assert_type(memoryview(t), memoryview)
    b = np.from_dlpack(t)  # numpy's _SupportsDLPack protocol
    np.asarray(t)
    assert_type(dlbridge.from_dlpack(b, legacy_writable=True), dlbridge.Tensor)
    assert_type(dlbridge.from_buffer(b"\0" * 8, dtype="float32", shape=(2,), offset=None), dlbridge.Tensor)
    assert_type(dlbridge.from_array_interface(a), dlbridge.Tensor)
    assert_type(dlbridge.zeros((2, 3), dtype="float32").copy().view("int32"), dlbridge.Tensor)
    assert_type(dlbridge.empty(4), dlbridge.Tensor)
    # NumPy 2's __array__, and dtype spellings beyond names.
    assert_type(t.__array__(), npt.NDArray[Any])
    assert_type(t.__array__(np.float64, copy=True), npt.NDArray[Any])
    assert_type(np.array(t, copy=False), npt.NDArray[Any])
    assert_type(dlbridge.zeros(3, dtype=float).view(np.int64), dlbridge.Tensor)
    assert_type(dlbridge.empty((2,), dtype="<f8"), dlbridge.Tensor)
    assert_type(dlbridge.live_buffers(), int)
    assert_type(dlbridge.__version__, str)
