# Two commands for a newcomer: `make demo` runs real jobs end to end, `make test` runs the suite.
# Both create .venv from the project's own files first (Python >= 3.11), then make sure the
# PostgreSQL server binaries are there for the throwaway servers they start
# (scripts/ensure-postgres.sh: on Debian as root it installs them; otherwise it says in one line
# what to do). No server needs to be running.
#
# `make test` runs ruff, the engine suite (everything but tests/django), then tests/django on
# Django 5.2 and 6 (scripts/test-django-matrix.sh). With CI=true the engine suite is forced onto
# a throwaway server (PGQUEUE_TEST_EMBEDDED=1), the path of a machine with no server running,
# so that path can never break unseen, while the Django matrix keeps the local server when one
# runs: each path is exercised on every run, and the run takes no longer than on one server.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

ifeq ($(CI),true)
ENGINE_SERVER := PGQUEUE_TEST_EMBEDDED=1
endif

.PHONY: demo test lint bench clean

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,django]'
	touch $@

demo: $(VENV)/.installed
	PGQUEUE_PYTHON=$(PY) scripts/ensure-postgres.sh demo
	$(PY) -m demo

lint: $(VENV)/.installed
	$(PY) -m ruff check .

test: $(VENV)/.installed lint
	$(ENGINE_SERVER) PGQUEUE_PYTHON=$(PY) scripts/ensure-postgres.sh test
	scripts/ensure-pgbouncer.sh
	$(ENGINE_SERVER) $(PY) -m pytest --ignore=tests/django
	scripts/test-django-matrix.sh

bench: $(VENV)/.installed
	$(PY) -m benchmarks run --quick

clean:
	rm -rf $(VENV) build dist *.egg-info
