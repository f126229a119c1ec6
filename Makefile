# Quick start:  make demo   (set up, then run the demo)
#               make test   (set up, then run the whole test suite)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tripwire-installed
SOURCES := pyproject.toml $(wildcard native/CMakeLists.txt native/include/tripwire/*.hpp native/src/*.cpp native/src/*.hpp)

.PHONY: setup demo test lint bench bench-quick clean

setup: $(STAMP)

$(STAMP): $(SOURCES) scripts/bootstrap.sh
	PYTHON=$(PYTHON) VENV=$(VENV) scripts/bootstrap.sh
	@touch $@

demo: setup
	$(BIN)/tripwire demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python -m benchmarks.detector
	$(BIN)/python -m benchmarks.pipeline

bench-quick: setup
	$(BIN)/python -m benchmarks.detector --quick
	$(BIN)/python -m benchmarks.pipeline --quick

clean:
	rm -rf build $(VENV) .pytest_cache .hypothesis .ruff_cache
