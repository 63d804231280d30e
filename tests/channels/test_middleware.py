"""``omnitenant_async.channels.TenantMiddleware``: the tenant in the scope, or a refusal."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import override_settings

from omnitenant_async import get_current_state
from omnitenant_async.channels import (
    CLOSE_INVALID_TENANT,
    CLOSE_NO_TENANT,
    CLOSE_UNKNOWN_TENANT,
    TenantAuthMiddlewareStack,
    TenantMiddleware,
)

from ..asgi_client import communicator
from .consumers import application
from .harness import Socket, ws_scope

BAD_HOSTS = ["a..b", "-x.localhost", "x" * 300, "t16.localhost:99999", "t16.localhost:x", "a b",
             "t16.localhost\x00", "ünï.localhost", ""]  # fmt: skip


class Recorder:
    """An inner app that records what it was called with and answers like a tiny server."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        state = get_current_state()
        self.calls.append({"scope": scope, "context": state.tenant_id if state else None})
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
        elif scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        elif scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})


def config(**changes: Any) -> dict[str, Any]:
    return {**settings.OMNITENANT_CONFIG, **changes}


async def ws_outcome(app: Any, path: str, host: str | None, extensions: bool = False) -> Any:
    """``("accept", None)``, ``("close", code)`` or ``("http", status, body)``."""
    scope = ws_scope(path, host)
    if extensions:
        scope["extensions"] = {"websocket.http.response": {}}
    comm = communicator(app, scope)
    await comm.send_input({"type": "websocket.connect"})
    out = await comm.receive_output(5)
    if out["type"] == "websocket.http.response.start":
        body = await comm.receive_output(5)
        await comm.wait(5)
        return ("http", out["status"], body["body"])
    if out["type"] == "websocket.close":
        await comm.wait(5)
        return ("close", out["code"])
    assert out["type"] == "websocket.accept", out
    await comm.send_input({"type": "websocket.disconnect", "code": 1000})
    await comm.wait(5)
    return ("accept", None)


async def http_status(app: Any, path: str, host: str) -> tuple[int, bytes]:
    scope = dict(ws_scope(path, host), type="http", method="GET", scheme="http", http_version="1.1")
    comm = communicator(app, scope)
    await comm.send_input({"type": "http.request", "body": b""})
    start = await comm.receive_output(5)
    body = await comm.receive_output(5)
    await comm.wait(5)
    return start["status"], body["body"]


pytestmark = pytest.mark.usefixtures("tenants")


@pytest.mark.asyncio
async def test_websocket_scope_gets_tenant_and_inner_runs_inside_it() -> None:
    inner = Recorder()
    assert await ws_outcome(TenantMiddleware(inner), "/ws/x/", "T17.localhost:8000") == (
        "accept",
        None,
    )
    (call,) = inner.calls
    assert call["context"] == "t17"
    assert call["scope"]["tenant"].tenant_id == "t17"
    assert call["scope"]["tenant_state"].schema_name == "t17"
    assert get_current_state() is None  # nothing leaked out of the middleware


@pytest.mark.asyncio
async def test_scope_is_copied_not_mutated() -> None:
    inner = Recorder()
    scope = ws_scope("/ws/x/", "t17.localhost")
    comm = communicator(TenantMiddleware(inner), scope)
    await comm.send_input({"type": "websocket.connect"})
    await comm.receive_output(5)
    assert "tenant" not in scope and "tenant_state" not in scope
    await comm.wait(5)


@pytest.mark.asyncio
async def test_public_host_gets_no_tenant() -> None:
    inner = Recorder()
    assert (await ws_outcome(TenantMiddleware(inner), "/ws/x/", "localhost"))[0] == "accept"
    assert inner.calls[0]["scope"]["tenant"] is None
    assert inner.calls[0]["scope"]["tenant_state"].is_public


@pytest.mark.asyncio
async def test_unknown_and_malformed_hosts_close_before_accept() -> None:
    inner = Recorder()
    app = TenantMiddleware(inner)
    assert await ws_outcome(app, "/ws/x/", "nobody.localhost") == ("close", CLOSE_UNKNOWN_TENANT)
    for host in BAD_HOSTS:
        assert await ws_outcome(app, "/ws/x/", host) == ("close", CLOSE_INVALID_TENANT), host
    assert inner.calls == []
    # No Host header at all: the server's address decides (127.0.0.1 is a public host here).
    assert await ws_outcome(app, "/ws/x/", None) == ("accept", None)
    assert inner.calls[0]["scope"]["tenant"] is None


