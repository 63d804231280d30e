"""HTTP benchmark behind PgBouncer (transaction mode): the schema engine vs plain Django.

Normally started by ``bench/run_pooler.sh`` (wrk, a throwaway PostgreSQL, a PgBouncer in
transaction mode in front of it). Directly, with both up and OMNITENANT_PG_HOST/PORT and
OMNITENANT_PGBOUNCER_TX_PORT exported::

    .venv/bin/python -m bench.bench_pooler [--duration 10] [--rounds 5]

Both variants serve the same async view (``GET /item/``: one ``Marker.objects.aget()``) under
uvicorn with one worker and the same pool (``bench/common.py``), through the same PgBouncer:

- plain Django (stock ``django.db.backends.postgresql``, one fixed Host), the baseline;
- the schema engine with ``POOLER = "transaction"`` (every transaction carries its own
  ``SET LOCAL search_path``), the Host rotating over 50 schema tenants per request.

Rounds alternate plain Django with the engine; a run's ratio is its req/s over the mean of the
plain runs just before and after it; the report gives medians. Every host's answer is checked
(its own marker) before and after the load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.bench_http import (
    DB_PLAIN,
    DB_TENANCY,
    LUA,
    OUT,
    ROOT,
    TENANT_HOSTS,
    QuietWaiter,
    Server,
    Variant,
    log,
    lua_args,
    paired,
    pg_params,
    proc_cpu,
    run_wrk,
    seed_ours,
    versions,
)
from bench.common import pool_options


@dataclass
class Bench:
    duration: int
    warmup: int
    rounds: int
    connections: int
    threads: int
    quiet_below: float
    quiet_budget: float


def direct_dsn() -> str:
    """libpq conninfo of the server itself (the invalidation listener's LISTEN connection)."""
    p = pg_params(DB_TENANCY)
    dsn = f"host={p['host']} port={p['port']} dbname={p['dbname']} user={p['user']}"
    return dsn + (f" password={p['password']}" if "password" in p else "")


class PoolerVariant(Variant):
    def expected_marker(self, host: str) -> str:
        return "plain" if self.key == "pooler-plain" else host.split(".")[0]


def build_variants(bouncer_port: str) -> list[Variant]:
    py = sys.executable
    app = "bench.asgi:application"
    env = {
        "DJANGO_SETTINGS_MODULE": "bench.pooler_settings",
        "OMNITENANT_PG_PORT": bouncer_port,
        "OMNITENANT_INVALIDATION_DSN": direct_dsn(),
    }
    return [
        PoolerVariant("pooler-plain", "plain Django behind PgBouncer", py, app, ROOT, DB_PLAIN,
                ["localhost"], {**env, "OMNITENANT_BENCH_VARIANT": "plain"}),
        PoolerVariant("pooler-engine", 'schema engine, POOLER = "transaction"', py, app, ROOT,
                DB_TENANCY, TENANT_HOSTS, {**env, "OMNITENANT_BENCH_VARIANT": "engine"}),
    ]  # fmt: skip


def wrk_cmd(bench: Bench, server: Server, seconds: int) -> list[str]:
    return [
        "wrk", f"-t{bench.threads}", f"-c{bench.connections}", f"-d{seconds}s",
        "--timeout", "10s", "-s", str(LUA), server.url, "--", *lua_args(server.variant.hosts),
    ]  # fmt: skip


def measure(bench: Bench, server: Server, bouncer_pid: int | None) -> dict[str, Any]:
    app0 = proc_cpu(server.proc.pid)
    bouncer0 = proc_cpu(bouncer_pid) if bouncer_pid else 0.0
    result = run_wrk(wrk_cmd(bench, server, bench.duration))
    n = max(result["requests"], 1)
    result["app_cpu_ms_per_request"] = 1000 * (proc_cpu(server.proc.pid) - app0) / n
    if bouncer_pid:
        result["bouncer_cpu_ms_per_request"] = 1000 * (proc_cpu(bouncer_pid) - bouncer0) / n
    return result


def timed_rounds(
    bench: Bench, servers: dict[str, Server], bouncer_pid: int | None
) -> dict[str, list[dict[str, Any]]]:
    """plain, engine, plain, engine, ..., plain: every engine run has a plain run each side."""
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in servers}
    order = [(r, k) for r in range(bench.rounds) for k in servers]
    order.append((bench.rounds, "plain"))
    quiet = QuietWaiter(bench.quiet_below, bench.quiet_budget)
    for i, (r, key) in enumerate(order, 1):
        server = servers[key]
        idle = quiet.wait()
        run_wrk(wrk_cmd(bench, server, bench.warmup))
        result = measure(bench, server, bouncer_pid)
        result["round"] = r
        result["busy_before"] = idle
        runs[key].append(result)
        log(
            f"run {i}/{len(order)} round {r} {key:7s} {result['rps']:8.1f} req/s  "
            f"p50 {result['latency_us']['p50'] / 1000:6.1f} ms  "
            f"p99 {result['latency_us']['p99'] / 1000:6.1f} ms  "
            f"app CPU {result['app_cpu_ms_per_request']:.2f} ms/req  "
            f"errors {result['errors_total']}  (others before: {idle:.0%})"
        )
    log(f"waited {quiet.waited:.0f} s in all for other load to calm down")
    return runs


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, results in runs.items():
        ratios = paired(runs, key, "rps")
        cpu_ratios = paired(runs, key, "app_cpu_ms_per_request")
        bouncer = [
            r["bouncer_cpu_ms_per_request"] for r in results if "bouncer_cpu_ms_per_request" in r
        ]
        out[key] = {
            "rps_median": statistics.median(r["rps"] for r in results),
            "rps_runs": [round(r["rps"], 1) for r in results],
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "ratios": [round(x, 3) for x in ratios],
            "p50_ms": statistics.median(r["latency_us"]["p50"] for r in results) / 1000,
            "p99_ms": statistics.median(r["latency_us"]["p99"] for r in results) / 1000,
            "app_cpu_ms": statistics.median(r["app_cpu_ms_per_request"] for r in results),
            "cpu_ratio_median": statistics.median(cpu_ratios),
            "bouncer_cpu_ms": statistics.median(bouncer) if bouncer else None,
            "errors": sum(r["errors_total"] for r in results),
        }
    return out


