"""The extension benchmark: dlbridge beside rust-numpy, nanobind and tvm-ffi.

`make bench-extension` builds the example extension and the nanobind peer
(benches/nanobind_peer, into target/nanobind-peer) and runs this. Each row is
one job done by every contender that can do it, timed in this one process:
each round runs every contender once, in an order that rotates from round to
round, and a contender's figure is the median over the rounds of its mean
nanoseconds per call. The ratio is dlbridge's median over the anchor's (the
contender the target is set against); PASS means it meets the target.
Machines here are shared and noisy: read ratios, not absolute numbers. It
reports, it never fails on a ratio.

    python examples/extension/bench.py             # full run (25 rounds)
    python examples/extension/bench.py --quick     # a few rounds, seconds
    python examples/extension/bench.py --json out.json

Functions the example extension does not have yet are reported as
"missing"; a contender that is not installed (the nanobind peer not built,
tvm-ffi absent) as "absent"; one that refuses the input by the exception it
raises (rust-numpy takes no torch tensor: "TypeError").
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import timeit
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import dlbridge
import dlbridge_example as ex

try:
    import tvm_ffi
except ImportError:  # benchmark-only anchor
    tvm_ffi = None

ROOT = Path(__file__).resolve().parents[2]
PEER_DIR = ROOT / "target" / "nanobind-peer"

# Table columns, in order; a row names its anchor among them.
DLBRIDGE, RUST_NUMPY, NANOBIND, TVM_FFI, NUMPY = "dlbridge", "rust-numpy", "nanobind", "tvm-ffi", "NumPy"


def import_peer(directory: Path):
    """The nanobind peer module, or None when it is not built."""
    sys.path.insert(0, str(directory))
    try:
        import nanobind_peer
    except ImportError:
        return None
    finally:
        sys.path.remove(str(directory))
    return nanobind_peer


@dataclass
class Contender:
    """One way of doing a row's job: `stmt` run with `env` as its globals.

    `status` is None when it runs; otherwise why it has no figure
    ("missing", "absent", or the exception its first call raised)."""

    column: str
    stmt: str
    env: dict
    status: str | None = None
    samples: list[float] = field(default_factory=list)

    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None


@dataclass
class Row:
    label: str
    anchor: str  # the column the ratio and target are against
    target: float | None  # None: informational, no target
    contenders: list[Contender]
    returns: type | None = None  # every contender's result must be one


def call(column: str, owner, name: str, args: str, **names) -> Contender:
    """A contender calling `owner.name(args)`, bound to a plain global `f`
    so every contender pays the same lookup; a function `owner` lacks (the
    example extension's new functions, while they are being written) or an
    absent `owner` is reported instead of timed."""
    if owner is None:
        return Contender(column, "", {}, status="absent")
    f = getattr(owner, name, None)
    if f is None:
        return Contender(column, "", {}, status="missing")
    return Contender(column, f"f({args})", {"f": f, **names})


def expr(column: str, stmt: str, **names) -> Contender:
    """A contender that is a whole expression (composite jobs)."""
    if any(v is None for v in names.values()):
        return Contender(column, "", {}, status="absent")
    return Contender(column, stmt, names)


def extension_rows(peer) -> list[Row]:
    """The issue's speed targets for a Rust extension, float64[16] inputs."""
    a = np.arange(16, dtype=np.float64)
    x = torch.arange(16, dtype=torch.float64)
    w = np.zeros(16, dtype=np.float64)  # written in place by add_one
    return [
        Row("accept an ndarray, any dtype: `sum(a)`", NANOBIND, 1.0, [
            call(DLBRIDGE, ex, "sum", "a", a=a),
            call(RUST_NUMPY, ex, "np_sum", "a", a=a),
            call(NANOBIND, peer, "sum", "a", a=a),
        ]),
        Row("accept an ndarray, typed f64: `sum_f64(a)`", NANOBIND, 1.0, [
            call(DLBRIDGE, ex, "sum_f64", "a", a=a),
            call(RUST_NUMPY, ex, "np_sum", "a", a=a),
            call(NANOBIND, peer, "sum_f64", "a", a=a),
        ]),
        Row("accept a torch tensor: `sum(x)`", TVM_FFI, 1.0, [
            call(DLBRIDGE, ex, "sum", "x", x=x),
            call(RUST_NUMPY, ex, "np_sum", "x", x=x),
            call(NANOBIND, peer, "sum", "x", x=x),
            call(TVM_FFI, tvm_ffi, "from_dlpack", "x", x=x),
        ]),
        Row("return as numpy.ndarray: `arange_numpy(16)`", RUST_NUMPY, 1.0, [
            call(DLBRIDGE, ex, "arange_numpy", "16"),
            call(RUST_NUMPY, ex, "np_arange", "16"),
            call(NANOBIND, peer, "arange", "16"),
        ], returns=np.ndarray),
        Row("return as torch.Tensor: `arange_torch(16)`", NANOBIND, 0.5, [
            call(DLBRIDGE, ex, "arange_torch", "16"),
            expr(RUST_NUMPY, "torch.from_numpy(g(16))", torch=torch, g=ex.np_arange),
            call(NANOBIND, peer, "arange_torch", "16"),
        ], returns=torch.Tensor),
        Row("`scale(a, 2.0)` returned as ndarray: `scale_like`", RUST_NUMPY, 1.0, [
            call(DLBRIDGE, ex, "scale_like", "a, 2.0", a=a),
            call(RUST_NUMPY, ex, "np_scale", "a, 2.0", a=a),
            call(NANOBIND, peer, "scale", "a, 2.0", a=a),
        ], returns=np.ndarray),
        # Informational rows: no target in the issue.
        Row("(info) any dtype, read-only allowed: nanobind `nb::ro`", NANOBIND, None, [
            call(DLBRIDGE, ex, "sum", "a", a=a),
            call(NANOBIND, peer, "sum_ro", "a", a=a),
        ]),
        Row("(info) typed f64, read-only allowed: nanobind `const double`", NANOBIND, None, [
            call(DLBRIDGE, ex, "sum_f64", "a", a=a),
            call(NANOBIND, peer, "sum_f64_ro", "a", a=a),
        ]),
        Row("(info) mutate in place: `add_one(w)`", NANOBIND, None, [
            call(DLBRIDGE, ex, "add_one", "w", w=w),
            call(RUST_NUMPY, ex, "np_add_one_inplace", "w", w=w),
            call(NANOBIND, peer, "add_one", "w", w=w),
        ]),
        Row("(info) today's return: `np.from_dlpack(arange(16))`", RUST_NUMPY, None, [
            expr(DLBRIDGE, "np.from_dlpack(g(16))", np=np, g=ex.arange),
            call(RUST_NUMPY, ex, "np_arange", "16"),
        ]),
        Row("(info) today's return: `torch.from_dlpack(arange(16))`", NANOBIND, None, [
            expr(DLBRIDGE, "torch.from_dlpack(g(16))", torch=torch, g=ex.arange),
            call(NANOBIND, peer, "arange_torch", "16"),
        ]),
        Row("(info) today's return: `np.from_dlpack(scale(a, 2.0))`", RUST_NUMPY, None, [
            expr(DLBRIDGE, "np.from_dlpack(g(a, 2.0))", np=np, g=ex.scale, a=a),
            call(RUST_NUMPY, ex, "np_scale", "a, 2.0", a=a),
        ]),
    ]


def python_rows() -> list[Row]:
    """The issue's Python-side targets. The 32-d row times four contenders;
    its ratio is computed in `growth_ratio`."""
    mv = memoryview(np.ones((4, 4), dtype=np.float32))
    a2 = np.ones((4, 4), dtype=np.float32)
    a32 = a2.reshape((1,) * 30 + (4, 4))
    t2, t32 = dlbridge.asarray(a2), dlbridge.asarray(a32)
    return [
        Row("`dlbridge.asarray(mv)` vs `np.asarray(mv)`, float32 4x4", NUMPY, 1.0, [
            call(DLBRIDGE, dlbridge, "asarray", "mv", mv=mv),
            call(NUMPY, np, "asarray", "mv", mv=mv),
        ]),
        Row("`np.from_dlpack`: 32-d over 2-d, dlbridge.Tensor vs ndarray", NUMPY, 1.0, [
            call("dlbridge 32-d", np, "from_dlpack", "t", t=t32),
            call("dlbridge 2-d", np, "from_dlpack", "t", t=t2),
            call("NumPy 32-d", np, "from_dlpack", "t", t=a32),
            call("NumPy 2-d", np, "from_dlpack", "t", t=a2),
        ]),
    ]


def growth_ratio(row: Row) -> tuple[float | None, float | None, float | None]:
    """(dlbridge's 32-d/2-d cost, NumPy's 32-d/2-d cost, their ratio)."""
    m = {c.column: c.median() for c in row.contenders}
    if None in m.values():
        return None, None, None
    ours = m["dlbridge 32-d"] / m["dlbridge 2-d"]
    theirs = m["NumPy 32-d"] / m["NumPy 2-d"]
    return ours, theirs, ours / theirs


def prepare(rows: list[Row]) -> None:
    """Runs each contender once (and a few more as warm-up); one that raises
    is reported by its exception instead of timed, and one that returns the
    wrong kind of object (a return row timing a `dlbridge.Tensor` where a
    `numpy.ndarray` is the job) by what it returned."""
    for row in rows:
        for c in row.contenders:
            if c.status is not None:
                continue
            try:
                result = eval(c.stmt, dict(c.env))
                timeit.Timer(c.stmt, globals=c.env).timeit(200)
            except Exception as err:  # a contender refusing the input is a result
                c.status = type(err).__name__
                continue
            if row.returns is not None and type(result) is not row.returns:
                c.status = f"returns {type(result).__module__}.{type(result).__qualname__}"


def run(rows: list[Row], rounds: int, number: int) -> None:
    """Interleaved rounds: each round times every live contender of a row
    once, starting from a different one each round."""
    for row in rows:
        live = [c for c in row.contenders if c.status is None]
        timers = [timeit.Timer(c.stmt, globals=c.env) for c in live]
        for r in range(rounds):
            k = r % len(live) if live else 0
            for c, timer in list(zip(live, timers))[k:] + list(zip(live, timers))[:k]:
                c.samples.append(timer.timeit(number) / number * 1e9)


def ratio_of(row: Row) -> tuple[float | None, str]:
    """(dlbridge / anchor, PASS / MISS / why not)."""
    by = {c.column: c for c in row.contenders}
    if row.anchor == NUMPY and "dlbridge 32-d" in by:
        ratio = growth_ratio(row)[2]
        if ratio is None:
            return None, "n/a"
    else:
        ours, anchor = by[DLBRIDGE], by[row.anchor]
        if ours.status is not None:
            return None, ours.status
        if anchor.status is not None:
            return None, f"no anchor ({anchor.status})"
        ratio = ours.median() / anchor.median()
    if row.target is None:
        return ratio, "info"
    return ratio, "PASS" if ratio <= row.target else "MISS"


def cell(c: Contender | None) -> str:
    if c is None:
        return "—"
    if c.status is not None:
        return c.status
    return f"{c.median():,.0f}"


def print_tables(ext_rows: list[Row], py_rows: list[Row]) -> None:
    columns = [DLBRIDGE, RUST_NUMPY, NANOBIND, TVM_FFI]
    print("| call | " + " | ".join(columns) + " | ratio | vs | target | result |")
    print("|---|" + "---:|" * len(columns) + "---:|---|---:|---|")
    for row in ext_rows:
        by = {c.column: c for c in row.contenders}
        ratio, result = ratio_of(row)
        print(f"| {row.label} | " + " | ".join(cell(by.get(col)) for col in columns)
              + f" | {fmt_ratio(ratio)} | {row.anchor} | {fmt_target(row.target)} | {result} |")
    print("\nPython side (median ns/call):\n")
    print("| call | dlbridge | NumPy | ratio | target | result |")
    print("|---|---:|---:|---:|---:|---|")
    for row in py_rows:
        by = {c.column: c for c in row.contenders}
        ratio, result = ratio_of(row)
        if DLBRIDGE in by:
            ours, theirs = cell(by[DLBRIDGE]), cell(by[NUMPY])
        else:
            grow_ours, grow_theirs, _ = growth_ratio(row)
            ours = f"{cell(by['dlbridge 32-d'])} / {cell(by['dlbridge 2-d'])} = {fmt_ratio(grow_ours)}"
            theirs = f"{cell(by['NumPy 32-d'])} / {cell(by['NumPy 2-d'])} = {fmt_ratio(grow_theirs)}"
        print(f"| {row.label} | {ours} | {theirs} | {fmt_ratio(ratio)} | {fmt_target(row.target)} | {result} |")


def fmt_ratio(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}x"


def fmt_target(t: float | None) -> str:
    return "—" if t is None else f"<= {t:.1f}x"


def as_json(rows: list[Row]) -> list[dict]:
    out = []
    for row in rows:
        ratio, result = ratio_of(row)
        out.append({
            "call": row.label,
            "anchor": row.anchor,
            "target": row.target,
            "ratio": ratio,
            "result": result,
            "contenders": {
                c.column: {"stmt": c.stmt, "median_ns": c.median(), "status": c.status, "samples_ns": c.samples}
                for c in row.contenders
            },
        })
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 rounds of 2,000 calls (seconds; the figures are rough)")
    parser.add_argument("--rounds", type=int, help="rounds (default 25; 5 with --quick)")
    parser.add_argument("--number", type=int, help="calls per contender per round (default 20,000; 2,000 with --quick)")
    parser.add_argument("--peer", type=Path, default=PEER_DIR, help=f"the nanobind peer's directory (default {PEER_DIR})")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    rounds = args.rounds or (5 if args.quick else 25)
    number = args.number or (2_000 if args.quick else 20_000)

    peer = import_peer(args.peer)
    ext_rows = extension_rows(peer)
    py_rows = python_rows()
    rows = ext_rows + py_rows
    prepare(rows)
    run(rows, rounds, number)

    nanobind_version = "absent (scripts/build_nanobind_peer.sh)" if peer is None else _nanobind_version()
    meta = {
        "dlbridge": dlbridge.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "tvm_ffi": getattr(tvm_ffi, "__version__", "absent"),
        "nanobind": nanobind_version,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "rounds": rounds,
        "number": number,
    }
    print("# Extension benchmark: " + " | ".join(f"{k} {v}" for k, v in meta.items() if k not in ("rounds", "number")))
    print(f"\nfloat64[16] inputs; median over {rounds} interleaved rounds of {number:,} calls, ns/call; "
          "ratio = dlbridge / the `vs` column\n")
    print_tables(ext_rows, py_rows)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "rows": as_json(rows)}, fh, indent=2)
    return 0


def _nanobind_version() -> str:
    try:
        from importlib.metadata import version

        return version("nanobind")
    except Exception:  # the peer is built; the build package may be elsewhere
        return "built"


if __name__ == "__main__":
    sys.exit(main())
