"""Switch cost vs per-request cost of the tenancy layer (``bench/run_switch_ab.sh``).

Plain Django vs the schema engine with ONE fixed tenant (the pooled connection always has the
path: no SET) vs the engine rotating over 50 tenants (~1 SET per request), alternating, 3
rounds x 8 s (after 2 s of warm-up each), wrk ``-t2 -c64``. Prints req/s and the uvicorn
process's CPU per request. Needs the databases ``bench/run_http.sh`` seeds (omnitenant_bench and
omnitenant_bench_plain) on OMNITENANT_PG_HOST/PORT.
"""

from __future__ import annotations

import sys

from bench.harness import (
    DB_PLAIN,
    DB_TENANCY,
    ROOT,
    TENANT_HOSTS,
    Server,
    Servers,
    Variant,
    proc_cpu,
    run_wrk,
    wrk_cmd,
)

ROUNDS, WARMUP, DURATION = 3, 2, 8


def run(label: str, server: Server, hosts: list[str]) -> None:
    run_wrk(wrk_cmd(server.port, hosts, WARMUP))
    before = proc_cpu(server.pid)
    result = run_wrk(wrk_cmd(server.port, hosts, DURATION))
    cpu_us = round((proc_cpu(server.pid) - before) * 1e6) // result["requests"]
    print(f"{label} req/s={result['rps']:.2f} uvicorn_cpu_us_per_request={cpu_us}", flush=True)


def main() -> int:
    py, app = sys.executable, "bench.asgi:application"
    with Servers() as servers:
        plain = servers.start(
            Variant("plain", "plain Django", py, app, ROOT, DB_PLAIN, ["localhost"],
                    {"DJANGO_SETTINGS_MODULE": "bench.plain_settings"})
        )  # fmt: skip
        engine = servers.start(
            Variant("engine", "schema engine", py, app, ROOT, DB_TENANCY, TENANT_HOSTS,
                    {"DJANGO_SETTINGS_MODULE": "bench.tenant_settings"})
        )  # fmt: skip
        for r in range(1, ROUNDS + 1):
            print(f"round {r}", flush=True)
            run("plain", plain, ["b00.localhost"])
            run("engine, 1 tenant", engine, ["b00.localhost"])
            run("engine, 50 tenants", engine, TENANT_HOSTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