@pytest.mark.asyncio
async def test_http_denial_sends_the_status_when_the_server_offers_it() -> None:
    app = TenantMiddleware(Recorder(), http_denial=True)
    unknown = await ws_outcome(app, "/ws/x/", "nobody.localhost", extensions=True)
    assert unknown == ("http", 404, b"Unknown tenant.")
    assert (await ws_outcome(app, "/ws/x/", "a..b", extensions=True))[:2] == ("http", 400)
    # Without the extension, or by default: the close code.
    assert await ws_outcome(app, "/ws/x/", "nobody.localhost") == ("close", 4404)
    default = TenantMiddleware(Recorder())
    assert await ws_outcome(default, "/ws/x/", "nobody.localhost", extensions=True) == (
        "close",
        4404,
    )


@pytest.mark.asyncio
async def test_refusal_through_channels_communicator() -> None:
    socket = Socket(application(), "channels", "/ws/async/", "nobody.localhost")
    assert await socket.connect() == (False, CLOSE_UNKNOWN_TENANT)


@pytest.mark.asyncio
async def test_http_scopes_get_plain_404_and_400() -> None:
    inner = Recorder()
    app = TenantMiddleware(inner)
    assert await http_status(app, "/", "t18.localhost") == (200, b"ok")
    assert await http_status(app, "/", "nobody.localhost") == (404, b"Unknown tenant.")
    for host in BAD_HOSTS:
        assert (await http_status(app, "/", host))[0] == 400, host
    assert len(inner.calls) == 1 and inner.calls[0]["context"] == "t18"


@pytest.mark.asyncio
async def test_lifespan_passes_through_untouched() -> None:
    inner = Recorder()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    comm = communicator(TenantMiddleware(inner), scope)
    await comm.send_input({"type": "lifespan.startup"})
    assert await comm.receive_output(5) == {"type": "lifespan.startup.complete"}
    await comm.wait(5)
    assert inner.calls[0]["scope"] is scope and inner.calls[0]["context"] is None


@pytest.mark.asyncio
async def test_mixin_without_tenant_in_scope_closes_4403() -> None:
    from channels.routing import URLRouter

    bare = URLRouter(__import__("tests.channels.consumers", fromlist=["x"]).probe_routes())
    assert await ws_outcome(bare, "/ws/async/", "t16.localhost") == ("close", CLOSE_NO_TENANT)
    assert await ws_outcome(bare, "/ws/sync/", "t16.localhost") == ("close", CLOSE_NO_TENANT)
    # A public host has no tenant either, unless the consumer allows it.
    assert await ws_outcome(application(), "/ws/json/", "localhost") == ("close", CLOSE_NO_TENANT)
    assert await ws_outcome(application(), "/ws/public-room/", "localhost") == ("accept", None)


QUERY_CASES = [
    ("localhost", "?tenant=t19", ("accept", "t19")),  # public host: the parameter selects
    ("t19.localhost", "?tenant=t19", ("accept", "t19")),  # agreeing with the host
    ("t19.localhost", "", ("accept", "t19")),  # absent: the host decides
    ("t19.localhost", "?tenant=t20", ("close", CLOSE_INVALID_TENANT)),  # contradicting
    ("localhost", "?tenant=nobody", ("close", CLOSE_UNKNOWN_TENANT)),
    ("localhost", "?tenant=BAD!", ("close", CLOSE_INVALID_TENANT)),
    ("localhost", "?tenant=t19&tenant=t20", ("close", CLOSE_INVALID_TENANT)),
    ("localhost", "?tenant=t19&tenant=t19", ("accept", "t19")),
    ("localhost", "?" + "&".join(f"k{i}=v" for i in range(60)), ("close", CLOSE_INVALID_TENANT)),
    ("localhost", "?tenant=t19%00", ("close", CLOSE_INVALID_TENANT)),
    ("nobody.localhost", "?tenant=t19", ("close", CLOSE_UNKNOWN_TENANT)),  # host still decides
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("host", "query", "expected"), QUERY_CASES)
async def test_query_param_is_a_fallback_for_public_hosts(
    host: str, query: str, expected: tuple[str, Any]
) -> None:
    inner = Recorder()
    with override_settings(OMNITENANT_CONFIG=config(QUERY_PARAM="tenant")):
        outcome = await ws_outcome(TenantMiddleware(inner), f"/ws/x/{query}", host)
    if expected[0] == "accept":
        assert outcome[0] == "accept"
        assert inner.calls[0]["context"] == expected[1]
        assert inner.calls[0]["scope"]["tenant"].tenant_id == expected[1]
    else:
        assert outcome == expected


