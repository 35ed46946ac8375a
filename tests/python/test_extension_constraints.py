"""Constraints in a Rust extension's argument types (`dlbridge::constraints`).

Each is checked once, at the boundary; a mismatch is a `TypeError` naming
what was expected and what came, and the input is left untouched.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import dlbridge
import dlbridge_example as ex
from dlpack_structs import capsule as dlpack_capsule


def test_fixed_extent_and_c_contiguity_accepted():
    points = np.arange(12.0).reshape(4, 3)
    assert ex.centroid(points) == pytest.approx([4.5, 5.5, 6.5])
    assert ex.centroid(torch.from_numpy(points)) == pytest.approx([4.5, 5.5, 6.5])
    assert ex.centroid(np.zeros((0, 3))) == [0.0, 0.0, 0.0]  # -1: any extent, even 0


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros((4, 2)), r"expected shape \[any, 3\], got shape \[4, 2\]"),
        (np.zeros((3, 4)).T[:, :3], r"expected a C-contiguous tensor, got shape \[4, 3\] with byte strides \[8, 32\]"),
        (np.zeros(3), r"expected a 2-d tensor, got a 1-d tensor"),
        (np.zeros((2, 3), dtype=np.float32), r"expected dtype float64, got float32"),
    ],
    ids=["extent", "contiguity", "rank", "dtype"],
)
def test_each_mismatch_is_a_type_error_naming_both(x, message):
    refs = sys.getrefcount(x)
    with pytest.raises(TypeError, match=message):
        ex.centroid(x)
    assert sys.getrefcount(x) == refs


def test_f_contiguity():
    m = np.asfortranarray(np.zeros((2, 5), dtype=np.float32))
    assert ex.fortran_columns(m) == 5
    assert ex.fortran_columns(torch.zeros(5, 2).T) == 5
    with pytest.raises(TypeError, match="expected an F-contiguous tensor, got shape"):
        ex.fortran_columns(np.zeros((2, 5), dtype=np.float32))


def test_writable_and_fixed_shape():
    assert ex.writable_block(np.zeros((4, 4))) == [4, 4]
    ro = np.zeros((4, 4))
    ro.flags.writeable = False
    with pytest.raises(TypeError, match=r"expected a writable tensor, got a read-only one \(shape \[4, 4\]\)"):
        ex.writable_block(ro)
    with pytest.raises(TypeError, match=r"expected a writable tensor"):
        ex.writable_block(memoryview(ro))  # through the buffer protocol: still read-only
    with pytest.raises(TypeError, match=r"expected shape \[4, 4\], got shape \[4, 4, 1\]"):
        ex.writable_block(np.zeros((4, 4, 1)))


def test_device_constraint():
    x = np.arange(3, dtype=np.uint8)
    assert ex.cpu_address(x) == x.ctypes.data
    assert ex.cpu_address(dlbridge.asarray(x)) == x.ctypes.data


def test_device_constraint_refuses_other_devices():
    # A CUDA tensor cannot be made without a GPU: a DLPack capsule that
    # claims CUDA memory (never read) stands in for one.
    cuda = dlbridge.from_dlpack(dlpack_capsule(shape=(4,), device=(2, 0)))
    assert cuda.device == (2, 0)
    with pytest.raises(TypeError, match="expected a tensor on a cpu device, got one on cuda:0"):
        ex.cpu_address(cuda)
