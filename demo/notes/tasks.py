"""Celery tasks of the demo: each answers from the tenant it runs in (tests and bench use them)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from demo.celery import app
from omnitenant_async.celery import TenantAwareTask
from omnitenant_async.context import get_current_state
from omnitenant_async.logging import TenantLogFilter

from .models import Marker

logger = logging.getLogger("demo.notes.tasks")


def _marker() -> str:
    """The marker row of the active tenant; raises NoTenantActive when none is active."""
    row = Marker.objects.values_list("tenant_id", flat=True).first()
    return row or "?"


def _context_tenant() -> str | None:
    state = get_current_state()
    return state.tenant_id if state is not None else None


@app.task(base=TenantAwareTask)
def marker() -> str:
    """The tenant's own marker row: fails closed (NoTenantActive) when queued with no tenant."""
    return _marker()


@app.task(base=TenantAwareTask)
def whoami(tag: str = "") -> dict[str, Any]:
    """The tenant in the context and in the database, and the caller's tag (kwargs untouched)."""
    tenant = _context_tenant()
    return {"tenant": tenant, "marker": _marker() if tenant else None, "tag": tag}


@app.task(base=TenantAwareTask)
def add_marker(previous: list[str] | None = None) -> list[str]:
    """A chain step: what came before, plus this tenant's marker."""
    return [*(previous or []), _marker()]


@app.task(base=TenantAwareTask)
def collect(results: list[str]) -> dict[str, Any]:
    """A chord body: the header's results and this tenant's marker."""
    return {"parts": sorted(results), "marker": _marker()}


@app.task(base=TenantAwareTask, bind=True, max_retries=3)
def flaky(self: Task, fail_times: int = 2) -> dict[str, Any]:
    """Fails ``fail_times`` times, then answers: retries must keep the tenant."""
    if self.request.retries < fail_times:
        raise self.retry(countdown=0)
    return {"marker": _marker(), "retries": self.request.retries}


@app.task(base=TenantAwareTask)
def spawn_marker() -> str:
    """Queues ``marker`` from inside a task body: the child runs in the same tenant."""
    return str(marker.delay().id)


@app.task(base=TenantAwareTask)
def log_tenant(message: str) -> str:
    """Logs through TenantLogFilter and returns the formatted line."""
    lines: list[str] = []
    handler = _ListHandler(lines)
    handler.addFilter(TenantLogFilter())
    handler.setFormatter(logging.Formatter("[%(tenant_id)s] %(message)s"))
    logger.addHandler(handler)
    try:
        logger.warning(message)
    finally:
        logger.removeHandler(handler)
    return lines[0]


class _ListHandler(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@app.task(base=TenantAwareTask)
def tenant_noop() -> None:
    """Benchmark: the TenantAwareTask overhead alone."""


@app.task
def plain_noop() -> None:
    """Benchmark: the same task on Celery's plain Task."""


@app.task
def plain_context() -> str | None:
    """A plain task ignores the header: it sees no tenant on the worker."""
    return _context_tenant()
