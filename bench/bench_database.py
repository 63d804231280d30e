"""HTTP benchmark of database tenants against schema tenants and plain Django, under wrk.

Normally started by ``bench/run_database.sh`` (wrk, a throwaway PostgreSQL). Directly, with a
server up and OMNITENANT_PG_HOST/PORT exported::

    .venv/bin/python -m bench.bench_database [--duration 10] [--rounds 3] [--many 500]

Every variant serves the same async view (``GET /item/``: one ``Marker.objects.aget()``) with
uvicorn, one worker, started and driven by ``bench/harness.py`` (wrk, ``rotate_hosts.lua``):

- plain Django (stock ``django.db.backends.postgresql``, one Host), the baseline;
- schema tenants b00..b49 (the schema engine), Host rotating per request;
- database tenants d00..d49, one database each, 50 pools x 2 (every tenant keeps its pool);
- database tenants d00..d<many-1>, the same 50 pools x 2: the LRU closes a pool for almost
  every request, so this is the cost of more tenants than pools.

Rounds alternate plain Django with the others; a variant's ratio is its req/s over the mean of
the plain runs before and after it. While each run lasts, a thread samples the server
connections the variant holds (``pg_stat_activity``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass

import psycopg

from bench.common import conninfo
from bench.harness import (
    DB_PLAIN,
    DB_TENANCY,
    ROOT,
    TENANT_HOSTS,
    Load,
    LoadMeta,
    PairedSummary,
    RoundRun,
    Run,
    RunMeta,
    Server,
    Servers,
    Variant,
    describe_load,
    log,
    paired,
    paired_summary,
    preflight,
    report_head,
    round_order,
    run_logged,
    run_wrk,
    seed_ours,
    versions,
    wrk_with_cpu,
)

DB_MASTER = os.environ.get("OMNITENANT_BENCH_DBS_DB", "omnitenant_bench_dbs")
TENANT_DBS = r"^omnitenant_bench_d[0-9]+$"  # d00.. (not the master, not the template)
POOLS, POOL_SIZE = 50, 2


def db_hosts(count: int) -> list[str]:
    return [f"d{i:02d}.localhost" for i in range(count)]


@dataclass
class Bench(Load):
    many: int
    sample_every: float = 0.02


def build_variants(many: int) -> list[Variant]:
    py = sys.executable
    app = "bench.asgi:application"
    dbs = {
        "DJANGO_SETTINGS_MODULE": "bench.database_settings",
        "OMNITENANT_BENCH_DB_MAX_POOLS": str(POOLS),
        "OMNITENANT_BENCH_DB_POOL_SIZE": str(POOL_SIZE),
    }
    return [
        Variant("plain", "plain Django", py, app, ROOT, DB_PLAIN, ["localhost"],
                {"DJANGO_SETTINGS_MODULE": "bench.plain_settings"}),
        Variant("schema", "schema tenants (50)", py, app, ROOT, DB_TENANCY, TENANT_HOSTS,
                {"DJANGO_SETTINGS_MODULE": "bench.tenant_settings"}),
        Variant("db50", f"database tenants (50 DBs, {POOLS} pools x {POOL_SIZE})", py, app,
                ROOT, DB_MASTER, db_hosts(50), {**dbs, "OMNITENANT_BENCH_APP_NAME": "bench-db50"}),
        Variant(f"db{many}", f"database tenants ({many} DBs, {POOLS} pools x {POOL_SIZE})", py,
                app, ROOT, DB_MASTER, db_hosts(many),
                {**dbs, "OMNITENANT_BENCH_APP_NAME": f"bench-db{many}"}),
    ]  # fmt: skip


def held_query(variant: Variant) -> tuple[str, list[str]]:
    """SQL counting the server connections a variant's process holds.

    Database variants: to any tenant database, from this process (its ``application_name``;
    the other variant's server holds its own idle pools meanwhile). Others: to their database.
    """
    base = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND "
    if variant.key.startswith("db"):
        return base + "datname ~ %s AND application_name = %s", [
            TENANT_DBS,
            variant.env["OMNITENANT_BENCH_APP_NAME"],
        ]
    return base + "datname = %s", [variant.db]


class HeldSampler:
    """Samples a variant's server connections in a thread while a run lasts."""

    def __init__(self, variant: Variant, every: float) -> None:
        self.query, self.params = held_query(variant)
        self.every = every
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HeldSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(conninfo(), autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute(self.query, self.params).fetchone()
                self.samples.append(int(row[0]) if row else 0)
                self._stop.wait(self.every)


class DatabaseRun(RoundRun):
    app_cpu_ms_per_request: float
    held_mean: float
    held_max: int


def measure(bench: Bench, server: Server, r: int) -> DatabaseRun:
    with HeldSampler(server.variant, bench.sample_every) as held:
        result, cpu_ms = wrk_with_cpu(bench.wrk(server, bench.duration), server.pid)
    return {
        **result,
        "app_cpu_ms_per_request": cpu_ms,
        "held_mean": statistics.mean(held.samples) if held.samples else 0.0,
        "held_max": max(held.samples, default=0),
        "round": r,
    }


def timed_rounds(bench: Bench, servers: Servers) -> dict[str, list[DatabaseRun]]:
    runs: dict[str, list[DatabaseRun]] = {k: [] for k in servers}
    order = round_order(list(servers), bench.rounds)
    for i, (r, key) in enumerate(order, 1):
        server = servers[key]
        run_wrk(bench.wrk(server, bench.warmup))
        result = measure(bench, server, r)
        runs[key].append(result)
        log(
            f"run {i}/{len(order)} round {r} {key:8s} {result['rps']:8.1f} req/s  "
            f"p50 {result['latency_us']['p50'] / 1000:6.1f} ms  "
            f"held {result['held_mean']:5.1f} (max {result['held_max']})  "
            f"errors {result['errors_total']}"
        )
    return runs


class Summary(PairedSummary):
    app_cpu_ms: float
    cpu_ratio_median: float
    cpu_ratios: list[float]
    held_mean: float
    held_max: int


def summarise(runs: dict[str, list[DatabaseRun]]) -> dict[str, Summary]:
    out: dict[str, Summary] = {}
    for key, results in runs.items():
        cpu_ratios = paired(runs, key, lambda r: r["app_cpu_ms_per_request"])
        out[key] = {
            **paired_summary(runs, key),
            "app_cpu_ms": statistics.median(r["app_cpu_ms_per_request"] for r in results),
            "cpu_ratio_median": statistics.median(cpu_ratios),
            "cpu_ratios": [round(x, 3) for x in cpu_ratios],
            "held_mean": statistics.mean(r["held_mean"] for r in results),
            "held_max": max(r["held_max"] for r in results),
        }
    return out


class Meta(RunMeta, LoadMeta):
    versions: str


def report(meta: Meta, variants: list[Variant], summary: dict[str, Summary]) -> str:
    labels = {v.key: v.label for v in variants}
    lines = [
        *report_head(meta),
        f"{describe_load(meta)}, plain Django before each round and once more at the end. "
        f"Master/plain pool `OPTIONS['pool'] = {meta['pool']}`; tenant databases: "
        f"`DATABASE_POOL_MAX_POOLS = {POOLS}`, "
        f"`DATABASE_POOL_SIZE = {POOL_SIZE}` (budget {POOLS * POOL_SIZE} per process). "
        f"Versions: {meta['versions']}.",
        "",
        "| variant | req/s (median) | ratio to plain (median; min-max) | p50 ms | p99 ms "
        "| uvicorn CPU ms / request | CPU ratio to plain (median) "
        "| server connections held (mean; max sampled) | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, s in summary.items():
        lines.append(
            f"| {labels[key]} | {s['rps_median']:.0f} | {s['ratio_median']:.3f} "
            f"({s['ratio_min']:.2f}-{s['ratio_max']:.2f}) | {s['p50_ms']:.0f} | "
            f"{s['p99_ms']:.0f} | {s['app_cpu_ms']:.2f} | {s['cpu_ratio_median']:.3f} | "
            f"{s['held_mean']:.1f}; "
            f"{s['held_max']} | {s['errors']} |"
        )
    lines += [
        "",
        "Per run, in round order: req/s (paired req/s ratio; paired CPU-per-request ratio):",
        "",
    ]
    for key, s in summary.items():
        lines.append(f"- {labels[key]}: {s['rps_runs']} ({s['ratios']}; {s['cpu_ratios']})")
    return "\n".join(lines) + "\n"


def seed_databases(many: int) -> None:
    t0 = time.monotonic()
    run_logged(
        [sys.executable, "-m", "bench.seed_database", str(many)],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "bench.database_settings"},
        name="seed-database",
    )
    log(f"seeded {many} tenant databases in {time.monotonic() - t0:.1f} s")


def parse_args(argv: list[str]) -> Bench:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    Load.add_arguments(p, duration=10, rounds=3)
    p.add_argument("--many", type=int, default=500, help="tenant databases of the LRU variant")
    ns = p.parse_args(argv)
    return Bench(ns.duration, ns.warmup, ns.rounds, ns.connections, ns.threads, ns.many)


def main(argv: list[str]) -> int:
    bench = parse_args(argv)
    if not preflight("bench/run_database.sh"):
        return 2
    run = Run("database")
    seed_ours()
    seed_databases(bench.many)
    variants = build_variants(bench.many)
    with Servers() as servers:
        for v in variants:
            servers.start(v).verify()  # every host answers with its own marker
        runs = timed_rounds(bench, servers)
        servers.check()
    summary = summarise(runs)
    meta: Meta = {
        **run.meta(argv, "wrk, uvicorn and PostgreSQL"),
        **bench.meta(),
        "versions": json.dumps(versions(sys.executable)),
    }
    run.write(report(meta, variants, summary), {"meta": meta, "summary": summary, "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
