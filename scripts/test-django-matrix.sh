#!/usr/bin/env bash
# Runs tests/django on both supported Django lines, each in its own virtualenv built from this
# checkout's pyproject.toml:
#   Django 5.2 LTS on Python 3.11 in .venv      (django extra: Django + the django-tasks backport)
#   Django 6.x     on Python 3.12 in .venv-dj6  (django.tasks is built in)
# Both runs always happen; the exit status is non-zero if either failed.
# Override the interpreters with PGQUEUE_PY311 / PGQUEUE_PY312 (commands, e.g. "python3.11").
# Extra arguments go to pytest, e.g.: scripts/test-django-matrix.sh -k backend
# The admin's browser test needs Debian's chromium and chromium-driver (it is skipped, saying
# so, without them); PGQUEUE_INSTALL_CHROMIUM=1 installs them first (root and apt-get needed).
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${PGQUEUE_INSTALL_CHROMIUM:-0}" = 1 ] && ! command -v chromedriver >/dev/null; then
    echo "== installing Debian's chromium and chromium-driver for the browser test"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        chromium chromium-driver >/dev/null; } || echo "== could not install chromium"
fi

py311=${PGQUEUE_PY311:-"env PYENV_VERSION=3.11.7 python3"}
py312=${PGQUEUE_PY312:-"env PYENV_VERSION=3.12.1 python3"}

prepare() {  # prepare VENV "PYTHON COMMAND" DJANGO_SPEC
    local venv=$1 python=$2 django=$3
    if [ ! -x "$venv/bin/python" ]; then
        echo "== creating $venv with: $python"
        $python -m venv "$venv" || return 1
    fi
    echo "== installing .[test,django] and $django into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -e ".[test,django]" "$django" || return 1
}

run() {  # run VENV LABEL
    local venv=$1 label=$2
    echo "== tests/django on $label ($("$venv/bin/python" -c \
        'import django, sys; print(f"Django {django.get_version()}, Python {sys.version.split()[0]}")'))"
    "$venv/bin/python" -m pytest tests/django -q -p no:cacheprovider "${@:3}"
}

status=0
if prepare .venv "$py311" "Django>=5.2,<6"; then
    run .venv "Django 5.2" "$@" || status=1
else
    echo "== could not prepare .venv for Django 5.2"; status=1
fi
if prepare .venv-dj6 "$py312" "Django>=6,<7"; then
    run .venv-dj6 "Django 6" "$@" || status=1
else
    echo "== could not prepare .venv-dj6 for Django 6"; status=1
fi
exit $status
