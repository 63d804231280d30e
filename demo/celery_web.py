"""Views and a consumer that queue Celery tasks from ``async def`` code (tests, docs/tasks.md).

Served by ``demo.celery_asgi`` with ``DJANGO_SETTINGS_MODULE=demo.celery_settings``, so the
demo's own URLs stay as they are. Nothing here names a tenant: the middleware activated it,
and the tasks take it from the context.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from omnitenant_async.channels import TenantConsumerMixin

from .notes.tasks import whoami


async def queue(request: HttpRequest) -> JsonResponse:
    """``/celery/queue/?n=5&via=thread|async``: queue ``n`` tasks, answer their ids."""
    n = min(int(request.GET.get("n", "1")), 100)
    tag = request.GET.get("tag", "")
    if request.GET.get("via") == "async":
        results = [await whoami.adelay(tag) for _ in range(n)]
    else:  # through sync_to_async, as code that also touches the ORM would
        results = [await sync_to_async(whoami.delay)(tag) for _ in range(n)]
    tenant = request.tenant.tenant_id if request.tenant is not None else None  # type: ignore[attr-defined]
    return JsonResponse({"tenant": tenant, "ids": [r.id for r in results]})


class QueueConsumer(TenantConsumerMixin, AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """``/ws/celery/``: each ``{"n": 5, "tag": "x"}`` queues ``n`` tasks and answers their ids."""

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        n = min(int(content.get("n", 1)), 100)
        results = [await whoami.adelay(str(content.get("tag", ""))) for _ in range(n)]
        await self.send_json({"tenant": self.tenant.tenant_id, "ids": [r.id for r in results]})


urlpatterns = [path("celery/queue/", queue), path("", include("demo.urls"))]
