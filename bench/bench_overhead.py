"""CPU cost of the tenancy layer per request and per query, measured in one process.

    DJANGO_SETTINGS_MODULE=bench.overhead_settings python -m bench.bench_overhead

Needs the databases seeded by ``bench.seed`` (``bench_http`` runs it and then this). Times are
CPU time (``thread_time`` of this thread, plus the PostgreSQL backend's CPU from ``/proc`` for
queries), so other load on a shared machine barely moves them. Variants are interleaved over
several rounds and the medians printed as JSON:

- ``middleware_us``: ``TenantMiddleware`` around a trivial async view, minus the bare view;
- ``query``: one ``Marker.objects.get()`` on a kept connection: stock backend on the plain
  database; the schema engine with the same tenant each time (no SET); the engine switching
  tenant every query with ``PIGGYBACK_SEARCH_PATH`` on (SET in the same message) and off.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TypedDict

import django
from django.http import HttpRequest, HttpResponse

from bench.harness import proc_cpu

ROUNDS = 5


class QueryCost(TypedDict):
    client_cpu_us: float
    pg_cpu_us: float
    wall_us: float


class Overhead(TypedDict):
    middleware_us: float
    query: dict[str, QueryCost]
    n: int


def middleware_cost(n: int) -> float:
    """µs of CPU that TenantMiddleware adds to a request whose tenant is cached."""
    from django.test import RequestFactory

    from bench.seed import TENANT_IDS
    from omnitenant_async.middleware import TenantMiddleware

    response = HttpResponse(b"{}")

    async def view(request: HttpRequest) -> HttpResponse:
        return response

    middleware = TenantMiddleware(view)
    factory = RequestFactory()

    async def loop(handler: Callable[[HttpRequest], Awaitable[HttpResponse]]) -> float:
        requests = [
            factory.get("/item/", HTTP_HOST=f"{TENANT_IDS[i % len(TENANT_IDS)]}.localhost")
            for i in range(n)
        ]
        t0 = time.thread_time_ns()
        for request in requests:
            await handler(request)
        return (time.thread_time_ns() - t0) / n / 1000

    async def measure() -> list[float]:
        await loop(middleware)  # warm the registry
        diffs = []
        for _ in range(ROUNDS):
            diffs.append(await loop(middleware) - await loop(view))
        return diffs

    return statistics.median(asyncio.run(measure()))


def query_costs(n: int) -> dict[str, QueryCost]:
    """CPU µs per ``Marker.objects.get()``: client thread and PostgreSQL backend."""
    from django.db import connections
    from django.test import override_settings

    from bench.seed import TENANT_IDS
    from demo.notes.models import Marker
    from omnitenant_async import tenant_context
    from omnitenant_async.registry import registry

    states = [registry.get_by_domain(f"{t}.localhost") for t in TENANT_IDS]
    pb_config = {**django.conf.settings.OMNITENANT_CONFIG, "PIGGYBACK_SEARCH_PATH": True}
    no_pb_config = {**pb_config, "PIGGYBACK_SEARCH_PATH": False}

    def plain() -> None:
        for _ in range(n):
            Marker.objects.using("plain").get()

    def same_tenant() -> None:
        with tenant_context(states[0]):
            for _ in range(n):
                Marker.objects.using("engine").get()

    def switching() -> None:
        for i in range(n):
            with tenant_context(states[i % len(states)]):
                Marker.objects.using("engine").get()

    def switching_no_pb() -> None:
        with override_settings(OMNITENANT_CONFIG=no_pb_config):
            switching()

    def switching_pb() -> None:
        with override_settings(OMNITENANT_CONFIG=pb_config):
            switching()

    cases: dict[str, tuple[str, Callable[[], None]]] = {
        "plain Django": ("plain", plain),
        "engine, same tenant": ("engine", same_tenant),
        "engine, tenant switch every query, piggyback": ("engine", switching_pb),
        "engine, tenant switch every query, no piggyback": ("engine", switching_no_pb),
    }
    samples: dict[str, list[tuple[float, float, float]]] = {k: [] for k in cases}
    for alias in ("plain", "engine"):
        connections[alias].ensure_connection()
    for _alias, func in cases.values():  # warm-up
        func()
    for _ in range(ROUNDS):
        for key, (alias, func) in cases.items():
            pid = connections[alias].connection.info.backend_pid
            pg0, t0, w0 = proc_cpu(pid), time.thread_time_ns(), time.perf_counter_ns()
            func()
            client = (time.thread_time_ns() - t0) / n / 1000
            wall = (time.perf_counter_ns() - w0) / n / 1000
            samples[key].append((client, (proc_cpu(pid) - pg0) * 1e6 / n, wall))
    return {
        key: {
            "client_cpu_us": statistics.median(s[0] for s in rows),
            "pg_cpu_us": statistics.median(s[1] for s in rows),
            "wall_us": statistics.median(s[2] for s in rows),
        }
        for key, rows in samples.items()
    }


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.overhead_settings")
    django.setup()
    n = int(os.environ.get("OMNITENANT_BENCH_OVERHEAD_N", "2000"))
    result = Overhead(middleware_us=middleware_cost(n), query=query_costs(n), n=n)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
