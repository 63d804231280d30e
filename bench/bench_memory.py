"""Memory at scale: the registry per entry, one PostgreSQL backend vs tenants touched, the process.

    bench/run_memory.sh [--tenants 10000] [--threads 3] [--create-budget 600]

On the demo project's apps (demo.notes + the shared apps: 12 tables per tenant, not
bench.scale_app's 40, so that 10,000 clones fit in minutes) with a template schema. Creates N
schema tenants by cloning, in a few threads (stopping at ``--create-budget`` seconds, and saying
so), then:

1. loads every tenant into the registry (by domain, by tenant id) and measures with tracemalloc
   the bytes it holds per entry, unbounded and with ``REGISTRY_MAX_ENTRIES = N / 10``;
2. on ONE pooled connection runs one ORM query in each tenant in turn and, every 500 tenants,
   records that backend's memory contexts (``pg_backend_memory_contexts``) and its RSS;
3. reports this process's RSS and the server's, lets the pool recycle the connection
   (``max_lifetime`` of 5 s here) and measures the fresh backend, then a stretch of one
   checkout per query (as requests do) to show the recycling bounds each backend.

Appends a section to bench/RESULTS.md; drops its database at the end.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import statistics
import threading
import time
import timeit
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from bench.common import drop_database
from bench.harness import RESULTS, append_results

if TYPE_CHECKING:
    from django.db.backends.postgresql.base import DatabaseWrapper

    from omnitenant_async.context import TenantState

LIFETIME = 5.0  # the bench's pool max_lifetime (s), small so that recycling is seen
TEMPLATE = "omnitenant_template"
SAMPLE_EVERY = 500
MB = 1024 * 1024
UNBOUNDED = 10**9
POOL = {"min_size": 1, "timeout": 60}


def configure(threads: int) -> dict[str, object]:
    """Settings: the demo's, a template schema, and a pool that recycles after ``LIFETIME``."""
    from django.conf import settings

    import demo.settings as demo

    values = {k: getattr(demo, k) for k in dir(demo) if k.isupper()}
    default: dict[str, Any] = {**demo.DATABASES["default"]}  # a DATABASES entry
    pool = {**POOL, "max_size": threads + 1, "max_lifetime": LIFETIME}
    default["OPTIONS"] = {**default["OPTIONS"], "pool": pool}
    values["DATABASES"] = {**demo.DATABASES, "default": default}
    config = {
        **demo.OMNITENANT_CONFIG,
        "TEMPLATE_SCHEMA": TEMPLATE,
        "INVALIDATION_LISTEN": False,
        "REGISTRY_TTL": 3600.0,
    }
    values["OMNITENANT_CONFIG"] = config
    settings.configure(**values)
    return config


class ProcMemory(TypedDict):
    VmRSS: int
    RssAnon: int
    RssShmem: int


def proc_status(pid: int | str = "self") -> ProcMemory:
    """VmRSS / RssAnon / RssShmem of a process, in bytes (/proc/<pid>/status; 0 if missing)."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssShmem"):
            found[key] = int(value.split()[0]) * 1024
    return ProcMemory(
        VmRSS=found.get("VmRSS", 0),
        RssAnon=found.get("RssAnon", 0),
        RssShmem=found.get("RssShmem", 0),
    )


def pg_connection() -> DatabaseWrapper:
    """This thread's connection of the default alias: PostgreSQL, with a pool."""
    from django.db import connections
    from django.db.backends.postgresql.base import DatabaseWrapper

    wrapper = connections["default"]
    assert isinstance(wrapper, DatabaseWrapper)
    return wrapper


def tenant_id(i: int) -> str:
    return f"m{i:05d}"


def domain(i: int) -> str:
    return f"{tenant_id(i)}.bench.test"


