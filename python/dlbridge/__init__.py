"""dlbridge: zero-copy tensor exchange between DLPack, the buffer protocol,
NumPy's array interface and Rust.

>>> import dlbridge, numpy as np
>>> a = np.arange(6, dtype=np.float32).reshape(2, 3)
>>> t = dlbridge.asarray(a)
>>> np.from_dlpack(t).ctypes.data == a.ctypes.data
True
"""

from ._native import (
    Tensor,
    __version__,
    asarray,
    empty,
    from_array_interface,
    from_buffer,
    from_cuda_array_interface,
    from_dlpack,
    live_buffers,
    zeros,
)

__all__ = [
    "Tensor",
    "__version__",
    "asarray",
    "empty",
    "from_array_interface",
    "from_buffer",
    "from_cuda_array_interface",
    "from_dlpack",
    "live_buffers",
    "zeros",
]
