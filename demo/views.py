"""Views of the demo: every one reads the current tenant's data only."""

from __future__ import annotations

import asyncio
import json

from asgiref.sync import sync_to_async
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from omnitenant_async import get_current_state, get_current_tenant, use_master_db
from omnitenant_async.channels import agroup_send
from omnitenant_async.utils import get_tenant_model

from .notes.consumers import FEED_GROUP, note_event
from .notes.models import Marker, Note


def _tenant_id() -> str | None:
    state = get_current_state()
    return state.tenant_id if state is not None else None


def _count_notes() -> int:
    return Note.objects.count()


async def whoami(request: HttpRequest) -> JsonResponse:
    """Two ORM reads with an await between them and a sync_to_async hop."""
    if get_current_tenant() is None:
        return JsonResponse({"tenant": None, "marker": None})
    marker = await Marker.objects.aget()
    await asyncio.sleep(0.001)
    notes = await sync_to_async(_count_notes)()
    return JsonResponse(
        {
            "tenant": request.tenant.tenant_id,  # type: ignore[attr-defined]
            "context": _tenant_id(),
            "marker": marker.tenant_id,
            "notes": notes,
        }
    )


def whoami_sync(request: HttpRequest) -> JsonResponse:
    if get_current_tenant() is None:
        return JsonResponse({"tenant": None, "marker": None})
    return JsonResponse(
        {
            "tenant": request.tenant.tenant_id,  # type: ignore[attr-defined]
            "context": _tenant_id(),
            "marker": Marker.objects.get().tenant_id,
            "notes": Note.objects.count(),
        }
    )


async def item(request: HttpRequest) -> JsonResponse:
    """One async ORM read: the view the benchmark drives."""
    marker = await Marker.objects.aget()
    return JsonResponse({"marker": marker.tenant_id})


@csrf_exempt
async def notes(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        text = json.loads(request.body or b"{}").get("text", "")[:500]
        note = await Note.objects.acreate(text=text)
        await agroup_send(FEED_GROUP, note_event(note))  # the tenant's live feed pages
        return JsonResponse({"id": note.pk, "text": note.text}, status=201)
    rows = [{"id": n.pk, "text": n.text} async for n in Note.objects.order_by("-id")[:50]]
    return JsonResponse({"tenant": _tenant_id(), "notes": rows})


async def index(request: HttpRequest) -> HttpResponse:
    if get_current_tenant() is None:
        with use_master_db():
            tenants = [t async for t in get_tenant_model().objects.prefetch_related("domains")]
        links = "".join(
            f'<li><a href="http://{d.domain}:{request.get_port()}/">{t.name}</a></li>'
            for t in tenants
            for d in t.domains.all()
            if d.is_primary
        )
        return HttpResponse(f"<h1>omnitenant_async demo</h1><ul>{links}</ul>")
    tenant = request.tenant  # type: ignore[attr-defined]
    items = "".join([f"<li>{n.text}</li>" async for n in Note.objects.order_by("-id")[:20]])
    return HttpResponse(
        f"<h1>{tenant.name}</h1><p>Notes of {tenant.tenant_id}:</p><ul>{items}</ul>"
    )


async def feed(request: HttpRequest) -> HttpResponse:
    """The tenant's live feed page: notes appear as they are created (``/ws/feed/``)."""
    if get_current_tenant() is None:
        raise Http404("Open the feed on a tenant's host, e.g. http://t00.localhost:8000/feed/.")
    return render(request, "feed.html", {"tenant": request.tenant})  # type: ignore[attr-defined]