@pytest.mark.asyncio
async def test_query_param_resolver_refuses_floods_of_fields() -> None:
    """QueryParamTenantResolver as the main resolver: 60 fields are malformed, not a crash."""
    query = config(TENANT_RESOLVER="omnitenant_async.resolvers.QueryParamTenantResolver")
    flood = "?" + "&".join(f"k{i}=v" for i in range(60))
    with override_settings(OMNITENANT_CONFIG=query):
        app = TenantMiddleware(Recorder())
        assert await ws_outcome(app, f"/ws/x/{flood}", "localhost") == ("close", 4400)
        assert (await ws_outcome(app, "/ws/x/?tenant=t19", "localhost"))[0] == "accept"


@pytest.mark.asyncio
async def test_query_param_ignored_unless_configured() -> None:
    inner = Recorder()
    await ws_outcome(TenantMiddleware(inner), "/ws/x/?tenant=t20", "t19.localhost")
    await ws_outcome(TenantMiddleware(inner), "/ws/x/?tenant=t20", "localhost")
    assert [c["context"] for c in inner.calls] == ["t19", None]


@pytest.mark.asyncio
async def test_same_resolvers_as_http() -> None:
    """Subdomain, header and path resolvers; the path prefix is hidden from URL routing."""
    subdomain = config(TENANT_RESOLVER="omnitenant_async.resolvers.SubdomainTenantResolver")
    with override_settings(OMNITENANT_CONFIG=subdomain):
        socket = Socket(application(), "asgiref", "/ws/json/", "t20.localhost")
        assert (await socket.connect())[0]
        await socket.send({"op": "whoami"})
        assert await socket.recv() == {"ctx": "t20", "marker": "t20"}
        await socket.close()
        assert (await ws_outcome(application(), "/ws/json/", "t20.example.com"))[1] == 4404

    header = config(TENANT_RESOLVER="omnitenant_async.resolvers.HeaderTenantResolver")
    with override_settings(OMNITENANT_CONFIG=header):
        tenant_header = [(b"x-tenant-id", b"t18")]
        socket = Socket(application(), "asgiref", "/ws/json/", "api.example", tenant_header)
        assert (await socket.connect())[0]
        await socket.send({"op": "whoami"})
        assert await socket.recv() == {"ctx": "t18", "marker": "t18"}
        await socket.close()

    by_path = config(TENANT_RESOLVER="omnitenant_async.resolvers.PathTenantResolver")
    with override_settings(OMNITENANT_CONFIG=by_path):
        for harness in ("channels", "asgiref"):
            socket = Socket(application(), harness, "/t/t17/ws/json/", "localhost")
            assert (await socket.connect())[0]
            await socket.send({"op": "whoami"})
            assert await socket.recv() == {"ctx": "t17", "marker": "t17"}
            await socket.close()
        assert (await ws_outcome(application(), "/t/BAD/ws/json/", "localhost"))[1] == 4400


def make_user_session(tenant_id: str, username: str) -> str:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore

    from omnitenant_async import tenant_context
    from omnitenant_async.registry import registry

    with tenant_context(registry.get_by_tenant_id(tenant_id)):
        User.objects.filter(username=username).delete()
        user = User.objects.create_user(username=username, password="x" * 12)
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.save()
        assert session.session_key is not None
        return session.session_key


class UserRecorder(Recorder):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        user = scope["user"]
        self.calls.append({"user": user.username if user.is_authenticated else None})
        await receive()
        await send({"type": "websocket.accept"})


@pytest.mark.asyncio
async def test_auth_stack_looks_sessions_and_users_up_in_the_tenant_schema() -> None:
    key = await sync_to_async(make_user_session)("t21", "chtest-alice")
    inner = UserRecorder()
    app = TenantAuthMiddlewareStack(inner)
    cookie = [(b"cookie", f"sessionid={key}".encode())]
    for host in ("t21.localhost", "t20.localhost"):  # the same cookie sent to another tenant
        comm = communicator(app, {**ws_scope("/ws/", host, cookie)})
        await comm.send_input({"type": "websocket.connect"})
        assert (await comm.receive_output(5))["type"] == "websocket.accept"
        await comm.send_input({"type": "websocket.disconnect", "code": 1000})
        await comm.wait(5)
    assert inner.calls == [{"user": "chtest-alice"}, {"user": None}]
    await sync_to_async(delete_user)("t21", "chtest-alice", key)


def delete_user(tenant_id: str, username: str, session_key: str) -> None:
    from django.contrib.auth.models import User
    from django.contrib.sessions.models import Session

    from omnitenant_async import tenant_context
    from omnitenant_async.registry import registry

    with tenant_context(registry.get_by_tenant_id(tenant_id)):
        User.objects.filter(username=username).delete()
        Session.objects.filter(session_key=session_key).delete()
