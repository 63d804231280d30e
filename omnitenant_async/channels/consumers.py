"""``TenantConsumerMixin``: the tenant around every message a consumer handles.

Channels runs all of a connection's handlers in one task, and all consumers' database work on
one shared thread, so a tenant set once in ``connect()`` stays set for whatever that task or
thread does next. The mixin sets the tenant from ``scope["tenant_state"]`` around *each*
``dispatch`` and resets it afterwards, so no handler can change the tenant of the next one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any, cast

from asgiref.sync import ThreadSensitiveContext, async_to_sync
from asgiref.typing import ASGIReceiveCallable, ASGISendCallable

from ..context import TenantState, tenant_context
from .codes import CLOSE_NO_TENANT, logger, reject
from .groups import TENANT_KEY, stamp, tenant_group
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
        await cast(Any, super()).__call__(scope, receive, send)

    async def dispatch(self, message: dict[str, Any]) -> None:
        state = self._tenant_state
        if TENANT_KEY in message and message[TENANT_KEY] != state.tenant_id:
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
