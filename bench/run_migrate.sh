#!/usr/bin/env bash
# bench/run_migrate.sh [--tenants N] [--migrate M] [--check-schemas K] [--rounds R]: the
# up-to-date check of N tenants and one migration forward on M tenants, sequential vs threads
# vs processes (bench/bench_migrate.py); appends a section to bench/RESULTS.md.
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
source "$here/../scripts/lib.sh"
cd "$OT_ROOT"
export VIRTUAL_ENV="$OT_VENV" PATH="$OT_VENV/bin:$PATH"
[[ -n ${OMNITENANT_PG_PORT:-} ]] || start_postgres OMNITENANT_PG
export OMNITENANT_PGUSER="${OMNITENANT_PGUSER:-postgres}"
export OMNITENANT_PGDATABASE="${OMNITENANT_PGDATABASE:-omnitenant_migrate}"
export DJANGO_SETTINGS_MODULE=demo.settings
export OMNITENANT_BENCH_COMMAND="bench/run_migrate.sh${*:+ $*}"
python -m bench.bench_migrate "$@"
