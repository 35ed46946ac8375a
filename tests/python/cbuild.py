"""Compile a test helper C file against this interpreter's headers, once per session."""

from __future__ import annotations

import ctypes
import pathlib
import subprocess
import sysconfig
import tempfile

HELPERS = pathlib.Path(__file__).resolve().parent / "helpers"
_BUILD = pathlib.Path(tempfile.mkdtemp(prefix="dlbridge-helpers-"))
_LOADED: dict[str, ctypes.PyDLL] = {}


def load(name: str) -> ctypes.PyDLL:
    """Build helpers/<name>.c into a shared library and load it (GIL held on calls)."""
    if name not in _LOADED:
        source = HELPERS / f"{name}.c"
        target = _BUILD / f"{name}.so"
        include = sysconfig.get_paths()["include"]
        subprocess.run(
            ["cc", "-O1", "-g", "-Wall", "-Werror", "-shared", "-fPIC", f"-I{include}", str(source), "-o", str(target), "-lpthread"],
            check=True,
        )
        _LOADED[name] = ctypes.PyDLL(str(target))
    return _LOADED[name]


def dlpack_producer() -> ctypes.PyDLL:
    """helpers/dlpack_producer.c with its signatures: `make(...)` builds a capsule
    over a float64 matrix, `deleted()` counts the deleter's calls."""
    lib = load("dlpack_producer")
    lib.make.argtypes = [
        ctypes.c_int, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint64,
        ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int, ctypes.c_int32,
    ]
    lib.make.restype = ctypes.py_object
    lib.deleted.argtypes = []
    lib.deleted.restype = ctypes.c_long
    return lib


def arrow_producer() -> ctypes.PyDLL:
    """helpers/arrow_producer.c with its signatures: `make_pair(format,
    list_size, lie)` builds (schema, array) capsules over 16 int32 values,
    `make_stream(chunks, fail)` a stream capsule; `*_releases()` count the
    release callbacks' calls."""
    lib = load("arrow_producer")
    lib.make_pair.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
    lib.make_pair.restype = ctypes.py_object
    lib.make_stream.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.make_stream.restype = ctypes.py_object
    for counter in (lib.schema_releases, lib.array_releases, lib.stream_releases):
        counter.argtypes = []
        counter.restype = ctypes.c_long
    return lib
