#!/usr/bin/env bash
# bench/run_switch_ab.sh: separates the per-request cost of the tenancy layer from the cost of
# switching tenants. Plain Django vs the schema engine with ONE fixed tenant (the pooled
# connection always has the path: no SET) vs the engine rotating over 50 tenants (~1 SET per
# request), alternating, 3 rounds x 8 s, wrk -t2 -c64. Reports req/s and the uvicorn process's
# CPU per request (bench/bench_switch_ab.py). Needs the databases bench/run_http.sh seeds
# (omnitenant_bench and omnitenant_bench_plain) on OMNITENANT_PG_HOST/PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OMNITENANT_PG_PORT:?set OMNITENANT_PG_HOST/OMNITENANT_PG_PORT to the server bench/run_http.sh seeded}"
export OMNITENANT_PG_HOST="${OMNITENANT_PG_HOST:-127.0.0.1}" OMNITENANT_PGUSER="${OMNITENANT_PGUSER:-postgres}"
exec .venv/bin/python -m bench.bench_switch_ab
