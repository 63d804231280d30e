#!/usr/bin/env bash
# bench/run_bytecodes.sh: Python bytecodes per request, the schema engine behind PgBouncer in
# transaction mode vs plain Django behind the same PgBouncer (bench/bench_bytecodes.py).
#
#   bench/run_bytecodes.sh                       # 300 requests per variant: ~1 minute
#   bench/run_bytecodes.sh --concurrency 16
#
# Uses the repository's .venv, installs pgbouncer if missing (apt-get, as root), and starts a
# throwaway PostgreSQL cluster and a PgBouncer in front of it, unless OMNITENANT_PG_PORT (and
# OMNITENANT_PGBOUNCER_TX_PORT) are set.
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../scripts/lib.sh
source "$here/../scripts/lib.sh"
bench_prelude
bench_pgbouncer
export OMNITENANT_BENCH_COMMAND="bench/run_bytecodes.sh${*:+ $*}"

# Not exec: the EXIT trap of lib.sh must still stop PgBouncer and PostgreSQL afterwards.
python -m bench.bench_bytecodes "$@"
