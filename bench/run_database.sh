#!/usr/bin/env bash
# bench/run_database.sh: database tenants vs schema tenants vs plain Django, in one command.
#
#   bench/run_database.sh                                  # 3 rounds x 10 s per variant
#   bench/run_database.sh --duration 5 --rounds 2 --many 200   # quick look
#
# Installs wrk if missing (apt-get, as root), uses the repository's .venv, and starts a
# throwaway PostgreSQL cluster unless OMNITENANT_PG_PORT is set (then that server is used; it
# needs room for about 120 connections and the rights to create ~500 databases).
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../scripts/lib.sh
source "$here/../scripts/lib.sh"
bench_prelude
export OMNITENANT_BENCH_COMMAND="bench/run_database.sh${*:+ $*}"

# Not exec: the EXIT trap of lib.sh must still stop PostgreSQL afterwards.
python -m bench.bench_database "$@"
