"""Channels support: tenant middleware, a consumer mixin and tenant-scoped groups.

Needs the ``channels`` extra (``pip install django-omnitenant-async[channels]``). See
``docs/channels.md``.
"""

from __future__ import annotations

from .codes import CLOSE_INVALID_TENANT, CLOSE_NO_TENANT, CLOSE_UNKNOWN_TENANT
from .consumers import TenantConsumerMixin
from .groups import agroup_send, group_send, tenant_group
from .middleware import TenantAuthMiddlewareStack, TenantMiddleware
from .routing import TenantURLRouter

__all__ = [
    "CLOSE_INVALID_TENANT",
    "CLOSE_NO_TENANT",
    "CLOSE_UNKNOWN_TENANT",
    "TenantAuthMiddlewareStack",
    "TenantConsumerMixin",
    "TenantMiddleware",
    "TenantURLRouter",
    "agroup_send",
    "group_send",
    "tenant_group",
]
