#!/usr/bin/env bash
# bench/run_celery.sh: TenantAwareTask vs plain Celery tasks through a real worker (bench_celery.py).
set -euo pipefail
here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
source "$here/../scripts/lib.sh"
cd "$OT_ROOT"
ensure_venv
[[ -n ${OMNITENANT_PG_PORT:-} ]] || start_postgres OMNITENANT_PG
[[ -n ${OMNITENANT_REDIS_URL:-} ]] || start_redis
export OMNITENANT_PGUSER="${OMNITENANT_PGUSER:-postgres}"
python -m bench.bench_celery
