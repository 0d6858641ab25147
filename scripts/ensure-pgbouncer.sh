#!/usr/bin/env bash
# Makes sure Debian's `pgbouncer` is installed, for tests/reliability/test_pgbouncer.py (which
# starts its own PgBouncer in transaction mode in front of the test server).
# Already installed: nothing to do. Missing: installed with apt-get (as root, or through a
# password-less sudo). Neither possible: says so and exits 0, and the test is skipped with
# that reason; nothing else in the suite depends on PgBouncer.
# Nothing is started: Debian's package would start a service, but the test runs its own
# process on a free port, and policy-rc.d / the absence of an init system keep it stopped.
set -uo pipefail

found() { command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ]; }

if found; then
    exit 0
fi

if [ "$(id -u)" = 0 ]; then
    as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "== pgbouncer missing and no root to install it: the PgBouncer test will be skipped"
    exit 0
fi

if ! command -v apt-get >/dev/null; then
    echo "== pgbouncer missing and no apt-get: install it, or the PgBouncer test is skipped"
    exit 0
fi

echo "== installing Debian's pgbouncer for the PgBouncer test"
install() {
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
}
install || { "${as_root[@]}" apt-get update -qq && install; } \
    || echo "== could not install pgbouncer: the PgBouncer test will be skipped"
found || echo "== pgbouncer still not found: the PgBouncer test will be skipped"
exit 0
