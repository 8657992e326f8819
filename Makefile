# Quick start: `make demo` (install + whole pipeline on built-in data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.nfdeploy-installed

.PHONY: install demo test test-slow sanitize lint bench bench-cifar clean

$(STAMP): pyproject.toml CMakeLists.txt cpp_ext/bitflip.cpp
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first, so that no dependency pulls a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,plots,dev]'
	# SCALE-Sim for the energy cross-check; its declared deps (numba, pandas...) are not needed.
	$(BIN)/pip install -q --no-deps 'scalesim>=3.0,<3.1'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/nfdeploy demo --out demo-out

test: $(STAMP)
	$(BIN)/ruff check nfdeploy tests bench deploy_examples
	$(BIN)/ruff format --check nfdeploy tests bench deploy_examples
	$(BIN)/mypy
	$(BIN)/pytest -q

# The slow job installs the optional extras its tests cover (Ray for validate --backend ray).
test-slow: $(STAMP)
	$(BIN)/pip install -q -e '.[ray]'
	$(BIN)/pytest -q -m slow

# The kernel built with -fsanitize=address,undefined, its tests and hypothesis properties.
sanitize: $(STAMP)
	PYTHON=$(BIN)/python bash cpp_ext/sanitize.sh

# The quick ratios (kernel, validation overhead, train-step speed-up); docs/benchmarks.md has
# the full runs (validate_overhead.py without --quick, train_step.py with the N sweep).
bench: $(STAMP)
	$(BIN)/python bench/bitflip.py
	$(BIN)/python bench/validate_overhead.py --quick
	$(BIN)/python bench/train_step.py --steps 1 --no-sweep

clean:
	rm -rf build $(VENV) demo-out
