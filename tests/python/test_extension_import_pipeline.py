"""One import pipeline (issue 21): every entry point calls the same staged
importer (src/python/importer.rs), so the same real producers give the same
answer through each: the same data pointer (no copy anywhere) or the same
refusal's exception type, and the same fast path, counted.

The entry points: `dlbridge.asarray`, and the example extension's functions
taking a `Tensor` (`identity`), a `TypedTensor<f64>` (`typed_data_ptr`), a
borrowed `ReadonlyTensor<AnyDtype>` (`data_ptr`) and a borrowed `ReadonlyTensor<f64>`
(`typed_borrowed_data_ptr`: its pointer and the sum its view reads). Where they differ
on purpose, the difference is read from OPTIONS, a copy of the importer's
`Options` per entry point: only asarray reaches `__array__`, and only a
borrowed argument is lent an exact ndarray (counted as `lent_arguments`,
not `ndarray_fields`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

import dlbridge
import dlbridge_example as ex
from producers import ArrayInterfaceOnly, ArrayStructOnly

# importer.rs: `Options::asarray`, `Options::ARGUMENT`, `Options::BORROWED`.
OPTIONS = {
    "asarray": {"lent": False, "array_dunder": True},
    "Tensor": {"lent": False, "array_dunder": False},
    "TypedTensor": {"lent": False, "array_dunder": False},
    "ReadonlyTensor<AnyDtype>": {"lent": True, "array_dunder": False},
    "ReadonlyTensor<f64>": {"lent": True, "array_dunder": False},
}

# entry point -> (the call: a data pointer, and for ReadonlyTensor<f64> the elements' sum too;
# the fast-path counters of the binary that imports)
ENTRY_POINTS = {
    "asarray": (lambda x: dlbridge.asarray(x).data_ptr, dlbridge._native._testing.fast_path_counts),
    "Tensor": (lambda x: ex.identity(x).data_ptr, ex.fast_path_counts),
    "TypedTensor": (ex.typed_data_ptr, ex.fast_path_counts),
    "ReadonlyTensor<AnyDtype>": (ex.data_ptr, ex.fast_path_counts),
    "ReadonlyTensor<f64>": (ex.typed_borrowed_data_ptr, ex.fast_path_counts),
}

has_exchange_table = hasattr(torch.Tensor, "__dlpack_c_exchange_api__")


class ArrayOnly:
    """Speaks no protocol, only `__array__` (returning its array, no copy)."""

    def __init__(self, base: np.ndarray):
        self.base = base

    def __array__(self, dtype=None, copy=None):
        return self.base


class RefusesDlpack(ArrayOnly):
    """`__dlpack__` refuses with BufferError: the producer's verdict, which
    its `__array__` (a copy, in a real producer) must not override."""

    def __dlpack__(self, **kwargs):
        raise BufferError("this producer cannot export this array")

    def __dlpack_device__(self):
        return (1, 0)


def arrow_values(arr) -> int:
    """The address of a primitive Arrow array's values (offset 0)."""
    return arr.buffers()[1].address


def strided_readonly_case():
    a = np.arange(48.0).reshape(4, 12)[:, ::2]
    a.flags.writeable = False
    return a, a


def producers():
    """name -> make() returning (producer, the array its elements are, or
    the exception every entry point raises), and the fast path counted."""
    base = np.arange(24.0).reshape(4, 6)
    values = pa.array(np.arange(6.0))
    fsl = pa.FixedSizeListArray.from_arrays(values, 2)
    t = torch.arange(24.0, dtype=torch.float64).reshape(4, 6)
    return {
        "ndarray": (lambda: (base, base), "ndarray_fields"),
        "ndarray_strided_readonly": (strided_readonly_case, "ndarray_fields"),
        "torch": (lambda: (t, t.numpy()), "exchange_api" if has_exchange_table else None),
        "torch_requires_grad": (
            lambda: (torch.ones(3, dtype=torch.float64, requires_grad=True), BufferError),
            None,
        ),
        "memoryview": (lambda: (memoryview(base), base), "builtin_buffer"),
        "interface_only": (lambda: (ArrayInterfaceOnly(base), base), None),
        "struct_only": (lambda: (ArrayStructOnly(base), base), None),
        "pyarrow": (lambda: (values, np.frombuffer(values.buffers()[1], np.float64)[:6]), None),
        "fixed_size_list": (lambda: (fsl, np.frombuffer(values.buffers()[1], np.float64)[:6]), None),
        "array_only": (lambda: (ArrayOnly(base), base), None),
        "dlpack_refuses": (lambda: (RefusesDlpack(base), BufferError), None),
    }


