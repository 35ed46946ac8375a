"""DLPack with CUDA producers, as the Array API and PyTorch's test_dlpack.py
ask of a consumer, without a GPU.

The producers are stand-ins: helpers/cuda_producer.c, a C tensor type
claiming a CUDA device and a made-up device pointer (never dereferenced),
with `__dlpack__`, `__dlpack_device__` and a DLPack 1.3 C exchange table,
logging every call a consumer makes; and small Python producers. The CUDA
driver is helpers/fake_cuda.c (which driver calls, in which order) or a path
that does not exist. tests/gpu/ runs the same exchanges on a real GPU.
"""

from __future__ import annotations

import ctypes
import gc
import sys

import numpy as np
import pytest
import torch

import dlbridge
from cbuild import load
from dlpack_structs import capsule
from test_cuda_array_interface import NO_DRIVER, FakeDriver

POINTER = 0x7F00_0000_0000  # a made-up device address: never dereferenced
COPY = POINTER + 0x100000  # where the stand-in puts a copy it makes


@pytest.fixture(autouse=True)
def no_driver():
    dlbridge._native._testing.cuda_driver(NO_DRIVER)
    yield
    dlbridge._native._testing.cuda_driver(None)


@pytest.fixture
def fake():
    return FakeDriver()


class Stand:
    """helpers/cuda_producer.c: its tensors, its log, its stream knob."""

    def __init__(self):
        self.lib = load("cuda_producer")
        self.lib.make.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_ulonglong, ctypes.c_int]
        self.lib.make.restype = ctypes.py_object
        self.lib.producer_log.restype = ctypes.c_char_p
        self.set_stream(0)
        ctypes.c_int.in_dll(self.lib, "producer_work_stream_status").value = 0
        self.lib.producer_reset()

    def tensor(self, device=(2, 0), table=True, data=POINTER):
        return self.lib.make(device[0], device[1], data, int(table))

    def set_stream(self, handle):
        ctypes.c_ulonglong.in_dll(self.lib, "producer_work_stream").value = handle

    def fail_stream(self):
        ctypes.c_int.in_dll(self.lib, "producer_work_stream_status").value = -1

    def deleted(self):
        return ctypes.c_long.in_dll(self.lib, "producer_deleted").value

    def calls(self):
        return self.lib.producer_log().decode().splitlines()


@pytest.fixture
def stand():
    return Stand()


def dlpack_calls(stand):
    return [call for call in stand.calls() if call.startswith("__dlpack__")]


# ------------------------------------------- the consumer names its stream --

@pytest.mark.parametrize("importer", [dlbridge.from_dlpack, dlbridge.asarray])
def test_a_cuda_producer_is_asked_with_stream_1(stand, importer):
    """The Array API (and torch's test): the consumer names the stream it
    will use; 1, the legacy default stream dlbridge's CUDA tensors are ready
    on. Without it torch orders nothing (stream=None is a no-op there)."""
    t = importer(stand.tensor(table=False))
    assert (t.device, t.data_ptr) == ((2, 0), POINTER)
    assert dlpack_calls(stand) == ["__dlpack__ {'max_version': (1, 3), 'stream': 1}"]


def test_cpu_and_other_devices_are_asked_without_a_stream(stand):
    dlbridge.from_dlpack(stand.tensor(device=(1, 0), table=False, data=0x1000))
    dlbridge.from_dlpack(stand.tensor(device=(10, 0), table=False))  # ROCm: not CUDA's stream numbers
    assert dlpack_calls(stand) == ["__dlpack__ {'max_version': (1, 3)}"] * 2


def test_managed_memory_is_asked_with_stream_1(stand):
    dlbridge.from_dlpack(stand.tensor(device=(13, 0), table=False))
    assert dlpack_calls(stand) == ["__dlpack__ {'max_version': (1, 3), 'stream': 1}"]


def test_a_producer_before_max_version_still_gets_the_stream():
    seen = []

    class Old:
        def __dlpack__(self, stream=None):
            seen.append(stream)
            return capsule(device=(2, 0), data=POINTER)

        def __dlpack_device__(self):
            return (2, 0)

    assert dlbridge.from_dlpack(Old()).device == (2, 0)
    assert seen == [1]


