# dlbridge — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
# One interpreter for cargo and maturin, so pyo3 is not rebuilt between them.
export PYO3_PYTHON := $(CURDIR)/$(VENV)/bin/python
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export RUSTDOCFLAGS := -D warnings

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.complete: requirements-dev.txt scripts/venv.sh
	@bash scripts/venv.sh
	@touch -h $(VENV)

.PHONY: venv
venv: $(VENV)/.complete ## Create .venv (a cached environment keyed by requirements-dev.txt)

.PHONY: develop
develop: venv ## Build the extension (release) into python/dlbridge
	$(VENV)/bin/maturin develop --release -q

.PHONY: demo
demo: develop ## Run the demo: NumPy -> dlbridge -> PyTorch -> NumPy, pointers and timings
	$(PY) examples/demo.py

# The core (everything outside src/python/ and lib.rs's `mod python`) never
# names Python: the layers point one way, from src/python/ to the core.
CORE := src/protocol src/tensor.rs src/layout.rs src/dtype.rs src/device.rs src/owner.rs src/owner \
	src/descriptor.rs src/error.rs src/view src/cuda src/borrow

.PHONY: lint
lint: venv ## cargo fmt --check, the core names no Python, clippy -D warnings (with and without Python), cargo doc, ruff, the fuzz targets compile
	@if grep -rnE 'pyo3|crate::python' $(CORE); then echo "lint: the core above names Python" >&2; exit 1; fi
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --no-default-features -- -D warnings
	cargo doc --no-deps -q
	$(VENV)/bin/ruff check -q python tests benches examples scripts
	# The fuzz targets are their own crate (cargo fuzz builds them on nightly);
	# checking them here keeps them compiling against the library.
	CARGO_TARGET_DIR=$(CURDIR)/target/fuzz-check cargo check -q --manifest-path fuzz/Cargo.toml --bins

.PHONY: test-rust
test-rust: venv ## Rust tests, with and without the python feature
	cargo test -q
	cargo test -q --no-default-features
	cargo run -q --no-default-features --example handoff

# Static checks of the sources run here too, collected with the rest:
# test_error_sites.py (every refusal has a docs/errors.md row) and
# test_module_cycles.py (src/python/'s modules depend on each other one way).
.PHONY: test-python
test-python: develop ## pytest against the built package (warnings are errors)
	$(PY) -m pytest -q -W error tests/python --ignore-glob='tests/python/test_extension*' --ignore=tests/python/test_borrow.py

# The example extension shares target/ (its release profile matches), so its
# dependencies are not built twice on a small machine.
EXTENSION := examples/extension/Cargo.toml
.PHONY: develop-extension
develop-extension: develop ## Build examples/extension (module dlbridge_example) into .venv
	CARGO_TARGET_DIR=$(CURDIR)/target $(VENV)/bin/maturin develop --release -q -m $(EXTENSION)

.PHONY: test-extension
test-extension: develop-extension ## Lint the example extension and pytest it (tests/python/test_extension.py, test_borrow.py)
	cargo fmt --check --manifest-path $(EXTENSION)
	CARGO_TARGET_DIR=$(CURDIR)/target cargo clippy -q --all-targets --manifest-path $(EXTENSION) -- -D warnings
	$(PY) -m pytest -q -W error tests/python/test_extension.py tests/python/test_extension_returns.py tests/python/test_extension_constraints.py tests/python/test_extension_import_pipeline.py tests/python/test_borrow.py
	# The benchmark still runs (two seconds, no peer needed; never fails on a ratio).
	$(PY) examples/extension/bench.py --quick >/dev/null

# The nanobind peer (benches/nanobind_peer) is built here only, from the
# venv's nanobind, cmake and ninja. Options: ARGS='--quick', ARGS='--json out.json'.
.PHONY: bench-extension
bench-extension: develop-extension ## Extension timings: dlbridge vs rust-numpy, nanobind, tvm-ffi (medians, ratios, targets)
	bash scripts/build_nanobind_peer.sh >/dev/null
	$(PY) examples/extension/bench.py $(ARGS)

