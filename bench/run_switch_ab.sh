#!/usr/bin/env bash
# bench/run_switch_ab.sh: separates the per-request cost of the tenancy layer from the cost of
# switching tenants. Plain Django vs the schema engine with ONE fixed tenant (the pooled
# connection always has the path: no SET) vs the engine rotating over 50 tenants (~1 SET per
# request), alternating, 3 rounds x 8 s, wrk -t2 -c64. Reports req/s and the uvicorn process's
# CPU per request. Needs the databases bench/run_http.sh seeds (omnitenant_bench and
# omnitenant_bench_plain) on OMNITENANT_PG_HOST/PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OMNITENANT_PG_PORT:?set OMNITENANT_PG_HOST/OMNITENANT_PG_PORT to the server bench/run_http.sh seeded}"
export OMNITENANT_PG_HOST="${OMNITENANT_PG_HOST:-127.0.0.1}" OMNITENANT_PGUSER="${OMNITENANT_PGUSER:-postgres}"
py=.venv/bin/python
port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
start() { # settings port
    DJANGO_SETTINGS_MODULE=$1 "$py" -m uvicorn bench.asgi:application --host 127.0.0.1 \
        --port "$2" --workers 1 --log-level warning --no-access-log --http h11 --loop asyncio &
    pids+=($!)
}
p_plain=$(port); start bench.plain_settings "$p_plain"; pid_plain=${pids[-1]}
p_ten=$(port); start bench.tenant_settings "$p_ten"; pid_ten=${pids[-1]}
sleep 4
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system clock ticks
tick_us=$((1000000 / $(getconf CLK_TCK)))
run() { # label pid port lua-args...
    local label=$1 pid=$2 port=$3 c0 c1 out reqs rps
    shift 3
    wrk -t2 -c64 -d2s -s bench/rotate_hosts.lua "http://127.0.0.1:$port/item/" -- "$@" >/dev/null
    c0=$(cpu "$pid")
    out=$(wrk -t2 -c64 -d8s -s bench/rotate_hosts.lua "http://127.0.0.1:$port/item/" -- "$@")
    c1=$(cpu "$pid")
    reqs=$(grep -oE '^ +[0-9]+ requests' <<<"$out" | grep -oE '[0-9]+')
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    echo "$label req/s=$rps uvicorn_cpu_us_per_request=$(((c1 - c0) * tick_us / reqs))"
}
for round in 1 2 3; do
    echo "round $round"
    run plain "$pid_plain" "$p_plain" fixed b00.localhost
    run "engine, 1 tenant" "$pid_ten" "$p_ten" fixed b00.localhost
    run "engine, 50 tenants" "$pid_ten" "$p_ten" 50 b
done
