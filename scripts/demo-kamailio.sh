#!/usr/bin/env bash
# The Kamailio target in one go: create Kamailio's database (Debian's schema
# scripts), start Kamailio on a free loopback port, apply
# examples/environments/sip-kamailio to it, register phone 100 with SIPp, then
# stop Kamailio and remove everything. Needs Debian's kamailio,
# kamailio-sqlite-modules, sqlite3 and sip-tester packages.
#   bash scripts/demo-kamailio.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
install_debian_packages kamailio kamailio-sqlite-modules sqlite3 sip-tester
make_venv
install_reconciler
export PATH="$PWD/$VENV/bin:$PATH"

ENV_DIR=examples/environments/sip-kamailio
WORK="$(mktemp -d)"
trap 'bash scripts/kamailio.sh stop "$WORK/run"; rm -rf "$WORK"' EXIT
export KAMAILIO_DB="sqlite:///$WORK/kamailio.sqlite"
export RECONCILER_STATE="sqlite:///$WORK/state.db"

bash scripts/kamailio.sh init "$KAMAILIO_DB"
reconciler init   # an explicit state path must exist: make a new empty one
PORT="$(bash scripts/kamailio.sh start "$KAMAILIO_DB" 0 "$WORK/run")"
echo "Kamailio listens on udp:127.0.0.1:$PORT (pid $(cat "$WORK/run/kamailio.pid"))"
set -x
reconciler apply "$ENV_DIR" --auto-approve
sqlite3 "$WORK/kamailio.sqlite" "select username, domain, password = '' as no_plain_password from subscriber"
{ set +x; } 2>/dev/null  # the phone's password is not echoed
PASSWORD="$(cat "$ENV_DIR/secrets/sip-100.txt")"
echo "+ sipp … registers 100@sonnenschein.pbx.example with its password from the manifest"
(cd "$WORK" && sipp "127.0.0.1:$PORT" -sf "$OLDPWD/examples/kamailio/register.xml" -m 1 \
    -s 100 -au 100 -ap "$PASSWORD" \
    -key domain sonnenschein.pbx.example -i 127.0.0.1 -bind_local -nostdin -nd \
    -timeout 10 -timeout_error -trace_err >/dev/null)
echo "Phone 100@sonnenschein.pbx.example registered (200 OK) with the password from the manifest."
