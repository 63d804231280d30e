"""Tenant-scoped groups: names, and fan-out with zero cross-tenant messages on real layers."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from channels.layers import BaseChannelLayer, get_channel_layer

from omnitenant_async import TenantState, tenant_context
from omnitenant_async.channels import agroup_send, tenant_group
from omnitenant_async.channels.groups import is_foreign, stamp
from omnitenant_async.exceptions import NoTenantActive
from omnitenant_async.registry import registry

from .consumers import application
from .harness import Socket

LAYER_NAME_RE = re.compile(r"^[a-zA-Z\d\-_.]+$")


def test_names_are_prefixed_with_the_tenant() -> None:
    assert tenant_group("feed", TenantState("t01")) == "t.t01.feed"
    with tenant_context(TenantState("acme-2")):
        assert tenant_group("chat.room-1_x") == "t.acme-2.chat.room-1_x"
    assert tenant_group("feed", TenantState(None)) == "s.public.feed"


def test_long_names_are_hashed_within_the_limit_after_the_full_prefix() -> None:
    tenant = TenantState("a" * 63)
    names = {tenant_group("x" * n, tenant) for n in range(1, 200)}
    assert len(names) == 199  # distinct, even where hashed
    layer = BaseChannelLayer()
    for name in names:
        assert len(name) <= 99 and LAYER_NAME_RE.match(name)
        assert name.startswith(f"t.{'a' * 63}.")
        # require_valid_group_name since channels 4.3; valid_group_name before (still there).
        assert getattr(layer, "require_valid_group_name", layer.valid_group_name)(name)
    long_a, long_b = tenant_group("y" * 120 + "a", tenant), tenant_group("y" * 120 + "b", tenant)
    assert long_a != long_b and len(long_a) <= 99 and len(long_b) <= 99
    assert tenant_group("y" * 90, TenantState("t1")) != tenant_group("y" * 90, TenantState("t2"))


@pytest.mark.parametrize("bad", ["", "a:b", "a/b", "ü", "a b", "x\n"])
def test_invalid_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not valid"):
        tenant_group(bad, TenantState("t01"))


def test_no_tenant_fails_closed() -> None:
    with pytest.raises(NoTenantActive):
        tenant_group("feed")


def test_stamp_and_foreign_events() -> None:
    t1 = TenantState("t01")
    event = stamp({"type": "x.y", "n": 1}, t1)
    assert event == {"type": "x.y", "n": 1, "tenant": "t01"}
    assert not is_foreign(event, t1)
    assert is_foreign(event, TenantState("t02"))
    assert not is_foreign({"type": "websocket.receive", "text": "{}"}, t1)
    assert is_foreign({"type": "x", "tenant": None}, t1)
    with pytest.raises(ValueError, match="type"):
        stamp({"n": 1}, t1)


SOCKETS_PER_TENANT = 10
SAYS = 3


async def recv_n(socket: Socket, n: int) -> list[dict[str, Any]]:
    return [await socket.recv(5) for _ in range(n)]


async def fan_out(tenant_ids: list[str], *, external_layer: Any = None) -> None:
    """5 tenants x 10 sockets (half async, half sync consumers), all in group "room"."""
    app = application()
    members: dict[str, list[Socket]] = {}
    for tenant_id in tenant_ids:
        host = f"{tenant_id}.localhost"
        members[tenant_id] = [
            Socket(app, "asgiref", "/ws/room/" if i % 2 else "/ws/sync-room/", host)
            for i in range(SOCKETS_PER_TENANT)
        ]
    everyone = [s for sockets in members.values() for s in sockets]
    assert all(accepted for accepted, _ in await asyncio.gather(*(s.connect() for s in everyone)))

    # Forgeries first: a t_a group event stamped for t_b, and the bare, unprefixed group.
    layer = get_channel_layer()
    a, b = tenant_ids[0], tenant_ids[1]
    await layer.group_send(
        tenant_group("room", await registry.aget_by_tenant_id(a)),
        {"type": "room.message", "text": "forged", "tenant": b},
    )
    await layer.group_send("room", {"type": "room.message", "text": "bare", "tenant": a})
    # Each tenant's first socket (an async consumer) and second (a sync one) speak.
    for tenant_id, sockets in members.items():
        for i in range(SAYS):
            await sockets[i % 2].send({"op": "say", "text": f"{tenant_id} says {i}"})
    # From outside any consumer (a view, another process): the tenant given explicitly.
    sender = external_layer or layer
    for tenant_id in tenant_ids:
        state = await registry.aget_by_tenant_id(tenant_id)
        event = stamp({"type": "room.message", "text": f"{tenant_id} out"}, state)
        await sender.group_send(tenant_group("room", state), event)

    received = await asyncio.gather(*(recv_n(s, SAYS + 1) for s in everyone))
    owners = [t for t, sockets in members.items() for _ in sockets]
    for owner, messages in zip(owners, received, strict=True):
        assert sorted(m["text"] for m in messages) == sorted(
            [f"{owner} says {i}" for i in range(SAYS)] + [f"{owner} out"]
        )
        assert all(m["tenant"] == owner and m["ctx"] == owner for m in messages), messages
    quiet = await asyncio.gather(*(s.nothing(0.3) for s in everyone))
    assert all(quiet), "a socket received a message meant for nobody or for another tenant"
    await asyncio.gather(*(s.close() for s in everyone))


@pytest.mark.asyncio
async def test_fan_out_in_memory_layer_zero_cross_tenant(tenant_ids: list[str]) -> None:
    assert type(get_channel_layer()).__name__ == "InMemoryChannelLayer"
    await fan_out(tenant_ids)


@pytest.mark.asyncio
async def test_fan_out_redis_layer_zero_cross_tenant(
    tenant_ids: list[str], redis_layers: dict[str, Any]
) -> None:
    """Real Redis; the outside sender is a second layer instance, as another process would be."""
    from channels_redis.core import RedisChannelLayer

    layer = get_channel_layer()
    assert isinstance(layer, RedisChannelLayer)
    other_process = RedisChannelLayer(**redis_layers["default"]["CONFIG"])
    try:
        await fan_out(tenant_ids, external_layer=other_process)
    finally:
        await layer.flush()
        await layer.close_pools()
        await other_process.close_pools()


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/ws/room/", "/ws/sync-room/"])
async def test_join_and_leave_tenant_groups(tenant_ids: list[str], path: str) -> None:
    app = application()
    a, b = tenant_ids[:2]
    sa = Socket(app, "asgiref", path, f"{a}.localhost")
    sb = Socket(app, "asgiref", path, f"{b}.localhost")
    await sa.connect()
    await sb.connect()
    for s in (sa, sb):
        await s.send({"op": "join", "group": "extra"})
        assert await s.recv() == {"joined": "extra"}
    state_a, state_b = await registry.aget_by_tenant_id(a), await registry.aget_by_tenant_id(b)
    with tenant_context(state_a):
        await agroup_send("extra", {"type": "room.message", "text": "hi a"})
    assert (await sa.recv())["text"] == "hi a"
    assert await sb.nothing(0.2)
    await sa.send({"op": "leave", "group": "extra"})
    assert await sa.recv() == {"left": "extra"}
    await agroup_send("extra", {"type": "room.message", "text": "gone"}, tenant=state_a)
    await agroup_send("extra", {"type": "room.message", "text": "hi b"}, tenant=state_b.tenant)
    with pytest.raises(TypeError, match="aget_by_tenant_id"):
        await agroup_send("extra", {"type": "room.message", "text": "?"}, tenant=b)  # type: ignore[arg-type]  # an id is refused
    assert await sa.nothing(0.2)
    assert (await sb.recv())["text"] == "hi b"
    await sa.close()
    await sb.close()


@pytest.mark.asyncio
async def test_public_consumer_groups_are_separate_from_tenants(tenant_ids: list[str]) -> None:
    app = application()
    public = Socket(app, "asgiref", "/ws/public-room/", "localhost")
    tenant = Socket(app, "asgiref", "/ws/room/", f"{tenant_ids[0]}.localhost")
    await public.connect()
    await tenant.connect()
    await public.send({"op": "say", "text": "to public"})
    assert (await public.recv())["tenant"] is None
    assert await tenant.nothing(0.2)
    await public.close()
    await tenant.close()
