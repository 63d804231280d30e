"""TenantAwareTask vs Celery's plain Task through a real worker: tasks/s and latency per task.

    bench/run_celery.sh             # starts PostgreSQL and Redis, then runs this

One ``--pool solo`` worker runs both task kinds (so nothing but the task class differs); the
variants alternate over several rounds and the medians are printed as JSON. Throughput: N tasks
queued at once (from a tenant for the aware task), timed until the last result is in. Latency:
one task at a time, queue to result, median.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celery import Task  # Celery ships no type hints: Task is Any to mypy

    from omnitenant_async.models import BaseTenant

ROUNDS, N, LATENCY_N = 5, 1000, 200


def setup() -> BaseTenant:
    os.environ.setdefault("OMNITENANT_PGDATABASE", "omnitenant_bench_celery")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
    import django

    django.setup()
    from demo.seed import create_tenant, ensure_database, migrate_public

    ensure_database(recreate=True)
    migrate_public()
    tenant: BaseTenant = create_tenant("b00")
    return tenant


def start_worker() -> subprocess.Popen[bytes]:
    from demo.celery import app

    app.control.purge()
    cmd = [sys.executable, "-m", "celery", "-A", "demo.celery", "worker", "--pool", "solo",
           "--loglevel", "error", "-n", "bench@127.0.0.1", "--without-gossip",
           "--without-mingle", "--without-heartbeat"]  # fmt: skip
    proc = subprocess.Popen(cmd, env={**os.environ, "OMNITENANT_REGISTRY_TTL": "3600"})
    while not app.control.ping(["bench@127.0.0.1"], timeout=0.5):
        time.sleep(0.2)
    return proc


def throughput(task: Task, tenant: BaseTenant) -> float:
    from omnitenant_async import tenant_context

    start = time.perf_counter()
    with tenant_context(tenant):
        sent = [task.delay() for _ in range(N)]
    for result in sent:
        result.get(timeout=120)
    return N / (time.perf_counter() - start)


def latency_ms(task: Task, tenant: BaseTenant) -> float:
    from omnitenant_async import tenant_context

    times = []
    with tenant_context(tenant):
        for _ in range(LATENCY_N):
            start = time.perf_counter()
            task.delay().get(timeout=30)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    tenant = setup()
    from demo.notes.tasks import plain_noop, tenant_noop

    worker = start_worker()
    try:
        throughput(tenant_noop, tenant), throughput(plain_noop, tenant)  # warm up
        rate: dict[str, list[float]] = {"plain": [], "tenant": []}
        lat: dict[str, list[float]] = {"plain": [], "tenant": []}
        for _ in range(ROUNDS):
            for name, task in (("plain", plain_noop), ("tenant", tenant_noop)):
                rate[name].append(throughput(task, tenant))
                lat[name].append(latency_ms(task, tenant))
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    med = {k: statistics.median(v) for k, v in rate.items()}
    lmed = {k: statistics.median(v) for k, v in lat.items()}
    print(json.dumps({
        "tasks_per_s": med, "ratio": med["tenant"] / med["plain"],
        "ratio_per_round": [t / p for t, p in zip(rate["tenant"], rate["plain"], strict=True)],
        "latency_ms": lmed, "added_latency_ms": lmed["tenant"] - lmed["plain"],
        "rounds": ROUNDS, "tasks_per_round": N,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
