#!/usr/bin/env bash
# bench/run_http.sh: the HTTP benchmark (schema engine vs plain Django vs django-tenants) in
# one command. See bench/README.md.
#
#   bench/run_http.sh                      # defaults: 6 rounds x 10 s per variant, then audit and profile: ~8-9 minutes
#   bench/run_http.sh --duration 5 --rounds 2 --no-django-tenants   # quick look
#
# Installs wrk if missing (apt-get, as root), uses the repository's .venv, and starts a
# throwaway PostgreSQL cluster (pg_stat_statements preloaded) unless OMNITENANT_PG_PORT is
# set, in which case that server is used (its pg_stat_statements, if loaded, is reset per
# benchmark database only, and the statement-log audit is skipped).
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
if [[ ! -r $here/../scripts/lib.sh ]]; then
    echo "bench/run_http.sh: scripts/lib.sh is missing (it provides the venv and PostgreSQL helpers)" >&2
    exit 1
fi
# shellcheck source=../scripts/lib.sh
source "$here/../scripts/lib.sh"
own_cluster=${OMNITENANT_PG_PORT:-yes}
bench_prelude  # the venv, wrk, and a throwaway PostgreSQL unless OMNITENANT_PG_PORT is set
if [[ $own_cluster == yes ]]; then
    # Our own cluster: the audit may switch log_statement on and read this log.
    export OMNITENANT_BENCH_PG_LOG="$OMNITENANT_PG_DIR/postgres.log"
fi
export OMNITENANT_BENCH_COMMAND="bench/run_http.sh${*:+ $*}"

# Not exec: the EXIT trap of lib.sh must still stop PostgreSQL afterwards.
python -m bench.bench_http "$@"