# Strict provenance: no integer-to-pointer casts. Isolated calls (proptest's
# getcwd for its failure file) fail softly instead of aborting. Skipped:
# known_widths_are_exactly_the_named_ones compares 65,536 (code, bits) pairs
# of plain integers (no unsafe code, nothing Miri checks beyond the native
# run) and takes ~5 minutes interpreted. Proptests run 12 cases under Miri.
MIRI_SKIP := known_widths_are_exactly_the_named_ones
.PHONY: miri
miri: ## The Python-free core under Miri (nightly): UB, leaks, data races
	rustup component add --toolchain nightly miri rust-src
	MIRIFLAGS="-Zmiri-strict-provenance -Zmiri-isolation-error=warn-nobacktrace" \
		cargo +nightly miri test --no-default-features --no-fail-fast -- --skip $(MIRI_SKIP)

.PHONY: bench-quick
bench-quick: develop ## Exchange benchmark, quick mode (reports ratios, never fails on noise)
	$(PY) benches/exchange.py --quick

# Typing: the stub against the built module (stubtest), and a user's code
# against the stub (mypy --strict on tests/typing, assert_type per call).
.PHONY: typing
typing: develop ## mypy stubtest (python/dlbridge/_native.pyi vs the module) and mypy --strict tests/typing
	$(PY) -m mypy.stubtest dlbridge --allowlist tests/stubtest-allowlist.txt --ignore-unused-allowlist
	$(PY) -m mypy --strict tests/typing

