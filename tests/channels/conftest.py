"""Fixtures of the Channels tests: tenants of their own, a clean channel layer, no leftovers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from tests.conftest import TENANT_IDS

# t16..t23: tenants the other test modules leave alone; notes written here are deleted after.
CHANNEL_TENANTS = TENANT_IDS[16:21]
IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def tenant_ids(tenants: dict[str, Any]) -> list[str]:
    return list(CHANNEL_TENANTS)


@pytest.fixture(autouse=True)
def in_memory_layer() -> Iterator[None]:
    """The in-memory layer, fresh for each test (tests wanting Redis override it again)."""
    with override_settings(CHANNEL_LAYERS=IN_MEMORY):
        yield


@pytest.fixture(autouse=True)
def no_leftovers(request: pytest.FixtureRequest) -> Iterator[None]:
    """Delete the notes a test wrote; fail if Channels' connection closing stayed patched out."""
    yield
    if "tenants" not in request.fixturenames:
        return
    import channels.db
    import django.db

    from .consumers import NOTE_PREFIX

    delete_notes(NOTE_PREFIX, CHANNEL_TENANTS)
    assert channels.db.close_old_connections is django.db.close_old_connections, (
        "channels.testing left close_old_connections patched out: receive one socket at a time"
    )


def delete_notes(prefix: str, tenant_ids: list[str]) -> None:
    from django.db import connections

    from demo.notes.models import Note
    from omnitenant_async import tenant_context
    from omnitenant_async.registry import registry

    for tenant_id in tenant_ids:
        with tenant_context(registry.get_by_tenant_id(tenant_id)):
            Note.objects.filter(text__startswith=prefix).delete()
    connections.close_all()


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("OMNITENANT_REDIS_URL")
    if not url:
        pytest.skip("OMNITENANT_REDIS_URL is not set: scripts/test starts Redis and exports it")
    return url


def redis_channel_layers(url: str, prefix: str = "asgi") -> dict[str, Any]:
    """CHANNEL_LAYERS on Redis as docs/channels.md recommends: a socket_timeout longer than
    channels_redis's 5 s BZPOPMIN (redis-py 8 defaults to 5 s, channels_redis#422) and room
    for bursts (W020, W021)."""
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{"address": url, "socket_timeout": 10}],
                "capacity": 1000,
                "prefix": prefix,
            },
        }
    }


@pytest.fixture
def redis_layers(redis_url: str) -> Iterator[dict[str, Any]]:
    """CHANNEL_LAYERS on the real Redis, under a key prefix of this test only."""
    config = redis_channel_layers(redis_url, prefix=f"omnitenant-test-{uuid.uuid4().hex[:8]}")
    with override_settings(CHANNEL_LAYERS=config):
        yield config