# -- 0. tenants -------------------------------------------------------------------------------
def create_tenants(n: int, threads: int, budget: float) -> tuple[int, float]:
    """Clone up to n tenants in ``threads`` threads within ``budget`` seconds; (made, seconds)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    from omnitenant_async import use_master_db
    from omnitenant_async.provisioning import get_tenant_backend
    from omnitenant_async.utils import get_domain_model, get_tenant_model

    Tenant, Domain = get_tenant_model(), get_domain_model()
    numbers = itertools.count(1)
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = time.monotonic() + budget

    def worker() -> int:
        made = 0
        try:
            with use_master_db():
                while time.monotonic() < deadline:
                    with lock:
                        i = next(numbers)
                    if i > n:
                        break
                    tenant = Tenant(tenant_id=tenant_id(i), name=f"Memory {i}")
                    how = get_tenant_backend(tenant).create()
                    assert how == "cloned", get_tenant_backend(tenant).provisioned_why
                    made += 1
                    if i % SAMPLE_EVERY == 0:
                        print(f"{i} tenants, {time.perf_counter() - start:.0f} s", flush=True)
        finally:
            connections.close_all()
        return made

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(worker) for _ in range(threads)]
        sum(f.result() for f in futures)
    seconds = time.perf_counter() - start
    with use_master_db():
        ids = sorted(Tenant.objects.values_list("tenant_id", flat=True))
        made_n = len(ids)
        assert ids == [tenant_id(i) for i in range(1, made_n + 1)], "tenants are not contiguous"
        tenants = {t.tenant_id: t for t in Tenant.objects.all()}
        Domain.objects.bulk_create(
            [
                Domain(domain=domain(i), tenant=tenants[tenant_id(i)], is_primary=True)
                for i in range(1, made_n + 1)
            ],
            batch_size=1000,
        )
    return made_n, seconds


# -- 1. registry ------------------------------------------------------------------------------
class Held(TypedDict):
    kind: str
    bound: int
    entries: int
    bytes: int


def registry_held(config: dict[str, object], kind: str, keys: list[str], bound: int) -> Held:
    """Bytes the registry holds after looking up every key (tracemalloc), with this bound."""
    from django.test import override_settings

    from omnitenant_async.registry import registry

    with override_settings(OMNITENANT_CONFIG={**config, "REGISTRY_MAX_ENTRIES": bound}):
        registry.clear()
        gc.collect()
        tracemalloc.start()
        for key in keys:
            state = registry.get(kind, key)
            assert state.tenant_id == key.partition(".")[0], (key, state)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
        entries = len(registry._found)
        registry.clear()  # what the entries held is what clearing frees
        gc.collect()
        empty = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    return {"kind": kind, "bound": bound, "entries": entries, "bytes": held - empty}


def registry_speed(n: int) -> dict[str, float]:
    """Cold loads per second and the hit cost (µs) with every tenant cached by domain."""
    from omnitenant_async.registry import registry

    registry.clear()
    start = time.perf_counter()
    for i in range(1, n + 1):
        registry.get_by_domain(domain(i))
    load_s = time.perf_counter() - start
    host = domain(n // 2 or 1)
    loads = registry.loads
    number = 100_000
    hit = min(timeit.repeat(lambda: registry.get_by_domain(host), number=number, repeat=7))
    assert registry.loads == loads, "a hit made a query"
    return {"load_ms": load_s / n * 1000, "hit_us": hit / number * 1e6}


# -- 2. backend memory ------------------------------------------------------------------------
class BackendSample(ProcMemory):
    pid: int
    age: float
    total: int
    cache: int
    contexts: int


def backend_sample() -> BackendSample:
    """Memory of the backend behind this thread's connection: contexts, cache share, RSS."""
    from django.db import connection

    from omnitenant_async import use_public_schema

    with use_public_schema(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, extract(epoch FROM now() - backend_start)::float FROM pg_stat_activity "
            "WHERE pid = pg_backend_pid()"
        )
        pid, age = cursor.fetchone()
        cursor.execute("SELECT name, level, total_bytes FROM pg_backend_memory_contexts")
        rows = cursor.fetchall()
    # The function lists the context tree depth first: a context's descendants are the rows
    # after it with a deeper level, up to the next row at its level or above.
    cache = 0
    for i, (name, level, size) in enumerate(rows):
        if name == "CacheMemoryContext":
            cache = size
            for _, sub_level, sub_size in rows[i + 1 :]:
                if sub_level <= level:
                    break
                cache += sub_size
            break
    return {
        "pid": pid,
        "age": age,
        "total": sum(r[2] for r in rows),
        "cache": cache,
        "contexts": len(rows),
        **proc_status(pid),
    }


