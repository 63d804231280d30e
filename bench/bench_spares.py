"""``create()`` with spare schemas (``SPARE_SCHEMAS``), as tenants accumulate to N.

    bench/run_provision.sh --tenants 10000 --spares 4 [--pace-ms 100] [--window 20]

On ``bench.scale_settings`` (41 tables per tenant). At each mark (1st, 100th, 1,000th,
10,000th tenant) ``--window`` sign-ups arrive ``--pace-ms`` apart, each a ``create()`` that
claims a spare while the process's refill thread clones replacements, and one spare is also
cloned in the foreground and timed (what a refill costs at that catalog size). Between marks
the tenants are made as fast as possible by plain cloning (no spares). Reports create()'s
median, p95 and max per mark, how many claimed a spare, and appends to bench/RESULTS.md.
Tenants are not dropped: the throwaway cluster goes with them.
"""

from __future__ import annotations

import os
import statistics
import time

from bench.harness import append_results


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main(tenants: int, spares: int, pace_ms: float, window: int) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.test import override_settings

    from demo.seed import ensure_database, migrate_public
    from omnitenant_async import use_master_db
    from omnitenant_async.conf import get_config
    from omnitenant_async.provisioning import get_tenant_backend
    from omnitenant_async.provisioning.clone import clone_plan, migrate_template
    from omnitenant_async.provisioning.spares import _make_spare, fill_spares, wait_for_spares
    from omnitenant_async.utils import get_tenant_model

    ensure_database(recreate=True)
    migrate_public()
    migrate_template()
    Tenant = get_tenant_model()
    on = {**settings.OMNITENANT_CONFIG, "SPARE_SCHEMAS": spares}
    marks = [m for m in (1, 100, 1000, 10000, 100000) if m <= tenants] or [tenants]
    rows: list[tuple[int, list[float], int, float]] = []
    count = 0

    def make(tenant_id: str) -> tuple[float, str]:
        tenant = Tenant(tenant_id=tenant_id, name=tenant_id)
        backend = get_tenant_backend(tenant)
        start = time.perf_counter()
        how = backend.create()
        elapsed = (time.perf_counter() - start) * 1000
        assert how == "cloned", backend.provisioned_why
        return elapsed, backend.provisioned_why

    started = time.perf_counter()
    with use_master_db():
        for mark in marks:
            while count < mark - 1:  # fill up to the mark by plain cloning
                count += 1
                make(f"f{count:06d}")
                if count % 500 == 0:
                    print(f"{count} tenants ({time.perf_counter() - started:.0f} s)", flush=True)
            with override_settings(OMNITENANT_CONFIG=on):
                fill_spares()
                plan, _ = clone_plan()
                assert plan is not None
                t0 = time.perf_counter()
                _make_spare(plan, get_config().MASTER_DB_ALIAS)
                refill_ms = (time.perf_counter() - t0) * 1000
                latencies: list[float] = []
                claimed = 0
                for _ in range(window):
                    count += 1
                    ms, why = make(f"s{count:06d}")
                    latencies.append(ms)
                    claimed += "ahead of time" in why
                    time.sleep(pace_ms / 1000)
                wait_for_spares(120)
            rows.append((mark, latencies, claimed, refill_ms))
            print(
                f"mark {mark}: median {statistics.median(latencies):.1f} ms, "
                f"{claimed}/{window} claimed, a spare costs {refill_ms:.0f} ms",
                flush=True,
            )
    total_s = time.perf_counter() - started
    _report(spares, pace_ms, window, rows, count, total_s)


def _report(
    spares: int, pace_ms: float, window: int,
    rows: list[tuple[int, list[float], int, float]], count: int, total_s: float,
) -> None:  # fmt: skip
    command = os.environ.get("OMNITENANT_BENCH_COMMAND", "bench/run_provision.sh")
    lines = [
        "",
        "## Provisioning with spare schemas (bench/bench_spares.py)",
        "",
        f"Command: `{command}` ({count} tenants in {total_s / 60:.1f} min, bench.scale_app: "
        f"41 tables per tenant; SPARE_SCHEMAS = {spares}; at each mark {window} sign-ups "
        f"{pace_ms:.0f} ms apart while the refill thread clones replacements; between marks "
        "tenants are cloned as fast as possible). PostgreSQL 15, 2 shared cores.",
        "",
        "| tenant # | create() median (ms) | p95 (ms) | max (ms) | claimed a spare | "
        "one spare cloned (ms) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for mark, latencies, claimed, refill_ms in rows:
        lines.append(
            f"| {mark} | {statistics.median(latencies):.1f} | {_percentile(latencies, 0.95):.1f}"
            f" | {max(latencies):.1f} | {claimed}/{len(latencies)} | {refill_ms:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    append_results(text)


if __name__ == "__main__":
    raise SystemExit("Run bench/run_provision.sh --spares N")
