"""Releasing connections early from async code."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction

from demo.notes.models import Marker
from omnitenant_async import tenant_context
from omnitenant_async.db import arelease_connections, release_connections

from .engine_wrapper import engine_wrapper


@pytest.mark.asyncio
async def test_arelease_returns_the_request_threads_connection(tenants: dict[str, Any]) -> None:
    pool = engine_wrapper().pool
    async with tenant_context(tenants["t17"]):
        assert (await Marker.objects.aget()).tenant_id == "t17"
        held = await sync_to_async(lambda: connection.connection is not None)()
        available = pool.get_stats().get("pool_available", 0)
        assert held
        assert await arelease_connections() == 1
        assert not await sync_to_async(lambda: connection.connection is not None)()
        assert pool.get_stats().get("pool_available", 0) == available + 1
        assert (await Marker.objects.aget()).tenant_id == "t17"  # checks out again on demand


def test_release_skips_connections_inside_atomic(tenants: dict[str, Any]) -> None:
    with tenant_context(tenants["t18"]), transaction.atomic():
        Marker.objects.get()
        assert release_connections() == 0
        assert connection.connection is not None
    assert release_connections() == 1
