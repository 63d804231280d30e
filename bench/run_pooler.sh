#!/usr/bin/env bash
# bench/run_pooler.sh: the schema engine vs plain Django, both behind the same PgBouncer in
# transaction mode, in one command. See bench/README.md.
#
#   bench/run_pooler.sh                              # 5 rounds x 10 s per variant: ~2.5 minutes
#   bench/run_pooler.sh --duration 3 --rounds 1      # dry run
#
# Installs wrk and pgbouncer if missing (apt-get, as root), uses the repository's .venv, and
# starts a throwaway PostgreSQL cluster and a PgBouncer (transaction mode, default_pool_size 4)
# in front of it, unless OMNITENANT_PG_PORT (and OMNITENANT_PGBOUNCER_TX_PORT) are set.
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../scripts/lib.sh
source "$here/../scripts/lib.sh"
bench_prelude
bench_pgbouncer
export OMNITENANT_BENCH_COMMAND="bench/run_pooler.sh${*:+ $*}"

# Not exec: the EXIT trap of lib.sh must still stop PgBouncer and PostgreSQL afterwards.
python -m bench.bench_pooler "$@"