PRODUCERS = producers()


def expected(entry: str, name: str):
    """What `entry` must answer for producer `name`: the reference array, or
    an exception type."""
    obj, answer = PRODUCERS[name][0]()
    if name == "array_only" and not OPTIONS[entry]["array_dunder"]:
        return obj, TypeError  # no protocol spoke, and __array__ is asarray's
    return obj, answer


def fast_path(entry: str, name: str) -> str | None:
    path = PRODUCERS[name][1]
    if name == "array_only" and OPTIONS[entry]["array_dunder"]:
        return "ndarray_fields"  # what __array__ returned takes the field read
    if path == "ndarray_fields" and OPTIONS[entry]["lent"]:
        return "lent_arguments"
    return path


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("name", PRODUCERS)
def test_every_entry_point_agrees(entry, name):
    call, counts = ENTRY_POINTS[entry]
    obj, answer = expected(entry, name)
    before = counts()
    if isinstance(answer, type):
        with pytest.raises(answer):
            call(obj)
        assert counts() == before, "a refusal is not counted as a fast path"
        return
    result = call(obj)
    if entry == "ReadonlyTensor<f64>":
        result, total = result
        assert total == float(answer.sum())
    assert result == answer.ctypes.data, "zero-copy: the producer's own pointer"
    after = counts()
    path = fast_path(entry, name)
    assert path is None or path in before, f"no counter named {path!r}"
    for key in before:
        assert after[key] == before[key] + (key == path), (key, after[key] - before[key])


@pytest.mark.parametrize("name", PRODUCERS)
def test_asarray_copy_true_takes_asarrays_stages_then_copies(name):
    """`asarray(x, copy=True)` is an importer instance of its own
    (`asarray_copied` in src/python/mod.rs): the same stages, refusals and
    fast paths as `asarray(x)`, counted the same, and then a copy (another
    pointer, the same elements), so its shortcuts cannot vanish unseen."""
    obj, answer = expected("asarray", name)
    counts = dlbridge._native._testing.fast_path_counts
    before = counts()
    if isinstance(answer, type):
        with pytest.raises(answer):
            dlbridge.asarray(obj, copy=True)
        assert counts() == before, "a refusal is not counted as a fast path"
        return
    t = dlbridge.asarray(obj, copy=True)
    assert t.data_ptr != answer.ctypes.data, "copy=True copies"
    assert np.from_dlpack(t).ravel().tolist() == answer.ravel().tolist()
    after = counts()
    path = fast_path("asarray", name)
    for key in before:
        assert after[key] == before[key] + (key == path), (key, after[key] - before[key])


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_dlbridge_tensor_is_its_own_or_crosses_the_exchange_table(entry):
    """In `dlbridge._native` (asarray) a `dlbridge.Tensor` is this binary's
    own: returned itself, no fast path counted; in the extension's binary it
    is a foreign producer whose exchange table the shortcut takes."""
    t = dlbridge.asarray(np.arange(24.0))
    call, counts = ENTRY_POINTS[entry]
    before = counts()
    result = call(t)
    if entry == "ReadonlyTensor<f64>":
        result, total = result
        assert total == 24.0 * 23 / 2
    assert result == t.data_ptr
    after = counts()
    if entry == "asarray":
        assert dlbridge.asarray(t) is t
        assert after == before
    else:
        assert after["exchange_api"] == before["exchange_api"] + 1


def test_refusal_messages_agree_across_entry_points():
    """The same refusal, in the same words, from asarray and an argument
    (asarray's list of what it tried adds `__array__` only when nothing
    refused)."""
    x = torch.ones(3, dtype=torch.float64, requires_grad=True)
    messages = set()
    for entry, (call, _) in ENTRY_POINTS.items():
        with pytest.raises(BufferError, match="no protocol could import Tensor: DLPack: ") as info:
            call(x)
        messages.add(str(info.value))
    assert len(messages) == 1, messages
    with pytest.raises(TypeError, match=r"__arrow_c_stream__, __array__\)$"):
        dlbridge.asarray(object())
    with pytest.raises(TypeError, match=r"__arrow_c_stream__\)") as info:
        ex.data_ptr(object())
    assert "__array__" not in str(info.value)
