#!/usr/bin/env bash
# Install reconciler and run the main job on the embedded SQLite state:
# validate → plan → apply → plan (no changes) on an example environment.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet -e . 2>&1 | grep -v -i "warning: running pip as" || true
ENV_DIR=examples/environments/${1:-partner-hosted}
export RECONCILER_STATE=${RECONCILER_STATE:-sqlite:///.reconciler/demo-state.db}
rm -f .reconciler/demo-state.db*
set -x
reconciler validate "$ENV_DIR"
reconciler plan "$ENV_DIR" --out .reconciler/demo.plan.json
reconciler apply .reconciler/demo.plan.json
reconciler plan "$ENV_DIR" --detailed-exitcode
