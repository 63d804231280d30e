"""Django's tasks framework (``django.tasks``, Django >= 6.0) carries the tenant: ImmediateBackend.

Skipped on Django 5.2, where ``omnitenant_async.tasks`` raises a clear ImportError instead.
"""

from __future__ import annotations

import importlib
from typing import Any

import django
import pytest

from omnitenant_async import tenant_context

if django.VERSION < (6, 0):
    pytest.skip("django.tasks needs Django >= 6.0", allow_module_level=True)

from django.tasks import TaskResultStatus

from omnitenant_async.tasks import TENANT_KWARG


def test_enqueued_in_a_tenant_runs_in_it(tenants: dict[str, Any]) -> None:
    from demo.notes.django_tasks import whoami

    for tid in ("t00", "t05", "t11"):
        with tenant_context(tenants[tid]):
            result = whoami.enqueue(tag=tid)
        assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
        assert result.return_value == {"tenant": tid, "marker": tid, "tag": tid}
        assert TENANT_KWARG in result.kwargs  # the carrier, stored with the task's kwargs


def test_no_tenant_runs_with_none_and_fails_closed(tenants: dict[str, Any]) -> None:
    from demo.notes.django_tasks import marker, whoami

    assert whoami.enqueue(tag="x").return_value == {"tenant": None, "marker": None, "tag": "x"}
    failed = marker.enqueue()
    assert failed.status == TaskResultStatus.FAILED
    assert failed.errors[0].exception_class_path.endswith("NoTenantActive")


def test_unknown_tenant_fails_the_task() -> None:
    from demo.notes.django_tasks import whoami

    result = whoami.enqueue(**{TENANT_KWARG: "no-such-tenant"})
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path.endswith("TaskTenantNotFound")
    assert "no-such-tenant" in result.errors[0].traceback


@pytest.mark.asyncio
async def test_aenqueue_from_async_code_and_async_tasks(tenants: dict[str, Any]) -> None:
    from demo.notes.django_tasks import awhoami, whoami

    async with tenant_context(tenants["t03"]):
        sync_result = await whoami.aenqueue(tag="s")
        async_result = await awhoami.aenqueue(tag="a")
    assert sync_result.return_value == {"tenant": "t03", "marker": "t03", "tag": "s"}
    assert async_result.return_value == {"tenant": "t03", "marker": "t03", "tag": "a"}


def test_module_imports_on_this_django() -> None:
    assert importlib.import_module("omnitenant_async.tasks").tenant_task
