#!/usr/bin/env bash
# Makes sure the PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) are there before
# `make test` or `make demo` needs a throwaway server (pgqueue/embedded.py).
#   scripts/ensure-postgres.sh test   needed unless PGQUEUE_TEST_DSN names a server (and
#                                     PGQUEUE_TEST_EMBEDDED is not 1); the read-replica and
#                                     throwaway-server tests use them even then (they skip,
#                                     saying why, without them)
#   scripts/ensure-postgres.sh demo   needed unless PGQUEUE_DSN or DATABASE_URL is set
# Found (where pgqueue.embedded looks: `pg_config --bindir`, /usr/lib/postgresql/*/bin, PATH):
# nothing to do. Missing, on Debian as root (or with password-less sudo): Debian's `postgresql`
# is installed, without the cluster and service Debian would otherwise create on port 5432 (the
# project starts its own servers). Missing otherwise: one line saying what to do, and exit 1
# when they are needed, 0 when they are not.
# PGQUEUE_INSTALL_POSTGRES=0 never installs anything.
set -uo pipefail
cd "$(dirname "$0")/.."

mode=${1:-test}
python=${PGQUEUE_PYTHON:-.venv/bin/python}

found() {
    "$python" -c 'from pgqueue.embedded import find_postgres_bindir; find_postgres_bindir()' \
        2>/dev/null
}

needed() {
    case $mode in
        test) [ "${PGQUEUE_TEST_EMBEDDED:-0}" = 1 ] || [ -z "${PGQUEUE_TEST_DSN:-}" ] ;;
        demo) [ -z "${PGQUEUE_DSN:-}${DATABASE_URL:-}" ] ;;
        *) echo "usage: $0 test|demo" >&2; exit 2 ;;
    esac
}

give_up() {
    local what="pgqueue: the PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    local fix="install them (Debian: apt-get install postgresql)"
    if needed; then
        if [ "$mode" = demo ]; then
            echo "$what: $1; $fix, or set PGQUEUE_DSN to a database" >&2
        else
            echo "$what: $1; $fix, or set PGQUEUE_TEST_DSN to a server" >&2
        fi
        exit 1
    fi
    echo "== $what ($1): the read-replica and throwaway-server tests will be skipped"
    exit 0
}

if found; then
    exit 0
fi
needed || [ "$mode" = test ] || exit 0

if [ "${PGQUEUE_INSTALL_POSTGRES:-1}" = 0 ]; then
    give_up "PGQUEUE_INSTALL_POSTGRES=0"
elif ! command -v apt-get >/dev/null; then
    give_up "no apt-get to install them with"
elif [ "$(id -u)" = 0 ]; then
    as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    give_up "installing them needs root"
fi

echo "== installing Debian's PostgreSQL server binaries (package postgresql)"
apt_install() {
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" </dev/null >/dev/null
}
install() {
    # postgresql-common first: its createcluster.conf decides whether installing a server
    # version also creates and starts a "main" cluster. Nothing here uses one.
    apt_install postgresql-common &&
        "${as_root[@]}" sed -i -E \
            's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
            /etc/postgresql-common/createcluster.conf &&
        apt_install postgresql
}
install || { "${as_root[@]}" apt-get update -qq </dev/null >/dev/null && install; } \
    || give_up "apt-get could not install package postgresql"
found || give_up "still not found after installing package postgresql"
echo "== installed: $("$python" -c \
    'from pgqueue.embedded import find_postgres_bindir; print(find_postgres_bindir())')"
