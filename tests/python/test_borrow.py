"""Tracked borrows (dlbridge::ReadonlyTensor / ReadwriteTensor, typed and
any-dtype) in the example extension, against real producers, a second binary that speaks only the
registry's C ABI (helpers/borrow_peer.c), and rust-numpy.

Runs with test_extension.py (`make test-extension`): it needs the built
`dlbridge_example`. Cases that need a fresh process (who creates the registry,
rust-numpy's own registry in place, a broken `sys` attribute) run in one.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import dlbridge
import dlbridge_example as ex
from producers import ArrayInterfaceOnly
from cbuild import load


# The first borrow creates the process's registry (and, NumPy being loaded,
# publishes it as rust-numpy's too): from here on it exists for `held()`.
ex.add_one(np.zeros(1))


def peer() -> ctypes.PyDLL:
    lib = load("borrow_peer")
    lib.peer_acquire.argtypes = [ctypes.py_object, ctypes.c_int]
    lib.peer_release.argtypes = [ctypes.c_int]
    lib.peer_held.restype = ctypes.c_long
    lib.peer_own_calls.restype = ctypes.c_long
    lib.peer_conflict_start.restype = ctypes.c_size_t
    return lib


def held() -> int:
    """Keys held in the process's registry, read through the C ABI."""
    return peer().peer_held()


