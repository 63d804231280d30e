#!/usr/bin/env bash
# bench/run_asgi.sh: Django's ASGIHandler vs omnitenant_async.asgi (reused request threads),
# plain Django and with 50 schema tenants, async and sync view, in one run. See bench/README.md.
#
#   bench/run_asgi.sh                                  # 3 rounds x 8 s per (view, variant)
#   bench/run_asgi.sh --duration 3 --warmup 1 --rounds 1   # dry run
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../scripts/lib.sh
source "$here/../scripts/lib.sh"
bench_prelude
export OMNITENANT_BENCH_COMMAND="bench/run_asgi.sh${*:+ $*}"

# Not exec: the EXIT trap of lib.sh must still stop PostgreSQL afterwards.
python -m bench.bench_asgi "$@"
