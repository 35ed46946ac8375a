"""DLPack structs in ctypes, and capsules built from them, for tests.

The capsules made here carry a NULL deleter ("no reasonable destructor", which
DLPack allows): the memory they describe belongs to the ctypes objects kept in
`KEEPALIVE`, so a consumer that refuses them has nothing to release. Tests that
count deleter calls use the compiled C helper instead.
"""

from __future__ import annotations

import ctypes


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


class DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [
        ("version", DLPackVersion),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
        ("flags", ctypes.c_uint64),
        ("dl_tensor", DLTensor),
    ]


assert ctypes.sizeof(DLTensor) == 48
assert ctypes.sizeof(DLManagedTensor) == 64
assert ctypes.sizeof(DLManagedTensorVersioned) == 80

_new = ctypes.pythonapi.PyCapsule_New
_new.restype = ctypes.py_object
_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_get_pointer.restype = ctypes.c_void_p
_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_get_name = ctypes.pythonapi.PyCapsule_GetName
_get_name.restype = ctypes.c_char_p
_get_name.argtypes = [ctypes.py_object]

# Capsule names must outlive the capsules: module-level constants.
NAMES = {b"dltensor": ctypes.c_char_p(b"dltensor"), b"dltensor_versioned": ctypes.c_char_p(b"dltensor_versioned"),
         b"foo": ctypes.c_char_p(b"foo")}
KEEPALIVE: list[object] = []


def capsule(
    shape=(4,),
    strides=None,
    dtype=(2, 32, 1),
    device=(1, 0),
    data: int | None = None,
    ndim: int | None = None,
    byte_offset: int = 0,
    versioned: bool = True,
    version=(1, 3),
    flags: int = 0,
    name: bytes | None = None,
):
    """A DLPack capsule describing `data` (default: a fresh zeroed block)."""
    n = len(shape)
    c_shape = (ctypes.c_int64 * max(n, 1))(*shape)
    c_strides = (ctypes.c_int64 * max(n, 1))(*strides) if strides is not None else None
    if data is None:
        block = (ctypes.c_uint8 * 4096)()
        KEEPALIVE.append(block)
        data = ctypes.addressof(block)
    tensor = DLTensor(
        data=data or None,
        device=DLDevice(*device),
        ndim=n if ndim is None else ndim,
        dtype=DLDataType(*dtype),
        shape=ctypes.cast(c_shape, ctypes.POINTER(ctypes.c_int64)),
        strides=ctypes.cast(c_strides, ctypes.POINTER(ctypes.c_int64)) if c_strides is not None else None,
        byte_offset=byte_offset,
    )
    if versioned:
        managed = DLManagedTensorVersioned(version=DLPackVersion(*version), flags=flags, dl_tensor=tensor)
    else:
        managed = DLManagedTensor(dl_tensor=tensor)
    KEEPALIVE.extend([c_shape, c_strides, managed])
    name = name or (b"dltensor_versioned" if versioned else b"dltensor")
    return _new(ctypes.addressof(managed), NAMES[name], None)


def capsule_name(cap) -> bytes | None:
    return _get_name(cap)


def capsule_pointer(cap, name: bytes | None) -> int:
    """The pointer a capsule holds (`name` must be its exact name, or None)."""
    return _get_pointer(cap, name)


def versioned_header(cap) -> DLManagedTensorVersioned:
    """The DLManagedTensorVersioned a live (unconsumed) versioned capsule holds."""
    ptr = _get_pointer(cap, b"dltensor_versioned")
    return DLManagedTensorVersioned.from_address(ptr)
