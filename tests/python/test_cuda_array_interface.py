"""The CUDA array interface (v3) both ways, and CUDA stream ordering, without a GPU.

No device memory is touched anywhere here: producers publish made-up device
pointers, and dlbridge only reads and republishes descriptors. The CUDA
driver is pinned for every test: either to a path that does not exist (the
state of a machine without a GPU, which is this one), or to
helpers/fake_cuda.c, a stand-in with the driver's entry points that logs
each call, so the stream ordering dlbridge promises (a host wait on a CUDA
array interface producer's stream; an event recorded on the legacy default
stream and waited on by a DLPack consumer's stream) is checked call by call.
scripts/cuda_passthrough.py runs the same exchanges against a real GPU.
"""

from __future__ import annotations

import ctypes
import gc
import os
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest
import torch

import dlbridge
from cbuild import load
from dlpack_structs import capsule, versioned_header

NO_DRIVER = "/nonexistent/dlbridge-test/libcuda.so.1"
POINTER = 0x7F00_0000_0000  # a made-up device address: never dereferenced


@pytest.fixture(autouse=True)
def no_driver():
    """Every test starts without a driver, whatever the machine has."""
    dlbridge._native._testing.cuda_driver(NO_DRIVER)
    yield
    dlbridge._native._testing.cuda_driver(None)


class FakeDriver:
    """helpers/fake_cuda.c, loaded as the CUDA driver: its call log and knobs."""

    KNOBS = ("init_status", "ordinal", "managed", "pointer_status", "sync_status", "wait_status")
    COUNTERS = ("contexts", "retained", "events")

    def __init__(self):
        self.lib = load("fake_cuda")
        self.lib.fake_log.restype = ctypes.c_char_p
        for name in self.KNOBS:
            self.set(name, 0)
        self.path = self.lib._name
        self.reload()

    def set(self, name, value):
        ctypes.c_int.in_dll(self.lib, f"fake_{name}").value = value

    def get(self, name):
        return ctypes.c_int.in_dll(self.lib, f"fake_{name}").value

    def reload(self):
        dlbridge._native._testing.cuda_driver(self.path)
        self.lib.fake_reset()

    def calls(self):
        """The driver calls since the last reset (cuInit, made once per load, aside)."""
        return [call for call in self.lib.fake_log().decode().splitlines() if not call.startswith("cuInit")]

    def balanced(self):
        return {name: self.get(name) for name in self.COUNTERS} == dict.fromkeys(self.COUNTERS, 0)


@pytest.fixture
def fake():
    return FakeDriver()


class Producer:
    """Speaks only `__cuda_array_interface__`, with the dict given (a class
    property, as Numba, CuPy and PyTorch define it), counting evaluations."""

    def __init__(self, **changes):
        self.interface = {"version": 3, "shape": (2, 3), "typestr": "<f4", "data": (POINTER, False),
                          "strides": None, "stream": None}
        self.interface.update(changes)
        self.interface = {k: v for k, v in self.interface.items() if v is not DROP}
        self.evaluated = 0

    @property
    def __cuda_array_interface__(self):
        self.evaluated += 1
        return self.interface


DROP = object()


def cuda_tensor(**changes):
    return dlbridge.from_cuda_array_interface(Producer(**changes))


# ------------------------------------------------------------------ import --

def test_import_reads_every_field():
    p = Producer(shape=(3, 4), typestr="<i2", strides=(2, 6), data=(POINTER + 64, True))
    t = dlbridge.asarray(p)
    assert (t.shape, t.strides, t.dtype, t.readonly) == ((3, 4), (2, 6), "int16", True)
    assert (t.device, t.__dlpack_device__(), t.data_ptr) == ((2, 0), (2, 0), POINTER + 64)
    assert t.source == "cuda_array_interface"
    assert p.evaluated == 1
    assert "device=cuda:0" in repr(t)


@pytest.mark.parametrize("typestr, dtype", [
    ("|b1", "bool"), ("|i1", "int8"), ("<i8", "int64"), ("|u1", "uint8"), ("<u4", "uint32"),
    ("<f2", "float16"), ("<f8", "float64"), ("<c8", "complex64"), ("<c16", "complex128"), ("|V2", "void16"),
])
def test_dtypes(typestr, dtype):
    assert cuda_tensor(typestr=typestr, shape=(5,)).dtype == dtype


