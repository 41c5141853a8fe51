# lastmile: `make up` runs everything here, `make test` runs the whole test suite, `make fuzz` the long
# fuzzing (nightly-style). They create .venv and install what they need first, so a fresh clone needs only
# Python 3.11+ and make.

PYTHON ?= python3
FUZZ_MUTATIONS ?= 1000000
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test fuzz lint bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/lastmile up

test: $(STAMP)
	$(BIN)/pytest

# The fuzz tests with the nightly Hypothesis profile (100x the examples, no deadline), then the
# mutation campaign of each codec (reports and reproducers in var/fuzz/); about 12 minutes on two shared cores.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=nightly $(BIN)/pytest tests/fuzz --timeout 3600
	$(BIN)/python -m tests.fuzz.campaign --mutations $(FUZZ_MUTATIONS) --out var/fuzz

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	@# bench/ folder by folder: its scripts import their neighbours by bare name (bench/scale also
	@# bench/radius's helpers)
	for dir in bench/*/; do ls "$$dir"*.py >/dev/null 2>&1 || continue; MYPYPATH=bench/radius $(BIN)/mypy "$$dir" || exit 1; done

bench: $(STAMP)
	@for script in bench/*/run.sh; do [ -x "$$script" ] && "$$script" || true; done

clean:
	rm -rf $(VENV) .venv-localstripe .mypy_cache .ruff_cache .pytest_cache .hypothesis
