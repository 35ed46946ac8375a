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
CORE := src/protocol src/tensor.rs src/layout.rs src/dtype.rs src/device.rs src/owner.rs \
	src/descriptor.rs src/error.rs src/view

.PHONY: lint
lint: venv ## cargo fmt --check, the core names no Python, clippy -D warnings (with and without Python), cargo doc
	@if grep -rnE 'pyo3|crate::python' $(CORE); then echo "lint: the core above names Python" >&2; exit 1; fi
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --no-default-features -- -D warnings
	cargo doc --no-deps -q
	# The fuzz targets are their own crate (cargo fuzz builds them on nightly);
	# checking them here keeps them compiling against the library.
	CARGO_TARGET_DIR=$(CURDIR)/target/fuzz-check cargo check -q --manifest-path fuzz/Cargo.toml --bins

.PHONY: test-rust
test-rust: venv ## Rust tests, with and without the python feature
	cargo test -q
	cargo test -q --no-default-features
	cargo run -q --no-default-features --example handoff

.PHONY: test-python
test-python: develop ## pytest against the built package (warnings are errors)
	$(PY) -m pytest -q -W error tests/python --ignore=tests/python/test_extension.py

# The example extension shares target/ (its release profile matches), so its
# dependencies are not built twice on a small machine.
EXTENSION := examples/extension/Cargo.toml
.PHONY: develop-extension
develop-extension: develop ## Build examples/extension (module dlbridge_example) into .venv
	CARGO_TARGET_DIR=$(CURDIR)/target $(VENV)/bin/maturin develop --release -q -m $(EXTENSION)

.PHONY: test-extension
test-extension: develop-extension ## Lint the example extension and pytest it (tests/python/test_extension.py)
	cargo fmt --check --manifest-path $(EXTENSION)
	CARGO_TARGET_DIR=$(CURDIR)/target cargo clippy -q --all-targets --manifest-path $(EXTENSION) -- -D warnings
	$(PY) -m pytest -q -W error tests/python/test_extension.py

.PHONY: bench-extension
bench-extension: develop-extension ## Per-call timings: the example extension vs its rust-numpy baseline
	$(PY) examples/extension/bench.py

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

.PHONY: test
test: lint test-rust test-python test-extension bench-quick ## Everything CI runs

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

# Times things, so not part of `make test`; `make lint` (clippy --all-targets,
# both feature sets) keeps the benches compiling. Filter: ARGS='-- dlpack_'.
.PHONY: bench-rust
bench-rust: ## Rust-level Criterion benches, no Python (DLPack in/out, Layout, alloc, ndarray, copy)
	cargo bench --no-default-features --bench paths $(ARGS)

.PHONY: fmt
fmt: ## Format the Rust code
	cargo fmt

.PHONY: clean
clean: ## Remove build outputs (the cached environment stays)
	cargo clean
	rm -f python/dlbridge/*.so
