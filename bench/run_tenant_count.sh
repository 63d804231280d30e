#!/usr/bin/env bash
# bench/run_tenant_count.sh: req/s and p99 of the bench view with the Host rotating over 10,
# 1,000 and 10,000 schema tenants, in one run (bench/bench_tenant_count.py); appends a section
# to bench/RESULTS.md.
#
#   bench/run_tenant_count.sh                         # 10,000 tenants, 3 rounds x 8 s
#   bench/run_tenant_count.sh --tenants 300 --rounds 1 --duration 3   # dry run
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../scripts/lib.sh
source "$here/../scripts/lib.sh"
bench_prelude

# Not exec: the EXIT trap of lib.sh must still stop PostgreSQL afterwards.
python -m bench.bench_tenant_count "$@"
