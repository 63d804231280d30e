"""Run many tenants' migrations in parallel threads or worker processes.

Threads are safe because the tenant lives in a ContextVar: each job runs in a fresh
``contextvars.Context`` and the backend sets the tenant there, so no thread sees another's
tenant. Each job closes its thread's connections when done (they go back to the pool).

``migrate`` is mostly Python (graph, model states), so threads share one core through the GIL.
``processes=N`` runs N processes instead: this one and N - 1 spawned interpreters, each of
which calls ``django.setup()`` and opens its own pool (a fresh process, not a fork: nothing of
the parent's connections is inherited).
"""

from __future__ import annotations

import collections
import contextvars
import dataclasses
import io
import multiprocessing
import os
import pickle
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import (
    FIRST_COMPLETED,
    BrokenExecutor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    as_completed,
    wait,
)
from dataclasses import dataclass
from typing import Any

import django
from asgiref.sync import sync_to_async
from django.db import connections

from ..conf import get_config
from ..models import BaseTenant
from . import get_tenant_backend

__all__ = [
    "TenantMigrationError",
    "TenantMigrationResult",
    "amigrate_tenants",
    "migrate_tenants",
]


@dataclass(frozen=True, slots=True)
class TenantMigrationResult:
    """What happened to one tenant: ``error`` is ``None`` when its migrations succeeded."""

    tenant_id: str
    seconds: float
    error: BaseException | None = None
    output: str = ""
    #: ``error``'s formatted traceback (kept when the error comes back from a worker process).
    traceback: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


class TenantMigrationError(Exception):
    """Stands for an error a worker process could not send back as it was (not picklable)."""


#: ``on_progress(done, total, result)``, called in the calling thread as each tenant finishes.
ProgressCallback = Callable[[int, int, TenantMigrationResult], None]


def _migrate_one(
    tenant: BaseTenant, app_label: str | None, migration_name: str | None, verbosity: int
) -> TenantMigrationResult:
    out = io.StringIO()
    start = time.perf_counter()
    try:
        get_tenant_backend(tenant).migrate(
            app_label, migration_name, verbosity=verbosity, stdout=out
        )
    except Exception as err:
        return TenantMigrationResult(
            tenant.tenant_id,
            time.perf_counter() - start,
            err,
            out.getvalue(),
            "".join(traceback.format_exception(err)),
        )
    finally:
        connections.close_all()
    return TenantMigrationResult(
        tenant.tenant_id, time.perf_counter() - start, None, out.getvalue()
    )


def _migrate_in_worker(
    tenant: BaseTenant, app_label: str | None, migration_name: str | None, verbosity: int
) -> TenantMigrationResult:
    """``_migrate_one`` in a worker process; its error must survive the trip to the parent."""
    result = contextvars.Context().run(_migrate_one, tenant, app_label, migration_name, verbosity)
    if result.error is None:
        return result
    try:
        pickle.loads(pickle.dumps(result.error))
    except Exception:
        error = TenantMigrationError(f"{type(result.error).__name__}: {result.error}")
        return dataclasses.replace(result, error=error)
    return result


def _workers(count: int | None, tenants: int, what: str) -> int:
    workers = count if count is not None else get_config().MIGRATION_THREADS
    if workers < 1:
        raise ValueError(f"{what} must be at least 1, got {workers}.")
    return min(workers, max(tenants, 1))


def _threads(threads: int | None, tenants: int) -> ThreadPoolExecutor:
    workers = _workers(threads, tenants, "threads")
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="omnitenant-migrate")


def _spawned(processes: int) -> ProcessPoolExecutor:
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise ValueError(
            "Worker processes load the settings from DJANGO_SETTINGS_MODULE, which is not set; "
            "set it, or migrate with threads."
        )
    return ProcessPoolExecutor(
        max_workers=processes,
        mp_context=multiprocessing.get_context("spawn"),
        # A spawned interpreter knows no Django yet. django.setup itself, not a function of
        # this module: unpickling one would import this package's models before setup.
        initializer=django.setup,
    )


def _collect(
    order: dict[Future[TenantMigrationResult], Any], on_progress: ProgressCallback | None
) -> dict[Future[TenantMigrationResult], TenantMigrationResult]:
    """Wait for every job (see :func:`_result_of`), reporting each as it finishes."""
    results: dict[Future[TenantMigrationResult], TenantMigrationResult] = {}
    for done, future in enumerate(as_completed(order), 1):
        result = results[future] = _result_of(future, order[future])
        if on_progress is not None:
            on_progress(done, len(order), result)
    return results


