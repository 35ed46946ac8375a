"""Pickling benchmark: a 256 MiB dlbridge.Tensor beside the same NumPy array.

Each row times dlbridge and NumPy in the same process, interleaved over
several rounds (alternating which goes first), and reports the median time
per call of each and the ratio of medians (dlbridge / NumPy). Beside the
times, the bytes each side copies: what the pickle stream holds (the data
itself, in band) and what it hands to `buffer_callback` (out of band, which
is not a copy: the callback gets a `PickleBuffer` over the tensor's memory).
Machines here are shared and noisy: read ratios, not absolute numbers.

    python benches/pickling.py            # 256 MiB, 7 rounds
    python benches/pickling.py --quick    # 16 MiB, 3 rounds
"""

from __future__ import annotations

import argparse
import pickle
import platform
import statistics
import sys
import time

import numpy as np

import dlbridge


def out_of_band(obj) -> tuple[bytes, list[pickle.PickleBuffer]]:
    buffers: list[pickle.PickleBuffer] = []
    return pickle.dumps(obj, protocol=5, buffer_callback=buffers.append), buffers


def copied(obj, address: int) -> str:
    """What each way of pickling copies: out of band, the stream holds only
    the description and the buffer handed over is the object's own memory."""
    data, buffers = out_of_band(obj)
    handed = sum(b.raw().nbytes for b in buffers)
    same = all(np.frombuffer(b, np.uint8).ctypes.data == address for b in buffers)
    in_band = len(pickle.dumps(obj, protocol=5))
    return (f"out of band: {len(data)} B in the stream, 0 data bytes copied, {handed} B handed to "
            f"buffer_callback (its own memory: {same}); in band: {in_band} B in the stream")


def rows(t: dlbridge.Tensor, a: np.ndarray):
    """(label, dlbridge call, NumPy call): each call does one pickling."""
    t_oob, a_oob = out_of_band(t), out_of_band(a)
    t_in, a_in = pickle.dumps(t, protocol=5), pickle.dumps(a, protocol=5)
    return [
        ("dumps, protocol 5, out of band", lambda: out_of_band(t), lambda: out_of_band(a)),
        ("loads, protocol 5, out of band",
         lambda: pickle.loads(t_oob[0], buffers=t_oob[1]), lambda: pickle.loads(a_oob[0], buffers=a_oob[1])),
        ("dumps, protocol 5, in band", lambda: pickle.dumps(t, protocol=5), lambda: pickle.dumps(a, protocol=5)),
        ("loads, protocol 5, in band", lambda: pickle.loads(t_in), lambda: pickle.loads(a_in)),
    ]


def seconds(call, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        call()
    return (time.perf_counter() - start) / number


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="16 MiB, fewer rounds")
    args = parser.parse_args()
    mib, rounds = (16, 3) if args.quick else (256, 7)
    a = np.random.default_rng(0).random(mib * 1024 * 1024 // 8)  # float64
    t = dlbridge.asarray(a).copy()  # a Rust-owned tensor, as an extension returns it
    print(f"dlbridge {dlbridge.__version__} | numpy {np.__version__} | Python {platform.python_version()} | "
          f"{platform.machine()} | {mib} MiB float64 | {rounds} rounds, median per call")
    print(f"dlbridge  {copied(t, t.data_ptr)}")
    print(f"numpy     {copied(a, a.ctypes.data)}")
    print(f"{'row':<34}{'dlbridge':>12}{'numpy':>12}{'ratio':>8}")
    for label, ours, theirs in rows(t, a):
        number = 2000 if "out of band" in label else 1
        mine, anchor = [], []
        for r in range(rounds):
            pair = [(ours, mine), (theirs, anchor)]
            for call, sink in pair if r % 2 == 0 else reversed(pair):
                sink.append(seconds(call, number))
        m, n = statistics.median(mine), statistics.median(anchor)
        print(f"{label:<34}{_shown(m):>12}{_shown(n):>12}{m / n:>8.2f}")
    return 0


def _shown(s: float) -> str:
    return f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.2f} us"


if __name__ == "__main__":
    sys.exit(main())
