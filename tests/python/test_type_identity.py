"""Framework types are recognised by identity, never by name.

A pure-Python class can take any name (``cls.__name__`` is its ``tp_name``).
Were torch's base type recognised by the name ``torch._C.TensorBase``, the
first such class seen would be bound as torch's base for the whole process:
dlbridge would then call torch's C functions (``is_conj``/``is_neg``) on a
foreign object, or, with a harmless fake, stop recognising real torch
tensors, so a negative-bit tensor would import with its sign lost and a
``requires_grad`` tensor writable. Each case runs in a fresh interpreter, so
the fake is the first candidate the process sees.
"""

import subprocess
import sys
import textwrap

import pytest

FAKE = """
import numpy as np
import dlbridge


class Fake:
    # What torch's guard reads from its base, as harmless answers: a fake
    # taken for torch's base imports fine and hides real torch tensors.
    requires_grad = property(lambda self: False)

    def is_conj(self):
        return False

    def is_neg(self):
        return False

    def __init__(self):
        self.array = np.arange(3.0)

    def __dlpack__(self, **kwargs):
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return (1, 0)


Fake.__name__ = {name!r}
fake = Fake()
t = dlbridge.asarray(fake)
assert t.data_ptr == fake.array.ctypes.data
"""


def run(code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["torch._C.TensorBase", "torch._C._TensorBase"])
def test_python_class_named_like_torch_first_then_real_torch_still_refused(name):
    run(
        FAKE.format(name=name)
        + """
import pytest
import torch

neg = torch.arange(3.0)._neg_view()
assert neg.is_neg()
with pytest.raises(BufferError, match=r"resolve_neg\\(\\)"):
    dlbridge.asarray(neg)
with pytest.raises(BufferError, match=r"detach\\(\\)"):
    dlbridge.asarray(torch.ones(3, requires_grad=True))
# The fake itself is still imported as what it is: a plain producer.
assert not dlbridge.asarray(fake).readonly
"""
    )


def test_python_class_named_like_torch_with_torch_loaded_is_not_torch():
    # torch loaded first: the fake is nominated by its name but is not the
    # loaded torch._C.TensorBase, so no torch C function runs on it.
    run(
        "import torch\n"
        + FAKE.format(name="torch._C.TensorBase")
        + """
neg = torch.arange(3.0)._neg_view()
import pytest
with pytest.raises(BufferError, match=r"resolve_neg\\(\\)"):
    dlbridge.asarray(neg)
"""
    )


def test_python_class_named_numpy_ndarray_gets_no_ndarray_path():
    run(
        FAKE.format(name="numpy.ndarray")
        + """
assert dlbridge.asarray(fake).source == "dlpack"
"""
    )