def test_a_producer_without_dlpack_device_is_asked_as_before():
    seen = []

    class NoDevice:
        def __dlpack__(self, **kwargs):
            seen.append(kwargs)
            return capsule(device=(2, 0), data=POINTER)

    assert dlbridge.from_dlpack(NoDevice()).device == (2, 0)
    assert seen == [{"max_version": (1, 3)}]


# ---------------------------------------------- copy=True on another device --

@pytest.mark.parametrize("table", [True, False], ids=["table", "no-table"])
def test_asarray_copy_true_of_a_cuda_tensor_is_asked_of_the_producer(stand, table):
    """dlbridge copies CPU memory only; the producer copies its own
    device's. asarray(copy=True) as from_dlpack(copy=True), call for call:
    the table's tensor (if it has one) handed back once, the producer asked
    once, for a copy of its device's memory."""
    calls, released = [], []
    for importer in (dlbridge.from_dlpack, dlbridge.asarray):
        stand.lib.producer_reset()
        deleted = stand.deleted()
        t = importer(stand.tensor(table=table), copy=True)
        assert (t.device, t.data_ptr, t.source) == ((2, 0), COPY, "dlpack")
        calls.append(stand.calls())
        del t
        gc.collect()
        released.append(stand.deleted() - deleted)
    asked = "__dlpack__ {'max_version': (1, 3), 'stream': 1, 'copy': True}"
    expected = ["managed_tensor_from_py_object_no_sync (2, 0)", asked] if table else [asked]
    assert calls == [expected, expected]
    # The table's tensor (handed back) and the copy, each released once.
    assert released == [len(expected), len(expected)]


def test_asarray_copy_true_of_a_cpu_tensor_with_a_table_is_copied_here(stand):
    """The table's CPU tensor is taken (one call) and copied by dlbridge:
    its elements (the stand describes four float32s at `data`)."""
    source = dlbridge.asarray(np.arange(4, dtype=np.float32), copy=True)
    deleted = stand.deleted()
    t = dlbridge.asarray(stand.tensor(device=(1, 0), data=source.data_ptr), copy=True)
    assert t.source == "rust" and t.data_ptr != source.data_ptr
    assert np.from_dlpack(t).tolist() == [0.0, 1.0, 2.0, 3.0]
    assert stand.calls() == ["managed_tensor_from_py_object_no_sync (1, 0)"]
    assert stand.deleted() == deleted + 1


def test_asarray_copy_true_of_a_cuda_capsule_is_refused_as_from_dlpack_refuses_it():
    """A capsule cannot be asked for a copy (docs/errors.md,
    dlpack-capsule-copy-device): asarray says what from_dlpack says."""
    message = "copy=True of a DLPack capsule on device cuda:0: dlbridge copies CPU memory only"
    with pytest.raises(BufferError, match=message):
        dlbridge.from_dlpack(capsule(device=(2, 0), data=POINTER), copy=True)
    with pytest.raises(BufferError, match=message):
        dlbridge.asarray(capsule(device=(2, 0), data=POINTER), copy=True)


def test_asarray_copy_true_of_a_home_cuda_tensor_is_refused():
    """A dlbridge.Tensor on a device: dlbridge is its producer and copies CPU
    memory only, so asarray refuses as its own __dlpack__(copy=True) does."""
    t = dlbridge.from_dlpack(capsule(device=(2, 0), data=POINTER))
    with pytest.raises(BufferError, match="copy\\(\\) needs CPU memory, but the tensor is on device cuda:0"):
        dlbridge.asarray(t, copy=True)
    with pytest.raises(BufferError, match="needs CPU memory"):
        t.__dlpack__(max_version=(1, 3), copy=True)
    assert dlbridge.asarray(t) is t


