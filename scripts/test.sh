#!/usr/bin/env bash
# Install what the tests need (Python packages; PostgreSQL server when missing)
# and run the whole suite against SQLite and a throwaway PostgreSQL cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet -e '.[test]' 2>&1 | grep -v -i "warning: running pip as" || true
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "Installing the PostgreSQL server (Debian package)…"
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
fi
exec python3 -m pytest "$@"
