"""The cases of docs/errors.md's "CUDA refusals" table, for test_error_matrix.py.

Each case pins the CUDA driver (to a path that does not exist, or to the
helpers/fake_cuda.c stand-in with the status it sets) and puts the default
back afterwards, so no case depends on the machine having a GPU.
"""

from __future__ import annotations

import contextlib
import ctypes

import dlbridge
from cbuild import load
from dlpack_structs import capsule

NO_DRIVER = "/nonexistent/dlbridge-errors/libcuda.so.1"
POINTER = 0x7F00_0000_0000  # made up: never dereferenced
DROP = object()


class Producer:
    def __init__(self, interface):
        self.interface = interface

    @property
    def __cuda_array_interface__(self):
        return self.interface


def cai(**changes):
    interface = {"version": 3, "shape": (2, 3), "typestr": "<f4", "data": (POINTER, False), "strides": None, "stream": None}
    interface.update(changes)
    return Producer({k: v for k, v in interface.items() if v is not DROP})


@contextlib.contextmanager
def driver(**statuses):
    """No driver (no statuses), or the fake driver with `fake_<name> = value`."""
    if not statuses:
        dlbridge._native._testing.cuda_driver(NO_DRIVER)
    else:
        fake = load("fake_cuda")
        for name in ("init_status", "ordinal", "managed", "pointer_status", "sync_status", "wait_status"):
            ctypes.c_int.in_dll(fake, f"fake_{name}").value = statuses.get(name, 0)
        dlbridge._native._testing.cuda_driver(fake._name)
    try:
        yield
    finally:
        dlbridge._native._testing.cuda_driver(None)


def imported(producer, **statuses):
    with driver(**statuses):
        dlbridge.from_cuda_array_interface(producer)


def gpu():
    return dlbridge.from_dlpack(capsule(device=(2, 0), data=POINTER))


def exported(stream):
    with driver():
        gpu().__dlpack__(stream=stream)


CASES = {
    "cai-no-protocol": lambda: dlbridge.from_cuda_array_interface(object()),
    "cai-not-dict": lambda: imported(Producer([])),
    "cai-version": lambda: imported(cai(version=4)),
    "cai-no-version": lambda: imported(cai(version=DROP)),
    "cai-mask": lambda: imported(cai(mask=cai().interface)),
    "cai-shape-negative": lambda: imported(cai(shape=(2, -3))),
    "cai-typestr-swapped": lambda: imported(cai(typestr=">f4")),
    "cai-data-null": lambda: imported(cai(data=(0, False))),
    "cai-stream-zero": lambda: imported(cai(stream=0)),
    "cai-stream-negative": lambda: imported(cai(stream=-5)),
    "cai-stream-type": lambda: imported(cai(stream="1")),
    "cai-stream-huge": lambda: imported(cai(stream=2**130)),
    "cai-no-driver": lambda: imported(cai(stream=0x5555)),
    "cai-driver-missing": lambda: imported(cai(stream=0x5555)),
    "cai-driver-no-gpu": lambda: imported(cai(stream=7), init_status=100),
    "cai-driver-call": lambda: imported(cai(stream=0x99), sync_status=400),
    "cai-pointer-unknown": lambda: imported(cai(), pointer_status=1),
    "cai-export-cpu": lambda: dlbridge.zeros(2).__cuda_array_interface__,
    "export-stream-zero": lambda: exported(0),
    "export-stream-negative": lambda: exported(-2),
    "export-stream-type": lambda: exported(1.5),
    "export-stream-huge": lambda: exported(2**130),
    "export-stream-no-driver": lambda: exported(0x77),
}
