# Walleta: two commands do all set-up. `make run` opens the app on the demo data; `make test`
# runs the whole suite. Both create .venv and install what they need on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench demo clean check-python

run: $(STAMP)
	$(BIN)/python -m walleta demo --if-missing
	$(BIN)/streamlit run app.py

test: $(STAMP)
	bash scripts/ensure_chromium.sh
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: $(STAMP)
	for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

demo: $(STAMP)
	$(BIN)/python -m walleta demo

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Walleta needs Python 3.11 or newer (found %s); set PYTHON=python3.11" % sys.version.split()[0])'

# Re-install only when the requirements change.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml | check-python
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts data/walleta.db data/walleta.db-wal data/walleta.db-shm
