"""ASGI-first, async-native multitenancy for Django."""

from __future__ import annotations

from .context import (
    TenantContext,
    TenantRef,
    TenantState,
    bind_context,
    get_current_state,
    get_current_tenant,
    require_state,
    schema_context,
    spawn,
    tenant_context,
    use_master_db,
    use_public_schema,
    use_schema,
    use_tenant,
)
from .types import TenantLike

__version__ = "0.1.0"

__all__ = [
    "TenantContext",
    "TenantLike",
    "TenantRef",
    "TenantState",
    "bind_context",
    "get_current_state",
    "get_current_tenant",
    "require_state",
    "schema_context",
    "spawn",
    "tenant_context",
    "use_master_db",
    "use_public_schema",
    "use_schema",
    "use_tenant",
]
