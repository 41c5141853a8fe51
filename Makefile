# lastmile: `make up` runs everything here, `make test` runs the whole test suite.
# Both create .venv and install what they need first, so a fresh clone needs only Python 3.11+ and make.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test lint bench install clean

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

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	@# bench/ folder by folder: its scripts import their neighbours by bare name
	for dir in bench/*/; do $(BIN)/mypy "$$dir" || exit 1; done

bench: $(STAMP)
	@for script in bench/*/run.sh; do [ -x "$$script" ] && "$$script" || true; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