def test_opaque_elements_take_the_producers_dtype_name():
    p = Producer(typestr="<V2", shape=(4,))
    p.dtype = np.dtype("V2")  # no name dlbridge knows: opaque bytes
    assert dlbridge.asarray(p).dtype == "void16"

    class Named(Producer):
        dtype = type("D", (), {"name": "bfloat16"})()

    assert dlbridge.asarray(Named(typestr="<V2", shape=(4,))).dtype == "bfloat16"


def test_negative_and_zero_strides_and_empty_arrays():
    t = cuda_tensor(shape=(4, 3), strides=(-12, 0), data=(POINTER + 36, False))
    assert (t.strides, t.data_ptr) == ((-12, 0), POINTER + 36)
    empty = cuda_tensor(shape=(0, 3), data=(0, False))  # the specification's 0 for empty arrays
    assert (empty.shape, empty.size, empty.data_ptr) == ((0, 3), 0, 0)
    scalar = cuda_tensor(shape=(), typestr="<f8")
    assert (scalar.shape, scalar.ndim, scalar.nbytes) == ((), 0, 8)


def test_version_2_is_read_and_its_stream_ignored():
    t = cuda_tensor(version=2, stream="not read")  # PyTorch exports version 2, which has no stream
    assert t.shape == (2, 3)


def test_the_tensor_keeps_the_producer_alive_and_releases_it_once():
    p = Producer()
    ref = weakref.ref(p)
    before = sys.getrefcount(p)
    t = dlbridge.asarray(p)
    assert sys.getrefcount(p) == before + 1
    view = t.view("int32")
    cap = t.__dlpack__(max_version=(1, 0))
    del p, t
    gc.collect()
    assert ref() is not None  # a view and an export still hold it
    del view
    gc.collect()
    assert ref() is not None
    back = dlbridge.from_dlpack(cap)
    del cap
    gc.collect()
    assert ref() is not None
    del back
    gc.collect()
    assert ref() is None


def test_a_refusal_releases_the_producer():
    p = Producer(typestr=">f4")
    before = sys.getrefcount(p)
    with pytest.raises(BufferError):
        dlbridge.asarray(p)
    assert sys.getrefcount(p) == before


def test_attribute_error_declines_and_discovery_moves_on():
    class CpuOnly:
        """Like a PyTorch CPU tensor: the property exists and raises AttributeError."""

        def __init__(self):
            self.array = np.arange(4.0)
            self.__array_interface__ = self.array.__array_interface__

        @property
        def __cuda_array_interface__(self):
            raise AttributeError("not on a CPU array")

    obj = CpuOnly()
    t = dlbridge.asarray(obj)
    assert (t.source, t.device, t.data_ptr) == ("array_interface", (1, 0), obj.array.ctypes.data)
    with pytest.raises(TypeError, match="CpuOnly has no __cuda_array_interface__"):
        dlbridge.from_cuda_array_interface(obj)


def test_other_errors_of_the_property_are_the_producers():
    class Broken:
        @property
        def __cuda_array_interface__(self):
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        dlbridge.asarray(Broken())


def test_none_on_the_class_switches_the_protocol_off():
    class Off(Producer):
        __cuda_array_interface__ = None

    with pytest.raises(TypeError, match="speaks no array protocol"):
        dlbridge.asarray(Off())


def test_an_instance_attribute_is_read():
    obj = type("Plain", (), {})()
    obj.__cuda_array_interface__ = Producer().interface
    assert dlbridge.asarray(obj).source == "cuda_array_interface"


def test_discovery_order_dlpack_first_the_cuda_array_interface_last():
    """DLPack first; the CUDA array interface after the host protocols, so
    host imports never pay for its lookup: an object offering both a host
    `__array_interface__` and a device interface is read as host memory."""

    class Both(Producer):
        def __init__(self):
            super().__init__()
            self.array = np.zeros(3)
            self.__array_interface__ = self.array.__array_interface__

    both = Both()
    t = dlbridge.asarray(both)
    assert t.source == "array_interface" and t.data_ptr == both.array.ctypes.data
    assert dlbridge.from_cuda_array_interface(both).source == "cuda_array_interface"

    class WithDlpack(Producer):
        def __dlpack__(self, **kwargs):
            return capsule(device=(2, 1), data=POINTER)

        def __dlpack_device__(self):
            return (2, 1)

    t = dlbridge.asarray(WithDlpack())
    assert (t.source, t.device) == ("dlpack", (2, 1))


