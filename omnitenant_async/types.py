"""``TenantLike``: what the library reads from a tenant, as a structural type.

Any concrete subclass of :class:`~omnitenant_async.models.BaseTenant` satisfies it, and so does
a test double with the same attributes. The public API takes a ``TenantLike`` (or a
``TenantState``, or ``None`` for "no tenant") instead of ``Any``, so a type checker catches a
domain or a string passed where a tenant belongs.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["TenantLike"]


@runtime_checkable
class TenantLike(Protocol):
    """A tenant row as the engines read it: its DNS-label id, isolation type and config."""

    tenant_id: str
    isolation_type: int
    config: Any  # a JSON object: dict[str, Any] once loaded
