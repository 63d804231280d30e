"""Django's tasks framework (``django.tasks``, Django >= 6.0) with the tenant: :func:`tenant_task`.

``django.tasks`` messages have no headers, so the tenant id rides in one reserved keyword
argument (``_omnitenant_tenant_id``) that :class:`TenantTask` adds when the task is enqueued and
removes before the function runs: the function's own signature is untouched. Any backend that
runs a task through ``Task.call``/``Task.acall`` (Django's ``ImmediateBackend``, and the queue
backends built on Django's API) therefore runs it in the tenant it was enqueued in; an id that
no longer resolves fails the task with ``TaskTenantNotFound``.

On Django 5.2 this module raises a clear ``ImportError`` (the framework does not exist there): a
``ModuleNotFoundError`` for ``omnitenant_async.tasks``, which Celery's ``autodiscover_tasks()``
takes for "this app has no tasks module".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

try:
    from django.tasks.base import (
        DEFAULT_TASK_BACKEND_ALIAS,
        DEFAULT_TASK_PRIORITY,
        DEFAULT_TASK_QUEUE_NAME,
        Task,
    )
except ImportError as exc:  # Django < 6.0
    # ModuleNotFoundError naming this module: Celery's autodiscover_tasks() imports
    # "<app>.tasks" for every installed app and skips exactly that error (any other one stops
    # the worker), so a Celery project on Django 5.2 keeps working with this app installed.
    raise ModuleNotFoundError(
        "omnitenant_async.tasks needs Django's tasks framework (django.tasks, Django >= 6.0). "
        "On older Django use omnitenant_async.celery.",
        name=__name__,
    ) from exc

from .context import TenantState, get_current_state, tenant_context
from .exceptions import TenantNotFound
from .registry import registry
from .task_errors import TaskTenantNotFound

__all__ = ["TENANT_KWARG", "TaskTenantNotFound", "TenantTask", "tenant_task"]

TENANT_KWARG = "_omnitenant_tenant_id"

if TYPE_CHECKING:  # django-stubs makes Task generic; at run time it is a plain dataclass
    _BaseTask = Task[Any, Any]
else:
    _BaseTask = Task


def _with_tenant(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` plus the active tenant's id (an explicit one in ``kwargs`` wins)."""
    if TENANT_KWARG in kwargs:
        return kwargs
    state = get_current_state()
    tenant_id = state.tenant_id if state is not None else None
    return {**kwargs, TENANT_KWARG: tenant_id} if tenant_id is not None else kwargs


def _not_found(tenant_id: str, name: str) -> TaskTenantNotFound:
    return TaskTenantNotFound(
        f"Task {name} was enqueued for tenant {tenant_id!r}, which does not exist "
        f"(deleted, or never created): it was not run."
    )


class TenantTask(_BaseTask):
    """A ``django.tasks`` task that runs in the tenant active when it was enqueued."""

    __slots__ = ()

    def enqueue(self, *args: Any, **kwargs: Any) -> Any:
        return Task.enqueue(self, *args, **_with_tenant(kwargs))

    async def aenqueue(self, *args: Any, **kwargs: Any) -> Any:
        return await Task.aenqueue(self, *args, **_with_tenant(kwargs))

    def call(self, *args: Any, **kwargs: Any) -> Any:
        tenant_id = kwargs.pop(TENANT_KWARG, None)
        if tenant_id is None:
            with tenant_context(None):  # enqueued with no tenant: runs with none
                return Task.call(self, *args, **kwargs)
        try:
            state: TenantState = registry.get_by_tenant_id(tenant_id)
        except TenantNotFound:
            raise _not_found(tenant_id, self.name) from None
        with tenant_context(state.with_own_tenant()):
            return Task.call(self, *args, **kwargs)

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        tenant_id = kwargs.pop(TENANT_KWARG, None)
        if tenant_id is None:
            async with tenant_context(None):
                return await Task.acall(self, *args, **kwargs)
        try:
            state: TenantState = await registry.aget_by_tenant_id(tenant_id)
        except TenantNotFound:
            raise _not_found(tenant_id, self.name) from None
        async with tenant_context(state.with_own_tenant()):
            return await Task.acall(self, *args, **kwargs)


def tenant_task(
    function: Callable[..., Any] | None = None,
    *,
    priority: int = DEFAULT_TASK_PRIORITY,
    queue_name: str = DEFAULT_TASK_QUEUE_NAME,
    backend: str = DEFAULT_TASK_BACKEND_ALIAS,
    takes_context: bool = False,
) -> Any:
    """``@tenant_task`` instead of ``@django.tasks.task``: same options, tenant carried."""

    def wrapper(func: Callable[..., Any]) -> TenantTask:
        return TenantTask(
            func=func, priority=priority, queue_name=queue_name, backend=backend,
            takes_context=takes_context,
        )  # fmt: skip

    return wrapper(function) if function is not None else wrapper