def fresh_process(code: str) -> str:
    """Runs `code` in a new interpreter with this one's path; its stdout."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


PRODUCERS = {
    "numpy": lambda a: a,
    "torch": torch.from_numpy,
    "memoryview": memoryview,
    "array_interface": ArrayInterfaceOnly,
    "dlbridge": dlbridge.asarray,
}


@pytest.mark.parametrize("name", PRODUCERS)
def test_add_one_writes_through_a_safe_mutable_borrow(name):
    a = np.arange(6.0)
    x = PRODUCERS[name](a)
    before = held()
    ex.add_one(x)
    ex.add_one(x)  # the first call's borrow is gone
    assert a.tolist() == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert ex.data_ptr(x) == a.ctypes.data
    assert held() == before


def test_add_writes_out_and_reads_one_array_twice():
    a, out = np.arange(4.0), np.zeros(4)
    ex.add(a, a, out)  # two shared borrows of `a` coexist
    assert out.tolist() == [0.0, 2.0, 4.0, 6.0]


@pytest.mark.parametrize("call, fragment", [
    (lambda a, b: ex.add(a, b, a), "overlap 1 shared borrow(s) already held"),
    (lambda a, b: ex.add(b, a, a), "overlap 1 shared borrow(s) already held"),
    (lambda a, b: ex.add(a, a, a), "overlap 2 shared borrow(s) already held"),
])
def test_out_aliasing_an_input_is_refused(call, fragment):
    a, b = np.arange(4.0), np.ones(4)
    before = held()
    with pytest.raises(BufferError, match=r"cannot borrow the float64 tensor of shape \[4\] \(source ndarray\) mutably") as info:
        call(a, b)
    assert fragment in str(info.value)
    assert f"{a.ctypes.data:#x}..{a.ctypes.data + 32:#x}" in str(info.value)
    assert a.tolist() == [0.0, 1.0, 2.0, 3.0], "nothing written"
    assert held() == before, "the input borrows were released"


def test_overlapping_slices_of_one_base_are_refused():
    a = np.arange(10.0)
    with pytest.raises(BufferError, match="overlap 2 shared borrow"):
        ex.add(a[1:], a[1:], a[:9])
    with pytest.raises(BufferError, match="overlap 1 shared borrow"):
        ex.add(a[:3], a[7:], a[2:5])  # overlaps x by one element
    with pytest.raises(BufferError, match="overlap 2 shared borrow"):
        ex.add(a[::3], a[::3], a[3:7])  # a[3] and a[6] are in both
    two_d = np.arange(12.0).reshape(3, 4)
    with pytest.raises(BufferError):
        ex.add(two_d[:, 1], two_d[:, 1], two_d[1])  # a column and a row share one element


def test_disjoint_and_interleaved_slices_are_borrowed_together():
    a = np.arange(10.0)
    ex.add(a[:5], a[:5], a[5:])
    assert a[5:].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    a = np.arange(10.0)
    ex.add(a[::2], a[::2], a[1::2])  # the element lattices never meet
    assert a.tolist() == [0.0, 0.0, 2.0, 4.0, 4.0, 8.0, 6.0, 12.0, 8.0, 16.0]
    ex.add(a[::-2], a[::-2], a[-2::-2])  # reversed: odd and even again
    # Colour channels of an image: three interleaved planes.
    image = np.zeros((4, 4, 3))
    image[..., 0] = 1.0
    ex.add(image[..., 0], image[..., 0], image[..., 1])
    assert image[..., 1].sum() == 32.0
    with pytest.raises(BufferError):
        ex.add(a[::2], a[::2], a[2::2])  # same lattice, shifted by one element


def test_readonly_memory_is_refused_for_mutation():
    a = np.arange(3.0)
    a.flags.writeable = False
    with pytest.raises(BufferError, match=r"cannot borrow the float64 tensor of shape \[3\] \(source ndarray\) mutably: it is readonly"):
        ex.add_one(a)
    ro = memoryview(bytearray(24)).cast("d").toreadonly()
    with pytest.raises(BufferError, match=r"\(source buffer\) mutably: it is readonly"):
        ex.add_one(ro)
    out = np.zeros(3)
    ex.add(a, a, out)  # reading readonly memory is fine
    assert out.tolist() == [0.0, 2.0, 4.0]


def test_a_layout_that_reaches_one_element_twice_is_refused():
    base = np.zeros(3)
    broadcast = np.lib.stride_tricks.as_strided(base, (3,), (0,))
    assert broadcast.flags.writeable
    with pytest.raises(BufferError, match="two indices may reach one element"):
        ex.add_one(broadcast)


@pytest.mark.parametrize("other", ["torch", "memoryview", "array_interface", "dlbridge"])
def test_borrows_meet_across_producers_of_one_memory(other):
    a = np.arange(4.0)
    alias = PRODUCERS[other](a)
    with pytest.raises(BufferError, match="overlap a mutable borrow already held"):
        ex.hold_mut(a, lambda: ex.add_one(alias))
    with pytest.raises(BufferError, match="overlap 1 shared borrow"):
        ex.hold(alias, lambda: ex.add_one(a))
    assert ex.hold(alias, lambda: ex.hold(a, lambda: "both read")) == "both read"
    assert a.tolist() == [0.0, 1.0, 2.0, 3.0]


# --- copy_into(x, out): the guide's reading type (ReadonlyTensor) beside its
# writing one (ReadwriteTensor), typed (`copy_into`: f64) and any-dtype
# (`copy_into_any`). Before reading arguments were tracked, each of these
# calls held `&[f64]` and `&mut [f64]` over the same elements in safe code.

ALIASES = {
    "same array": lambda a: a,
    "numpy view": lambda a: a.view(),
    "torch.from_numpy": torch.from_numpy,
    "memoryview": memoryview,
    "dlbridge": dlbridge.asarray,
}


COPIES = {"typed": ex.copy_into, "any dtype": ex.copy_into_any}


@pytest.mark.parametrize("copy", COPIES)
@pytest.mark.parametrize("alias", ALIASES)
def test_copy_into_refuses_the_same_memory(alias, copy):
    copy_into = COPIES[copy]
    a = np.arange(4.0)
    before = held()
    with pytest.raises(BufferError, match=r"cannot borrow the float64 tensor of shape \[4\] .*mutably: .*overlap 1 shared borrow"):
        copy_into(a, ALIASES[alias](a))
    with pytest.raises(BufferError, match="overlap a mutable borrow|overlap 1 shared borrow"):
        ex.hold_mut(a, lambda: copy_into(ALIASES[alias](a), np.zeros(4)))
    assert a.tolist() == [0.0, 1.0, 2.0, 3.0], "nothing written"
    assert held() == before, "every borrow released, once"
    assert sys.getrefcount(a) == 2


@pytest.mark.parametrize("copy", COPIES)
def test_copy_into_refuses_overlapping_slices(copy):
    copy_into = COPIES[copy]
    a = np.arange(5.0)
    before = held()
    with pytest.raises(BufferError, match="overlap 1 shared borrow"):
        copy_into(a[1:], a[:-1])
    with pytest.raises(BufferError, match="overlap 1 shared borrow"):
        copy_into(a[:-1], a[1:])
    with pytest.raises(BufferError):
        copy_into(torch.from_numpy(a)[1:], memoryview(a)[:-1])
    assert a.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert held() == before


@pytest.mark.parametrize("copy", COPIES)
def test_copy_into_copies_disjoint_memory(copy):
    copy_into = COPIES[copy]
    a, out = np.arange(4.0), np.zeros(4)
    copy_into(a, out)
    assert out.tolist() == [0.0, 1.0, 2.0, 3.0]
    b = np.arange(10.0)
    copy_into(b[:5], b[5:])  # halves of one array
    assert b.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0] * 2
    c = np.arange(6.0)
    copy_into(c[::2], c[1::2])  # interleaved
    assert c.tolist() == [0.0, 0.0, 2.0, 2.0, 4.0, 4.0]
    t = torch.zeros(4, dtype=torch.float64)
    copy_into(memoryview(a), t)  # across producers
    assert t.tolist() == [0.0, 1.0, 2.0, 3.0]
    copy_into(a, a.copy())


def test_copy_into_any_takes_every_dtype_and_checks_it_at_run_time():
    a, out = np.arange(4, dtype=np.int16), np.zeros(4, dtype=np.int16)
    ex.copy_into_any(a, out)
    assert out.tolist() == [0, 1, 2, 3]
    before = held()
    with pytest.raises(ValueError, match="differ"):
        ex.copy_into_any(a, np.zeros(4, dtype=np.int32))  # raised in the body, borrows held
    with pytest.raises(BufferError, match="overlap 1 shared borrow"):
        ex.copy_into_any(a, a.view(np.uint16))  # other dtype, same bytes
    assert held() == before


@pytest.mark.parametrize("copy", COPIES)
def test_a_later_argument_that_fails_to_extract_releases_the_earlier_borrow(copy):
    """PyO3 drops `x` (its shared borrow) when `out` fails: exactly once, so
    the registry counts back to where it started and `a` can be written."""
    a = np.arange(4.0)
    before = held()
    refs = sys.getrefcount(a)
    zero_stride = np.lib.stride_tricks.as_strided(np.zeros(3), (3,), (0,))
    for bad, error in [("not an array", TypeError), (readonly_array(), BufferError), (zero_stride, BufferError)]:
        with pytest.raises(error):
            COPIES[copy](a, bad)
        assert held() == before
    assert sys.getrefcount(a) == refs
    ex.add_one(a)
    assert a.tolist() == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("write", [ex.add_one, ex.add_one_inplace], ids=["typed", "any dtype"])
def test_readonly_memory_is_refused_for_both_element_modes(write):
    with pytest.raises(BufferError, match=r"\(source ndarray\) mutably: it is readonly"):
        write(readonly_array())
    with pytest.raises(BufferError, match="mutably: it is readonly"):
        write(memoryview(bytes(24)).cast("d"))
    with pytest.raises(BufferError, match="mutably: two indices may reach one element"):
        write(np.lib.stride_tricks.as_strided(np.zeros(3), (3,), (0,)))


LENT_CALLS = {
    "shared typed": lambda a: ex.sum_f64(a),
    "shared any dtype": lambda a: ex.sum(a),
    "exclusive typed": lambda a: ex.add_one(a),
    "exclusive any dtype": lambda a: ex.add_one_inplace(a),
}


@pytest.mark.parametrize("call", LENT_CALLS)
def test_an_exact_ndarray_takes_the_lent_path_in_both_access_modes(call):
    """An exact ndarray is read as its lent descriptor (no Tensor, no owner)
    whether the borrow is shared or exclusive: the lent path is counted, and
    no reference outlives the call; a torch tensor takes the ordinary import."""
    a = np.arange(16.0)
    lent = ex.fast_path_counts()["lent_arguments"]
    refs = sys.getrefcount(a)
    before = held()
    LENT_CALLS[call](a)
    assert ex.fast_path_counts()["lent_arguments"] == lent + 1
    assert sys.getrefcount(a) == refs
    assert held() == before
    LENT_CALLS[call](torch.from_numpy(a))
    assert ex.fast_path_counts()["lent_arguments"] == lent + 1


def test_reading_arguments_hold_a_shared_borrow_while_they_live():
    # ReadonlyTensor<f64>: a write to the memory it reads is refused while it lives ...
    a = np.arange(4.0)
    before = held()
    with pytest.raises(BufferError, match="overlap 1 shared borrow"):
        ex.sum_after(a, lambda: ex.add_one(a))
    # ... and it is refused while a write holds the memory.
    with pytest.raises(BufferError, match="cannot borrow .* for reading: .*overlap a mutable borrow"):
        ex.hold_mut(a, lambda: ex.sum_f64_any(torch.from_numpy(a)))
    # ReadonlyTensor<AnyDtype> too (any dtype, any producer).
    with pytest.raises(BufferError, match="for reading"):
        ex.hold_mut(a, lambda: ex.sum(memoryview(a)))
    # Readers share.
    assert ex.hold(a, lambda: ex.sum_after(a, lambda: ex.sum(a))) == 6.0
    assert held() == before
    assert a.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_borrows_are_released_after_a_refusal_and_an_exception():
    a = np.arange(4.0)
    before = held()
    with pytest.raises(ValueError, match="shapes"):
        ex.add(a, a, np.zeros(3))  # raised inside the function, borrows held
    with pytest.raises(KeyError):
        ex.hold_mut(a, lambda: {}["missing"])  # raised by a callback
    with pytest.raises(TypeError):
        ex.add(a, a, np.zeros(4, dtype=np.float32))  # `out` fails to extract after x and y
    assert held() == before
    ex.add_one(a)
    assert a.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert sys.getrefcount(a) == 2, "no borrow keeps the array"


def test_a_borrow_held_by_another_binary_blocks_and_is_blocked():
    p = peer()
    a = np.arange(8.0)
    slot = p.peer_acquire(a, 1)
    assert slot >= 0
    try:
        with pytest.raises(BufferError, match="overlap a mutable borrow already held"):
            ex.add_one(a)
        with pytest.raises(BufferError, match="overlap a mutable borrow already held"):
            ex.add(a[4:], a[4:], np.zeros(4))  # a shared borrow of a slice too
        ex.add_one(np.arange(8.0))  # other memory is free
    finally:
        assert p.peer_release(slot) == 0
    ex.add_one(a)
    assert a[0] == 1.0
    # And the other way: dlbridge's borrows, seen by the peer.
    assert ex.hold_mut(a, lambda: p.peer_acquire(a[2:], 0)) == -1
    assert p.peer_conflict_exclusive() == 1
    assert p.peer_conflict_start() == a.ctypes.data
    shared = ex.hold(a, lambda: p.peer_acquire(a, 0))
    assert shared >= 0, "shared borrows coexist across binaries"
    assert p.peer_release(shared) == 0
    assert p.peer_release(shared) == -2, "released once"


def test_the_binary_that_comes_first_makes_the_registry_everyone_uses():
    path = peer()._name
    out = fresh_process(f"""
        import ctypes, sys
        import numpy as np
        p = ctypes.PyDLL({path!r})
        p.peer_acquire.argtypes = [ctypes.py_object, ctypes.c_int]
        p.peer_held.restype = p.peer_own_calls.restype = ctypes.c_long
        assert p.peer_create() == 0
        import dlbridge_example as ex
        a = np.arange(6.0)
        ex.add_one(a)
        assert a[0] == 1.0
        assert p.peer_own_calls() == 2, "dlbridge called the peer's acquire and release"
        try:
            ex.add(a, a, a)
        except BufferError as e:
            print("refused:", e)
        slot = p.peer_acquire(a, 1)
        try:
            ex.add_one(a[3:])
        except BufferError as e:
            print("blocked:", e)
        # The peer's rules are the registry's: it does not know interleaving.
        try:
            ex.add(a[::2], a[::2], a[1::2])
        except BufferError as e:
            print("interleaved:", e)
        print("held", p.peer_held())
    """)
    assert "refused: cannot borrow the float64 tensor of shape [6] (source ndarray) mutably" in out
    assert "blocked: cannot borrow the float64 tensor of shape [3]" in out
    assert "overlap a mutable borrow already held" in out
    assert "interleaved: cannot borrow" in out
    assert "held 1" in out


def test_rust_numpy_borrows_and_dlbridge_borrows_exclude_each_other():
    a = np.arange(4.0)
    with pytest.raises(TypeError, match="already borrowed"):  # rust-numpy's BorrowError
        ex.hold_mut(a, lambda: ex.np_add_one_inplace(a))
    with pytest.raises(TypeError, match="already borrowed"):
        ex.hold(a, lambda: ex.np_add_one_inplace(a))
    with pytest.raises(BufferError, match="cannot borrow the float64 tensor of shape \\[2\\]"):
        ex.np_hold_mut(a, lambda: ex.add_one(a[2:]))
    ex.np_add_one_inplace(a)
    ex.add_one(a)
    assert a.tolist() == [2.0, 3.0, 4.0, 5.0]


RUST_NUMPY_CASES = """
    import numpy as np, torch
    import dlbridge_example as ex
    {first}
    a = np.arange(4.0)
    for name, call in [
        ("rn-in-dlbridge", lambda: ex.hold_mut(a, lambda: ex.np_add_one_inplace(a))),
        ("dlbridge-in-rn", lambda: ex.np_hold_mut(a, lambda: ex.add_one(a))),
        ("torch-in-rn", lambda: ex.np_hold_mut(a, lambda: ex.add_one(torch.from_numpy(a)))),
    ]:
        try:
            call()
            print(name, "allowed")
        except (TypeError, BufferError) as e:
            print(name, type(e).__name__, e)
