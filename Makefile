# Two commands for a newcomer: `make demo` runs real jobs end to end, `make test` runs the suite.
# Both create .venv from the project's own files first (Python >= 3.11; PostgreSQL binaries or
# a server reachable through PGQUEUE_DSN / PGQUEUE_TEST_DSN).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint bench clean

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,django]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m demo

lint: $(VENV)/.installed
	$(PY) -m ruff check .

test: $(VENV)/.installed lint
	$(PY) -m pytest --ignore=tests/django
	scripts/test-django-matrix.sh

bench: $(VENV)/.installed
	$(PY) -m benchmarks run --quick

clean:
	rm -rf $(VENV) build dist *.egg-info
