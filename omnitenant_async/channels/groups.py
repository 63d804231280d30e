"""Tenant-scoped channel-layer group names, and sending to a tenant's group.

Channel layers know nothing of tenants: two tenants joining group ``"feed"`` would share it.
Every name therefore gets the tenant's prefix, ``t.<tenant_id>.<name>``, and every event sent
through these helpers carries ``event["tenant"]`` so a receiving consumer can drop foreign ones.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from asgiref.sync import async_to_sync
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import get_channel_layer
from django.core.exceptions import ImproperlyConfigured

from ..context import TenantRef, TenantState, require_state

#: What channel layers accept (``BaseChannelLayer.group_name_regex``).
GROUP_NAME_RE = re.compile(r"[a-zA-Z\d\-_.]+")  # fullmatch: "$" would allow a final "\n"
#: Layers require ``len(name) < 100``.
MAX_GROUP_NAME_LENGTH = 99
_DIGEST_LENGTH = 32  # hex characters of sha1 kept for long names (128 bits)

#: The event key naming the tenant an event was sent for.
TENANT_KEY = "tenant"


def state_of(tenant: TenantRef = None) -> TenantState:
    """The state for a tenant model instance or state; the active one when ``None``."""
    if tenant is None:
        return require_state()
    if isinstance(tenant, TenantState):
        return tenant
    if not hasattr(tenant, "isolation_type"):
        raise TypeError(
            f"Expected a tenant model instance or a TenantState, not {tenant!r} (to send by id, "
            "look the tenant up first: `await registry.aget_by_tenant_id(tenant_id)`)."
        )
    return TenantState.from_tenant(tenant)


def tenant_group(name: str, tenant: TenantRef = None) -> str:
    """The layer group name of ``name`` for ``tenant`` (default: the active tenant).

    ``t.<tenant_id>.<name>``; beyond 99 characters the tail is replaced by a sha1 digest of the
    whole name, always after the complete tenant prefix.
    """
    if not isinstance(name, str) or not GROUP_NAME_RE.fullmatch(name):
        raise ValueError(
            f"Group name {name!r} is not valid: use ASCII letters, digits, '-', '_' and '.' only."
        )
    full = f"{state_of(tenant).cache_prefix}.{name}"
    if len(full) <= MAX_GROUP_NAME_LENGTH:
        return full
    digest = hashlib.sha1(full.encode(), usedforsecurity=False).hexdigest()[:_DIGEST_LENGTH]
    head = full[: MAX_GROUP_NAME_LENGTH - _DIGEST_LENGTH - 1].rstrip(".")
    return f"{head}.{digest}"


def stamp(event: Mapping[str, Any], tenant: TenantRef = None) -> dict[str, Any]:
    """A copy of ``event`` carrying the tenant id under ``"tenant"``."""
    if "type" not in event:
        raise ValueError("A channel-layer event needs a 'type' key naming its handler.")
    return {**event, TENANT_KEY: state_of(tenant).tenant_id}


def is_foreign(message: Mapping[str, Any], state: TenantState) -> bool:
    """True when ``message`` is stamped with another tenant than ``state``'s."""
    return TENANT_KEY in message and message[TENANT_KEY] != state.tenant_id


def _layer(alias: str) -> Any:
    layer = get_channel_layer(alias)
    if layer is None:
        raise ImproperlyConfigured(
            f"No channel layer {alias!r}: configure CHANNEL_LAYERS (InMemoryChannelLayer for one "
            "process, channels_redis.core.RedisChannelLayer for several)."
        )
    return layer


async def agroup_send(
    name: str,
    event: Mapping[str, Any],
    *,
    tenant: TenantRef = None,
    alias: str = DEFAULT_CHANNEL_LAYER,
) -> None:
    """Send ``event`` to the tenant's group ``name`` from anywhere (a view, a task)."""
    state = state_of(tenant)
    await _layer(alias).group_send(tenant_group(name, state), stamp(event, state))


def group_send(
    name: str,
    event: Mapping[str, Any],
    *,
    tenant: TenantRef = None,
    alias: str = DEFAULT_CHANNEL_LAYER,
) -> None:
    """Sync twin of :func:`agroup_send`."""
    state = state_of(tenant)
    async_to_sync(agroup_send)(name, event, tenant=state, alias=alias)
