"""``TenantConsumerMixin``: the tenant around every message a consumer handles.

Channels runs all of a connection's handlers in one task, and all consumers' database work on
one shared thread, so a tenant set once in ``connect()`` stays set for whatever that task or
thread does next. The mixin sets the tenant from ``scope["tenant_state"]`` around *each*
``dispatch`` and resets it afterwards, so no handler can change the tenant of the next one.

A connection outlives the registry entry it was resolved from: after each invalidation (a
tenant or domain changed, in any process; ``omnitenant_async.invalidation``) every live
connection resolves its scope again and is closed with :data:`CLOSE_UNKNOWN_TENANT` if its
tenant is gone, or :data:`CLOSE_TENANT_CHANGED` if its host now names another tenant or its
tenant's isolation or database changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any, cast

from asgiref.sync import ThreadSensitiveContext, async_to_sync
from asgiref.typing import ASGIReceiveCallable, ASGISendCallable
from django.db import InterfaceError, OperationalError

from ..context import TenantState, tenant_context
from ..exceptions import InvalidTenantInput, TenantNotFound
from ..invalidation import ensure_listener, subscribe
from ..registry import registry
from ..resolvers import RequestInfo, get_resolver
from .codes import CLOSE_NO_TENANT, CLOSE_TENANT_CHANGED, CLOSE_UNKNOWN_TENANT, logger, reject
from .groups import TENANT_KEY, is_foreign, stamp, tenant_group
from .middleware import aresolve
from .threads import configured_threads, executor_for


def scope_state(scope: Mapping[str, Any]) -> TenantState | None:
    """The tenant state a middleware put in ``scope`` (``tenant_state`` or ``tenant``)."""
    state = scope.get("tenant_state")
    if isinstance(state, TenantState):
        return state
    tenant = scope.get("tenant")
    return TenantState.from_tenant(tenant) if tenant is not None else None


class TenantConsumerMixin:
    """Put first in the bases: ``class Chat(TenantConsumerMixin, AsyncWebsocketConsumer)``.

    Works with sync and async consumers. ``self.groups`` and the ``tenant_group_*`` methods use
    tenant-scoped group names; events stamped with another tenant are dropped. In sync
    consumers the ``tenant_group_*`` methods are plain calls, in async ones awaitables.
    """

    #: Accept connections on a public host (no tenant); groups then use the ``s.public`` prefix.
    allow_public: bool = False
    #: Threads for this consumer's database work; ``None`` follows ``CHANNELS_DB_THREADS``.
    db_threads: int | None = None

    # Provided by the Channels consumer this is mixed into.
    scope: dict[str, Any]
    channel_layer: Any
    channel_name: str
    groups: list[str] | None
    _sync: bool
    _tenant_state: TenantState
    _threads: int
    _db_executor: Executor | None

    @property
    def tenant(self) -> Any:
        """The tenant model instance of this connection."""
        return self._tenant_state.tenant

    @property
    def tenant_state(self) -> TenantState:
        return self._tenant_state

    async def __call__(
        self, scope: Any, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        state = scope_state(scope)
        if state is None or (state.tenant_id is None and not self.allow_public):
            await reject(scope, receive, send, CLOSE_NO_TENANT)
            return
        self._tenant_state = state
        self._threads = configured_threads() if self.db_threads is None else self.db_threads
        self._db_executor = None  # chosen at the first message, once channel_name exists
        groups = getattr(self, "groups", None)  # plain AsyncConsumer has none
        if groups:
            self.groups = [tenant_group(name, state) for name in groups]
        ensure_listener()
        if scope["type"] == "websocket":
            send = _NothingAfterClose(send)
        watch = _Watch(self, scope, send) if scope["type"] == "websocket" else None
        try:
            await cast(Any, super()).__call__(scope, receive, send)
        finally:
            if watch is not None:
                watch.stop()

    async def dispatch(self, message: dict[str, Any]) -> None:
        state = self._tenant_state
        if is_foreign(message, state):
            logger.warning(
                "Dropped a %r event for tenant %r sent to a consumer of tenant %r.",
                message.get("type"), message[TENANT_KEY], state.tenant_id,
            )  # fmt: skip
            return
        parent = cast(Any, super())
        with tenant_context(state):
            if not self._threads:
                await parent.dispatch(message)
                return
            async with ThreadSensitiveContext(executor=self._executor()):
                await parent.dispatch(message)

    def _executor(self) -> Executor:
        executor = self._db_executor
        if executor is None:
            key = getattr(self, "channel_name", None) or str(id(self))
            executor = self._db_executor = executor_for(key, self._threads)
        return executor

    def tenant_group(self, name: str) -> str:
        """This connection's tenant-scoped name for group ``name``."""
        return tenant_group(name, self._tenant_state)

    def tenant_group_add(self, name: str) -> Any:
        """Join the tenant's group ``name``."""
        return self._layer_call(
            self.channel_layer.group_add, self.tenant_group(name), self.channel_name
        )

    def tenant_group_discard(self, name: str) -> Any:
        """Leave the tenant's group ``name``."""
        return self._layer_call(
            self.channel_layer.group_discard, self.tenant_group(name), self.channel_name
        )

    def tenant_group_send(self, name: str, event: Mapping[str, Any]) -> Any:
        """Send ``event``, stamped with this tenant, to the tenant's group ``name``."""
        return self._layer_call(
            self.channel_layer.group_send,
            self.tenant_group(name),
            stamp(event, self._tenant_state),
        )

    def _layer_call(self, method: Callable[..., Any], *args: Any) -> Any:
        if self._sync:
            return async_to_sync(method)(*args)
        return method(*args)


