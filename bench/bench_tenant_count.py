"""Does throughput fall as the number of tenants grows? req/s and p99 over 10, 1k and 10k.

Normally started by ``bench/run_tenant_count.sh``. Creates ``--tenants`` schema tenants
``b00``, ``b01``, ... on ``<id>.localhost`` (cloned from the template, each with its marker
row), serves the HTTP bench's view (``/item/``: one ``aget()``) from one uvicorn worker with the
same pool as the other benchmarks, and drives it with wrk rotating the Host over the first 10,
1,000 and all tenants, the three interleaved in each round so the machine's drift hits them
alike. Every rotation is compared with the 10-tenant run of its round. Before and after,
every tenant's host is requested once and must answer its own marker (before: so that the
registry holds every tenant when the runs start); wrk must see no error.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from bench.harness import (
    OUT,
    ROOT,
    Server,
    Variant,
    WrkResult,
    append_results,
    log,
    same_round,
    wrk_cmd,
    wrk_with_cpu,
)

SETTINGS = "bench.count_settings"


def seed(count: int) -> float:
    """Create (or keep) tenants b00..b<count-1>; return the seconds it took."""
    code = f"import bench.bench_tenant_count as b; b._seed_here({count})"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS}
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    return time.monotonic() - t0


def _seed_here(count: int) -> None:
    import django

    django.setup()
    from django.db import connections

    from demo.seed import create_tenant, ensure_database, migrate_public
    from omnitenant_async.provisioning.clone import migrate_template

    ensure_database()
    migrate_public()
    migrate_template()

    def create(i: int) -> None:
        tenant_id = f"b{i:02d}"
        try:
            create_tenant(tenant_id, domains=[f"{tenant_id}.localhost"])
        finally:
            connections.close_all()
        if (i + 1) % 1000 == 0:
            log(f"{i + 1} tenants")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(create, range(count)))


class CountRun(WrkResult):
    cpu_ms: float


def measure(server: Server, hosts: int, seconds: int) -> CountRun:
    cmd = wrk_cmd(server.port, server.variant.hosts[:hosts], seconds)
    result, cpu_ms = wrk_with_cpu(cmd, server.pid)
    if result["errors_total"] or result["errors"]["status"]:
        raise RuntimeError(f"{hosts} tenants: wrk errors {result['errors']}")
    return {**result, "cpu_ms": cpu_ms}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8)
    args = parser.parse_args(argv)
    counts = sorted({min(10, args.tenants), min(1000, args.tenants), args.tenants})
    OUT.mkdir(exist_ok=True)
    started = datetime.now(UTC)
    log(f"seeding {args.tenants} tenants (cloned)")
    seed_s = seed(args.tenants)
    log(f"seeded in {seed_s:.0f} s")
    hosts = [f"b{i:02d}.localhost" for i in range(args.tenants)]
    variant = Variant("count", "schema engine", sys.executable, "bench.asgi:application", ROOT,
                      "", hosts, {"DJANGO_SETTINGS_MODULE": SETTINGS})  # fmt: skip
    server = Server(variant)
    runs: dict[int, list[CountRun]] = {n: [] for n in counts}
    try:
        server.verify()  # warm-up: every tenant resolved once, so the registry holds them all
        for n in counts:  # and the pooled connections meet them
            measure(server, n, 3)
        for r in range(args.rounds):
            for n in counts if r % 2 == 0 else reversed(counts):
                result = measure(server, n, args.duration)
                runs[n].append(result)
                log(f"round {r} {n:>6} tenants {result['rps']:7.1f} req/s "
                    f"p99 {result['latency_us']['p99'] / 1000:6.1f} ms")  # fmt: skip
        server.verify()  # every tenant's host answers its own marker, unknown hosts 404
    finally:
        server.stop()
    text = report(args, started, seed_s, counts, runs)
    print(text)
    (OUT / f"tenant-count-{started:%Y%m%dT%H%M%SZ}.json").write_text(json.dumps(runs, indent=1))
    append_results("\n" + text)
    return 0


def report(
    args: argparse.Namespace,
    started: datetime,
    seed_s: float,
    counts: list[int],
    runs: dict[int, list[CountRun]],
) -> str:
    base = runs[counts[0]]
    lines = [
        "## Throughput vs number of tenants (bench/bench_tenant_count.py)", "",
        f"Run {started:%Y-%m-%d %H:%M} UTC. Command: `bench/run_tenant_count.sh --tenants "
        f"{args.tenants} --rounds {args.rounds} --duration {args.duration}`. {args.tenants} "
        f"schema tenants cloned in {seed_s:.0f} s; one uvicorn worker, pool of 8, wrk `-t2 -c64` "
        f"rotating the Host over the first N tenants (every request a tenant switch), the "
        f"counts interleaved in each round; ratio = req/s over the {counts[0]}-tenant run of the "
        "same round. Every tenant's host answered its own marker afterwards; wrk saw no errors.",
        "",
        "| tenants | req/s (median) | ratio (median; min-max) | p50 ms | p99 ms | CPU ms / req |",
        "|---:|---:|---|---:|---:|---:|",
    ]  # fmt: skip
    for n in counts:
        rs = runs[n]
        ratios = same_round(rs, base)
        med = statistics.median
        lines.append(
            f"| {n} | {med(r['rps'] for r in rs):.0f} | {med(ratios):.3f} "
            f"({min(ratios):.2f}-{max(ratios):.2f}) | "
            f"{med(r['latency_us']['p50'] for r in rs) / 1000:.1f} | "
            f"{med(r['latency_us']['p99'] for r in rs) / 1000:.1f} | "
            f"{med(r['cpu_ms'] for r in rs):.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