def migrate_tenants(
    tenants: Iterable[BaseTenant],
    *,
    threads: int | None = None,
    processes: int | None = None,
    app_label: str | None = None,
    migration_name: str | None = None,
    verbosity: int = 0,
    on_progress: ProgressCallback | None = None,
) -> list[TenantMigrationResult]:
    """Migrate ``tenants`` with ``threads`` workers (default ``MIGRATION_THREADS``).

    With ``processes=N`` instead, N processes: this one and N - 1 spawned workers
    (DJANGO_SETTINGS_MODULE must be set; settings overridden in this process are not seen
    there, nor are signal receivers connected at run time, so such overrides reach only the
    tenants migrated here). A failing tenant does not stop the others; check ``result.ok``.
    Results come back in the order of ``tenants``.
    """
    tenants = list(tenants)
    if processes is not None:
        if threads is not None:
            raise ValueError("Pass threads or processes, not both.")
        workers = _workers(processes, len(tenants), "processes")
        return _ProcessShare(tenants, workers, (app_label, migration_name, verbosity)).run(
            on_progress
        )
    pool = _threads(threads, len(tenants))
    order: dict[Future[TenantMigrationResult], Any] = {}
    try:
        for tenant in tenants:
            # A fresh context per job: nothing of the caller's (or a previous job's) tenant.
            future = pool.submit(
                contextvars.Context().run, _migrate_one, tenant, app_label, migration_name,
                verbosity,
            )  # fmt: skip
            order[future] = tenant
        results = _collect(order, on_progress)
    finally:
        # On Ctrl-C (or a failing callback) do not start the tenants still queued.
        pool.shutdown(wait=True, cancel_futures=True)
    return [results[future] for future in order]


class _ProcessShare:
    """``processes=N``: this process (one thread) and N - 1 spawned ones, each handed the next
    tenant as it finishes one.

    This process is ready at once, while a spawned one spends about a second starting
    (``django.setup()``, the first migration graph): on 2 cores, with 2 spawned workers that
    second was most of what parted 200 tenants' speed-up from 2x. A pool that breaks (a worker
    crashed) fails its running tenants; the rest are migrated here.
    """

    def __init__(self, tenants: list[BaseTenant], processes: int, args: tuple[Any, ...]) -> None:
        self.queue = collections.deque(enumerate(tenants))
        self.args = args
        self.here = ThreadPoolExecutor(max_workers=1, thread_name_prefix="omnitenant-migrate")
        self.children = processes - 1
        self.spawned = _spawned(self.children) if self.children else None
        self.broken = False  # a spawned worker died: the pool takes no more tenants
        self.running: dict[Future[TenantMigrationResult], tuple[int, BaseTenant, bool]] = {}

    def run(self, on_progress: ProgressCallback | None) -> list[TenantMigrationResult]:
        results: dict[int, TenantMigrationResult] = {}
        total = len(self.queue)
        try:
            self._feed(spawned=False)
            for _ in range(self.children):
                self._feed(spawned=True)
            while self.running:
                done, _ = wait(self.running, return_when=FIRST_COMPLETED)
                for future in done:
                    index, tenant, spawned = self.running.pop(future)
                    results[index] = _result_of(future, tenant)
                    if on_progress is not None:
                        on_progress(len(results), total, results[index])
                    self._feed(spawned=spawned)
        finally:
            # On Ctrl-C (or a failing callback) do not start the tenants still queued.
            self.queue.clear()
            self.here.shutdown(wait=True, cancel_futures=True)
            if self.spawned is not None:
                self.spawned.shutdown(wait=True, cancel_futures=True)
        return [results[i] for i in range(total)]

    def _feed(self, *, spawned: bool) -> None:
        """Hand the next tenant to this process's thread, or to the spawned pool."""
        if not self.queue or (spawned and self.broken):
            return  # a broken pool's share is left to this process
        index, tenant = self.queue.popleft()
        if spawned and self.spawned is not None:
            try:
                future = self.spawned.submit(_migrate_in_worker, tenant, *self.args)
            except BrokenExecutor:
                self.queue.appendleft((index, tenant))
                self.broken = True
                return
        else:
            future = self.here.submit(contextvars.Context().run, _migrate_one, tenant, *self.args)
        self.running[future] = (index, tenant, spawned)


def _result_of(future: Future[TenantMigrationResult], tenant: BaseTenant) -> TenantMigrationResult:
    """The job's result; a job that died (a crashed worker process) counts as a failure."""
    try:
        return future.result()
    except Exception as err:
        text = "".join(traceback.format_exception(err))
        return TenantMigrationResult(tenant.tenant_id, 0.0, err, "", text)


async def amigrate_tenants(
    tenants: Iterable[BaseTenant],
    *,
    threads: int | None = None,
    processes: int | None = None,
    app_label: str | None = None,
    migration_name: str | None = None,
    verbosity: int = 0,
    on_progress: ProgressCallback | None = None,
) -> list[TenantMigrationResult]:
    """Async twin of :func:`migrate_tenants`; ``on_progress`` runs in a worker thread."""
    return await sync_to_async(migrate_tenants)(
        tenants,
        threads=threads,
        processes=processes,
        app_label=app_label,
        migration_name=migration_name,
        verbosity=verbosity,
        on_progress=on_progress,
    )
