"""WebSocket benchmark of ``omnitenant_async.channels`` under a real uvicorn, loopback only.

    OMNITENANT_PG_HOST=127.0.0.1 OMNITENANT_PG_PORT=5432 \\
        .venv/bin/python -m bench.bench_channels [--connections 50] [--seconds 1.5] [--rounds 6]

It seeds its own database (``OMNITENANT_BENCH_CHANNELS_DB``, default
``omnitenant_bench_channels``, dropped and re-created) with 5 schema tenants, starts uvicorn
(one worker) on ``bench.channels_app`` and drives it with ``websockets`` clients in
``--clients`` processes. Every connection sends a message, waits for the reply (checked), and
sends the next, for ``--seconds`` after a short warm-up; its tenant comes from its Host.

- echo: the same consumer without the mixin (``plain``) and with it (``mixin``), both behind
  the tenant middleware; ``bare`` has neither (Channels alone) for reference.
- db: a handler that reads the tenant's marker and inserts a note, on Channels' one shared DB
  thread (``db-shared``) or over ``--db-threads`` threads (``db-threads``).

Each round runs the pair as A B B A (echo: plain mixin bare mixin plain), so the ratio of a
round compares slices run side by side in time; the median over rounds is reported with its
range. The whole run is bounded by ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import statistics
import sys
import time
from multiprocessing.pool import Pool
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypedDict

from bench.harness import OUT, Process, free_port, proc_cpu
from bench.harness import log as _log

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

DB_NAME = os.environ.get("OMNITENANT_BENCH_CHANNELS_DB", "omnitenant_bench_channels")
TENANTS = [f"cb{i}" for i in range(5)]
PATHS = {
    "plain": "/ws/plain/",
    "mixin": "/ws/mixin/",
    "bare": "/bare/",
    "db-shared": "/ws/db-shared/",
    "db-threads": "/ws/db-threads/",
}


def log(msg: str) -> None:
    _log(msg, "bench_channels")


def seed() -> None:
    """A fresh database with the tenants, each holding its marker row."""
    import django

    os.environ["OMNITENANT_PGDATABASE"] = DB_NAME
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
    django.setup()
    from django.db import connections

    from demo.seed import create_tenant, ensure_database, migrate_public

    ensure_database(recreate=True)
    migrate_public()
    for tenant_id in TENANTS:
        create_tenant(tenant_id, domains=[f"{tenant_id}.localhost"])
    connections.close_all()


def start_server(db_threads: int) -> Process:
    """uvicorn (one worker) on bench.channels_app, with the in-memory channel layer."""
    port = free_port()
    env = {
        **os.environ,
        "OMNITENANT_PGDATABASE": DB_NAME,
        "OMNITENANT_POOL_MIN": "16",
        "OMNITENANT_POOL_MAX": "16",
        "OMNITENANT_REDIS_URL": "",  # in-memory channel layer: one process
        "OMNITENANT_BENCH_DB_THREADS": str(db_threads),
    }
    cmd = [sys.executable, "-m", "uvicorn", "bench.channels_app:application",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--log-level", "warning", "--no-access-log"]  # fmt: skip
    return Process("uvicorn", cmd, port, env, OUT / "channels-uvicorn.log")


class Drive(TypedDict):
    latencies: list[float]
    errors: int
    total: int


class Measured(TypedDict):
    msgs_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu: float
    cpu_us_per_msg: float


async def _drive(port: int, path: str, hosts: list[str], seconds: float, warmup: float) -> Drive:
    import websockets

    sockets = [
        await websockets.connect(f"ws://{host}:{port}{path}", host="127.0.0.1", max_queue=None)
        for host in hosts
    ]
    latencies: list[float] = []
    errors = total = 0
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds

    async def loop(ws: ClientConnection, host: str) -> None:
        nonlocal errors, total
        tenant, n = host.split(".")[0], 0
        while (now := time.perf_counter()) < stop_at:
            n += 1
            payload = f"{tenant}-{n}"
            await ws.send(payload)
            reply = await ws.recv()
            total += 1
            expected = tenant if "db" in path else payload
            if reply != expected:
                errors += 1
            if now >= measure_from:
                latencies.append(time.perf_counter() - now)

    await asyncio.gather(*(loop(ws, host) for ws, host in zip(sockets, hosts, strict=True)))
    await asyncio.gather(*(ws.close() for ws in sockets))
    return {"latencies": latencies, "errors": errors, "total": total}


def client(args: tuple[int, str, list[str], float, float]) -> Drive:
    return asyncio.run(_drive(*args))


def measure(pool: Pool, server: Process, variant: str, args: argparse.Namespace) -> Measured:
    hosts = [f"{TENANTS[i % len(TENANTS)]}.localhost" for i in range(args.connections)]
    shares = [hosts[i :: args.clients] for i in range(args.clients)]
    cpu_before, wall_before = proc_cpu(server.pid), time.perf_counter()
    jobs = [(server.port, PATHS[variant], share, args.seconds, args.warmup) for share in shares]
    results = pool.map(client, jobs)
    wall = time.perf_counter() - wall_before
    latencies = sorted(lat for r in results for lat in r["latencies"])
    errors = sum(r["errors"] for r in results)
    total = sum(r["total"] for r in results)  # with the warm-up: all the server's CPU went there
    if errors:
        raise AssertionError(f"{variant}: {errors} replies were wrong (another tenant's data?)")
    return {
        "msgs_per_s": len(latencies) / args.seconds,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "server_cpu": (cpu := proc_cpu(server.pid) - cpu_before) / wall,
        "cpu_us_per_msg": 1e6 * cpu / total,
    }


type Runs = dict[str, list[Measured]]


def run_rounds(
    pool: Pool, server: Process, pair: tuple[str, str], args: argparse.Namespace, extra: str = ""
) -> tuple[Runs, dict[str, list[float]]]:
    """ABBA rounds of the pair (plus ``extra`` once in the middle); ratios within each round."""
    base, other = pair
    runs: Runs = {v: [] for v in (base, other, extra) if v}
    ratios: dict[str, list[float]] = {}
    for round_ in range(args.rounds):
        order = [base, other, *([extra] if extra else []), other, base]
        got: dict[str, list[Measured]] = {v: [] for v in runs}
        for variant in order:
            got[variant].append(result := measure(pool, server, variant, args))
            runs[variant].append(result)
            log(f"round {round_ + 1} {variant:10s} {result['msgs_per_s']:8.0f} msg/s  "
                f"p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms  server CPU "
                f"{result['server_cpu']:.2f}, {result['cpu_us_per_msg']:.0f} µs/msg")  # fmt: skip
        for variant in runs:
            for key in ("msgs_per_s", "cpu_us_per_msg"):
                mean = statistics.mean(r[key] for r in got[variant])
                ratios.setdefault(f"{variant}:{key}", []).append(
                    mean / statistics.mean(r[key] for r in got[base])
                )
    return runs, ratios


def summary(runs: Runs, ratios: dict[str, list[float]]) -> list[str]:
    lines = [
        "| variant | msg/s | p50 ms | p99 ms | server CPU µs/msg | msg/s ratio | CPU/msg ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant, results in runs.items():
        med = {
            k: statistics.median(r[k] for r in results)
            for k in ("msgs_per_s", "p50_ms", "p99_ms", "cpu_us_per_msg")
        }
        cells = []
        for key in ("msgs_per_s", "cpu_us_per_msg"):
            got = ratios[f"{variant}:{key}"]
            cells.append(f"{statistics.median(got):.3f} ({min(got):.2f}-{max(got):.2f})")
        lines.append(
            f"| {variant} | {med['msgs_per_s']:.0f} | {med['p50_ms']:.2f} | {med['p99_ms']:.2f} "
            f"| {med['cpu_us_per_msg']:.0f} | {cells[0]} | {cells[1]} |"
        )
    return lines


def dispatch_overhead(n: int = 100_000) -> tuple[float, float]:
    """µs per ``dispatch`` of a no-op consumer without and with the mixin (best of 5)."""
    from omnitenant_async import TenantState
    from omnitenant_async.channels import TenantConsumerMixin

    class Base:
        async def dispatch(self, message: dict[str, Any]) -> None:
            pass

    class Mixed(TenantConsumerMixin, Base):
        pass

    mixed = Mixed()
    mixed._tenant_state, mixed._threads, mixed._db_executor = TenantState("cb0"), 0, None
    message = {"type": "websocket.receive", "text": "x"}

    async def best(consumer: Base) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(n):
                await consumer.dispatch(message)
            times.append((time.perf_counter() - start) / n * 1e6)
        return min(times)

    async def both() -> tuple[float, float]:
        return await best(Base()), await best(mixed)

    return asyncio.run(both())


def _out_of_time(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError("bench_channels ran out of time (--timeout); the server is stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--db-threads", type=int, default=8)
    parser.add_argument("--timeout", type=int, default=600, help="abort the run after this")
    parser.add_argument("--parts", default="echo,db", help="echo, db or both (default)")
    parser.add_argument("--json", type=Path, help="also write the raw runs here")
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, _out_of_time)
    signal.alarm(args.timeout)
    log(f"seeding {DB_NAME} with {len(TENANTS)} tenants")
    seed()
    server = start_server(args.db_threads)
    parts: dict[str, tuple[Runs, dict[str, list[float]]]] = {}
    try:
        with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
            if "echo" in args.parts:
                log(f"echo: {args.connections} connections over {len(TENANTS)} tenants")
                parts["echo"] = run_rounds(pool, server, ("plain", "mixin"), args, extra="bare")
            if "db" in args.parts:
                log(f"db: shared thread vs {args.db_threads} threads")
                parts["db"] = run_rounds(pool, server, ("db-shared", "db-threads"), args)
    finally:
        server.stop()
    load = os.getloadavg()[0]
    print(f"\nnproc={os.cpu_count()} load={load:.1f} connections={args.connections} "
          f"clients={args.clients} seconds={args.seconds} rounds={args.rounds} "
          f"db_threads={args.db_threads}")  # fmt: skip
    if "echo" in parts:
        print("\nEcho (ratios against `plain`, the same consumer without the mixin):\n")
        print("\n".join(summary(*parts["echo"])))
        plain_us, mixin_us = dispatch_overhead()
        per_msg = statistics.median(r["cpu_us_per_msg"] for r in parts["echo"][0]["plain"])
        print(f"\nDispatch wrapper alone (no-op handler, best of 5): {plain_us:.2f} µs without "
              f"the mixin, {mixin_us:.2f} µs with it: +{mixin_us - plain_us:.2f} µs per message, "
              f"{100 * (mixin_us - plain_us) / per_msg:.1f}% of the {per_msg:.0f} µs of server "
              "CPU a plain echo message costs above.")  # fmt: skip
    if "db" in parts:
        print("\nDB handler (ratios against `db-shared`, Channels' one DB thread):\n")
        print("\n".join(summary(*parts["db"])))
    if args.json:
        args.json.write_text(json.dumps({**parts, "args": vars(args)}, default=str))


if __name__ == "__main__":
    main()
