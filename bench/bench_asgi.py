"""Django's ASGI handler vs omnitenant_async.asgi (reused request threads), in one run.

Normally started by ``bench/run_asgi.sh``. Four servers (uvicorn, one worker, the same pool,
``bench/common.py``), each driven on an async view (``/item/``: one ``aget()``) and a sync view
(``/item-sync/``: one ``get()``):

- ``django``: plain Django (stock engine, one Host), Django's ``ASGIHandler`` - the baseline;
- ``ours``: plain Django through ``omnitenant_async.asgi.get_asgi_application()``;
- ``tenant-django``: the schema engine + ``TenantMiddleware``, Host rotating over 50 tenants,
  Django's handler;
- ``tenant-ours``: the same through our entry point.

Each round runs every (view, server) pair once, in a fixed order; a run's ratio is its req/s
over the baseline's (same view) in the same round. Medians over rounds are reported, with
CPU time of the uvicorn process per request, p50/p99 and the threads alive after the run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import TypedDict

from bench.common import pool_options
from bench.harness import (
    DB_PLAIN,
    DB_TENANCY,
    ROOT,
    TENANT_HOSTS,
    UVICORN_FLAGS,
    Load,
    Run,
    Servers,
    Variant,
    WrkResult,
    log,
    preflight,
    run_wrk,
    same_round,
    seed_ours,
    versions,
    wrk_with_cpu,
)

VIEWS = {"async": "/item/", "sync": "/item-sync/"}


def build_variants() -> list[Variant]:
    py, app = sys.executable, "bench.asgi_entry:application"
    env = {"DJANGO_SETTINGS_MODULE": "bench.asgi_settings"}
    plain = {**env, "OMNITENANT_BENCH_TENANT": "0"}
    tenant = {**env, "OMNITENANT_BENCH_TENANT": "1"}
    return [
        Variant("django", "plain Django + pool, Django's ASGIHandler", py, app, ROOT,
                DB_PLAIN, ["localhost"], {**plain, "OMNITENANT_BENCH_ENTRY": "django"}),
        Variant("ours", "plain Django + pool, omnitenant_async.asgi", py, app, ROOT,
                DB_PLAIN, ["localhost"], {**plain, "OMNITENANT_BENCH_ENTRY": "ours"}),
        Variant("tenant-django", "50 schema tenants, Django's ASGIHandler", py, app, ROOT,
                DB_TENANCY, TENANT_HOSTS, {**tenant, "OMNITENANT_BENCH_ENTRY": "django"}),
        Variant("tenant-ours", "50 schema tenants, omnitenant_async.asgi", py, app, ROOT,
                DB_TENANCY, TENANT_HOSTS, {**tenant, "OMNITENANT_BENCH_ENTRY": "ours"}),
    ]  # fmt: skip


def threads_alive(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


class AsgiRun(WrkResult):
    cpu_ms: float
    threads: int
    round: int


class Summary(TypedDict):
    rps: float
    ratio: float
    ratio_min: float
    ratio_max: float
    cpu_ms: float
    p50: float
    p99: float
    threads: int
    errors: int


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    Load.add_arguments(p, duration=8, rounds=3)
    ns = p.parse_args(argv)
    args = Load(ns.duration, ns.warmup, ns.rounds, ns.connections, ns.threads)
    if not preflight("bench/run_asgi.sh"):
        return 2
    run = Run("asgi")
    seed_ours()
    variants = build_variants()
    runs: dict[str, list[AsgiRun]] = {}
    with Servers() as servers:
        for v in variants:
            servers.start(v)
        for server in servers.values():
            server.verify()
        for r in range(args.rounds):
            for view, path in VIEWS.items():
                for key, server in servers.items():
                    run_wrk(args.wrk(server, args.warmup, path=path))
                    cmd = args.wrk(server, args.duration, path=path)
                    result, cpu_ms = wrk_with_cpu(cmd, server.pid)
                    threads = threads_alive(server.pid)
                    runs.setdefault(f"{view}:{key}", []).append(
                        {**result, "cpu_ms": cpu_ms, "threads": threads, "round": r}
                    )
                    log(
                        f"round {r} {view:5s} {key:13s} {result['rps']:8.1f} req/s "
                        f"p50 {result['latency_us']['p50'] / 1000:6.1f} ms "
                        f"p99 {result['latency_us']['p99'] / 1000:6.1f} ms "
                        f"CPU {cpu_ms:.3f} ms/req threads {threads} "
                        f"errors {result['errors_total']}"
                    )
        servers.check()
    labels = {v.key: v.label for v in variants}
    meta = run.meta(argv, "wrk, uvicorn and PostgreSQL")
    lines = [
        f"Run {meta['started']}, {meta['elapsed_s']:.0f} s; {meta['machine']}.",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"wrk `-t{args.threads} -c{args.connections}`, {args.rounds} rounds x {args.duration} s "
        f"per (view, variant) after {args.warmup} s warm-up; uvicorn `{' '.join(UVICORN_FLAGS)}`; "
        f"`OPTIONS['pool'] = {json.dumps(pool_options())}`; ASGI_THREADS default (= pool "
        f"max_size). Versions: {json.dumps(versions(sys.executable))}.",
        "",
        "| view | variant | req/s (median) | ratio to plain Django + pool (median; min-max) "
        "| CPU ms / request | p50 ms | p99 ms | threads alive | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    summary: dict[str, Summary] = {}
    for view in VIEWS:
        base = runs[f"{view}:django"]
        for v in variants:
            rs = runs[f"{view}:{v.key}"]
            ratios = same_round(rs, base)
            s: Summary = {
                "rps": statistics.median(x["rps"] for x in rs),
                "ratio": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "cpu_ms": statistics.median(x["cpu_ms"] for x in rs),
                "p50": statistics.median(x["latency_us"]["p50"] for x in rs) / 1000,
                "p99": statistics.median(x["latency_us"]["p99"] for x in rs) / 1000,
                "threads": max(x["threads"] for x in rs),
                "errors": sum(x["errors_total"] for x in rs),
            }
            summary[f"{view}:{v.key}"] = s
            lines.append(
                f"| {view} | {labels[v.key]} | {s['rps']:.0f} | {s['ratio']:.2f} "
                f"({s['ratio_min']:.2f}-{s['ratio_max']:.2f}) | {s['cpu_ms']:.3f} | "
                f"{s['p50']:.1f} | {s['p99']:.1f} | {s['threads']} | {s['errors']} |"
            )
    run.write("\n".join(lines) + "\n", {"summary": summary, "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
