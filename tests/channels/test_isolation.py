"""Every read and write of every message lands in the connection's own schema.

Sockets of several tenants send interleaved messages; each handler writes and reads through
``database_sync_to_async`` and through the async ORM. Run with both harnesses (see
``harness.py``): one shared DB connection for everybody, and pooled connections as in production.
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from demo.notes.models import Note
from omnitenant_async import tenant_context
from omnitenant_async.registry import registry

from ..engine_wrapper import engine_wrapper
from .consumers import NOTE_PREFIX, application
from .harness import HARNESSES, Socket, close_all, connect_all, recv_all

KINDS = ["sync", "async", "json", "plain"]
ROUNDS = 4
SOCKETS_PER_TENANT = 2


def notes_by_tenant(tenant_ids: list[str], prefix: str) -> dict[str, list[str]]:
    found = {}
    for tenant_id in tenant_ids:
        with tenant_context(registry.get_by_tenant_id(tenant_id)):
            found[tenant_id] = sorted(
                Note.objects.filter(text__startswith=prefix).values_list("text", flat=True)
            )
    return found


def expected_ok(reply: dict[str, Any], tenant_id: str, kind: str) -> None:
    assert reply["ctx"] == tenant_id, reply
    assert reply["ctx_sync"] == tenant_id, reply
    assert reply["marker_sync"] == tenant_id, reply
    assert reply["note_sync"] is True, reply
    if kind != "sync":
        assert reply["marker_async"] == tenant_id, reply
        assert reply["note_async"] is True, reply


@pytest.mark.asyncio
@pytest.mark.parametrize("harness", HARNESSES)
@pytest.mark.parametrize("kind", KINDS)
async def test_interleaved_messages_read_and_write_own_schema(
    tenant_ids: list[str], kind: str, harness: str
) -> None:
    app = application()
    tenants = tenant_ids[:4]
    owners = [t for t in tenants for _ in range(SOCKETS_PER_TENANT)]
    sockets = [Socket(app, harness, f"/ws/{kind}/", f"{t}.localhost") for t in owners]
    await connect_all(sockets, harness)
    prefix = f"{NOTE_PREFIX}{kind}-{harness}-"
    pids, threads = set(), set()
    for round_ in range(ROUNDS):
        # All messages are queued first, so the consumers' handlers interleave.
        for i, (owner, socket) in enumerate(zip(owners, sockets, strict=True)):
            await socket.send({"op": "probe", "tag": f"{prefix}{owner}-{i}-{round_}"})
        for owner, reply in zip(owners, await recv_all(sockets, harness), strict=True):
            expected_ok(reply, owner, kind)
            pids.add(reply["pid"])
            threads.add(reply["thread"])
    await close_all(sockets)

    written = await sync_to_async(notes_by_tenant)(tenants, prefix)
    writes_per_probe = 1 if kind == "sync" else 2
    for tenant_id, texts in written.items():
        assert len(texts) == SOCKETS_PER_TENANT * ROUNDS * writes_per_probe, texts
        assert all(text.startswith(f"{prefix}{tenant_id}-") for text in texts), texts
    assert len(threads) == 1  # Channels' one shared DB thread served every tenant
    if harness == "channels":
        assert len(pids) == 1, pids  # ...on one connection the whole time
    else:
        assert len(pids) >= 2, pids  # ...on connections rotating through the pool


@pytest.mark.bug
@pytest.mark.asyncio
@pytest.mark.parametrize("harness", HARNESSES)
@pytest.mark.parametrize("kind", KINDS)
async def test_handler_switching_tenant_cannot_affect_next_message(
    tenant_ids: list[str], kind: str, harness: str
) -> None:
    """A handler sets the tenant without resetting it (async, and in a sync thread, whose
    change asgiref copies back); the next message is served in the socket's tenant again."""
    app = application()
    own, other, bystander = tenant_ids[:3]
    victim = Socket(app, harness, f"/ws/{kind}/", f"{own}.localhost")
    neighbour = Socket(app, harness, f"/ws/{kind}/", f"{bystander}.localhost")
    await connect_all([victim, neighbour], harness)
    for op in ("evil", "evil-sync"):
        await victim.send({"op": op, "to": other})
        assert await victim.recv() == {"ctx": other, "marker": other}  # inside the handler
        await victim.send({"op": "whoami"})
        assert await victim.recv() == {"ctx": own, "marker": own}
        await neighbour.send({"op": "whoami"})
        assert await neighbour.recv() == {"ctx": bystander, "marker": bystander}
    await close_all([victim, neighbour])


@pytest.mark.bug
@pytest.mark.asyncio
@pytest.mark.parametrize("harness", HARNESSES)
async def test_naive_tenant_set_once_leaks_where_the_mixin_does_not(
    tenant_ids: list[str], harness: str
) -> None:
    """Without the mixin, the tenant is set once for the connection's task (by the middleware
    or in connect()); a handler that changes it changes it for every later message."""
    from .consumers import naive_application

    app = application()
    own, other = tenant_ids[:2]
    naive_middleware = Socket(app, harness, "/ws/naive/", f"{own}.localhost")
    naive_connect = Socket(naive_application(), harness, f"/ws/naive-connect/{own}/", "localhost")
    mixin = Socket(app, harness, "/ws/async/", f"{own}.localhost")
    sockets = [naive_middleware, naive_connect, mixin]
    await connect_all(sockets, harness)
    for socket in sockets:
        await socket.send({"op": "whoami"})
        assert await socket.recv() == {"ctx": own, "marker": own}  # all fine so far
        await socket.send({"op": "evil", "to": other})
        assert await socket.recv() == {"ctx": other, "marker": other}
        await socket.send({"op": "whoami"})
    replies = [await socket.recv() for socket in sockets]
    assert replies[0] == {"ctx": other, "marker": other}  # the leak, reproduced
    assert replies[1] == {"ctx": other, "marker": other}
    assert replies[2] == {"ctx": own, "marker": own}  # and contained by the mixin
    await close_all(sockets)


def discard_pool() -> None:
    """Close the pool: the naive consumer left ``SET search_path`` on pooled connections."""
    wrapper = engine_wrapper()
    wrapper.close()
    wrapper.close_pool()


@pytest.mark.bug
@pytest.mark.asyncio
@pytest.mark.parametrize("harness", HARNESSES)
async def test_naive_set_search_path_in_connect_leaks(tenant_ids: list[str], harness: str) -> None:
    """django-tenants' way without the mixin: ``SET search_path`` in connect() sets it on
    the shared thread's connection, or on whatever pooled connection that call got."""
    from .consumers import naive_application

    app = naive_application()
    owners = tenant_ids[:3]
    sockets = [Socket(app, harness, f"/ws/naive-set/{t}/", "localhost") for t in owners]
    try:
        await connect_all(sockets, harness)  # SETs for tenants a, b, c in turn
        replies: list[dict[str, Any]] = []
        for socket in reversed(sockets):  # reversed: pool rotation cannot line up by chance
            await socket.send({"op": "whoami"})
            replies.insert(0, await socket.recv())
        await close_all(sockets)
    finally:
        await sync_to_async(discard_pool)()
    seen = [reply["marker"] for reply in replies]
    # Raw SQL ran in another tenant's schema (or in public: None); the ORM refused instead,
    # since no tenant is active.
    assert seen != owners, seen
    assert all(reply["orm"] == "NoTenantActive" for reply in replies)
    if harness == "channels":
        assert seen == [owners[-1]] * len(owners)  # the last connect() won for everybody
