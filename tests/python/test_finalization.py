"""Threads inside dlbridge calls at interpreter exit (docs/limitations.md).

On CPython 3.11-3.13 a *daemon* thread that is inside a dlbridge call which
runs Python code (a `__dlpack__` written in Python, a Python property for
`__array_interface__`, a Python `__del__` reached from a deallocation) when
the interpreter finalizes is ended with `pthread_exit`; the forced unwind
reaches Rust frames and PyO3's `catch_unwind`, and the process aborts or
crashes. Whether a given run crashes depends on timing and on code
generation, so no test here asserts the crash. These tests pin down what
docs/limitations.md promises instead:

- the documented safe patterns (stop and join the thread, directly or from
  an `atexit` handler, or use a non-daemon thread) exit 0 with dlbridge in
  the loop, including the Python-level `__dlpack__` that crashes a daemon
  thread at exit;
- a daemon thread importing plain NumPy arrays (no Python code runs inside
  dlbridge) exits 0;
- the NumPy baseline (`np.from_dlpack`, a C extension) exits 0 in the same
  daemon-thread loop over the Python-level producer;
- the daemon-thread case itself ends in bounded time, exiting 0 or by a
  signal: it never hangs the process at exit.

Every scenario runs in a subprocess of this interpreter with a timeout, so a
crash or a hang fails one test and never takes pytest down with it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

TIMEOUT_S = 30

# A producer whose `__dlpack__` is Python code that releases the GIL: a
# dlbridge frame is on the thread's stack while the GIL is released, the
# situation that crashes a daemon thread at exit.
PREAMBLE = """
import sys, threading, time
import numpy as np
import dlbridge

base = np.arange(12, dtype=np.float32)

class PythonProducer:
    def __dlpack__(self, **kwargs):
        time.sleep(0)  # releases and retakes the GIL
        return base.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return base.__dlpack_device__()

producer = PythonProducer()
started = threading.Event()
stop = threading.Event()

def loop(fn, obj):
    while not stop.is_set():
        fn(obj)
        started.set()
"""


def run_script(body: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent(PREAMBLE) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def assert_clean_exit(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert "FATAL" not in result.stderr and "Fatal Python error" not in result.stderr, result.stderr
    assert result.stdout.strip().endswith("done"), (result.stdout, result.stderr)


CALLS = {
    "from_dlpack-python-producer": "dlbridge.from_dlpack, producer",
    "asarray-python-producer": "dlbridge.asarray, producer",
    "from_dlpack-ndarray": "dlbridge.from_dlpack, base",
    "asarray-ndarray": "dlbridge.asarray, base",
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_stopped_and_joined_thread_exits_cleanly(call):
    # The documented pattern: signal the worker, join it, then exit.
    result = run_script(
        f"""
        worker = threading.Thread(target=loop, args=({call},), daemon=True)
        worker.start()
        assert started.wait({TIMEOUT_S})
        time.sleep(0.05)
        stop.set()
        worker.join({TIMEOUT_S})
        assert not worker.is_alive()
        print("done", flush=True)
        """
    )
    assert_clean_exit(result)


def test_daemon_thread_stopped_from_atexit_exits_cleanly():
    # A daemon worker stopped and joined by an `atexit` handler: atexit
    # handlers run before finalization starts, so the worker is out of
    # dlbridge by then.
    result = run_script(
        f"""
        import atexit

        worker = threading.Thread(target=loop, args=(dlbridge.from_dlpack, producer), daemon=True)
        worker.start()
        assert started.wait({TIMEOUT_S})

        @atexit.register
        def stop_worker():
            stop.set()
            worker.join({TIMEOUT_S})

        time.sleep(0.05)
        print("done", flush=True)
        """
    )
    assert_clean_exit(result)


def test_non_daemon_thread_exits_cleanly():
    # A non-daemon thread is waited for before finalization starts, so it is
    # never inside a dlbridge call when finalization runs. The main thread
    # just falls off the end of the script while the worker is still busy.
    result = run_script(
        f"""
        def bounded(fn, obj, seconds):
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                fn(obj)
                started.set()

        worker = threading.Thread(target=bounded, args=(dlbridge.from_dlpack, producer, 0.2))
        worker.start()
        assert started.wait({TIMEOUT_S})
        print("done", flush=True)
        """
    )
    assert_clean_exit(result)


def test_numpy_baseline_daemon_thread_exits_cleanly():
    # The same daemon-thread loop through NumPy's C consumer: `pthread_exit`
    # unwinds through C frames only, and the process exits 0.
    result = run_script(
        f"""
        worker = threading.Thread(target=loop, args=(np.from_dlpack, producer), daemon=True)
        worker.start()
        assert started.wait({TIMEOUT_S})
        time.sleep(0.05)
        print("done", flush=True)
        """
    )
    assert_clean_exit(result)


@pytest.mark.parametrize("fn", ["dlbridge.asarray", "dlbridge.from_dlpack"])
def test_daemon_thread_on_ndarrays_exits_cleanly(fn):
    # Importing a NumPy array runs no Python code inside dlbridge, so a daemon
    # thread can only be ended between calls, in C frames: exit 0.
    result = run_script(
        f"""
        worker = threading.Thread(target=loop, args=({fn}, base), daemon=True)
        worker.start()
        assert started.wait({TIMEOUT_S})
        time.sleep(0.05)
        print("done", flush=True)
        """
    )
    assert_clean_exit(result)


def test_daemon_thread_inside_dlbridge_at_exit_never_hangs():
    # The limitation itself: the outcome depends on timing (the thread may or
    # may not be inside the Python `__dlpack__` at the moment finalization
    # takes the GIL) and on the CPython version, so this asserts only that the
    # process ends in bounded time, either cleanly or by a signal (SIGABRT on
    # 3.11, SIGSEGV or SIGABRT on 3.12-3.13). A hang is a regression: the
    # timeout turns it into a failure.
    result = run_script(
        f"""
        worker = threading.Thread(target=loop, args=(dlbridge.from_dlpack, producer), daemon=True)
        worker.start()
        assert started.wait({TIMEOUT_S})
        time.sleep(0.05)
        print("done", flush=True)
        """
    )
    assert result.stdout.strip().endswith("done"), (result.stdout, result.stderr)
    assert result.returncode in (0, -signal.SIGABRT, -signal.SIGSEGV), (
        result.returncode,
        result.stderr,
    )
