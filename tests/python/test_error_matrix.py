"""One test per row of docs/errors.md: the input, the exception, the message.

The doc table is parsed here, so a row without a test, a test without a row,
or a row whose exception or message drifted from the code fails the suite.
"""

from __future__ import annotations

import ctypes
import pathlib
import re

import numpy as np
import pytest

import dlbridge
from dlpack_structs import capsule

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def doc_rows() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"[a-z][a-z0-9-]*", cells[0]) and cells[0] != "id":
            rows[cells[0]] = (cells[2], cells[3])
    return rows


ROWS = doc_rows()

_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.c_void_p, ctypes.c_int]
_release = ctypes.pythonapi.PyBuffer_Release
_release.argtypes = [ctypes.c_void_p]
PyBUF_WRITABLE, PyBUF_ND, PyBUF_STRIDES = 0x1, 0x8, 0x18
PyBUF_C_CONTIGUOUS, PyBUF_F_CONTIGUOUS, PyBUF_ANY_CONTIGUOUS = 0x38, 0x58, 0x98


def get_buffer(obj, flags):
    view = (ctypes.c_char * 80)()  # sizeof(Py_buffer) on 64-bit CPython
    _get_buffer(obj, ctypes.addressof(view), flags)
    _release(ctypes.addressof(view))  # only reached if it unexpectedly succeeded


class Returns:
    def __init__(self, value):
        self.value = value

    def __dlpack__(self, **kwargs):
        return self.value


class Raises:
    def __dlpack__(self, **kwargs):
        raise KeyError("boom")


def readonly_tensor():
    a = np.arange(4.0)
    a.flags.writeable = False
    return dlbridge.asarray(a)


def cuda_tensor():
    return dlbridge.from_dlpack(capsule(device=(2, 0), data=0x10000))


def consumed_twice():
    cap = capsule()
    dlbridge.from_dlpack(cap)
    dlbridge.from_dlpack(cap)


def stride_five():
    record = np.zeros(4, dtype=[("a", "<i4"), ("b", "u1")])
    t = dlbridge.from_buffer(record["a"])
    assert t.strides == (5,)
    t.__dlpack__(max_version=(1, 0))


def suboffsets():
    _testbuffer = pytest.importorskip("_testbuffer")
    exporter = _testbuffer.ndarray(list(range(12)), shape=[3, 4], format="B", flags=_testbuffer.ND_PIL)
    dlbridge.from_buffer(exporter)


