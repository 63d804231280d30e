"""Migrating many schema tenants: the up-to-date check, and one migration sequential vs parallel.

    bench/run_migrate.sh [--tenants 1000] [--migrate 200] [--check-schemas 10000] [--rounds 2]
    bench/run_migrate.sh --tenants 20 --check-schemas 100 --rounds 1 --print-only   # smoke test

On the demo project (``demo.settings``, a template schema switched on here): creates N
schema tenants by cloning the template, then times

(a) the up-to-date check of all N (``find_pending_tenants``: the graph once, batched queries),
    ``migratealltenants`` with nothing to migrate end to end, and the old behaviour
    (``migratealltenants --all``: one ``migrate`` per tenant); then ``pending_schemas`` over
    ``--check-schemas`` extra schemas that hold only a copy of a current ``django_migrations``
    (dropped again before (b): a large catalog slows every ``migrate``, see RESULTS.md);
(b) one migration forward (``notes`` rolled back to zero on ``--migrate`` tenants, then
    migrated again) sequential, in 2 and 4 threads and in 2 and 3 processes, ``--rounds`` times in
    alternating order.

Appends a section to bench/RESULTS.md. The benchmark database is dropped at the end.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypedDict

from bench import common
from bench.harness import append_results, busy_share

if TYPE_CHECKING:
    from psycopg import sql

    from omnitenant_async.models import BaseTenant

TEMPLATE = "omnitenant_template"


class Parallel(TypedDict, total=False):
    """``migrate_tenants``'s keywords of a variant."""

    threads: int
    processes: int


VARIANTS: dict[str, Parallel] = {
    "sequential (1 thread)": {"threads": 1},
    "2 threads": {"threads": 2},
    "4 threads": {"threads": 4},
    "2 processes": {"processes": 2},
    "3 processes": {"processes": 3},
}


def timed[**P, T](func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> tuple[float, T]:
    start = time.perf_counter()
    value = func(*args, **kwargs)
    return time.perf_counter() - start, value


def wait_quiet(budget: float) -> float:
    """Wait (at most ``budget`` s) until other jobs leave the CPUs mostly idle; the last share."""
    deadline = time.monotonic() + budget
    busy = busy_share(3.0)
    while busy > 0.25 and time.monotonic() < deadline:
        print(f"CPUs {busy:.0%} busy: waiting for a quieter machine", flush=True)
        busy = busy_share(10.0)
    return busy


def create_tenants(count: int) -> tuple[list[BaseTenant], float]:
    """``count`` schema tenants cloned from the (migrated) template."""
    from omnitenant_async import use_master_db
    from omnitenant_async.provisioning import get_tenant_backend
    from omnitenant_async.utils import get_tenant_model

    Tenant = get_tenant_model()
    start = time.perf_counter()
    with use_master_db():
        for i in range(1, count + 1):
            tenant = Tenant(tenant_id=f"m{i:05d}", name=f"m{i}")
            how = get_tenant_backend(tenant).create()
            assert how == "cloned", get_tenant_backend(tenant).provisioned_why
            if i % 200 == 0:
                print(f"{i} tenants created", flush=True)
        tenants = list(Tenant.objects.order_by("tenant_id"))
    return tenants, time.perf_counter() - start


def command(*args: str, **options: object) -> str:
    from django.core.management import call_command

    out = io.StringIO()
    call_command("migratealltenants", *args, interactive=False, stdout=out, **options)
    return out.getvalue()


def execute(statement: sql.Composable) -> None:
    from django.db import connection

    from omnitenant_async import use_master_db

    with use_master_db(), connection.cursor() as cursor:
        cursor.execute(statement.as_string(cursor.cursor.connection))


def copy_history(names: list[str], batch: int = 200) -> None:
    """Schemas holding only a copy of the template's ``django_migrations`` (a current tenant's)."""
    from psycopg import sql

    for start in range(0, len(names), batch):
        statements = [
            sql.SQL(
                "CREATE SCHEMA {s}; CREATE TABLE {t} (LIKE {src} INCLUDING ALL); "
                "INSERT INTO {t} SELECT * FROM {src};"
            ).format(
                s=sql.Identifier(name),
                t=sql.Identifier(name, "django_migrations"),
                src=sql.Identifier(TEMPLATE, "django_migrations"),
            )
            for name in names[start : start + batch]
        ]
        execute(sql.SQL("\n").join(statements))


def drop_stubs(names: list[str], batch: int = 200) -> None:
    """Drop the stub schemas, then vacuum the catalog: dead rows would slow every ``migrate``."""
    from psycopg import sql

    for start in range(0, len(names), batch):
        drops = [
            sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name))
            for name in names[start : start + batch]
        ]
        execute(sql.SQL("; ").join(drops))
    tables = ("pg_class", "pg_attribute", "pg_type", "pg_depend", "pg_index", "pg_sequence")
    for table in tables:
        execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier("pg_catalog", table)))


