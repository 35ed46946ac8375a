"""Smoke suite for an installed dlbridge: needs only NumPy and pytest.

`scripts/wheel_smoke.sh` runs it in a fresh virtual environment per built
wheel (`make wheels-test`), so it checks what a user gets from `pip install`:
the module imports on that CPython, the protocols work against the NumPy
that interpreter gets from PyPI, and NumPy's field fast path is taken on that
NumPy minor. With DLBRIDGE_SMOKE_WHEEL=1 it also checks that dlbridge came
from an installed wheel (not a source tree) and that the wheel shipped its
typing files and licences.
"""

from __future__ import annotations

import gc
import importlib.metadata
import os
import pathlib
import sys

import numpy as np
import pytest

import dlbridge
from dlbridge import _native

WHEEL = os.environ.get("DLBRIDGE_SMOKE_WHEEL") == "1"


def test_import_and_version():
    assert dlbridge.__version__ == importlib.metadata.version("dlbridge")
    assert set(dlbridge.__all__) <= set(dir(dlbridge))
    print(f"dlbridge {dlbridge.__version__} from {dlbridge.__file__}; numpy {np.__version__}; {sys.version.split()[0]}")


@pytest.mark.skipif(not WHEEL, reason="only for an installed wheel")
def test_installed_wheel_contents():
    package = pathlib.Path(dlbridge.__file__).parent
    assert "site-packages" in package.parts, package
    assert (package / "py.typed").is_file()
    assert (package / "_native.pyi").is_file()
    files = {pathlib.PurePath(str(f)).name for f in importlib.metadata.distribution("dlbridge").files or []}
    assert {"LICENSE-MIT", "LICENSE-APACHE"} <= files, sorted(files)


def test_asarray_ndarray_is_zero_copy():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = dlbridge.asarray(a)
    assert (t.shape, t.strides, t.dtype, t.readonly) == ((2, 3), (12, 4), "float32", False)
    assert t.data_ptr == a.ctypes.data


def test_ndarray_field_fast_path_is_taken():
    # The exact-ndarray struct read is NumPy 2.4+ only: a new NumPy minor that
    # silently turned it off would fail here.
    assert tuple(int(p) for p in np.__version__.split(".")[:2]) >= (2, 4)
    a = np.arange(4, dtype=np.int64)
    before = _native._testing.fast_path_counts()["ndarray_fields"]
    t = dlbridge.asarray(a)
    assert _native._testing.fast_path_counts()["ndarray_fields"] == before + 1
    assert t.source == "ndarray" and t.data_ptr == a.ctypes.data


def test_asarray_bytes_is_readonly():
    data = b"abcd"
    t = dlbridge.asarray(data)
    assert (t.shape, t.dtype, t.readonly, t.source) == ((4,), "uint8", True, "buffer")
    assert bytes(memoryview(t)) == data


def test_asarray_memoryview_shares_memory():
    backing = bytearray(8)
    t = dlbridge.asarray(memoryview(backing).cast("f"))
    assert (t.shape, t.dtype, t.readonly) == ((2,), "float32", False)
    np.from_dlpack(t)[1] = 2.5
    assert np.frombuffer(backing, dtype=np.float32)[1] == 2.5


def test_from_dlpack_round_trip_keeps_the_pointer():
    a = np.arange(12, dtype=np.float64).reshape(3, 4)[:, ::2]
    t = dlbridge.from_dlpack(a)
    b = np.from_dlpack(t)
    assert b.ctypes.data == a.ctypes.data
    assert b.strides == a.strides and b.dtype == a.dtype
    np.testing.assert_array_equal(b, a)
    assert np.asarray(t).ctypes.data == a.ctypes.data
    assert t.numpy().ctypes.data == a.ctypes.data


def test_readonly_is_carried():
    a = np.arange(3, dtype=np.int32)
    a.flags.writeable = False
    t = dlbridge.asarray(a)
    assert t.readonly
    assert not np.from_dlpack(t).flags.writeable
    assert memoryview(t).readonly
    with pytest.raises(BufferError, match="readonly"):
        t.__dlpack__()  # legacy DLPack cannot say read-only


def test_refusals():
    with pytest.raises(TypeError, match="speaks no array protocol"):
        dlbridge.asarray(object())
    with pytest.raises(BufferError, match="byte order"):
        dlbridge.asarray(np.arange(3, dtype=">f4"))


def test_rust_owned_memory_is_freed():
    gc.collect()
    live = dlbridge.live_buffers()
    t = dlbridge.zeros((2, 3), dtype="float32")
    assert dlbridge.live_buffers() == live + 1
    b = np.from_dlpack(t)
    assert b.ctypes.data == t.data_ptr and not b.any()
    del t, b
    gc.collect()
    assert dlbridge.live_buffers() == live