"""


def test_rust_numpy_first_keeps_its_registry_and_dlbridge_joins_it():
    out = fresh_process(RUST_NUMPY_CASES.format(first="ex.np_add_one_inplace(np.zeros(1))"))
    assert "rn-in-dlbridge TypeError The given array is already borrowed" in out
    assert "dlbridge-in-rn BufferError" in out and "a rust-numpy extension holds a conflicting borrow" in out
    # rust-numpy's own registry keys NumPy base objects: torch's view of the
    # same memory is not seen (module docs, "What it cannot see").
    assert "torch-in-rn allowed" in out


def test_dlbridge_first_publishes_one_registry_for_both():
    out = fresh_process(RUST_NUMPY_CASES.format(first="ex.add_one(np.zeros(1))"))
    assert "rn-in-dlbridge TypeError The given array is already borrowed" in out
    assert "dlbridge-in-rn BufferError" in out and "overlap a mutable borrow already held" in out
    assert "torch-in-rn BufferError" in out, "one registry keyed by memory sees every producer"


def test_borrows_before_numpy_loads_never_import_it_and_join_once_it_does():
    """Until NumPy loads, a tracked borrow only looks it up in the module
    table (no import, no KeyError); the first borrow after it loads joins
    (here: publishes one registry for both, as when dlbridge comes first)."""
    out = fresh_process("""
    import array, sys
    import dlbridge_example as ex
    b = array.array("d", [1.0, 2.0, 3.0])
    for _ in range(3):
        assert ex.sum(b) == 6.0 and ex.sum_f64_any(b) == 6.0
    print("numpy before:", "numpy" in sys.modules)
    """ + RUST_NUMPY_CASES.format(first="ex.add_one(np.zeros(1))"))
    assert "numpy before: False" in out
    assert "rn-in-dlbridge TypeError The given array is already borrowed" in out
    assert "dlbridge-in-rn BufferError" in out and "overlap a mutable borrow already held" in out
    assert "torch-in-rn BufferError" in out


def test_a_broken_registry_attribute_is_refused():
    out = fresh_process("""
        import ctypes, sys
        import numpy as np
        import dlbridge_example as ex
        sys._dlbridge_borrow_registry = 3
        try:
            ex.add_one(np.zeros(2))
        except TypeError as e:
            print(type(e).__name__, e)
    """)
    assert out.startswith("TypeError sys._dlbridge_borrow_registry is not a dlbridge borrow registry")
    out = fresh_process("""
        import ctypes, sys
        import numpy as np
        import dlbridge_example as ex
        new = ctypes.pythonapi.PyCapsule_New
        new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
        version = (ctypes.c_uint64 * 8)()  # version 0, then nothing
        sys._dlbridge_borrow_registry = new(ctypes.addressof(version), b"dlbridge.borrow_registry", None)
        try:
            ex.add_one(np.zeros(2))
        except ValueError as e:
            print(type(e).__name__, e)
    """)
    assert out.startswith("ValueError the borrow registry at sys._dlbridge_borrow_registry has version 0")


# --- docs/errors.md, "Borrow refusals": one case per row ----------------------

def readonly_array() -> np.ndarray:
    a = np.arange(3.0)
    a.flags.writeable = False
    return a


def in_fresh_process(setup: str, call: str):
    """Runs `call` after `setup` in a new interpreter; re-raises what it raised."""
    out = fresh_process(f"""
        import ctypes, sys
        import numpy as np
        import dlbridge_example as ex
        {setup}
        a = np.arange(4.0)
        try:
            {call}
        except Exception as e:
            print(type(e).__name__)
            print(e)
    """)
    name, _, message = out.partition("\n")
    raise {"BufferError": BufferError, "TypeError": TypeError, "ValueError": ValueError}[name](message.strip())


def held_while_held(a: np.ndarray):
    ex.hold_mut(a, lambda: ex.add_one(a))


def out_is_input(a: np.ndarray):
    ex.add(a, np.ones(3), a)


VERSION_ZERO = ("new = ctypes.pythonapi.PyCapsule_New; "
                "new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]; "
                "version = (ctypes.c_uint64 * 8)(); "
                "sys._dlbridge_borrow_registry = new(ctypes.addressof(version), b'dlbridge.borrow_registry', None)")

BORROW_CASES = {
    "borrow-conflict-mutable": lambda: held_while_held(np.arange(3.0)),
    "borrow-conflict-shared": lambda: out_is_input(np.arange(3.0)),
    "borrow-rust-numpy": lambda: in_fresh_process("ex.np_add_one_inplace(np.zeros(1))",
                                                  "ex.np_hold_mut(a, lambda: ex.add_one(a))"),
    "borrow-readonly": lambda: ex.add_one(readonly_array()),
    "borrow-self-overlap": lambda: ex.add_one(np.lib.stride_tricks.as_strided(np.zeros(3), (3,), (0,))),
    "borrow-registry-not-capsule": lambda: in_fresh_process("sys._dlbridge_borrow_registry = 3", "ex.add_one(a)"),
    "borrow-registry-version": lambda: in_fresh_process(VERSION_ZERO, "ex.add_one(a)"),
}


def borrow_rows() -> dict[str, tuple[str, str]]:
    doc = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "errors.md").read_text()
    section = doc.split("## Borrow refusals", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("borrow-"):
            rows[cells[0]] = (cells[2], cells[3])
    return rows


def test_every_borrow_row_has_a_case_and_every_case_a_row():
    assert sorted(borrow_rows()) == sorted(BORROW_CASES)


@pytest.mark.parametrize("row", sorted(BORROW_CASES))
def test_borrow_row(row):
    exception, fragment = borrow_rows()[row]
    with pytest.raises(Exception) as info:
        BORROW_CASES[row]()
    assert type(info.value).__name__ == exception, f"{row}: {type(info.value).__name__}: {info.value}"
    assert fragment in str(info.value), f"{row}: {fragment!r} not in {str(info.value)!r}"


def test_to_tensor_inside_detach_counts_its_reference_once():
    """A lent ndarray's `to_tensor()` called inside `py.detach` (it compiles:
    the argument is `Sync`) works, takes one reference and gives it back
    once. That the reference is taken attached (`Python::attach` in
    `to_tensor`) is not observable here: a bare increment while detached
    only loses a count when another thread changes the same count at that
    instant, which no test can make happen on demand."""
    a = np.arange(4.0)
    refs = sys.getrefcount(a)
    t = ex.to_tensor_detached(a)
    assert t.data_ptr == a.ctypes.data
    assert sys.getrefcount(a) == refs + 1
    del t
    assert sys.getrefcount(a) == refs