def test_copy_true_of_a_cpu_tensor_is_made_here(stand):
    source = dlbridge.zeros(4)
    x = stand.tensor(device=(1, 0), table=False, data=source.data_ptr)
    t = dlbridge.from_dlpack(x, copy=True)
    assert t.source == "rust" and t.data_ptr != source.data_ptr
    assert dlpack_calls(stand) == ["__dlpack__ {'max_version': (1, 3)}"]


def test_copy_false_of_a_cuda_tensor_is_passed_on(stand):
    t = dlbridge.from_dlpack(stand.tensor(), copy=False)
    assert t.data_ptr == POINTER
    assert stand.calls() == ["__dlpack__ {'max_version': (1, 3), 'stream': 1, 'copy': False}"]


def test_copy_true_of_a_cuda_capsule_is_refused_clearly():
    cap = capsule(device=(2, 0), data=POINTER)
    with pytest.raises(BufferError, match="copy=True of a DLPack capsule on device cuda:0: dlbridge copies CPU "
                                          "memory only, and a capsule cannot be asked for a copy"):
        dlbridge.from_dlpack(cap, copy=True)


# ---------------------------------------------------------- device values --

class Holder:
    def __init__(self, device):
        self.device = device

    def __dlpack_device__(self):
        return self.device

    def __repr__(self):
        return f"Holder({self.device!r})"


SAME_DEVICE = [None, "cuda", "cuda:0", (2, 0), Holder((2, 0)),
               torch.device("cuda:0"), torch.device("cuda"), torch.device("cuda", 0)]


@pytest.mark.parametrize("device", SAME_DEVICE, ids=repr)
def test_device_values_naming_the_tensors_device(stand, device):
    t = dlbridge.from_dlpack(stand.tensor(table=False), device=device)
    assert (t.device, t.data_ptr) == ((2, 0), POINTER)
    assert dlpack_calls(stand) == ["__dlpack__ {'max_version': (1, 3), 'stream': 1}"]


def test_cuda_without_an_index_is_the_tensors_cuda_device(stand):
    for device in ("cuda", torch.device("cuda")):
        assert dlbridge.from_dlpack(stand.tensor(device=(2, 3), table=False), device=device).device == (2, 3)
    assert dlpack_calls(stand) == ["__dlpack__ {'max_version': (1, 3), 'stream': 1}"] * 2


@pytest.mark.parametrize("device, expected", [
    ("cuda:1", (2, 1)), (torch.device("cuda:1"), (2, 1)), ((2, 1), (2, 1)), (Holder((2, 1)), (2, 1)),
    ("cpu", (1, 0)), (torch.device("cpu"), (1, 0)),
], ids=repr)
def test_another_device_is_asked_of_the_producer(stand, device, expected):
    t = dlbridge.from_dlpack(stand.tensor(table=False), device=device)
    assert (t.device, t.data_ptr) == (expected, COPY)
    stream = ", 'stream': 1" if expected[0] == 2 else ""  # the stream is the consumer's, on the target device
    assert dlpack_calls(stand) == [f"__dlpack__ {{'max_version': (1, 3){stream}, 'dl_device': {expected}}}"]


def test_a_cpu_tensor_asked_onto_cuda(stand):
    t = dlbridge.from_dlpack(stand.tensor(device=(1, 0), table=False, data=0x1000), device="cuda")
    assert t.device == (2, 0)
    assert dlpack_calls(stand) == ["__dlpack__ {'max_version': (1, 3), 'stream': 1, 'dl_device': (2, 0)}"]


def test_capsules_take_device_values_too():
    assert dlbridge.from_dlpack(capsule(device=(2, 1), data=POINTER), device="cuda").device == (2, 1)
    assert dlbridge.from_dlpack(capsule(), device=torch.device("cpu")).device == (1, 0)
    with pytest.raises(BufferError, match="capsule is on device cuda:1, not cuda:0"):
        dlbridge.from_dlpack(capsule(device=(2, 1), data=POINTER), device=torch.device("cuda:0"))


