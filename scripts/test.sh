#!/usr/bin/env bash
# Install what the tests need into .venv (and the Debian packages below when
# missing) and run the test suite against SQLite and a throwaway PostgreSQL
# cluster.
#   bash scripts/test.sh           the default run: every test not marked slow, in parallel
#   bash scripts/test.sh --all     every test, slow ones included (what CI runs)
#   bash scripts/test.sh ARGS…     other arguments go to pytest (e.g. -k plan, -x, -n 0)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh

# System packages the tests use; add to this list when a test needs another one.
DEBIAN_PACKAGES=(
    postgresql    # the server binaries (initdb, pg_ctl) for tests/pgcluster.py
    kamailio kamailio-sqlite-modules kamailio-postgres-modules  # the Kamailio target
    sqlite3       # scripts/kamailio.sh init: Kamailio's schema scripts into a SQLite file
    sip-tester    # SIPp: registers phones against Kamailio (tests/sip.py)
)
# npm installs ajv-cli, which compiles schemas/ in strict mode (tests/test_schemas.py).
# A nodejs from elsewhere (NodeSource's includes npm, and conflicts with Debian's) is fine.
command -v npm >/dev/null 2>&1 || DEBIAN_PACKAGES+=(nodejs npm)

install_debian_packages "${DEBIAN_PACKAGES[@]}"
make_venv
install_reconciler test
install_ajv

PYTEST_ARGS=(-m "not slow")
if [ "${1:-}" = "--all" ]; then
    shift
    PYTEST_ARGS=()
fi
exec "$VENV/bin/python" -m pytest -n auto "${PYTEST_ARGS[@]}" "$@"
