"""What the installed torch can do, for tests that run at both ends of the
supported range (README's Compatibility: torch 2.9 to the newest).

Each fact is probed where probing is safe, or read from the version where
probing would kill the process; a test that needs one skips with the reason.
"""

from __future__ import annotations

import pytest
import torch

TORCH = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])

# torch 2.13 and earlier abort the process (std::terminate) when a DLPack
# import has a negative stride: `TensorMaker::computeStorageSize` was
# `noexcept` around a throwing check (pytorch#188023, fixed in 2.14 by
# pytorch#188062); 2.14 and later raise RuntimeError. Not probed: the probe
# is the abort.
TORCH_ABORTS_ON_NEGATIVE_STRIDES = TORCH < (2, 14)


def _dlpack_float8() -> bool:
    """torch 2.9 refuses float8 over DLPack ("float8 types are not supported
    by dlpack"); later releases export and import DLPack's float8 codes."""
    try:
        torch.zeros(1, dtype=torch.float8_e5m2).__dlpack__()
    except (BufferError, RuntimeError):
        return False
    return True


TORCH_DLPACK_FLOAT8 = _dlpack_float8()

needs_torch_dlpack_float8 = pytest.mark.skipif(
    not TORCH_DLPACK_FLOAT8, reason=f"torch {torch.__version__} has no float8 over DLPack (2.10 and later have)"
)
needs_torch_negative_stride_refusal = pytest.mark.skipif(
    TORCH_ABORTS_ON_NEGATIVE_STRIDES,
    reason=f"torch {torch.__version__} aborts the process on a negative-stride DLPack import (2.14 and later raise)",
)


def float8_param(*values, id=None):
    """A parameter that needs float8 over DLPack in torch."""
    return pytest.param(*values, id=id, marks=needs_torch_dlpack_float8)
