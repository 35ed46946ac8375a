"""scripts/sanitize.py's OURS: which valgrind records fail `make sanitize`.

A record fails the run when its stack passes through dlbridge or a C test
helper. Every helper (tests/python/helpers/*.c, built by cbuild.py into
<name>.so) must be recognised in both forms valgrind prints a frame in, and a
record of CPython's or NumPy's own must not be.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re

import pytest

import cbuild

ROOT = pathlib.Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("sanitize", ROOT / "scripts" / "sanitize.py")
sanitize = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sanitize)

HELPERS = sorted(cbuild.HELPERS.glob("*.c"))


def functions(source: pathlib.Path) -> list[str]:
    """The functions a helper defines (a definition starts at column 0 and opens a body)."""
    return re.findall(r"^[A-Za-z_][\w \t*]*?\b(\w+)\([^;{]*\)\s*\{", source.read_text(), re.M)


def record(frame: str) -> str:
    return ("==4242== Invalid read of size 8\n"
            f"==4242==    at 0x4A1B2C3: {frame}\n"
            "==4242==    by 0x4C0FFEE: PyObject_GetBuffer (abstract.c:390)\n"
            "==4242==    by 0x4C0FFF0: _PyEval_EvalFrameDefault (ceval.c:5381)\n"
            "==4242==  Address 0x0 is not stack'd, malloc'd or (recently) free'd")


def test_the_helpers_are_the_ones_the_script_reads():
    assert HELPERS, cbuild.HELPERS
    assert sanitize.HELPER_NAMES == [h.stem for h in HELPERS]
    assert {"array_struct", "dlpack_consumer", "dlpack_producer", "exporter", "getbuffer"} <= set(sanitize.HELPER_NAMES)


@pytest.mark.parametrize("source", HELPERS, ids=lambda p: p.stem)
def test_every_helper_function_is_ours(source):
    built = cbuild._BUILD / f"{source.stem}.so"  # where cbuild.load puts it
    names = functions(source)
    assert names, f"no function definitions found in {source.name}"
    for name in names:
        with_debug_info = record(f"{name} ({source.name}:17)")
        without = record(f"{name} (in {built})")
        assert sanitize.OURS.search(with_debug_info), with_debug_info
        assert sanitize.OURS.search(without), without


@pytest.mark.parametrize("frame", [
    "dlbridge::protocol::buffer::fill_view (buffer.rs:280)",
    "dlpark::managed::Managed<T>::from_raw (managed.rs:90)",
    "??? (in /work/main/python/dlbridge/_native.cpython-311-x86_64-linux-gnu.so)",
])
def test_dlbridge_frames_are_ours(frame):
    assert sanitize.OURS.search(record(frame))


@pytest.mark.parametrize("frame", [
    "PyObject_GC_Del (gcmodule.c:2365)",
    "memory_getbuf (memoryobject.c:1532)",
    "array_getbuffer (buffer.c:812)",  # NumPy's buffer export: not our getbuffer.c
    "??? (in /usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0)",
    "PyInit__testbuffer (in /usr/lib/python3.11/lib-dynload/_testbuffer.cpython-311-x86_64-linux-gnu.so)",
    "??? (in /venv/lib/python3.11/site-packages/numpy/core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so)",
    "exporter_new (in /usr/lib/libmyexporter.so)",  # another library whose name merely ends like a helper
])
def test_cpython_and_numpy_records_are_not_ours(frame):
    text = record(frame)
    assert not sanitize.OURS.search(text), sanitize.OURS.search(text)
