"""Celery tasks that run in the tenant they were queued in: :class:`TenantAwareTask`.

The tenant travels in the **message headers** (``omnitenant_tenant_id``, ``omnitenant_isolation``),
never in the task's arguments and never as a model instance, so signatures stay untouched and
a task body cannot tell it was queued inside a tenant.

Why a ``before_task_publish`` receiver rather than an ``apply_async`` override: every path that
sends a message goes through that signal - ``.delay()``, ``.apply_async()``, signatures inside
chains, groups and chords (Celery publishes their parts without calling the task's
``apply_async``), ``app.send_task("name")`` with no task class at hand, and ``self.retry()``. The
receiver reads the ContextVar of the code that publishes, so it works the same from sync code,
``sync_to_async`` and ``async def``. An explicit ``tenant_id=`` option (of ``apply_async``,
``send_task`` or ``signature.set``) reaches the receiver as a message property, where it wins over
the context and is turned into the header.

On the worker, :meth:`TenantAwareTask.__call__` reads the header, resolves the id through the
cached registry (no query when warm), activates the tenant around the task body only, and resets
it afterwards, whatever the pool (prefork, threads, solo). An id that no longer resolves fails
the task with :class:`TaskTenantNotFound`: it never runs in the public schema or another tenant.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from celery import Task
from celery._state import get_current_worker_task
from celery.result import AsyncResult
from celery.signals import before_task_publish

from .context import TenantRef, TenantState, get_current_state, tenant_context, use_master_db
from .exceptions import TenantNotFound
from .registry import get_tenant_model, registry
from .task_errors import TaskTenantNotFound
from .types import TenantLike

__all__ = [
    "HEADER_ISOLATION",
    "HEADER_TENANT_ID",
    "TaskTenantNotFound",
    "TenantAwareTask",
    "for_each_tenant",
    "run_for_tenant",
    "tenant_headers",
]

HEADER_TENANT_ID = "omnitenant_tenant_id"
HEADER_ISOLATION = "omnitenant_isolation"
# The option users pass (``apply_async(tenant_id=...)``); "" or None means "no tenant".
OPTION = "tenant_id"
_NO_TENANT = ""
# True while a TenantAwareTask body runs: its own context then decides, even "no tenant".
_in_body: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "omnitenant_celery_body", default=False
)


def tenant_headers(tenant: TenantRef | str) -> dict[str, str]:
    """The headers that carry ``tenant`` (an instance, a ``TenantState``, an id or ``None``)."""
    if tenant is None or tenant == _NO_TENANT:
        return {HEADER_TENANT_ID: _NO_TENANT, HEADER_ISOLATION: ""}
    if isinstance(tenant, str):
        return {HEADER_TENANT_ID: tenant, HEADER_ISOLATION: ""}
    state = tenant if isinstance(tenant, TenantState) else TenantState.from_tenant(tenant)
    if state.tenant_id is None:  # public or an explicit schema: nothing a worker can resolve
        return {HEADER_TENANT_ID: _NO_TENANT, HEADER_ISOLATION: ""}
    return {HEADER_TENANT_ID: state.tenant_id, HEADER_ISOLATION: str(state.isolation_type)}


def _stamp_tenant(
    headers: dict[str, Any] | None = None, properties: dict[str, Any] | None = None, **_: Any
) -> None:
    """Put the tenant in the headers of every message this process publishes.

    Order: an explicit ``tenant_id=`` option, then headers already set by the caller, then the
    tenant active here. The worker publishes the next step of a chain and a chord's body after
    the task body, outside its tenant: those inherit the header of the task being run.
    """
    if headers is None:
        return
    if properties is not None and OPTION in properties:
        headers.update(tenant_headers(properties.pop(OPTION)))
        return
    if HEADER_TENANT_ID in headers:
        return
    state = get_current_state()
    if state is not None and state.tenant_id is not None:
        headers.update(tenant_headers(state))
    elif state is None and not _in_body.get():
        parent = get_current_worker_task()
        if parent is not None and _queued_tenant(parent.request) is not None:
            headers[HEADER_TENANT_ID] = _queued_tenant(parent.request)
            headers[HEADER_ISOLATION] = getattr(parent.request, HEADER_ISOLATION, "")


before_task_publish.connect(_stamp_tenant, dispatch_uid="omnitenant_async.celery.stamp")


def _queued_tenant(request: Any) -> str | None:
    """The tenant id of the message being run; ``None`` when it carries none."""
    value = getattr(request, HEADER_TENANT_ID, None)
    if value is None and isinstance(getattr(request, "headers", None), dict):
        value = request.headers.get(HEADER_TENANT_ID)  # eager apply(headers=...)
    return value if isinstance(value, str) and value else None


def resolve_task_tenant(tenant_id: str, task_name: str) -> TenantState:
    """The cached state of ``tenant_id``; :class:`TaskTenantNotFound` when it is gone."""
    try:
        return registry.get_by_tenant_id(tenant_id).with_own_tenant()
    except TenantNotFound:
        raise TaskTenantNotFound(
            f"Task {task_name} was queued for tenant {tenant_id!r}, which does not exist "
            f"(deleted, or never created): it was not run."
        ) from None


class TenantAwareTask(Task):  # type: ignore[misc]
    """A task that runs in the tenant active when it was queued (or in none).

    ``@app.task(base=TenantAwareTask)`` or ``@shared_task(base=TenantAwareTask)``; nothing else
    to write. ``task.apply_async(args, kwargs, tenant_id="acme")`` picks the tenant explicitly
    (``tenant_id=None`` queues it for no tenant).
    """

    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        tenant_id = _queued_tenant(request)
        if tenant_id is None and (request.called_directly or request.is_eager):
            return super().__call__(*args, **kwargs)  # keeps the caller's tenant
        # No tenant: run with none (fail closed), whatever the worker thread held before.
        state = None if tenant_id is None else resolve_task_tenant(tenant_id, self.name)
        token = _in_body.set(True)
        try:
            with tenant_context(state):
                return super().__call__(*args, **kwargs)
        finally:
            _in_body.reset(token)

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Celery drops ``None`` options on the way: keep ``tenant_id=None`` as "no tenant"."""
        if OPTION in options and options[OPTION] is None:
            options[OPTION] = _NO_TENANT
        return super().apply_async(args, kwargs, **options)

    def apply(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Eager run (``task_always_eager``, ``.apply()``): honour ``tenant_id=`` there too."""
        if OPTION in options:
            headers = dict(options.pop("headers", None) or {})
            headers.update(tenant_headers(options.pop(OPTION)))
            options["headers"] = headers
        return super().apply(args, kwargs, **options)

    async def aapply_async(self, *args: Any, **kwargs: Any) -> AsyncResult:
        """``apply_async`` for ``async def`` code: the broker round trip runs in a thread.

        The tenant is captured there (``sync_to_async`` copies the context); it needs no ORM,
        so it does not take the thread-sensitive thread that database work shares.
        """
        return await sync_to_async(self.apply_async, thread_sensitive=False)(*args, **kwargs)

    async def adelay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        """``delay`` for ``async def`` code (see :meth:`aapply_async`)."""
        return await self.aapply_async(args, kwargs)


def _tenant_ids(tenants: Iterable[TenantLike | str] | None) -> Iterator[str]:
    if tenants is not None:
        for tenant in tenants:
            yield tenant if isinstance(tenant, str) else tenant.tenant_id
        return
    with use_master_db():
        ids = list(get_tenant_model().objects.order_by("tenant_id").values_list("tenant_id"))
    yield from (row[0] for row in ids)


def for_each_tenant(
    task: Task,
    args: Iterable[Any] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    tenants: Iterable[TenantLike | str] | None = None,
    **options: Any,
) -> list[AsyncResult]:
    """Queue ``task`` once per tenant (every tenant row, schema and database alike).

    Meant for Celery beat: schedule a small task that calls this, and each tenant's work runs
    as its own message in its own tenant (one failing tenant does not stop the others).
    ``tenants`` restricts it to some instances or ids.
    """
    return [
        task.apply_async(tuple(args), kwargs or {}, **options, **{OPTION: tenant_id})
        for tenant_id in _tenant_ids(tenants)
    ]


def run_for_tenant(task: Task, tenant: TenantLike | str, *args: Any, **kwargs: Any) -> AsyncResult:
    """Queue ``task(*args, **kwargs)`` for one tenant (an instance or an id), e.g. from a shell."""
    tenant_id = tenant if isinstance(tenant, str) else tenant.tenant_id
    return task.apply_async(args, kwargs, **{OPTION: tenant_id})
