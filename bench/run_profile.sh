#!/usr/bin/env bash
# bench/run_profile.sh: where a request's time goes, plain Django vs the tenant layer, each
# uvicorn process profiled (cProfile, every thread) under wrk load. See bench/bench_profile.py.
#
#   bench/run_profile.sh                          # --mode entry: both through omnitenant_async.asgi
#   bench/run_profile.sh --mode pooler            # both behind PgBouncer (transaction mode)
#   bench/run_profile.sh --seconds 5 --no-write   # quick look, nothing appended to RESULTS.md
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../scripts/lib.sh
source "$here/../scripts/lib.sh"
bench_prelude
if [[ " $* " == *" pooler "* || " $* " == *"--mode=pooler"* ]]; then
    [[ -n ${OMNITENANT_PGBOUNCER_TX_PORT:-} ]] || start_pgbouncer transaction
fi

# Not exec: the EXIT trap of lib.sh must still stop the servers afterwards.
python -m bench.bench_profile "$@"
