"""Views of the demo: every one reads the current tenant's data only."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.html import format_html, format_html_join
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from omnitenant_async import get_current_state, get_current_tenant, use_master_db
from omnitenant_async.channels import agroup_send
from omnitenant_async.utils import get_tenant_model

from .notes.consumers import FEED_GROUP, note_event
from .notes.models import Marker, Note

MAX_NOTE = 500
NO_TENANT = "This is the public host; open /notes/ on a tenant's host, e.g. acme.localhost."


def _tenant_id() -> str | None:
    state = get_current_state()
    return state.tenant_id if state is not None else None


def _count_notes() -> int:
    return Note.objects.count()


async def whoami(request: HttpRequest) -> JsonResponse:
    """Two ORM reads with an await between them and a sync_to_async hop."""
    if get_current_tenant() is None:
        return JsonResponse({"tenant": None, "marker": None})
    marker = await Marker.objects.afirst()  # None in a tenant made by `createtenant`
    await asyncio.sleep(0.001)
    notes = await sync_to_async(_count_notes)()
    return JsonResponse(
        {
            "tenant": request.tenant.tenant_id,  # type: ignore[attr-defined]
            "context": _tenant_id(),
            "marker": marker and marker.tenant_id,
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
            "marker": getattr(Marker.objects.first(), "tenant_id", None),
            "notes": Note.objects.count(),
        }
    )


async def item(request: HttpRequest) -> JsonResponse:
    """One async ORM read: the view the benchmark drives."""
    if get_current_tenant() is None:
        return _error(404, NO_TENANT)
    marker = await Marker.objects.afirst()
    return JsonResponse({"marker": marker and marker.tenant_id})


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _cross_site(request: HttpRequest) -> bool:
    """A browser says the request comes from another site (Origin or Sec-Fetch-Site)."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    return origin is not None and urlsplit(origin).netloc != request.get_host()


def _note_text(request: HttpRequest) -> str | JsonResponse:
    """The note's text from a JSON body ``{"text": "..."}``, or the 4xx response to send."""
    content_type = request.content_type or ""
    if content_type != "application/json":
        return _error(415, 'Send JSON: Content-Type: application/json, body {"text": "..."}.')
    try:
        body: Any = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return _error(400, 'The body is not JSON; send {"text": "..."}.')
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        return _error(400, '"text" must be a non-empty string.')
    if len(text) > MAX_NOTE:
        return _error(400, f'"text" is longer than {MAX_NOTE} characters.')
    return text


# Not Django's CSRF token: the API is JSON only, and a cross-site page cannot send a JSON
# Content-Type without a CORS preflight, which this server never grants. Browsers that say
# the request is cross-site (Origin, Sec-Fetch-Site) are refused as well.
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
async def notes(request: HttpRequest) -> JsonResponse:
    """``GET``: the tenant's latest notes; ``POST`` ``{"text": ...}`` (JSON): add one."""
    if get_current_tenant() is None:
        return _error(404, NO_TENANT)
    if request.method == "POST":
        if _cross_site(request):
            return _error(403, "Cross-site POST refused: post from the tenant's own pages.")
        text = _note_text(request)
        if isinstance(text, JsonResponse):
            return text
        note = await Note.objects.acreate(text=text)
        await agroup_send(FEED_GROUP, note_event(note))  # the tenant's live feed pages
        return JsonResponse({"id": note.pk, "text": note.text}, status=201)
    rows = [{"id": n.pk, "text": n.text} async for n in Note.objects.order_by("-id")[:50]]
    return JsonResponse({"tenant": _tenant_id(), "notes": rows})


async def index(request: HttpRequest) -> HttpResponse:
    """Plain HTML; every value from the database is escaped (notes and names are user input)."""
    if get_current_tenant() is None:
        with use_master_db():
            tenants = [t async for t in get_tenant_model().objects.prefetch_related("domains")]
        links = format_html_join(
            "",
            '<li><a href="http://{}:{}/">{}</a></li>',
            (
                (d.domain, request.get_port(), t.name)
                for t in tenants
                for d in t.domains.all()
                if d.is_primary
            ),
        )
        return HttpResponse(format_html("<h1>omnitenant_async demo</h1><ul>{}</ul>", links))
    tenant = request.tenant  # type: ignore[attr-defined]
    texts = [(n.text,) async for n in Note.objects.order_by("-id")[:20]]
    items = format_html_join("", "<li>{}</li>", texts)
    return HttpResponse(
        format_html(
            "<h1>{}</h1><p>Notes of {}:</p><ul>{}</ul>", tenant.name, tenant.tenant_id, items
        )
    )


async def feed(request: HttpRequest) -> HttpResponse:
    """The tenant's live feed page: notes appear as they are created (``/ws/feed/``)."""
    if get_current_tenant() is None:
        raise Http404("Open the feed on a tenant's host, e.g. http://t00.localhost:8000/feed/.")
    return render(request, "feed.html", {"tenant": request.tenant})  # type: ignore[attr-defined]