class _NothingAfterClose:
    """The server's ``send``, dropping what a consumer sends once the socket is closed.

    A group event can arrive after the consumer's own ``close()`` or after the client went away
    but before its disconnect is dispatched; its handler's ``send`` then makes the server
    raise (uvicorn: "Unexpected ASGI message 'websocket.send', after sending 'websocket.close'
    or response already completed"; the ASGI spec: an ``OSError``) and log a traceback for a
    message nobody can receive.
    """

    def __init__(self, send: ASGISendCallable) -> None:
        self._send = send
        self.closed = False

    async def __call__(self, message: Any) -> None:
        if self.closed:
            return
        if message.get("type") == "websocket.close":
            self.closed = True
        try:
            await self._send(message)
        except (OSError, RuntimeError) as err:
            if message.get("type") != "websocket.send" or not _closed_socket_error(err):
                raise
            self.closed = True
            logger.debug("Dropped a WebSocket message sent after the client left: %s", err)


def _closed_socket_error(err: Exception) -> bool:
    if isinstance(err, OSError):
        return True
    text = str(err)
    return "after sending 'websocket.close'" in text or "response already completed" in text


class _Watch:
    """Re-checks one live connection's tenant after each invalidation; closes it if stale."""

    def __init__(self, consumer: TenantConsumerMixin, scope: Any, send: ASGISendCallable) -> None:
        self.consumer = consumer
        self.scope = scope
        self.send = send  # the server's own send: a close needs no handler of the consumer
        self.loop = asyncio.get_running_loop()
        self.task: asyncio.Task[None] | None = None
        self.pending = False
        self.closed = False
        self.unsubscribe = subscribe(self._invalidated)

    def stop(self) -> None:
        self.closed = True
        self.unsubscribe()
        if self.task is not None:
            self.task.cancel()

    def _invalidated(self) -> None:
        """Any thread: schedule one re-check on the connection's loop."""
        try:
            self.loop.call_soon_threadsafe(self._schedule)
        except RuntimeError:  # the loop is closed: the connection is gone
            self.unsubscribe()

    def _schedule(self) -> None:
        if self.closed:
            return
        if self.task is not None and not self.task.done():
            self.pending = True  # re-check again once the running one is done
            return
        self.task = self.loop.create_task(self._recheck())

    async def _recheck(self) -> None:
        while not self.closed:
            self.pending = False
            code = await self._verdict()
            if code is not None:
                await self._close(code)
                return
            if not self.pending:
                return

    async def _verdict(self) -> int | None:
        """The close code this connection deserves now, or ``None`` to keep it."""
        old = self.consumer.tenant_state
        try:
            new = await _current_state(self.scope, old)
        except TenantNotFound:
            return CLOSE_UNKNOWN_TENANT
        except (OperationalError, InterfaceError, InvalidTenantInput):
            return None  # cannot tell now: the next invalidation (a reconnect) asks again
        return None if new == old else CLOSE_TENANT_CHANGED

    async def _close(self, code: int) -> None:
        self.closed = True
        self.unsubscribe()
        logger.info(
            "Closing a WebSocket of tenant %r (%s): its tenant changed.",
            self.consumer.tenant_state.tenant_id, code,
        )  # fmt: skip
        try:
            await self.send({"type": "websocket.close", "code": code, "reason": ""})
        except Exception as err:  # already closed by either side
            logger.debug("Could not close the WebSocket: %s", err)


async def _current_state(scope: Mapping[str, Any], old: TenantState) -> TenantState:
    """What the scope resolves to now: through the resolver when our middleware resolved it."""
    if old.tenant_id is None and "tenant_state" not in scope:
        return old
    if "tenant_state" in scope:  # our middleware: the same resolution as a new connection
        return await aresolve(get_resolver(), RequestInfo.from_scope(scope))
    assert old.tenant_id is not None
    return await registry.aget_by_tenant_id(old.tenant_id)