def test_a_dlpack_refusal_is_not_bypassed_through_the_cuda_array_interface():
    class Refused(Producer):
        def __dlpack__(self, **kwargs):
            raise BufferError("the producer's own refusal")

    with pytest.raises(BufferError, match="the producer's own refusal"):
        dlbridge.asarray(Refused())


def test_torch_cpu_tensors_decline_and_keep_their_refusals():
    assert not hasattr(torch.zeros(2), "__cuda_array_interface__")
    with pytest.raises(BufferError, match="detach"):
        dlbridge.asarray(torch.ones(2, requires_grad=True))


# ------------------------------------------------------------ the hostile --

HOSTILE = [
    ({"version": 4}, ValueError, "__cuda_array_interface__ version 4 is not supported"),
    ({"version": 1}, ValueError, "version 1 is not supported"),
    ({"version": "3"}, ValueError, "version '3' is not supported"),
    ({"version": DROP}, ValueError, "has no version"),
    ({"mask": Producer().interface}, BufferError, "has a mask"),
    ({"shape": (2, -3)}, ValueError, "negative extent -3 on axis 1"),
    ({"shape": (2**62, 8)}, ValueError, "does not fit in isize"),
    ({"shape": (1,) * 65}, ValueError, "shape has 65 entries, more than the maximum of 64"),
    ({"shape": [2, 3]}, TypeError, "shape must be a tuple of ints, got [2, 3]"),
    ({"shape": (2**64,)}, ValueError, "has an entry that is not an int in range"),
    ({"shape": DROP}, ValueError, 'no "shape" key'),
    ({"strides": (4,)}, ValueError, "strides [4] have 1 entries for 2 dimensions"),
    ({"strides": (2**62, 2**62)}, ValueError, "does not fit in isize"),
    ({"typestr": ">f4"}, BufferError, 'unsupported typestr ">f4": non-native byte order'),
    ({"typestr": "<f3"}, ValueError, 'malformed typestr "<f3"'),
    ({"typestr": "|O8"}, BufferError, "Python objects have no DLPack dtype"),
    ({"typestr": 4}, TypeError, "typestr must be a str, got 4"),
    ({"typestr": DROP}, ValueError, 'no "typestr" key'),
    ({"descr": [("a", "<i4"), ("b", "<f8")]}, BufferError, "structured records"),
    ({"data": POINTER}, TypeError, "data must be a (pointer, readonly) 2-tuple, got 139637976727552"),
    ({"data": (POINTER, False, 0)}, TypeError, "(pointer, readonly) 2-tuple"),
    ({"data": (-16, False)}, TypeError, "data pointer must be a non-negative int, got -16"),
    ({"data": ("0x10", False)}, TypeError, "data pointer must be a non-negative int, got '0x10'"),
    ({"data": (0, False)}, BufferError, "NULL data pointer for shape [2, 3]"),
    ({"data": DROP}, ValueError, 'no "data" key'),
    ({"stream": 0}, ValueError, "stream 0 is disallowed"),
    ({"stream": -5}, ValueError, "stream -5 is not a CUDA stream handle"),
    ({"stream": 2**70}, ValueError, "stream 1180591620717411303424 is not a CUDA stream handle"),
    ({"stream": "1"}, TypeError, "stream must be None or an int, got '1'"),
]


@pytest.mark.parametrize("changes, exception, fragment", HOSTILE, ids=[f[2][:40] for f in HOSTILE])
def test_hostile_descriptors(changes, exception, fragment):
    p = Producer(**changes)
    before = sys.getrefcount(p)
    with pytest.raises(exception) as info:
        dlbridge.from_cuda_array_interface(p)
    assert type(info.value) is exception
    assert fragment in str(info.value)
    del info
    assert sys.getrefcount(p) == before