def server_memory() -> dict[str, int]:
    """RssAnon summed over the postmaster and all its children, and shared_buffers."""
    from django.db import connection

    from omnitenant_async import use_public_schema

    with use_public_schema(), connection.cursor() as cursor:
        cursor.execute("SHOW data_directory")
        data = cursor.fetchone()[0]
        cursor.execute(
            "SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers'"
        )
        shared = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM pg_class")
        relations = cursor.fetchone()[0]
        cursor.execute("SELECT pg_database_size(current_database())")
        size = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s", [TEMPLATE])
        tables = cursor.fetchone()[0]
    postmaster = int(Path(data, "postmaster.pid").read_text().split()[0])
    anon, processes = proc_status(postmaster).get("RssAnon", 0), 1
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster:
                anon += proc_status(stat.parent.name).get("RssAnon", 0)
                processes += 1
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return {
        "anon": anon,
        "processes": processes,
        "shared_buffers": shared,
        "relations": relations,
        "db_size": size,
        "template_tables": tables,
    }


def touch(states: list[TenantState]) -> Iterator[int]:
    """One small ORM query in each tenant in turn, on this thread's connection; yields i."""
    from demo.notes.models import Note
    from omnitenant_async import tenant_context

    for i, state in enumerate(states, 1):
        with tenant_context(state):
            Note.objects.first()
        yield i