def check_all(tenants: list[BaseTenant], extra: int) -> dict[str, float]:
    """(a): the check, the command with nothing to do, the old one-migrate-per-tenant run."""
    from omnitenant_async.provisioning.migration_state import (
        expected_migrations,
        find_pending_tenants,
        pending_schemas,
    )

    rows: dict[str, float] = {}
    runs = []
    for _ in range(3):
        seconds, check = timed(lambda: find_pending_tenants(tenants))
        assert check.checked and not check.pending, check.why
        runs.append(seconds)
    rows["check"] = statistics.median(runs)
    seconds, out = timed(command)
    assert "nothing to migrate" in out, out
    rows["command"] = seconds
    seconds, out = timed(lambda: command(migrate_all=True, threads=4))
    assert f"Migrated {len(tenants)} of {len(tenants)}" in out, out[-500:]
    rows["all"] = seconds
    if extra:
        names = [f"c{i:05d}" for i in range(extra)]
        rows["extra_create"], _ = timed(lambda: copy_history(names))
        expected, _ = expected_migrations()
        assert expected is not None
        runs = []
        for _ in range(3):
            seconds, pending = timed(lambda: pending_schemas(names, expected))
            assert not pending, sorted(pending)[:5]
            runs.append(seconds)
        rows["extra_check"] = statistics.median(runs)
        drop_stubs(names)  # (b) runs on the tenants' catalog only
    return rows


