"""Where a database tenant's data lives: its connection settings and its pool key.

A tenant's ``config["database"]`` names any of ``NAME``, ``HOST``, ``PORT``, ``USER``,
``PASSWORD``, ``OPTIONS`` and ``TEMPLATE``; the rest comes from the virtual alias's own
settings, then from the master database's. ``NAME`` defaults to ``DATABASE_NAME_PREFIX`` plus
the tenant id. ``settings.DATABASES`` is only read, never changed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from ..conf import get_config
from ..context import TenantState, register_state_builder
from ..exceptions import InvalidTenantName
from ..isolation import IsolationType
from ..types import TenantLike

__all__ = [
    "DatabaseSettings",
    "database_settings_for",
    "database_state",
    "default_database_name",
    "validate_database_name",
]

# Quoted identifiers make any name safe in SQL; this keeps names portable and readable.
DATABASE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$")
RESERVED_DATABASES = frozenset({"postgres", "template0", "template1"})
TENANT_KEYS = frozenset({"NAME", "HOST", "PORT", "USER", "PASSWORD", "OPTIONS", "TEMPLATE"})
_INHERITED = ("HOST", "PORT", "USER", "PASSWORD")
# Per-alias settings that make no sense for one tenant database.
_ALIAS_ONLY_OPTIONS = ("pool",)


class DatabaseSettings(Mapping[str, Any]):
    """A read-only mapping of connection settings whose ``repr`` hides the password."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        shown = {k: ("***" if k == "PASSWORD" and v else v) for k, v in self._data.items()}
        return f"DatabaseSettings({shown!r})"


def default_database_name(tenant_id: str) -> str:
    """``DATABASE_NAME_PREFIX`` + tenant id, hyphens as underscores (ids have no underscores).

    Names over PostgreSQL's 63 bytes are cut and suffixed with a hash, so they stay unique.
    """
    name = get_config().DATABASE_NAME_PREFIX + tenant_id.replace("-", "_")
    if len(name) <= 63:
        return name
    digest = hashlib.sha1(tenant_id.encode()).hexdigest()[:10]
    return f"{name[:52]}_{digest}"


def validate_database_name(name: Any) -> None:
    """Raise :class:`InvalidTenantName` unless ``name`` can name a tenant database."""
    if not isinstance(name, str) or not DATABASE_NAME_RE.match(name):
        raise InvalidTenantName(
            f"Database name {name!r} is not allowed: use 1-63 letters, digits, underscores and "
            "hyphens, not starting with a hyphen."
        )
    if name.lower() in RESERVED_DATABASES:
        raise InvalidTenantName(f"Database name {name!r} is a system database; choose another.")


def _base_settings() -> dict[str, Any]:
    """The master database's settings, overridden by the virtual alias's non-empty ones."""
    all_settings = connections.settings
    master = all_settings[get_config().MASTER_DB_ALIAS]
    alias = all_settings.get(get_config().TENANT_DB_ALIAS, {})
    merged = {key: alias.get(key) or master.get(key) or "" for key in _INHERITED}
    options = {**(master.get("OPTIONS") or {}), **(alias.get("OPTIONS") or {})}
    for key in _ALIAS_ONLY_OPTIONS:
        options.pop(key, None)
    merged["OPTIONS"] = options
    return merged


def database_settings_for(tenant: TenantLike) -> DatabaseSettings:
    """The merged connection settings of a database tenant (validated)."""
    own = (tenant.config or {}).get("database") or {}
    if not isinstance(own, Mapping):
        raise ImproperlyConfigured(
            f"Tenant {tenant.tenant_id!r}: config['database'] must be a dict, got {own!r}."
        )
    unknown = set(own) - TENANT_KEYS
    if unknown:
        raise ImproperlyConfigured(
            f"Tenant {tenant.tenant_id!r}: unknown config['database'] keys {sorted(unknown)}; "
            f"allowed are {sorted(TENANT_KEYS)}."
        )
    merged = _base_settings()
    merged.update({k: own[k] for k in _INHERITED if own.get(k) not in (None, "")})
    merged["PORT"] = str(merged["PORT"] or "")
    merged["OPTIONS"] = {**merged["OPTIONS"], **(own.get("OPTIONS") or {})}
    merged["NAME"] = own.get("NAME") or default_database_name(tenant.tenant_id)
    merged["TEMPLATE"] = own.get("TEMPLATE") or get_config().DATABASE_TEMPLATE
    validate_database_name(merged["NAME"])
    return DatabaseSettings(merged)


def database_key(db: Mapping[str, Any]) -> str:
    """The pool key: one pool per role, server and database (``user@host:port/name``)."""
    return f"{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def database_state(tenant: TenantLike) -> TenantState:
    """The state of a database tenant (``TenantState.from_tenant``'s builder for the type)."""
    db = database_settings_for(tenant)
    return TenantState(
        tenant.tenant_id,
        IsolationType.DATABASE,
        pool_key=database_key(db),
        db_settings=db,
        tenant=tenant,
    )


register_state_builder(IsolationType.DATABASE, database_state)
