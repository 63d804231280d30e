"""Provisioning time per tenant, cloning the template vs migrating, as tenants accumulate.

    bench/run_provision.sh [--tenants 1000]
    bench/run_provision.sh --tenants 10000 --spares 4 [--pace-ms 100] [--window 20]

(the second: ``create()`` claiming spare schemas, bench/bench_spares.py).

On ``bench.scale_settings`` (the demo + bench.scale_app, 30 app tables, ~40 per tenant with the
shared apps): migrates the template, then creates N schema tenants with ``create()`` (cloned),
and at the 1st, 100th, 1000th... tenant also one by migrating (``create_storage`` + ``migrate``).
Reports the median of the 10 clones around each mark, the migrated one, and appends a section
to bench/RESULTS.md. Every tenant it made is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import TYPE_CHECKING

from bench.harness import append_results

if TYPE_CHECKING:
    from omnitenant_async.models import BaseTenant


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument(
        "--spares", type=int, default=0,
        help="SPARE_SCHEMAS: measure create() claiming spares, sign-ups --pace-ms apart.",
    )  # fmt: skip
    parser.add_argument("--pace-ms", type=float, default=100.0)
    parser.add_argument("--window", type=int, default=20, help="Paced sign-ups per mark.")
    args = parser.parse_args()
    if args.spares:
        from bench.bench_spares import main as spares_main

        spares_main(args.tenants, args.spares, args.pace_ms, args.window)
        return

    import django

    django.setup()
    from demo.seed import ensure_database, migrate_public
    from omnitenant_async import use_master_db
    from omnitenant_async.provisioning import get_tenant_backend
    from omnitenant_async.provisioning.clone import migrate_template
    from omnitenant_async.utils import get_tenant_model

    ensure_database(recreate=True)
    migrate_public()
    t0 = time.perf_counter()
    migrate_template()
    template_s = time.perf_counter() - t0
    Tenant = get_tenant_model()
    marks = [m for m in (1, 100, 1000, 10000) if m <= args.tenants]
    clone_ms: list[float] = []
    migrate_ms: dict[int, float] = {}
    made: list[BaseTenant] = []
    with use_master_db():
        for i in range(1, args.tenants + 1):
            tenant = Tenant(tenant_id=f"p{i:05d}", name=f"p{i}")
            start = time.perf_counter()
            how = get_tenant_backend(tenant).create()
            clone_ms.append((time.perf_counter() - start) * 1000)
            assert how == "cloned", get_tenant_backend(tenant).provisioned_why
            made.append(tenant)
            if i in marks:
                other = Tenant(tenant_id=f"m{i:05d}", name=f"m{i}")
                backend = get_tenant_backend(other)
                start = time.perf_counter()
                backend.create(run_migrations=False)
                backend.migrate()
                migrate_ms[i] = (time.perf_counter() - start) * 1000
                made.append(other)
            if i % 100 == 0:
                print(f"{i} tenants, last clone {clone_ms[-1]:.1f} ms", flush=True)
        rows = []
        for m in marks:
            window = clone_ms[max(0, m - 5) : m + 5]
            rows.append((m, statistics.median(window), clone_ms[m - 1], migrate_ms[m]))
        for tenant in made:
            get_tenant_backend(tenant).delete(drop=True)
    lines = [
        "",
        "## Provisioning a tenant: cloning the template vs migrating (bench/bench_provision.py)",
        "",
        f"Command: `{os.environ.get('OMNITENANT_BENCH_COMMAND', 'bench/run_provision.sh')}`"
        f" ({args.tenants} tenants, bench.scale_app: 30 app tables + the shared apps'; "
        f"template migrated in {template_s:.2f} s). 2 shared cores, another benchmark running.",
        "",
        "| tenant # | clone, median of 10 around (ms) | that clone (ms) | migrate (ms) |",
        "|---:|---:|---:|---:|",
    ]
    lines += [f"| {m} | {med:.1f} | {one:.1f} | {mig:.0f} |" for m, med, one, mig in rows]
    lines.append(
        f"\nAll {args.tenants} clones: median {statistics.median(clone_ms):.1f} ms, "
        f"p95 {sorted(clone_ms)[int(len(clone_ms) * 0.95) - 1]:.1f} ms, "
        f"max {max(clone_ms):.1f} ms."
    )
    text = "\n".join(lines) + "\n"
    print(text)
    append_results(text)


if __name__ == "__main__":
    main()