def test_not_a_dict():
    p = Producer()
    p.interface = [("shape", (2,))]
    with pytest.raises(TypeError, match="__cuda_array_interface__ of Producer is a list, not a dict"):
        dlbridge.asarray(p)


# ------------------------------------------------------------------ export --

def test_export_from_a_cuda_tensor():
    t = cuda_tensor(shape=(3, 4), typestr="<i2", strides=(2, 6), data=(POINTER, True))
    assert t.__cuda_array_interface__ == {
        "shape": (3, 4), "typestr": "<i2", "descr": [("", "<i2")], "data": (POINTER, True),
        "strides": (2, 6), "version": 3, "stream": 1,
    }
    contiguous = cuda_tensor().__cuda_array_interface__
    assert (contiguous["strides"], contiguous["data"], contiguous["typestr"]) == (None, (POINTER, False), "<f4")
    assert cuda_tensor(shape=(0,), data=(POINTER, False)).__cuda_array_interface__["data"] == (0, False)
    first = t.__cuda_array_interface__
    first["shape"] = (1,)
    first["descr"].append(None)
    assert t.__cuda_array_interface__["shape"] == (3, 4) and len(t.__cuda_array_interface__["descr"]) == 1


def test_export_from_a_dlpack_cuda_tensor_and_managed_memory():
    t = dlbridge.from_dlpack(capsule(device=(2, 1), data=POINTER, shape=(8,), dtype=(2, 16, 1)))
    interface = t.__cuda_array_interface__
    assert (interface["typestr"], interface["data"], interface["shape"]) == ("<f2", (POINTER, False), (8,))
    # bfloat16 has no typestr ("|V2" would read as bytes): absent, so consumers move on.
    bf16 = dlbridge.from_dlpack(capsule(device=(2, 1), data=POINTER, shape=(8,), dtype=(4, 16, 1)))
    assert not hasattr(bf16, "__cuda_array_interface__")
    managed = dlbridge.from_dlpack(capsule(device=(13, 0), data=POINTER))
    assert managed.__cuda_array_interface__["data"][0] == POINTER


@pytest.mark.parametrize("make", [
    lambda: dlbridge.zeros(3),
    lambda: dlbridge.asarray(np.arange(3.0)),
    lambda: dlbridge.from_dlpack(capsule(device=(3, 0))),  # CUDA host memory: not the interface's
    lambda: dlbridge.from_dlpack(capsule(device=(10, 0), data=POINTER)),  # ROCm
])
def test_no_export_off_cuda_so_consumers_move_on(make):
    t = make()
    assert not hasattr(t, "__cuda_array_interface__")
    with pytest.raises(AttributeError, match=r"a tensor on device \w+:0 has no __cuda_array_interface__"):
        t.__cuda_array_interface__


def test_dlbridge_consumes_its_own_export():
    t = cuda_tensor(shape=(4,), strides=(-4,), data=(POINTER + 12, True))
    wrapped = type("Wrapped", (), {"__cuda_array_interface__": t.__cuda_array_interface__})()
    back = dlbridge.from_cuda_array_interface(wrapped, sync=False)  # stream 1: no driver here to wait on it
    assert (back.data_ptr, back.strides, back.readonly, back.device) == (t.data_ptr, t.strides, True, (2, 0))


def test_pass_through_to_a_dlpack_consumer_that_reads_metadata():
    t = cuda_tensor(shape=(3, 4), typestr="<f8", strides=(8, 24), data=(POINTER, False))
    cap = t.__dlpack__(max_version=(1, 0), stream=-1)
    header = versioned_header(cap)
    tensor = header.dl_tensor
    assert (tensor.data, tensor.device.device_type, tensor.device.device_id) == (POINTER, 2, 0)
    assert [tensor.shape[i] for i in range(2)] == [3, 4]
    assert [tensor.strides[i] for i in range(2)] == [1, 3]  # DLPack counts elements
    assert (tensor.dtype.code, tensor.dtype.bits, header.flags & 1) == (2, 64, 0)
    again = dlbridge.from_dlpack(cap)
    assert (again.device, again.data_ptr, again.strides) == ((2, 0), POINTER, (8, 24))
    with pytest.raises((BufferError, RuntimeError)):
        np.from_dlpack(t)  # NumPy refuses device memory after reading __dlpack__'s metadata


