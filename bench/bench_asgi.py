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
import os
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench.bench_http import (
    DB_PLAIN,
    DB_TENANCY,
    LUA,
    OUT,
    ROOT,
    TENANT_HOSTS,
    UVICORN_FLAGS,
    Server,
    Variant,
    log,
    lua_args,
    proc_cpu,
    run_wrk,
    seed_ours,
    versions,
)
from bench.common import pool_options

VIEWS = {"async": "/item/", "sync": "/item-sync/"}


class AsgiVariant(Variant):
    def expected_marker(self, host: str) -> str:
        return "plain" if not self.key.startswith("tenant") else host.split(".")[0]


def build_variants() -> list[Variant]:
    py, app = sys.executable, "bench.asgi_entry:application"
    env = {"DJANGO_SETTINGS_MODULE": "bench.asgi_settings"}
    plain = {**env, "OMNITENANT_BENCH_TENANT": "0"}
    tenant = {**env, "OMNITENANT_BENCH_TENANT": "1"}
    return [
        AsgiVariant("django", "plain Django + pool, Django's ASGIHandler", py, app, ROOT,
                    DB_PLAIN, ["localhost"], {**plain, "OMNITENANT_BENCH_ENTRY": "django"}),
        AsgiVariant("ours", "plain Django + pool, omnitenant_async.asgi", py, app, ROOT,
                    DB_PLAIN, ["localhost"], {**plain, "OMNITENANT_BENCH_ENTRY": "ours"}),
        AsgiVariant("tenant-django", "50 schema tenants, Django's ASGIHandler", py, app, ROOT,
                    DB_TENANCY, TENANT_HOSTS, {**tenant, "OMNITENANT_BENCH_ENTRY": "django"}),
        AsgiVariant("tenant-ours", "50 schema tenants, omnitenant_async.asgi", py, app, ROOT,
                    DB_TENANCY, TENANT_HOSTS, {**tenant, "OMNITENANT_BENCH_ENTRY": "ours"}),
    ]  # fmt: skip


def threads_alive(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def wrk_cmd(args: argparse.Namespace, server: Server, path: str, seconds: int) -> list[str]:
    url = f"http://127.0.0.1:{server.port}{path}"
    return [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--timeout", "10s",
        "-s", str(LUA), url, "--", *lua_args(server.variant.hosts),
    ]  # fmt: skip


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if not os.environ.get("OMNITENANT_PG_PORT") or shutil.which("wrk") is None:
        log("OMNITENANT_PG_PORT not set or wrk missing: run bench/run_asgi.sh")
        return 2
    OUT.mkdir(exist_ok=True)
    started, t0 = datetime.now(UTC), time.monotonic()
    seed_ours()
    variants = build_variants()
    servers: dict[str, Server] = {}
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        for v in variants:
            servers[v.key] = Server(v)
        for server in servers.values():
            server.verify()
        for r in range(args.rounds):
            for view, path in VIEWS.items():
                for key, server in servers.items():
                    run_wrk(wrk_cmd(args, server, path, args.warmup))
                    cpu0 = proc_cpu(server.proc.pid)
                    result = run_wrk(wrk_cmd(args, server, path, args.duration))
                    n = max(result["requests"], 1)
                    result["cpu_ms"] = 1000 * (proc_cpu(server.proc.pid) - cpu0) / n
                    result["threads"] = threads_alive(server.proc.pid)
                    result["round"] = r
                    runs.setdefault(f"{view}:{key}", []).append(result)
                    log(
                        f"round {r} {view:5s} {key:13s} {result['rps']:8.1f} req/s "
                        f"p50 {result['latency_us']['p50'] / 1000:6.1f} ms "
                        f"p99 {result['latency_us']['p99'] / 1000:6.1f} ms "
                        f"CPU {result['cpu_ms']:.3f} ms/req threads {result['threads']} "
                        f"errors {result['errors_total']}"
                    )
        for key, server in servers.items():
            server.verify()
            if "Traceback" in server.log_path.read_text():
                raise RuntimeError(f"{key}: traceback in {server.log_path}")
    finally:
        for server in servers.values():
            server.stop()
    labels = {v.key: v.label for v in variants}
    lines = [
        f"Run {started:%Y-%m-%d %H:%M UTC}, {time.monotonic() - t0:.0f} s; {os.cpu_count()} "
        "CPUs, shared VM; wrk, uvicorn and PostgreSQL on the same machine.",
        "",
        f"Command: `{os.environ.get('OMNITENANT_BENCH_COMMAND') or 'python -m bench.bench_asgi'}`",
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
    summary: dict[str, Any] = {}
    for view in VIEWS:
        base = runs[f"{view}:django"]
        for v in variants:
            rs = runs[f"{view}:{v.key}"]
            ratios = [a["rps"] / b["rps"] for a, b in zip(rs, base, strict=True)]
            s = {
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
    text = "\n".join(lines) + "\n"
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    (OUT / f"asgi-{stamp}.md").write_text(text)
    (OUT / f"asgi-{stamp}.json").write_text(json.dumps({"summary": summary, "runs": runs}))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
