#!/usr/bin/env bash
# Install reconciler into .venv and run the main job on the embedded SQLite
# state: validate → plan --out → apply → plan (no changes) on an example.
#   bash scripts/demo.sh [EXAMPLE]     (default: partner-hosted; see examples/environments/)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
make_venv
install_reconciler
export PATH="$PWD/$VENV/bin:$PATH"

ENV_DIR=examples/environments/${1:-partner-hosted}
[ -d "$ENV_DIR" ] || fail "no example $ENV_DIR — pick one of: $(ls examples/environments | tr '\n' ' ')"
export RECONCILER_STATE=${RECONCILER_STATE:-sqlite:///.reconciler/demo-state.db}
rm -f .reconciler/demo-state.db*
mkdir -p .reconciler
set -x
reconciler init   # an explicit state path must exist: make a new empty one
reconciler validate "$ENV_DIR"
reconciler plan "$ENV_DIR" --out .reconciler/demo.plan.json
reconciler apply .reconciler/demo.plan.json
reconciler plan "$ENV_DIR" --detailed-exitcode
