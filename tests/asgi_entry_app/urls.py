"""Views that leave state behind on their thread, and one that reports it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DatabaseError, connection, transaction
from django.http import FileResponse, HttpRequest, JsonResponse
from django.urls import get_script_prefix, include, path, set_script_prefix
from django.utils import translation

from demo.notes.models import Marker

LEAKED = "leaked"


def _open_atomic_and_write() -> None:
    transaction.atomic().__enter__()  # never exited
    Marker.objects.create(tenant_id=LEAKED)


def leave_atomic(request: HttpRequest) -> JsonResponse:
    _open_atomic_and_write()
    return JsonResponse({"ok": True})


def raise_in_atomic(request: HttpRequest) -> JsonResponse:
    _open_atomic_and_write()
    raise RuntimeError("raised mid-atomic")


def broken_atomic(request: HttpRequest) -> JsonResponse:
    transaction.atomic().__enter__()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1/0")
    except DatabaseError:
        pass  # needs_rollback is now set, and the block is never exited
    return JsonResponse({"needs_rollback": connection.needs_rollback})


def set_language_and_prefix(request: HttpRequest) -> JsonResponse:
    translation.activate("fr")
    set_script_prefix("/leaked-prefix/")
    return JsonResponse({"language": translation.get_language()})


def debug_queries(request: HttpRequest) -> JsonResponse:
    connection.force_debug_cursor = True
    Marker.objects.count()
    return JsonResponse({"queries": len(connection.queries)})


async def disconnect_in_atomic(request: HttpRequest) -> JsonResponse:
    await sync_to_async(_open_atomic_and_write)()
    await asyncio.sleep(30)  # the client goes away meanwhile
    return JsonResponse({"ok": True})


def _state() -> dict[str, Any]:
    marker = Marker.objects.exclude(tenant_id=LEAKED).get()
    return {
        "marker": marker.tenant_id,
        "leaked": Marker.objects.filter(tenant_id=LEAKED).count(),
        "in_atomic_block": connection.in_atomic_block,
        "needs_rollback": connection.needs_rollback,
        "queries": len(connection.queries),
        "language": translation.get_language(),
        "script_prefix": get_script_prefix(),
        "thread": threading.current_thread().name,
        "threads": threading.active_count(),
    }


def state(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_state())


async def astate(request: HttpRequest) -> JsonResponse:
    marker = await Marker.objects.exclude(tenant_id=LEAKED).aget()
    data = await sync_to_async(_state)()
    data["amarker"] = marker.tenant_id
    return JsonResponse(data)


async def file_response(request: HttpRequest) -> FileResponse:
    marker = await Marker.objects.exclude(tenant_id=LEAKED).aget()
    response = FileResponse(open(__file__, "rb"))
    response["X-Marker"] = marker.tenant_id
    return response


urlpatterns = [
    path("leave-atomic/", leave_atomic),
    path("raise-in-atomic/", raise_in_atomic),
    path("broken-atomic/", broken_atomic),
    path("set-language/", set_language_and_prefix),
    path("debug-queries/", debug_queries),
    path("disconnect-in-atomic/", disconnect_in_atomic),
    path("state/", state),
    path("astate/", astate),
    path("file/", file_response),
    path("", include("tests.release_app.urls")),
]
