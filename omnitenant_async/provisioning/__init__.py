"""Provisioning backends: create, migrate and delete a tenant's schema or database."""

from __future__ import annotations

from ..isolation import IsolationType
from ..models import BaseTenant
from .base import BaseTenantBackend
from .database import DatabaseTenantBackend
from .schema import SchemaTenantBackend

__all__ = ["BaseTenantBackend", "get_tenant_backend"]


def get_tenant_backend(tenant: BaseTenant) -> BaseTenantBackend:
    """The backend for ``tenant``'s isolation type (schema or database)."""
    if IsolationType(tenant.isolation_type) == IsolationType.DATABASE:
        return DatabaseTenantBackend(tenant)
    return SchemaTenantBackend(tenant)