# ----------------------------------------------------------------- streams --

def test_without_a_driver_a_stream_is_a_clear_refusal():
    p = Producer(stream=0x5555)
    before = sys.getrefcount(p)
    with pytest.raises(BufferError) as info:
        dlbridge.from_cuda_array_interface(p)
    message = str(info.value)
    assert "synchronising on stream 0x5555 of cuda:0 needs the CUDA driver, which is not available" in message
    assert f"cannot load the CUDA driver library {NO_DRIVER}" in message
    del info
    assert sys.getrefcount(p) == before
    # sync=False: the caller orders the producer's work itself.
    assert dlbridge.from_cuda_array_interface(p, sync=False).device == (2, 0)
    t = cuda_tensor()
    with pytest.raises(BufferError, match="making stream 0x77 wait for the legacy default stream on cuda:0 needs the CUDA driver"):
        t.__dlpack__(stream=0x77)
    for fine in (None, 1, -1):  # the legacy default stream, or "do not synchronise": nothing to do
        dlbridge.from_dlpack(t.__dlpack__(stream=fine, max_version=(1, 0)))


def test_dlpack_stream_values():
    t = cuda_tensor()
    with pytest.raises(ValueError, match="__dlpack__ stream 0 is disallowed for CUDA"):
        t.__dlpack__(stream=0)
    with pytest.raises(ValueError, match="__dlpack__ stream -2 is not a CUDA stream handle"):
        t.__dlpack__(stream=-2)
    with pytest.raises(TypeError, match="__dlpack__ stream must be None or an int, got 1.5"):
        t.__dlpack__(stream=1.5)
    with pytest.raises(ValueError, match="stream must be None for a CPU tensor, got 1"):
        dlbridge.zeros(2).__dlpack__(stream=1)
    rocm = dlbridge.from_dlpack(capsule(device=(10, 0), data=POINTER))
    dlbridge.from_dlpack(rocm.__dlpack__(stream=0))  # ROCm's 0 is its default stream: not CUDA's to judge


def test_import_waits_on_the_producers_stream(fake):
    fake.set("ordinal", 2)
    t = dlbridge.from_cuda_array_interface(Producer(stream=0x5555))
    assert t.device == (2, 2)
    assert fake.calls() == [
        f"cuPointerGetAttribute 9 {POINTER:#x}",
        f"cuPointerGetAttribute 8 {POINTER:#x}",
        "cuCtxPushCurrent device 2",
        "cuStreamSynchronize 0x5555",
        "cuCtxPopCurrent",
    ]
    assert fake.balanced()


def test_asarray_waits_too_and_sync_false_does_not(fake):
    dlbridge.asarray(Producer(stream=2))
    assert "cuStreamSynchronize 0x2" in fake.calls()
    fake.lib.fake_reset()
    dlbridge.from_cuda_array_interface(Producer(stream=2), sync=False)
    dlbridge.asarray(Producer(stream=None))
    assert not [call for call in fake.calls() if "Synchronize" in call or "Push" in call]


def test_the_driver_names_the_device(fake):
    fake.set("ordinal", 3)
    assert cuda_tensor().device == (2, 3)
    fake.set("managed", 1)
    t = cuda_tensor()
    assert t.device == (13, 3)
    assert t.__cuda_array_interface__["data"] == (POINTER, False)
    fake.lib.fake_reset()
    cuda_tensor(shape=(0,), data=(0, False))  # nothing to ask about an empty array's 0
    assert fake.calls() == []


def test_a_pointer_the_driver_does_not_know_is_refused(fake):
    fake.set("pointer_status", 1)
    p = Producer()
    before = sys.getrefcount(p)
    with pytest.raises(ValueError, match=rf"data pointer {POINTER:#x} is not device memory the CUDA driver knows "
                                         r"\(cuPointerGetAttribute\(DEVICE_ORDINAL\) failed with CUDA_ERROR_INVALID_VALUE \(1\)\)"):
        dlbridge.from_cuda_array_interface(p)
    assert sys.getrefcount(p) == before


