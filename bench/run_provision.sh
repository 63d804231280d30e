#!/usr/bin/env bash
# bench/run_provision.sh [--tenants N]: provisioning time per tenant, cloning vs migrating,
# on bench.scale_app (bench/bench_provision.py); appends a section to bench/RESULTS.md.
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
source "$here/../scripts/lib.sh"
cd "$OT_ROOT"
export VIRTUAL_ENV="$OT_VENV" PATH="$OT_VENV/bin:$PATH"
[[ -n ${OMNITENANT_PG_PORT:-} ]] || start_postgres OMNITENANT_PG
export OMNITENANT_PGUSER="${OMNITENANT_PGUSER:-postgres}"
export OMNITENANT_PGDATABASE="${OMNITENANT_PGDATABASE:-omnitenant_provision}"
export DJANGO_SETTINGS_MODULE=bench.scale_settings
export OMNITENANT_BENCH_COMMAND="bench/run_provision.sh${*:+ $*}"
python -m bench.bench_provision "$@"