def forward(tenants: list[BaseTenant], rounds: int) -> dict[str, list[float]]:
    """(b): roll ``notes`` back on ``tenants``, then time migrating it forward per variant."""
    from omnitenant_async.provisioning.migration import migrate_tenants
    from omnitenant_async.provisioning.migration_state import find_pending_tenants

    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    order = list(VARIANTS)
    for r in range(rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            back = migrate_tenants(tenants, threads=4, app_label="notes", migration_name="zero")
            assert all(res.ok for res in back), [res.error for res in back if not res.ok][:3]
            pending = find_pending_tenants(tenants).pending
            assert len(pending) == len(tenants), len(pending)
            seconds, results = timed(migrate_tenants, pending, **VARIANTS[name])
            assert all(res.ok for res in results), [res.error for res in results if not res.ok]
            times[name].append(seconds)
            print(f"round {r + 1}: {name}: {seconds:.2f}s", flush=True)
    assert not find_pending_tenants(tenants).pending
    return times


def drop_database() -> None:
    """Close every connection and pool of this process, then drop the benchmark's database."""
    from django.conf import settings
    from django.db import connections

    for conn in connections.all():
        conn.close()
        close_pool = getattr(conn, "close_pool", None)  # the PostgreSQL backends' only
        if close_pool is not None:
            close_pool()
    common.drop_database(settings.DATABASES["default"])


def report(args: argparse.Namespace, made: float, a: dict[str, float], b: dict[str, list[float]],
           load: tuple[float, float], busy: dict[str, float]) -> str:  # fmt: skip
    n, m = args.tenants, args.migrate
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    lines = [
        "",
        "## Migrating many tenants (bench/bench_migrate.py)",
        "",
        f"Command: `{os.environ.get('OMNITENANT_BENCH_COMMAND', 'bench/run_migrate.sh')}` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, working tree on {rev}; "
        f"{os.cpu_count()} CPUs shared with other jobs, load average {load[0]:.1f} before, "
        f"{load[1]:.1f} after; CPUs {busy['a']:.0%} busy by others just before (a), "
        f"{busy['b']:.0%} before (b)). Demo project; {n} schema tenants cloned from the "
        f"template in {made:.1f} s.",
        "",
        "(a) Nothing to migrate:",
        "",
        "| what | schemas | seconds | ms per 1,000 |",
        "|---|---:|---:|---:|",
        f"| `find_pending_tenants`: graph once + batched queries (median of 3) | {n} | "
        f"{a['check']:.3f} | {a['check'] / n * 1e6:.0f} |",
        f"| `migratealltenants`, end to end (reads tenants, checks, prints) | {n} | "
        f"{a['command']:.3f} | {a['command'] / n * 1e6:.0f} |",
        f"| `migratealltenants --all --threads 4` (before: one `migrate` each) | {n} | "
        f"{a['all']:.2f} | {a['all'] / n * 1e6:.0f} |",
    ]
    if args.check_schemas:
        k = args.check_schemas
        lines.append(
            f"| `pending_schemas` on schemas holding only a current `django_migrations` "
            f"(median of 3; made in {a['extra_create']:.1f} s) | {k} | {a['extra_check']:.3f} | "
            f"{a['extra_check'] / k * 1e6:.0f} |"
        )
    seq = statistics.median(b["sequential (1 thread)"])
    lines += [
        "",
        f"(b) One migration forward (`notes` rolled back to zero on {m} tenants, then "
        f"`migrate_tenants(pending, ...)`; {args.rounds} round(s), alternating order):",
        "",
        "| variant | seconds per round | median s | s per 1,000 tenants | speedup vs sequential |",
        "|---|---|---:|---:|---:|",
    ]
    for name, runs in b.items():
        med = statistics.median(runs)
        shown = ", ".join(f"{s:.2f}" for s in runs)
        lines.append(f"| {name} | {shown} | {med:.2f} | {med / m * 1000:.1f} | {seq / med:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--migrate", type=int, default=200, help="tenants migrated in (b)")
    parser.add_argument("--check-schemas", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quiet-wait", type=float, default=300, help="s to wait for idle CPUs")
    parser.add_argument(
        "--print-only", action="store_true", help="print the section; do not append to RESULTS.md"
    )
    args = parser.parse_args()
    args.migrate = min(args.migrate, args.tenants)

    import django

    django.setup()
    from django.conf import settings
    from django.test.utils import override_settings

    from demo.seed import ensure_database, migrate_public
    from omnitenant_async.provisioning.clone import migrate_template

    ensure_database(recreate=True)
    migrate_public()
    config = {**settings.OMNITENANT_CONFIG, "TEMPLATE_SCHEMA": TEMPLATE}
    try:
        with override_settings(OMNITENANT_CONFIG=config):
            migrate_template()
            tenants, made = create_tenants(args.tenants)
            busy = {"a": wait_quiet(args.quiet_wait)}
            load_before = os.getloadavg()[0]
            a = check_all(tenants, args.check_schemas)
            print(a, flush=True)
            busy["b"] = wait_quiet(args.quiet_wait)
            b = forward(tenants[: args.migrate], args.rounds)
    finally:
        drop_database()
    text = report(args, made, a, b, (load_before, os.getloadavg()[0]), busy)
    print(text)
    if not args.print_only:
        append_results(text)


if __name__ == "__main__":
    main()