def test_dunder_dlpack_takes_device_values():
    t = dlbridge.from_dlpack(capsule(device=(2, 1), data=POINTER))
    for same in ("cuda", "cuda:1", torch.device("cuda:1"), (2, 1), t):
        assert dlbridge.from_dlpack(t.__dlpack__(dl_device=same, stream=-1, max_version=(1, 0))).device == (2, 1)
    with pytest.raises(BufferError, match="cannot export to dl_device cuda:0"):
        t.__dlpack__(dl_device="cuda:0")


# ----------------------------------------- device= refusals (issue 20, 7) --

BAD_DEVICES = [
    ("gpu", ValueError, "device 'gpu' is not a device"),
    ("CPU", ValueError, "device 'CPU' is not a device"),
    ("cuda:", ValueError, "device 'cuda:' is not a device"),
    ("cuda:-1", ValueError, "device 'cuda:-1' is not a device"),
    (torch.device("meta"), ValueError, "device device(type='meta') is not a device"),
    ((1, 2**31), ValueError, "device (1, 2147483648) has a device_type or device_id out of range"),
    ((2**32, 0), ValueError, "device (4294967296, 0) has a device_type or device_id out of range"),
    ((2, -1), ValueError, "device (2, -1) has a device_type or device_id out of range"),
    ((2, 0, 0), ValueError, "device must be a (device_type, device_id) pair, got (2, 0, 0)"),
    (("cuda", 0), TypeError, "device must be a (device_type, device_id) tuple of ints, got ('cuda', 0)"),
    (Holder((2, 2**40)), ValueError, "has a device_type or device_id out of range"),
    (Holder("cuda"), TypeError, "device.__dlpack_device__() must return a (device_type, device_id) tuple, got 'cuda'"),
    (1.5, TypeError, "device must be None, a device string such as \"cpu\" or \"cuda:0\", a (device_type, "
                     "device_id) tuple, a torch.device or an object with __dlpack_device__, got 1.5"),
    ([2, 0], TypeError, "got [2, 0]"),
]


@pytest.mark.parametrize("device, exception, message", BAD_DEVICES, ids=[repr(b[0]) for b in BAD_DEVICES])
def test_bad_device_values(device, exception, message):
    cap = capsule()
    with pytest.raises(exception) as info:
        dlbridge.from_dlpack(cap, device=device)
    assert type(info.value) is exception
    assert message in str(info.value)
    assert "dl_device" not in str(info.value)


@pytest.mark.parametrize("device, exception, message", BAD_DEVICES[:2] + BAD_DEVICES[5:6] + BAD_DEVICES[-2:-1],
                         ids=repr)
def test_bad_dl_device_values_name_dl_device(device, exception, message):
    with pytest.raises(exception) as info:
        dlbridge.zeros(2).__dlpack__(dl_device=device)
    assert type(info.value) is exception
    assert message.replace("device", "dl_device", 1) in str(info.value)


def test_a_producers_dlpack_device_is_checked(stand):
    class Lying:
        def __dlpack__(self, **kwargs):
            raise AssertionError("not reached")

        def __dlpack_device__(self):
            return "cuda"

    with pytest.raises(TypeError, match=r"__dlpack_device__\(\) of Lying = 'cuda' is not a \(device_type, device_id\) tuple"):
        dlbridge.from_dlpack(Lying())


# --------------------------------------- the CUDA import through the table --

def test_cuda_import_through_the_exchange_table_on_the_default_stream(stand, fake):
    """torch's default stream (current_work_stream NULL) is the legacy
    default stream: no driver call at all, no __dlpack__."""
    before = dlbridge._native._testing.fast_path_counts()["exchange_api"]
    x = stand.tensor(device=(2, 1))
    t = dlbridge.asarray(x)
    assert (t.device, t.data_ptr, t.source) == ((2, 1), POINTER, "dlpack")
    assert stand.calls() == ["managed_tensor_from_py_object_no_sync (2, 1)", "current_work_stream (2, 1) -> 0"]
    assert fake.calls() == []
    assert dlbridge._native._testing.fast_path_counts()["exchange_api"] == before + 1
    stand.set_stream(1)
    dlbridge.from_dlpack(x)
    assert fake.calls() == []


