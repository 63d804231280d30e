"""django-omnitenant's helper names."""

from __future__ import annotations

from .provisioning import get_tenant_backend
from .registry import get_domain_model, get_tenant_model

__all__ = ["get_domain_model", "get_tenant_backend", "get_tenant_model"]