def report(meta: dict[str, Any], variants: list[Variant], summary: dict[str, Any]) -> str:
    labels = {v.key: v.label for v in variants}
    lines = [
        f"Run {meta['started']}, {meta['elapsed_s']:.0f} s in all; {meta['machine']}.",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"wrk `-t{meta['threads']} -c{meta['connections']}`, {meta['rounds']} rounds of "
        f"{meta['duration']} s per variant (after {meta['warmup']} s warm-up each), plain "
        "Django before each engine run and once more at the end. Both variants: "
        f"`OPTIONS['pool'] = {meta['pool']}` to PgBouncer {meta['pgbouncer']} "
        f"(transaction mode, `default_pool_size = {meta['bouncer_pool']}` server connections "
        f"per database). Versions: {meta['versions']}.",
        "",
        "| variant | req/s (median) | ratio to plain (median; min-max) | p50 ms | p99 ms "
        "| uvicorn CPU ms / request | CPU ratio to plain (median) | PgBouncer CPU ms / request "
        "| errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, s in summary.items():
        bouncer = "-" if s["bouncer_cpu_ms"] is None else f"{s['bouncer_cpu_ms']:.3f}"
        lines.append(
            f"| {labels[key]} | {s['rps_median']:.0f} | {s['ratio_median']:.3f} "
            f"({s['ratio_min']:.2f}-{s['ratio_max']:.2f}) | {s['p50_ms']:.0f} | "
            f"{s['p99_ms']:.0f} | {s['app_cpu_ms']:.2f} | {s['cpu_ratio_median']:.3f} | "
            f"{bouncer} | {s['errors']} |"
        )
    lines += ["", "Per run, in round order: req/s (paired req/s ratio):", ""]
    for key, s in summary.items():
        lines.append(f"- {labels[key]}: {s['rps_runs']} ({s['ratios']})")
    return "\n".join(lines) + "\n"


def bouncer_pid(port: str) -> int | None:
    """The pid of the PgBouncer listening on ``port`` (for its CPU time), if it can be found."""
    inodes = set()
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == int(port):
                inodes.add(fields[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return int(pid)
        except OSError:
            continue
    return None


def pgbouncer_version() -> str:
    path = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    except OSError:
        return "(version unknown)"
    return out.splitlines()[0].split()[-1] if out else "(version unknown)"


def parse_args(argv: list[str]) -> Bench:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    p.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each run")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quiet-below", type=float, default=0.25)
    p.add_argument("--quiet-budget", type=float, default=60)
    ns = p.parse_args(argv)
    return Bench(
        ns.duration, ns.warmup, ns.rounds, ns.connections, ns.threads, ns.quiet_below,
        ns.quiet_budget,
    )  # fmt: skip


def main(argv: list[str]) -> int:
    bench = parse_args(argv)
    port = os.environ.get("OMNITENANT_PGBOUNCER_TX_PORT")
    if not os.environ.get("OMNITENANT_PG_PORT") or not port:
        log("OMNITENANT_PG_PORT / OMNITENANT_PGBOUNCER_TX_PORT not set: run bench/run_pooler.sh")
        return 2
    if shutil.which("wrk") is None:
        log("wrk is not installed: run bench/run_pooler.sh, or apt-get install wrk")
        return 2
    OUT.mkdir(exist_ok=True)
    started = datetime.now(UTC)
    t0 = time.monotonic()
    seed_ours()  # directly on the server, not through PgBouncer
    variants = build_variants(port)
    pid = bouncer_pid(port)
    servers: dict[str, Server] = {}
    try:
        for v in variants:
            servers["plain" if v.key == "pooler-plain" else "engine"] = Server(v)
        for server in servers.values():
            server.verify()  # every host answers with its own marker
        runs = timed_rounds(bench, servers, pid)
        for key, server in servers.items():
            server.verify()
            if "Traceback" in server.log_path.read_text():
                raise RuntimeError(f"{key}: traceback in {server.log_path}")
    finally:
        for server in servers.values():
            server.stop()
    summary = summarise(runs)
    summary = {v.key: summary["plain" if v.key == "pooler-plain" else "engine"] for v in variants}
    meta = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_s": time.monotonic() - t0,
        "machine": f"{os.cpu_count()} CPUs, shared VM; wrk, uvicorn, PgBouncer and PostgreSQL "
        "on the same machine",
        "command": os.environ.get("OMNITENANT_BENCH_COMMAND")
        or " ".join(["python -m bench.bench_pooler", *argv]),
        "connections": bench.connections,
        "threads": bench.threads,
        "rounds": bench.rounds,
        "duration": bench.duration,
        "warmup": bench.warmup,
        "pool": json.dumps(pool_options()),
        "pgbouncer": pgbouncer_version(),
        "bouncer_pool": os.environ.get("OMNITENANT_PGBOUNCER_POOL_SIZE", "4"),
        "versions": json.dumps(versions(sys.executable)),
    }
    text = report(meta, variants, summary)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    (OUT / f"pooler-{stamp}.md").write_text(text)
    (OUT / f"pooler-{stamp}.json").write_text(
        json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=1)
    )
    print(text)
    log(f"written {OUT.relative_to(ROOT)}/pooler-{stamp}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
