"""The cases of docs/errors.md's "Pickling" rows (test_error_matrix.py runs them)."""

from __future__ import annotations

import ctypes
import pickle

import numpy as np

import dlbridge
from dlbridge._native import _rebuild_tensor
from cbuild import load
from dlpack_structs import capsule

GOOD = {"data": bytearray(24), "code": 2, "bits": 32, "lanes": 1, "shape": (2, 3), "order": "C", "readonly": False}


def rebuild(**changes):
    args = {**GOOD, **changes}
    return _rebuild_tensor(*args.values())


def strided_exporter():
    """helpers/exporter.c: 24 bytes two apart, exported whatever the flags ask."""
    lib = load("exporter")
    lib.exporter_type.argtypes = []
    lib.exporter_type.restype = ctypes.py_object
    return lib.exporter_type()(48, b"B", 1, 1, (24,), (2,), False)


CASES = {
    "pickle-device": lambda: pickle.dumps(dlbridge.from_dlpack(capsule(device=(2, 0), data=0x10000)), protocol=5),
    "pickle-rebuild-int-type": lambda: rebuild(code="2"),
    "pickle-rebuild-int-range": lambda: rebuild(code=256),
    "pickle-rebuild-dtype": lambda: rebuild(code=99),
    "pickle-rebuild-shape-type": lambda: rebuild(shape=[2, 3]),
    "pickle-rebuild-ndim": lambda: rebuild(shape=(1,) * 65),
    "pickle-rebuild-extent": lambda: rebuild(shape=(2, -3)),
    "pickle-rebuild-order-type": lambda: rebuild(order=b"C"),
    "pickle-rebuild-order": lambda: rebuild(order="A"),
    "pickle-rebuild-readonly": lambda: rebuild(readonly=0),
    "pickle-rebuild-contiguous": lambda: rebuild(data=strided_exporter()),
    "pickle-rebuild-contiguous-memoryview": lambda: rebuild(data=memoryview(bytearray(48))[::2], shape=(6,), bits=32),
    "pickle-rebuild-contiguous-ndarray": lambda: rebuild(data=np.zeros(12, np.float32)[::2]),
    "pickle-rebuild-not-buffer": lambda: rebuild(data=[0.0] * 6),
    "pickle-rebuild-huge-extent": lambda: rebuild(data=bytearray(), shape=(0, 2**64 - 1)),
    "pickle-rebuild-size": lambda: rebuild(data=bytearray(20)),
}