def test_dlpack_export_makes_the_consumer_stream_wait(fake):
    fake.set("ordinal", 1)
    t = cuda_tensor()
    fake.lib.fake_reset()
    cap = t.__dlpack__(stream=0xABC0, max_version=(1, 0))
    calls = fake.calls()
    assert calls[0] == "cuCtxPushCurrent device 1" and calls[-1] == "cuCtxPopCurrent"
    assert calls[1].startswith("cuEventCreate flags 2 -> ")
    event = calls[1].rsplit(" ", 1)[1]
    assert calls[2:5] == [f"cuEventRecord {event} on 0x1", f"cuStreamWaitEvent 0xabc0 waits for {event}",
                          f"cuEventDestroy {event}"]
    assert fake.balanced()
    assert dlbridge.from_dlpack(cap).data_ptr == POINTER
    fake.lib.fake_reset()
    t.__dlpack__(stream=2)
    assert "cuStreamWaitEvent 0x2 waits for" in " ".join(fake.calls())
    fake.lib.fake_reset()
    for nothing in (None, 1, -1):
        t.__dlpack__(stream=nothing)
    assert fake.calls() == []


def test_driver_failures_name_the_call_and_release_everything(fake):
    fake.set("sync_status", 400)
    p = Producer(stream=0x99)
    before = sys.getrefcount(p)
    with pytest.raises(BufferError, match="synchronising on stream 0x99 of cuda:0: the CUDA driver's cuStreamSynchronize "
                                          r"failed with CUDA_ERROR_INVALID_HANDLE \(400\)"):
        dlbridge.from_cuda_array_interface(p)
    assert sys.getrefcount(p) == before
    assert fake.balanced()
    fake.set("wait_status", 400)
    with pytest.raises(BufferError, match="cuStreamWaitEvent failed with CUDA_ERROR_INVALID_HANDLE"):
        cuda_tensor().__dlpack__(stream=0x42)
    assert fake.balanced()  # the event destroyed and the context popped all the same


def test_a_driver_without_a_gpu_is_no_driver(fake):
    fake.set("init_status", 100)
    fake.reload()
    assert cuda_tensor().device == (2, 0)  # the declared device, as with no driver at all
    with pytest.raises(BufferError, match=r"needs the CUDA driver, which is not available: cuInit failed with "
                                          r"CUDA_ERROR_NO_DEVICE \(100\)"):
        cuda_tensor(stream=7)


def test_the_driver_is_loaded_only_when_needed(fake):
    # A fresh interpreter: import, CPU work and CUDA tensors that need no
    # synchronisation leave the driver unloaded; the first wait loads it.
    script = textwrap.dedent(f"""
        import numpy as np, dlbridge, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from dlpack_structs import capsule
        dlbridge._native._testing.cuda_driver({fake.path!r})
        def loaded():
            return {fake.path!r} in open("/proc/self/maps").read()
        t = dlbridge.asarray(np.arange(3.0))
        memoryview(t); t.__dlpack__(); np.from_dlpack(t)
        g = dlbridge.from_dlpack(capsule(device=(2, 0), data=0x10000))
        g.__dlpack__(stream=1); g.__dlpack__(stream=-1); g.__cuda_array_interface__
        assert not loaded()
        g.__dlpack__(stream=0x1234)
        assert loaded()
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_numba_simulator_arrays_are_host_memory():
    # numba-cuda 0.30.4's CUDA simulator implements no __cuda_array_interface__
    # (its FakeCUDAArray wraps a NumPy array and forwards attributes to it), so
    # it is no third-party producer here: dlbridge sees its arrays for what
    # they are, host memory, through the host array interface, zero-copy.
    script = textwrap.dedent("""
        import numpy as np, dlbridge
        from numba import cuda
        d = cuda.to_device(np.arange(6.0).reshape(2, 3))
        assert not hasattr(d, "__cuda_array_interface__")
        t = dlbridge.asarray(d)
        host = d.copy_to_host()
        print(t.device, t.source, t.shape, t.data_ptr == d.__array_interface__["data"][0])
    """)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(1,", "0)", "array_struct", "(2,", "3)", "True"]
