"""Type stubs for the native extension module; kept true by tests/python/test_stubs.py
and by `mypy.stubtest dlbridge` (`make stubtest`, part of `make test`)."""

from collections.abc import Iterator
from typing import Any, ClassVar, SupportsIndex, final

from numpy.typing import NDArray
from typing_extensions import CapsuleType

__version__: str

__all__ = [
    "__version__",
    "Tensor",
    "asarray",
    "from_dlpack",
    "from_buffer",
    "from_array_interface",
    "from_cuda_array_interface",
    "zeros",
    "empty",
    "live_buffers",
]

# (device_type, device_id), as `__dlpack_device__` returns it. Private: a
# typing-only name, so stubtest does not look for it at runtime.
_DeviceTuple = tuple[int, int]
# What a device argument takes: "cpu", "cuda", "cuda:N" (DLPack's lower-case
# type names), a (device_type, device_id) tuple, a torch.device, or any object
# with __dlpack_device__ (typed as Any: neither torch nor a protocol is named).
_DeviceArg = str | _DeviceTuple | Any

@final
class Tensor:
    """A view of tensor memory that speaks DLPack, the buffer protocol and the array interface."""

    __dlpack_c_exchange_api__: ClassVar[CapsuleType]
    """The DLPack 1.3 C exchange table (a `dlpack_exchange_api` capsule)."""

    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def strides(self) -> tuple[int, ...]:
        """Strides in bytes, as NumPy."""
    @property
    def dtype(self) -> str: ...
    @property
    def itemsize(self) -> int: ...
    @property
    def ndim(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def device(self) -> _DeviceTuple: ...
    @property
    def readonly(self) -> bool: ...
    @property
    def data_ptr(self) -> int: ...
    @property
    def source(self) -> str: ...
    def copy(self) -> Tensor: ...
    def view(self, dtype: Any) -> Tensor:
        """The same bytes as another dtype of the same itemsize."""
    def numpy(self) -> NDArray[Any]:
        """A zero-copy numpy.ndarray (ml_dtypes dtype for bfloat16/float8 when installed).

        NumPy is needed only here: it is imported on the first call.
        """
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> NDArray[Any]:
        """NumPy 2's protocol: the zero-copy numpy() array, or a copy for copy=True or another dtype.

        copy=False refuses (ValueError) what only a copy could give: another dtype, another device.
        """
    @property
    def __array_interface__(self) -> dict[str, Any]: ...
    @property
    def __array_struct__(self) -> CapsuleType: ...
    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        """The CUDA array interface (version 3, stream 1) of CUDA memory; AttributeError on other devices."""
    def __dlpack__(
        self,
        *,
        stream: Any | None = None,
        max_version: tuple[int, int] | None = None,
        dl_device: _DeviceArg | None = None,
        copy: bool | None = None,
    ) -> CapsuleType: ...
    def __dlpack_device__(self) -> _DeviceTuple: ...
    def __len__(self) -> int: ...
    def __arrow_c_array__(self, requested_schema: CapsuleType | None = None) -> tuple[CapsuleType, CapsuleType]:
        """The Arrow PyCapsule interface: ("arrow_schema", "arrow_array") capsules, zero-copy.

        1-D is a primitive array, N-D nested FixedSizeLists; bool, bfloat16, float8, complex,
        strided, 0-d, misaligned and non-CPU tensors are refused (BufferError), as is a
        requested_schema other than the export's own.
        """
    def __jax_array__(self) -> Any:
        """jnp.asarray(t): a JAX array of the numpy() view (JAX copies it, as any ndarray)."""
    def __iter__(self) -> Iterator[Any]:
        """NumPy's iteration over the first axis (a 0-d tensor is not iterable)."""
    def __reduce_ex__(self, protocol: SupportsIndex, /) -> tuple[Any, ...]:
        """Pickling: protocol 5 hands the bytes out of band as a PickleBuffer (zero copy)."""
    def __copy__(self) -> Tensor:
        """copy.copy: a new view of the same memory."""
    def __deepcopy__(self, memo: dict[int, Any], /) -> Tensor:
        """copy.deepcopy: a Rust-owned C-contiguous copy."""
    # CPython 3.12+ derives `__buffer__` from the buffer slot; 3.11 has no
    # such attribute, but type checkers read the buffer protocol from it
    # (`memoryview(t)`, `bytes(t)`), so it is declared for every version
    # (see tests/stubtest-allowlist.txt).
    def __buffer__(self, flags: int, /) -> memoryview: ...

def asarray(obj: Any, *, copy: bool | None = None) -> Tensor:
    """Any array-like as a Tensor, zero-copy unless copy=True.

    DLPack, the buffer protocol, __array_struct__, __array_interface__, __cuda_array_interface__,
    then, for an object that speaks none of them, __array__ (with copy=False, a producer that
    cannot promise no copy is a ValueError).
    """
def from_dlpack(
    obj: Any, /, *, device: _DeviceArg | None = None, copy: bool | None = None, legacy_writable: bool = False
) -> Tensor:
    """A DLPack producer (or capsule) as a Tensor.

    A CUDA producer is asked with stream=1 (the legacy default stream, where dlbridge's CUDA
    tensors are ready); another device than the tensor's is asked of the producer
    (dl_device=), and so is copy=True of memory dlbridge cannot copy (non-CPU).
    """
def from_buffer(
    obj: Any,
    *,
    dtype: Any = None,
    shape: int | tuple[int, ...] | None = None,
    offset: int | None = None,
) -> Tensor: ...
def from_array_interface(obj: Any) -> Tensor: ...
def from_cuda_array_interface(obj: Any, *, sync: bool = True) -> Tensor:
    """A __cuda_array_interface__ exporter as a CUDA Tensor, zero-copy.

    Its stream is synchronised on first (this needs a CUDA driver) unless sync=False.
    """
def zeros(shape: int | tuple[int, ...], dtype: Any = None) -> Tensor: ...
def empty(shape: int | tuple[int, ...], dtype: Any = None) -> Tensor: ...
def live_buffers() -> int: ...
def _rebuild_tensor(
    data: Any, code: int, bits: int, lanes: int, shape: tuple[int, ...], order: str, readonly: bool, /
) -> Tensor:
    """Unpickling: the tensor a pickle describes, over data's memory (no copy); private, named by pickles."""
