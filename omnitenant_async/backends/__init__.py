"""Provisioning backends: create, migrate and delete a tenant's schema or database."""

from __future__ import annotations

from typing import Any

from ..isolation import IsolationType
from .base import BaseTenantBackend

__all__ = ["BaseTenantBackend", "get_tenant_backend"]


def get_tenant_backend(tenant: Any) -> BaseTenantBackend:
    """The backend for ``tenant``'s isolation type (schema or database)."""
    if IsolationType(tenant.isolation_type) == IsolationType.DATABASE:
        from .database import DatabaseTenantBackend

        return DatabaseTenantBackend(tenant)
    from .schema import SchemaTenantBackend

    return SchemaTenantBackend(tenant)
