# Walleta: two commands do all set-up. `make run` opens the app on the demo data; `make test`
# runs the whole suite. Both create .venv and install what they need on first use.
#
#   make venv    create .venv (Python >= 3.11) and install requirements-dev.txt; re-installs
#                only when requirements*.txt or pyproject.toml change
#   make run     build the demo database if missing, then `streamlit run app.py`
#   make test    the whole test suite on 2 workers (Chromium installed first where possible)
#   make bench   every benchmark under bench/
#   make clean   remove .venv, caches, test artifacts and the local database
#
# PYTHON picks the interpreter used to create .venv: `make test PYTHON=python3.12`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv run test bench demo clean check-python

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m walleta demo --if-missing
	$(BIN)/streamlit run app.py

test: $(STAMP)
	bash scripts/ensure_chromium.sh
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

bench: $(STAMP)
	@set -e; for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script; done

demo: $(STAMP)
	$(BIN)/python -m walleta demo

check-python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: '$(PYTHON)' not found; Walleta needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Walleta needs Python 3.11 or newer, but $(PYTHON) is %s; set PYTHON=python3.11 (or newer)" % sys.version.split()[0])'

# Re-install only when the requirements change (the stamp is newer than every input).
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml | check-python
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: $(VENV) uses Python %s; run make clean, then make with PYTHON=python3.11 (or newer)" % sys.version.split()[0])'
	$(BIN)/python -m pip install --quiet --upgrade pip || echo "note: could not upgrade pip; continuing with the venv's own"
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis test-artifacts bench/results
	rm -f data/walleta.db data/walleta.db-wal data/walleta.db-shm
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