CASES = {
    "no-protocol": lambda: dlbridge.asarray(object()),
    "tensor-constructor": lambda: dlbridge.Tensor(),
    "dtype-unknown": lambda: dlbridge.zeros(3, dtype="float128"),
    "shape-type": lambda: dlbridge.zeros("3"),
    "shape-negative": lambda: dlbridge.zeros((2, -1)),
    "shape-ndim": lambda: dlbridge.zeros((1,) * 65),
    "dlpack-no-method": lambda: dlbridge.from_dlpack(object()),
    "dlpack-not-capsule": lambda: dlbridge.from_dlpack(Returns(3)),
    "dlpack-capsule-name": lambda: dlbridge.from_dlpack(capsule(name=b"foo")),
    "dlpack-consumed": consumed_twice,
    "dlpack-producer-raises": lambda: dlbridge.asarray(Raises()),
    "dlpack-ndim": lambda: dlbridge.from_dlpack(capsule(shape=(1,) * 65)),
    "dlpack-negative-ndim": lambda: dlbridge.from_dlpack(capsule(ndim=-1)),
    "dlpack-negative-shape": lambda: dlbridge.from_dlpack(capsule(shape=(2, -3))),
    "dlpack-null-data": lambda: dlbridge.from_dlpack(capsule(data=0)),
    "dlpack-dtype": lambda: dlbridge.from_dlpack(capsule(dtype=(99, 8, 1))),
    "dlpack-subbyte": lambda: dlbridge.from_dlpack(capsule(dtype=(17, 4, 1))),
    "dlpack-lanes": lambda: dlbridge.from_dlpack(capsule(dtype=(2, 32, 0))),
    "dlpack-major": lambda: dlbridge.from_dlpack(capsule(version=(2, 0))),
    "dlpack-stride-overflow": lambda: dlbridge.from_dlpack(capsule(shape=(4,), strides=(2**62,))),
    "export-readonly-legacy": lambda: readonly_tensor().__dlpack__(),
    "export-stream-cpu": lambda: dlbridge.zeros(2).__dlpack__(stream=1),
    "export-max-version-type": lambda: dlbridge.zeros(2).__dlpack__(max_version=[1, 0]),
    "export-dl-device-type": lambda: dlbridge.zeros(2).__dlpack__(dl_device="cpu"),
    "export-cross-device": lambda: dlbridge.zeros(2).__dlpack__(dl_device=(2, 0)),
    "export-cross-device-no-copy": lambda: dlbridge.zeros(2).__dlpack__(dl_device=(2, 0), copy=False),
    "export-positional": lambda: dlbridge.zeros(2).__dlpack__(None),
    "export-stride-not-multiple": stride_five,
    "device-copy": lambda: cuda_tensor().copy(),
    "device-buffer": lambda: memoryview(cuda_tensor()),
    "buffer-non-native": lambda: dlbridge.from_buffer(np.zeros(3, ">f4")),
    "buffer-struct": lambda: dlbridge.from_buffer(np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")])),
    "buffer-suboffsets": suboffsets,
    "buffer-exporter-fails": lambda: dlbridge.asarray(np.zeros(3, "datetime64[s]")),
    "buffer-writable-readonly": lambda: get_buffer(readonly_tensor(), PyBUF_WRITABLE),
    "buffer-c-contiguous": lambda: get_buffer(dlbridge.asarray(np.zeros((3, 4), order="F")), PyBUF_C_CONTIGUOUS),
    "buffer-f-contiguous": lambda: get_buffer(dlbridge.zeros((3, 4)), PyBUF_F_CONTIGUOUS),
    "buffer-any-contiguous": lambda: get_buffer(dlbridge.asarray(np.zeros((3, 4))[:, ::2]), PyBUF_ANY_CONTIGUOUS),
    "buffer-no-strides": lambda: get_buffer(dlbridge.asarray(np.zeros((3, 4))[:, ::2]), PyBUF_ND),
    "from-buffer-no-buffer": lambda: dlbridge.from_buffer(3),
    "from-buffer-strided": lambda: dlbridge.from_buffer(np.zeros(8, np.uint8)[::2], dtype="uint8"),
    "from-buffer-offset": lambda: dlbridge.from_buffer(b"abcd", dtype="uint8", offset=5),
    "from-buffer-negative-offset": lambda: dlbridge.from_buffer(b"abcd", offset=-1),
    "from-buffer-divide": lambda: dlbridge.from_buffer(b"abcde", dtype="int16"),
    "from-buffer-shape": lambda: dlbridge.from_buffer(b"abcd", dtype="uint8", shape=(3,)),
    "from-buffer-two-inferred": lambda: dlbridge.from_buffer(b"abcd", dtype="uint8", shape=(-1, -1)),
}


def test_every_row_has_a_case_and_every_case_a_row():
    assert sorted(ROWS) == sorted(CASES)


@pytest.mark.parametrize("row", sorted(ROWS))
def test_row(row):
    exception, fragment = ROWS[row]
    expected = {"TypeError": TypeError, "ValueError": ValueError, "BufferError": BufferError, "KeyError": KeyError}[exception]
    with pytest.raises(Exception) as info:
        CASES[row]()
    assert type(info.value) is expected, f"{row}: {type(info.value).__name__}: {info.value}"
    message = str(info.value)
    fragment = fragment.strip("`")
    assert fragment in message, f"{row}: {fragment!r} not in {message!r}"
