"""Views of the demo: every one reads the current tenant's data only."""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import re
import secrets
import time
import zlib
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import (
    ImproperlyConfigured,
    SuspiciousFileOperation,
    ValidationError,
)
from django.db import DatabaseError, connections, router
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.http.request import split_domain_port
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from omnitenant_async import get_current_state, get_current_tenant, tenant_context, use_master_db
from omnitenant_async.channels import agroup_send
from omnitenant_async.exceptions import OmnitenantError
from omnitenant_async.isolation import IsolationType
from omnitenant_async.provisioning import get_tenant_backend
from omnitenant_async.utils import get_domain_model, get_tenant_model

from .forms import MAX_NOTE, NoteForm, TenantForm
from .notes.consumers import FEED_GROUP, note_event
from .notes.models import Marker, Note

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


# --- HTML pages: the public landing page, each tenant's dashboard and live feed ------------
# Plain Django templates with auto-escaping (notes and tenant names are user input), one
# inline stylesheet and a little inline JavaScript, both allowed by a per-response CSP nonce
# and nothing else: an injected <script> or on* attribute would not run even if it got through.

LANDING_LIMIT = 100  # tenants listed on the landing page, newest first
NOTES_SHOWN = 20
# What provisioning raises for bad input or a refused storage; shown as a form error, never 500.
PROVISIONING_ERRORS = (
    OmnitenantError, ValidationError, DatabaseError, ValueError, ImproperlyConfigured,
)  # fmt: skip


def _base_domain() -> str:
    config: dict[str, Any] = settings.OMNITENANT_CONFIG
    return str(config.get("BASE_DOMAIN") or "localhost")


def _origin(request: HttpRequest, host: str) -> str:
    """``http://<host>[:<port>]``: the scheme and port the visitor used, on another host."""
    port = split_domain_port(request.get_host())[1] or request.get_port()
    default = "443" if request.scheme == "https" else "80"
    return f"{request.scheme}://{host}" + ("" if port == default else f":{port}")