def fit(points: list[tuple[int, int]]) -> float:
    """Least-squares slope of bytes vs tenants touched."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)


class Findings(TypedDict, total=False):
    """What ``main`` measures, for ``report``."""

    args: argparse.Namespace
    n: int
    create_s: float
    held: list[Held]
    speed: dict[str, float]
    curve: list[tuple[int, BackendSample]]
    touch_s: float
    again: int
    revisit: BackendSample
    python_rss: ProcMemory
    server: dict[str, int]
    fresh: BackendSample
    old_gone: bool
    per_backend: dict[int, int]
    stretch_queries: int
    total_s: float


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--create-budget", type=float, default=600.0, help="seconds")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    config = configure(args.threads)
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from demo.seed import ensure_database, migrate_public
    from omnitenant_async import use_master_db
    from omnitenant_async.context import TenantState
    from omnitenant_async.provisioning.clone import migrate_template
    from omnitenant_async.utils import get_tenant_model

    started = time.perf_counter()
    ensure_database(recreate=True)
    migrate_public()
    migrate_template()
    n, create_s = create_tenants(args.tenants, args.threads, args.create_budget)
    print(f"created {n} tenants in {create_s:.0f} s", flush=True)
    r: Findings = {"args": args, "n": n, "create_s": create_s}

    # 1. registry
    hosts = [domain(i) for i in range(1, n + 1)]
    ids = [tenant_id(i) for i in range(1, n + 1)]
    r["held"] = [
        registry_held(config, "domain", hosts, UNBOUNDED),
        registry_held(config, "tenant_id", ids, UNBOUNDED),
        registry_held(config, "domain", hosts, max(1, n // 10)),
    ]
    r["speed"] = registry_speed(n)
    print(r["held"], r["speed"], flush=True)

    # 2. backend memory vs tenants touched, on one connection
    with use_master_db():
        tenants = list(get_tenant_model().objects.order_by("tenant_id"))
    states = [TenantState.from_tenant(t) for t in tenants]
    # A new pool of exactly one connection, a backend that has done nothing yet; the
    # recycling below then cannot hand out another idle one.
    connection.close()
    connection.settings_dict["OPTIONS"]["pool"] = {**POOL, "max_size": 1, "max_lifetime": LIFETIME}
    pg_connection().close_pool()
    curve = r["curve"] = [(0, backend_sample())]
    pid = curve[0][1]["pid"]
    touch_start = time.perf_counter()
    for i in touch(states):
        if i % SAMPLE_EVERY == 0 or i == n:
            curve.append((i, backend_sample()))
            assert curve[-1][1]["pid"] == pid, "the connection changed during the curve"
            print(f"{i} touched: {curve[-1][1]['total'] / MB:.1f} MB", flush=True)
    r["touch_s"] = time.perf_counter() - touch_start
    r["again"] = min(n, 2000)
    for _ in touch(states[: r["again"]]):
        pass
    r["revisit"] = backend_sample()
    assert r["revisit"]["pid"] == pid
    r["python_rss"] = proc_status()
    r["server"] = server_memory()

    # 3. recycling: the pool closes a connection that comes back past max_lifetime (idle
    # ones are not expired, only returned ones), and opens a new one
    time.sleep(LIFETIME + 1)
    connection.close()
    time.sleep(1)
    r["fresh"] = backend_sample()
    r["old_gone"] = not Path(f"/proc/{pid}").exists()
    # One checkout per query (as requests do) for 3 lifetimes: the pool replaces a
    # connection at its first return past max_lifetime, so no backend keeps growing.
    per_backend: dict[int, int] = {}
    stretch_end = time.monotonic() + 3 * LIFETIME
    cycle = itertools.cycle(states)
    queries = 0
    while time.monotonic() < stretch_end:
        for _ in touch([next(cycle)]):
            queries += 1
        if queries % 100 == 0:
            sample = backend_sample()
            per_backend[sample["pid"]] = max(per_backend.get(sample["pid"], 0), sample["total"])
        connection.close()
    r["per_backend"], r["stretch_queries"] = per_backend, queries
    pg_connection().close_pool()
    drop_database(settings.DATABASES["default"])
    r["total_s"] = time.perf_counter() - started
    report(r)


def report(r: Findings) -> None:
    args, n, server, speed = r["args"], r["n"], r["server"], r["speed"]
    curve, fresh, per_backend = r["curve"], r["fresh"], r["per_backend"]
    base, revisit, python_rss = curve[0][1], r["revisit"], r["python_rss"]
    slope = fit([(i, s["total"]) for i, s in curve])
    slope_anon = fit([(i, s["RssAnon"]) for i, s in curve])
    slope_cache = fit([(i, s["cache"]) for i, s in curve])
    command = os.environ.get("OMNITENANT_BENCH_COMMAND", "bench/run_memory.sh")
    short = ""
    if n < args.tenants:
        short = f" (of {args.tenants} asked: creation stopped at --create-budget)"
    lines = [
        "",
        "## Memory at scale (bench/bench_memory.py)",
        "",
        f"Command: `{command}`. Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{r['total_s'] / 60:.1f} min; 2 shared CPUs; PostgreSQL 15 on the same machine. "
        f"{n} schema tenants{short} on the demo's apps (demo.notes + the shared apps: "
        f"{server['template_tables']} tables per tenant), cloned from a template by "
        f"{args.threads} threads in {r['create_s']:.0f} s "
        f"({r['create_s'] / n * 1000 * args.threads:.0f} ms per clone per thread); the server "
        f"then holds {server['relations']} relations in pg_class, database "
        f"{server['db_size'] / MB:.0f} MB.",
        "",
        "**Registry** (tracemalloc: the bytes freed by clearing it after looking up every "
        "tenant once):",
        "",
        "| lookups | REGISTRY_MAX_ENTRIES | entries held | MB held | bytes per entry |",
        "|---|---:|---:|---:|---:|",
    ]
    for h in r["held"]:
        bound = "unbounded" if h["bound"] >= UNBOUNDED else str(h["bound"])
        lines.append(
            f"| {n} by {h['kind']} | {bound} | {h['entries']} | {h['bytes'] / MB:.2f} | "
            f"{h['bytes'] / max(h['entries'], 1):.0f} |"
        )
    lines += [
        "",
        f"A cold load (one query) took {speed['load_ms']:.2f} ms; a hit "
        f"{speed['hit_us'] * 1000:.0f} ns (`get_by_domain`, {n} entries cached, no query).",
        "",
        "**One backend, one small ORM query in each tenant in turn** (`Note.objects.first()`: "
        f"one table and its primary key index; {n / r['touch_s']:.0f} tenants/s on one "
        "connection). `pg_backend_memory_contexts` on that connection, RSS from "
        "/proc/<pid>/status:",
        "",
        "| tenants touched | contexts total (MB) | CacheMemoryContext + children (MB) | "
        "RssAnon (MB) | VmRSS (MB) |",
        "|---:|---:|---:|---:|---:|",
    ]
    marks = {0, n, 500, 1000} | {i for i, _ in curve if i % 2000 == 0}
    for i, s in curve:
        if i in marks:
            lines.append(
                f"| {i} | {s['total'] / MB:.1f} | {s['cache'] / MB:.1f} | "
                f"{s['RssAnon'] / MB:.1f} | {s['VmRSS'] / MB:.1f} |"
            )
    lines += [
        "",
        f"Growth (least squares over all {len(curve)} samples): {slope / 1024:.1f} KB of "
        f"contexts per tenant touched, {slope_cache / slope * 100:.0f} % of it in "
        "CacheMemoryContext (relcache and catcache entries, which PostgreSQL 15 never evicts); "
        f"RssAnon {slope_anon / 1024:.1f} KB per tenant. Touching the first {r['again']} "
        f"again: {revisit['total'] / MB:.1f} MB (the growth is per distinct tenant, not per "
        "query).",
        "",
        f"After touching all {n}: this Python process VmRSS {python_rss['VmRSS'] / MB:.0f} MB "
        f"(RssAnon {python_rss['RssAnon'] / MB:.0f} MB); PostgreSQL, {server['processes']} "
        f"processes, RssAnon {server['anon'] / MB:.0f} MB in all, plus shared_buffers "
        f"{server['shared_buffers'] / MB:.0f} MB.",
        "",
        f"**Recycling** (`OPTIONS['pool']['max_lifetime'] = {LIFETIME:.0f}` here): once that "
        "connection went back to the pool past its lifetime, the next checkout is a new backend "
        f"(pid {fresh['pid']}, started {fresh['age']:.1f} s before, vs {base['pid']}; the old "
        "process "
        f"{'gone' if r['old_gone'] else 'STILL ALIVE'}) with {fresh['total'] / MB:.1f} MB of "
        f"contexts, RssAnon {fresh['RssAnon'] / MB:.1f} MB (the new backend at the start of "
        f"the curve: {base['total'] / MB:.1f} MB, {base['RssAnon'] / MB:.1f} MB). Then "
        f"{3 * LIFETIME:.0f} s of one checkout per query, cycling over the tenants "
        f"({r['stretch_queries']} queries): {len(per_backend)} backends served them, the "
        f"largest reached {max(per_backend.values(), default=0) / MB:.1f} MB.",
        "",
        "**What max_lifetime bounds** (extrapolated from the slope above, not measured beyond "
        f"{n} tenants touched): a backend grows by {slope / 1024:.0f} KB per *distinct* tenant "
        "it touches (a larger app, by about that per table and index its requests touch), "
        "until the pool replaces it:",
        "",
        "| distinct tenants touched per backend per s | max_lifetime (s) | MB per backend at "
        "replacement |",
        "|---:|---:|---:|",
    ]
    for per_s in (1, 10):
        for lifetime in (600, 1800, 3600):
            touched = min(per_s * lifetime, n)
            default = " (psycopg_pool's default)" if lifetime == 3600 else ""
            lines.append(
                f"| {per_s} | {lifetime}{default} | {(base['total'] + slope * touched) / MB:.0f} |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    append_results(text, args.results)


if __name__ == "__main__":
    main()