def test_cuda_import_through_the_exchange_table_on_another_stream(stand, fake):
    """A producer working on another stream: an event recorded on it, the
    legacy default stream made to wait for it (the host does not block)."""
    stand.set_stream(0x5555)
    deleted = stand.deleted()
    t = dlbridge.from_dlpack(stand.tensor(device=(2, 1)))
    assert (t.device, t.data_ptr) == ((2, 1), POINTER)
    assert stand.calls() == ["managed_tensor_from_py_object_no_sync (2, 1)", "current_work_stream (2, 1) -> 0x5555"]
    calls = fake.calls()
    event = calls[1].rsplit(" ", 1)[1]
    assert calls == [
        "cuCtxPushCurrent device 1",
        f"cuEventCreate flags 2 -> {event}",
        f"cuEventRecord {event} on 0x5555",
        f"cuStreamWaitEvent 0x1 waits for {event}",
        f"cuEventDestroy {event}",
        "cuCtxPopCurrent",
    ]
    assert fake.balanced()
    del t
    gc.collect()
    assert stand.deleted() == deleted + 1


def test_without_a_driver_the_producer_orders_it(stand):
    """No driver to order another stream here: the table's tensor is handed
    back (deleted once) and __dlpack__(stream=1) asks the producer."""
    stand.set_stream(0x5555)
    deleted = stand.deleted()
    t = dlbridge.from_dlpack(stand.tensor())
    assert stand.calls() == ["managed_tensor_from_py_object_no_sync (2, 0)", "current_work_stream (2, 0) -> 0x5555",
                             "__dlpack__ {'max_version': (1, 3), 'stream': 1}"]
    assert stand.deleted() == deleted + 1
    del t
    gc.collect()
    assert stand.deleted() == deleted + 2


def test_a_failing_current_work_stream_falls_back_to_dunder_dlpack(stand, fake):
    stand.fail_stream()
    t = dlbridge.from_dlpack(stand.tensor())
    assert t.data_ptr == POINTER
    assert stand.calls()[-1] == "__dlpack__ {'max_version': (1, 3), 'stream': 1}"
    assert fake.calls() == []
    assert sys.exc_info() == (None, None, None)


def test_other_devices_still_go_through_dunder_dlpack(stand):
    dlbridge.from_dlpack(stand.tensor(device=(10, 0)))
    assert stand.calls() == ["managed_tensor_from_py_object_no_sync (10, 0)", "__dlpack__ {'max_version': (1, 3)}"]


def test_a_cpu_tensor_takes_the_table_without_asking_for_a_stream(stand):
    dlbridge.asarray(stand.tensor(device=(1, 0), data=0x1000))
    assert stand.calls() == ["managed_tensor_from_py_object_no_sync (1, 0)"]


# ------------------------------------- dlbridge's own table tells the truth --

def own_current_work_stream(device_type, device_id):
    cap = type(dlbridge.zeros(1)).__dlpack_c_exchange_api__
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    table = get(cap, b"dlpack_exchange_api")
    fn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int32, ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p))(
        ctypes.c_void_p.from_address(table + 48).value)
    out = ctypes.c_void_p(0xDEAD)
    assert fn(device_type, device_id, ctypes.byref(out)) == 0
    return out.value


def test_own_table_names_the_legacy_default_stream_for_cuda():
    assert own_current_work_stream(2, 0) == 1  # CU_STREAM_LEGACY: where dlbridge's CUDA tensors are ready
    assert own_current_work_stream(13, 3) == 1
    assert own_current_work_stream(1, 0) is None  # the CPU has no stream
    assert own_current_work_stream(10, 0) is None


def test_dlbridge_reimports_its_own_cuda_tensor_through_its_table(fake):
    t = dlbridge.from_dlpack(capsule(device=(2, 0), data=POINTER))
    before = dlbridge._native._testing.fast_path_counts()["exchange_api"]
    back = dlbridge.from_dlpack(t)
    assert back.data_ptr == POINTER and dlbridge._native._testing.fast_path_counts()["exchange_api"] == before + 1
    assert fake.calls() == []  # its own stream is the legacy default: nothing to order