# The minimum supported Rust (Cargo.toml's rust-version): both feature sets
# compile with it. rustup fetches the toolchain on first use (~10 s).
MSRV := $(shell sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
.PHONY: msrv
msrv: venv ## cargo check with the rust-version toolchain (with and without Python)
	@rustup run $(MSRV) rustc --version >/dev/null 2>&1 || rustup toolchain install $(MSRV) --profile minimal
	CARGO_TARGET_DIR=$(CURDIR)/target/msrv cargo +$(MSRV) check -q --all-targets --no-default-features
	CARGO_TARGET_DIR=$(CURDIR)/target/msrv cargo +$(MSRV) check -q --lib

# What crates.io would get (Cargo.toml's include), built on its own; any
# warning but the dry run's own fails (not -q: it hides warnings too).
.PHONY: package
package: venv ## cargo publish --dry-run: the crate packages and builds, warning-free
	@mkdir -p target; \
	CARGO_TARGET_DIR=$(CURDIR)/target/package cargo publish --dry-run --allow-dirty >target/package.log 2>&1 \
		|| { cat target/package.log; exit 1; }; \
	grep -E '^(warning|error)|Packaged' target/package.log; \
	! grep -v 'aborting upload due to dry run' target/package.log | grep -q '^warning'

# Release artefacts. The wheels are built from the sdist, so they prove it
# builds; scripts/wheels.sh says how (zig, manylinux_2_28, auditwheel).
WHEEL_PYTHONS ?= 3.11 3.12 3.13
.PHONY: wheels
wheels: venv ## sdist + manylinux_2_28 wheels for CPython 3.11, 3.12, 3.13 built from it, into dist/
	bash scripts/wheels.sh $(WHEEL_PYTHONS)

.PHONY: wheels-test
wheels-test: wheels ## Each wheel in a fresh venv of its Python (NumPy from PyPI), tests/smoke there
	bash scripts/wheel_smoke.sh

# The CI matrix: the core of the Python suite on the other CPythons, newest
# NumPy (2.5) and PyTorch, against their wheels, in cached venvs pinned by
# requirements-py<version>.txt (linked as .venv-<version>).
MATRIX_PYTHONS ?= 3.12 3.13
# On a GPU machine, from a checkout, against the dlbridge that PYTHON has
# installed (a wheel: `pip install dist/dlbridge-*.whl`), nothing built.
PYTHON ?= python3
.PHONY: test-gpu
test-gpu: ## GPU checks against an installed dlbridge: tests/gpu (skipped without a CUDA device), then scripts/cuda_passthrough.py
	$(PYTHON) -m pytest -q -W error -p no:cacheprovider --rootdir tests/gpu tests/gpu
	@if $(PYTHON) -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then \
		$(PYTHON) scripts/cuda_passthrough.py; \
	else echo "test-gpu: scripts/cuda_passthrough.py skipped: no CUDA device"; fi

.PHONY: test-matrix
test-matrix: wheels ## Core Python suite on CPython 3.12 and 3.13 (NumPy 2.5, PyTorch, JAX) against their wheels
	bash scripts/test_matrix.sh $(MATRIX_PYTHONS)

# The oldest end of the supported range: CPython 3.11 with the oldest NumPy,
# ml_dtypes, PyTorch, JAX, pyarrow, polars and pandas README declares
# (requirements-oldest.txt, linked as .venv-oldest), against the cp311 wheel.
.PHONY: test-oldest
test-oldest: wheels develop-extension ## Core Python suite on the oldest supported versions (CPython 3.11, NumPy 2.4.1, torch 2.9, JAX 0.6) against the wheel
	bash scripts/test_oldest.sh

.PHONY: test
test: lint typing test-rust test-python test-extension msrv package wheels-test test-matrix test-oldest bench-quick ## Everything CI runs

FUZZ_SECONDS ?= 600
FUZZ_TARGETS := pep3118_format layout dlpack_descriptor typestr
.PHONY: fuzz
fuzz: ## Long fuzz campaign (nightly + cargo-fuzz); FUZZ_SECONDS per target, default 600
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@set -o pipefail; for target in $(FUZZ_TARGETS); do \
		echo "== $$target ($(FUZZ_SECONDS)s)"; \
		cargo +nightly fuzz run $$target -- -max_total_time=$(FUZZ_SECONDS) 2>&1 | grep -E '^#[0-9]+.*DONE|^Done|ERROR|panicked' || exit 1; \
	done

SANITIZE_TESTS ?= tests/python/test_error_matrix.py tests/python/test_interpreter.py
.PHONY: sanitize
sanitize: develop ## The NumPy part of the Python suite under valgrind (PYTHONMALLOC=malloc)
	$(PY) scripts/sanitize.py $(SANITIZE_TESTS)

.PHONY: bench
bench: develop ## Exchange benchmark: dlbridge vs NumPy / PyTorch / tvm-ffi, medians and ratios
	$(PY) benches/exchange.py

.PHONY: bench-pickle
bench-pickle: develop ## Pickling 256 MiB with protocol 5 (out of band and in band) beside NumPy
	$(PY) benches/pickling.py

# Times things, so not part of `make test`; `make lint` (clippy --all-targets,
# both feature sets) keeps the benches compiling. Filter: ARGS='-- dlpack_'.
# The Rust-only benches build in their own target directory: their
# no-default-features release build of dlbridge, in the release directory
# that the example extension shares, made the next `make develop-extension`
# link against it (no `python` feature: 32 errors) until a `cargo clean`.
BENCH_TARGET := $(CURDIR)/target/bench-core
.PHONY: bench-rust
bench-rust: ## Rust-level Criterion benches, no Python (DLPack in/out, Layout, alloc, ndarray, copy)
	CARGO_TARGET_DIR=$(BENCH_TARGET) cargo bench --no-default-features --bench paths $(ARGS)

# dlbridge against plain dlpark 0.10 (its ndarray feature) on the Rust-only
# DLPack jobs; an interleaved summary prints the medians and ratios last.
.PHONY: bench-dlpark
bench-dlpark: ## Rust-only DLPack export / import to ArrayView / round trip: dlbridge vs dlpark 0.10, with ratios
	CARGO_TARGET_DIR=$(BENCH_TARGET) cargo bench --no-default-features --bench vs_dlpark $(ARGS)

.PHONY: fmt
fmt: ## Format the Rust code
	cargo fmt

.PHONY: clean
clean: ## Remove build outputs, dist/ included (the cached environments stay)
	cargo clean
	rm -f python/dlbridge/*.so
	rm -rf dist .mypy_cache
