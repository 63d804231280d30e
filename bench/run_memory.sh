#!/usr/bin/env bash
# bench/run_memory.sh [--tenants N] [--threads T] [--create-budget S]: registry memory per
# entry, one PostgreSQL backend's memory vs tenants touched, process RSS and pool recycling,
# on N cloned schema tenants of the demo's apps (bench/bench_memory.py); appends a section to
# bench/RESULTS.md. Reads /proc/<pid>/status of the server's processes: run it as root or as
# the user the server runs as (scripts/lib.sh starts it as `postgres` under root).
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
source "$here/../scripts/lib.sh"
cd "$OT_ROOT"
export VIRTUAL_ENV="$OT_VENV" PATH="$OT_VENV/bin:$PATH"
[[ -n ${OMNITENANT_PG_PORT:-} ]] || start_postgres OMNITENANT_PG
export OMNITENANT_PGUSER="${OMNITENANT_PGUSER:-postgres}"
export OMNITENANT_PGDATABASE="${OMNITENANT_PGDATABASE:-omnitenant_memory}"
export OMNITENANT_BENCH_COMMAND="bench/run_memory.sh${*:+ $*}"
python -m bench.bench_memory "$@"