def _page(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    websocket: bool = False,
) -> HttpResponse:
    nonce = secrets.token_urlsafe(16)
    context = {**context, "nonce": nonce, "public_url": _origin(request, _base_domain()) + "/"}
    response = render(request, template, context, status=status)
    host = request.get_host()  # validated by Django and TenantMiddleware: [a-z0-9.-:[]] only
    sockets = f" ws://{host} wss://{host}" if websocket else ""
    response["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        f"connect-src 'self'{sockets}; img-src 'self' data:; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _see_other(url: str) -> HttpResponseRedirect:
    """Post/redirect/get: a reload after a form POST does not post it again."""
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


# Well-separated hues: blue, green, orange, purple, teal, red, olive, pink, amber, indigo.
HUES = (218, 150, 24, 275, 188, 355, 95, 322, 42, 245)


def _hue(tenant_id: str) -> int:
    """A colour per tenant, so two dashboards side by side are told apart at a glance."""
    return HUES[zlib.crc32(tenant_id.encode()) % len(HUES)]


@csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
async def index(request: HttpRequest) -> HttpResponse:
    """``/``: the landing page on the public host, the tenant's dashboard on a tenant's host."""
    if get_current_tenant() is None:
        return await _landing(request)
    return await _dashboard(request)


async def _landing(request: HttpRequest) -> HttpResponse:
    """The tenants, and a form that provisions a new one (``acreate``), timed."""
    form = TenantForm()
    status = 200
    if request.method == "POST":
        form = TenantForm(request.POST)
        if form.is_valid():
            created = await _provision(form)
            if created is not None:
                tenant, how, why, seconds = created
                messages.success(
                    request,
                    f"Tenant {tenant.tenant_id!r} provisioned in {seconds * 1000:.0f} ms: "
                    f"{how}{f' ({why})' if why else ''}.",
                )
                return _see_other(f"{reverse('index')}?created={tenant.tenant_id}")
        status = 400
    Tenant = get_tenant_model()
    with use_master_db():
        total = await Tenant.objects.acount()
        tenants = [
            t
            async for t in Tenant.objects.order_by("-created_at", "-pk").prefetch_related(
                "domains"
            )[:LANDING_LIMIT]
        ]
    rows = []
    for tenant in tenants:
        domains = sorted(tenant.domains.all(), key=lambda d: (not d.is_primary, d.pk))
        rows.append(
            {
                "tenant": tenant,
                "url": _origin(request, domains[0].domain) + "/" if domains else None,
                "domains": [d.domain for d in domains],
                "hue": _hue(tenant.tenant_id),
            }
        )
    context = {
        "rows": rows,
        "total": total,
        "hidden": total - len(rows),
        "form": form,
        "created": request.GET.get("created", ""),
        "base_domain": _base_domain(),
    }
    return _page(request, "demo/landing.html", context, status=status)


async def _provision(form: TenantForm) -> tuple[Any, str, str, float] | None:
    """Create the tenant of a valid form: ``(tenant, how, why, seconds)``, or None and errors.

    Provisioning (row, schema or database, migrations or clone) is the backend's ``acreate``;
    the primary domain ``<id>.<BASE_DOMAIN>`` is added only once it succeeded, so no request
    reaches a half-made tenant. A failure on the way is a form error, and undone.
    """
    tenant_id: str = form.cleaned_data["tenant_id"]
    name: str = form.cleaned_data["name"] or tenant_id.replace("-", " ").title()
    domain = f"{tenant_id}.{_base_domain()}"
    Tenant, Domain = get_tenant_model(), get_domain_model()
    with use_master_db():
        if await Tenant.objects.filter(tenant_id=tenant_id).aexists():
            form.add_error("tenant_id", f"A tenant with id {tenant_id!r} already exists.")
            return None
        if await Domain.objects.filter(domain=domain).aexists():
            form.add_error("tenant_id", f"The host {domain} already belongs to another tenant.")
            return None
    fields: dict[str, Any] = {}
    if form.cleaned_data["isolation"] == "database":
        fields = {"isolation_type": IsolationType.DATABASE, "config": {"database": {}}}
    tenant = Tenant(tenant_id=tenant_id, name=name, **fields)
    backend = get_tenant_backend(tenant)
    start = time.perf_counter()
    try:
        how = await backend.acreate()  # all or nothing: undoes its own work when it fails
    except PROVISIONING_ERRORS as err:
        form.add_error(None, f"Provisioning {tenant_id!r} failed: {_message(err)}")
        return None
    seconds = time.perf_counter() - start
    try:
        with use_master_db():
            await Domain.objects.acreate(domain=domain, tenant=tenant, is_primary=True)
        async with tenant_context(tenant):
            await Marker.objects.acreate(tenant_id=tenant_id)
            await Note.objects.acreate(text=f"Welcome to {name}")
    except PROVISIONING_ERRORS as err:
        await backend.adelete(drop=True)
        form.add_error(None, f"Setting up {tenant_id!r} failed, it was removed: {_message(err)}")
        return None
    return tenant, how, backend.provisioned_why, seconds


def _message(err: BaseException) -> str:
    if isinstance(err, ValidationError):
        return "; ".join(err.messages)
    return str(err).strip() or type(err).__name__


async def _dashboard(request: HttpRequest) -> HttpResponse:
    """The tenant's notes (and a form to add one), its live feed, and who answers the request."""
    tenant = request.tenant  # type: ignore[attr-defined]
    form = NoteForm()
    status = 200
    if request.method == "POST":  # without JavaScript; the page's script posts to /notes/
        form = NoteForm(request.POST)
        if form.is_valid():
            note = await Note.objects.acreate(text=form.cleaned_data["text"])
            await agroup_send(FEED_GROUP, note_event(note))
            return _see_other(reverse("index"))
        status = 400
    notes_shown = [n async for n in Note.objects.order_by("-id")[:NOTES_SHOWN]]
    context = {
        "tenant": tenant,
        "hue": _hue(tenant.tenant_id),
        "notes": notes_shown,
        "note_count": await Note.objects.acount(),
        "form": form,
        "who": await sync_to_async(_who_am_i)(request),
    }
    return _page(request, "demo/dashboard.html", context, status=status, websocket=True)


WHO_AM_I_SQL = (
    "SELECT current_database(), current_schema(), current_setting('search_path'), "
    "pg_backend_pid(), host(inet_server_addr()), inet_server_port(), current_user"
)


def _who_am_i(request: HttpRequest) -> dict[str, Any]:
    """Where this request's queries go, asked of PostgreSQL itself on the tenant's connection."""
    state = get_current_state()
    tenant = request.tenant  # type: ignore[attr-defined]
    alias = router.db_for_read(Note) or "default"
    with connections[alias].cursor() as cursor:
        cursor.execute(WHO_AM_I_SQL)
        row = cursor.fetchone()
    database, schema, search_path, pid, server_host, server_port, user = row
    config: dict[str, Any] = settings.OMNITENANT_CONFIG
    resolver = str(config.get("TENANT_RESOLVER", ""))
    return {
        "tenant_id": state.tenant_id if state is not None else None,
        "isolation": tenant.get_isolation_type_display(),
        "database_tenant": IsolationType(tenant.isolation_type) == IsolationType.DATABASE,
        "alias": alias,
        "database": database,
        "schema": schema,
        "search_path": search_path,
        "backend_pid": pid,
        "db_server": f"{server_host}:{server_port}" if server_host else "unix socket",
        "db_user": user,
        "host": request.get_host(),
        "resolver": resolver,
        # omnitenant_async.resolvers.CustomDomainTenantResolver -> "custom domain"
        "resolver_label": re.sub(
            r"(?<!^)(?=[A-Z])", " ", resolver.rsplit(".", 1)[-1].removesuffix("TenantResolver")
        ).lower()
        or resolver,
        "web_server": f"{request.META.get('SERVER_NAME')}:{request.META.get('SERVER_PORT')}",
        "web_pid": os.getpid(),
    }


async def feed(request: HttpRequest) -> HttpResponse:
    """The tenant's live feed page: notes appear as they are created (``/ws/feed/``)."""
    if get_current_tenant() is None:
        raise Http404("Open the feed on a tenant's host, e.g. http://t00.localhost:8000/feed/.")
    tenant = request.tenant  # type: ignore[attr-defined]
    context = {"tenant": tenant, "hue": _hue(tenant.tenant_id), "form": NoteForm()}
    return _page(request, "feed.html", context, websocket=True)


@require_http_methods(["GET", "HEAD"])
def static(request: HttpRequest, path: str) -> HttpResponse:
    """The admin's CSS and JavaScript, straight from Django's app directories.

    The demo runs uvicorn alone (no ``collectstatic``, no web server in front), so without this
    the admin renders unstyled. Only ``admin/`` files are served; a real deployment serves
    static files with its web server, WhiteNoise or a CDN.
    """
    from django.contrib.staticfiles import finders

    if not path.startswith("admin/"):
        raise Http404("Only the admin's static files are served here.")
    try:
        found = finders.find(path)
    except SuspiciousFileOperation:
        found = None
    if not isinstance(found, str) or not os.path.isfile(found):
        raise Http404(f"No static file {path!r}.")
    content_type = mimetypes.guess_type(found)[0] or "application/octet-stream"
    with open(found, "rb") as file:
        response = HttpResponse(file.read(), content_type=content_type)
    response["Cache-Control"] = "public, max-age=3600"
    return response
