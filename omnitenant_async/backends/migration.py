"""Run many tenants' migrations in parallel threads.

Threads are safe because the tenant lives in a ContextVar: each job runs in a fresh
``contextvars.Context`` and the backend sets the tenant there, so no thread sees another's
tenant. Each job closes its thread's connections when done (they go back to the pool).
"""

from __future__ import annotations

import contextvars
import io
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections

from ..conf import get_config

__all__ = ["TenantMigrationResult", "amigrate_tenants", "migrate_tenants"]


@dataclass(frozen=True, slots=True)
class TenantMigrationResult:
    """What happened to one tenant: ``error`` is ``None`` when its migrations succeeded."""

    tenant_id: str
    seconds: float
    error: BaseException | None = None
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


#: ``on_progress(done, total, result)``, called in the calling thread as each tenant finishes.
ProgressCallback = Callable[[int, int, TenantMigrationResult], None]


def _migrate_one(
    tenant: Any, app_label: str | None, migration_name: str | None, verbosity: int
) -> TenantMigrationResult:
    from . import get_tenant_backend

    out = io.StringIO()
    start = time.perf_counter()
    try:
        get_tenant_backend(tenant).migrate(
            app_label, migration_name, verbosity=verbosity, stdout=out
        )
    except Exception as err:
        return TenantMigrationResult(
            tenant.tenant_id, time.perf_counter() - start, err, out.getvalue()
        )
    finally:
        connections.close_all()
    return TenantMigrationResult(
        tenant.tenant_id, time.perf_counter() - start, None, out.getvalue()
    )


def migrate_tenants(
    tenants: Iterable[Any],
    *,
    threads: int | None = None,
    app_label: str | None = None,
    migration_name: str | None = None,
    verbosity: int = 0,
    on_progress: ProgressCallback | None = None,
) -> list[TenantMigrationResult]:
    """Migrate ``tenants`` with ``threads`` workers (default ``MIGRATION_THREADS``).

    A failing tenant does not stop the others; check ``result.ok``. Results come back in the
    order of ``tenants``.
    """
    tenants = list(tenants)
    workers = threads if threads is not None else get_config().MIGRATION_THREADS
    if workers < 1:
        raise ValueError(f"threads must be at least 1, got {workers}.")
    workers = min(workers, max(len(tenants), 1))
    order: dict[Future[TenantMigrationResult], int] = {}
    results: list[TenantMigrationResult | None] = [None] * len(tenants)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="omnitenant-migrate")
    try:
        for i, tenant in enumerate(tenants):
            # A fresh context per job: nothing of the caller's (or a previous job's) tenant.
            job = contextvars.Context().run
            future = pool.submit(job, _migrate_one, tenant, app_label, migration_name, verbosity)
            order[future] = i
        for done, future in enumerate(as_completed(order), 1):
            result = future.result()
            results[order[future]] = result
            if on_progress is not None:
                on_progress(done, len(tenants), result)
    finally:
        # On Ctrl-C (or a failing callback) do not start the tenants still queued.
        pool.shutdown(wait=True, cancel_futures=True)
    return [r for r in results if r is not None]


async def amigrate_tenants(
    tenants: Iterable[Any],
    *,
    threads: int | None = None,
    app_label: str | None = None,
    migration_name: str | None = None,
    verbosity: int = 0,
    on_progress: ProgressCallback | None = None,
) -> list[TenantMigrationResult]:
    """Async twin of :func:`migrate_tenants`; ``on_progress`` runs in a worker thread."""
    return await sync_to_async(migrate_tenants)(
        tenants,
        threads=threads,
        app_label=app_label,
        migration_name=migration_name,
        verbosity=verbosity,
        on_progress=on_progress,
    )
