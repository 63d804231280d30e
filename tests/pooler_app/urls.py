"""Views that run queries in every shape a transaction pooler can get wrong.

Each view reads the tenant's marker row (``SELECT tenant_id FROM notes_marker``) with every
query it makes and answers ``{"tenant": <resolved>, "seen": [<marker per query>], "ok": ...}``,
so a test can check that *every* statement ran in the request's own tenant: between awaits, in
and after atomic blocks, after rollbacks and savepoint rollbacks, on raw cursors and around
``executemany``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from demo.notes.models import Marker, Note

MARKER_SQL = "SELECT tenant_id FROM notes_marker"


def _answer(request: HttpRequest, seen: list[Any], ok: bool = True, **extra: Any) -> JsonResponse:
    tenant = getattr(request, "tenant", None)
    return JsonResponse({"tenant": tenant and tenant.tenant_id, "seen": seen, "ok": ok, **extra})


def _raw_marker() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute(MARKER_SQL)
        row = cursor.fetchone()
    return row[0] if row else None


async def sleepy(request: HttpRequest) -> JsonResponse:
    """Autocommit queries with awaits between them: each may get another server connection."""
    seen = [(await Marker.objects.aget()).tenant_id]
    await asyncio.sleep(0.002)
    seen.append((await Marker.objects.aget()).tenant_id)
    await asyncio.sleep(0.001)
    count = await Note.objects.filter(text__startswith="pooler-").acount()
    seen.append((await Marker.objects.aget()).tenant_id)
    return _answer(request, seen, leftover_notes=count)


def atomic(request: HttpRequest) -> JsonResponse:
    """One explicit transaction, several statements (ORM and raw)."""
    seen: list[str | None] = []
    with transaction.atomic():
        seen.append(Marker.objects.get().tenant_id)
        seen.append(_raw_marker())
        Note.objects.filter(text="pooler-never-there").count()
        seen.append(Marker.objects.values_list("tenant_id", flat=True).get())
    seen.append(Marker.objects.get().tenant_id)  # autocommit again
    return _answer(request, seen)


def rollback(request: HttpRequest) -> JsonResponse:
    """A transaction that fails on the server, is rolled back, then more queries."""
    seen: list[str | None] = []
    failed = False
    try:
        with transaction.atomic():
            seen.append(Marker.objects.get().tenant_id)
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 / 0")
    except DatabaseError:
        failed = True
    seen.append(Marker.objects.get().tenant_id)
    seen.append(_raw_marker())
    return _answer(request, seen, ok=failed)


def savepoint(request: HttpRequest) -> JsonResponse:
    """A savepoint rolled back (a note inserted in it disappears), then queries in and after."""
    token = f"pooler-sp-{uuid.uuid4().hex}"
    seen: list[str | None] = []
    with transaction.atomic():
        seen.append(Marker.objects.get().tenant_id)
        sid = connection.savepoint()
        assert sid is not None  # None only outside a transaction
        Note.objects.create(text=token)
        seen.append(_raw_marker())
        connection.savepoint_rollback(sid)
        seen.append(Marker.objects.get().tenant_id)
        try:
            with transaction.atomic():  # a nested atomic is a savepoint too
                seen.append(Marker.objects.get().tenant_id)
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1 / 0")
        except DatabaseError:
            pass
        seen.append(_raw_marker())
        gone = not Note.objects.filter(text=token).exists()
    seen.append(Marker.objects.get().tenant_id)
    return _answer(request, seen, ok=gone)


def raw(request: HttpRequest) -> JsonResponse:
    """Raw cursors only, several statements on one cursor."""
    seen = []
    with connection.cursor() as cursor:
        for _ in range(3):
            cursor.execute(MARKER_SQL)
            seen.append(cursor.fetchone()[0])
        cursor.execute("SELECT tenant_id, (SELECT count(*) FROM notes_note) FROM notes_marker")
        seen.append(cursor.fetchone()[0])
    return _answer(request, seen)


def _executemany(tenant_id: str) -> tuple[list[Any], bool, int]:
    token = f"pooler-em-{uuid.uuid4().hex}"
    rows = [(f"{token}-{tenant_id}-{i}",) for i in range(5)]
    seen: list[str | None] = []
    with connection.cursor() as cursor:
        # Autocommit: every INSERT is its own transaction on the server.
        cursor.executemany("INSERT INTO notes_note (text, created_at) VALUES (%s, now())", rows)
        seen.append(_raw_marker())
        cursor.execute(
            "SELECT text, (SELECT tenant_id FROM notes_marker) FROM notes_note "
            "WHERE text LIKE %s ORDER BY text",
            [token + "%"],
        )
        found = cursor.fetchall()
        seen += [marker for _, marker in found]
        with transaction.atomic():
            cursor.executemany("DELETE FROM notes_note WHERE text = %s", rows)
            seen.append(_raw_marker())
        cursor.execute("SELECT count(*) FROM notes_note WHERE text LIKE %s", [token + "%"])
        left = cursor.fetchone()[0]
    return seen, [text for text, _ in found] == [r[0] for r in rows], left


async def executemany(request: HttpRequest) -> JsonResponse:
    """``cursor.executemany`` inserts into the tenant's notes, read back and deleted again."""
    tenant_id = request.tenant.tenant_id  # type: ignore[attr-defined]  # set by the middleware
    seen, complete, left = await sync_to_async(_executemany)(tenant_id)
    return _answer(request, seen, ok=complete and left == 0)


async def mixed(request: HttpRequest) -> JsonResponse:
    """An async view that hops into a sync atomic block between awaits."""
    seen = [(await Marker.objects.aget()).tenant_id]
    await asyncio.sleep(0.001)
    inner = await sync_to_async(atomic)(request)
    seen += json.loads(inner.content)["seen"]
    seen.append((await Marker.objects.aget()).tenant_id)
    return _answer(request, seen)


SyncView = Callable[[HttpRequest], JsonResponse]
AsyncView = Callable[[HttpRequest], Coroutine[Any, Any, JsonResponse]]

VIEWS: dict[str, SyncView | AsyncView] = {
    "sleepy": sleepy,
    "atomic": atomic,
    "rollback": rollback,
    "savepoint": savepoint,
    "raw": raw,
    "executemany": executemany,
    "mixed": mixed,
}

urlpatterns = [
    *(path(f"pooler/{name}/", view) for name, view in VIEWS.items()),
    path("", include("demo.urls")),
]
