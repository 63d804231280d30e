"""Database router: which models live where, and failing closed when no tenant is active.

Every app is one of three scopes (``OMNITENANT_CONFIG``):

- master (``MASTER_APPS``, plus the tenant and domain models' apps): only in the master
  database's public schema, reachable whatever tenant is active;
- shared (``SHARED_APPS``): migrated in public *and* in every tenant; the tenant's copy is used
  while a tenant is active;
- tenant (every other app): only in tenant schemas/databases; querying one with no tenant
  active raises :class:`~omnitenant_async.exceptions.NoTenantActive`.
"""

from __future__ import annotations

import enum
import functools
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import connections, models
from django.dispatch import receiver

from .conf import get_config
from .context import get_current_state
from .exceptions import NoTenantActive


class Scope(enum.Enum):
    MASTER = "master"
    SHARED = "shared"
    TENANT = "tenant"


@functools.cache
def scope_of_app(app_label: str) -> Scope:
    config = get_config()
    if app_label in config.master_apps:
        return Scope.MASTER
    if app_label in config.SHARED_APPS:
        return Scope.SHARED
    return Scope.TENANT


def tenant_alias() -> str:
    """The virtual alias serving every database tenant (``TENANT_DB_ALIAS``)."""
    alias = get_config().TENANT_DB_ALIAS
    if alias not in connections.settings:
        raise ImproperlyConfigured(
            f"A database tenant is active but DATABASES has no {alias!r} alias. Add "
            f"DATABASES[{alias!r}] = {{'ENGINE': 'omnitenant_async.backends.postgresql_dbs', "
            "'CONN_MAX_AGE': 0}, or set OMNITENANT_CONFIG['TENANT_DB_ALIAS']."
        )
    return alias


def clear_scope_cache() -> None:
    scope_of_app.cache_clear()


@receiver(setting_changed)
def _clear_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    """An app's scope comes from OMNITENANT_CONFIG; a test that overrides it needs it again."""
    if setting in ("OMNITENANT_CONFIG", "DATABASES"):
        clear_scope_cache()


def scope_of(model: type[models.Model]) -> Scope:
    return scope_of_app(model._meta.app_label)


class TenantRouter:
    """Add to ``DATABASE_ROUTERS``; it must come before routers that answer for every model."""

    def _db_for(self, model: type[models.Model], **hints: Any) -> str | None:
        scope = scope_of(model)
        config = get_config()
        if scope is Scope.MASTER:
            return config.MASTER_DB_ALIAS
        state = get_current_state()
        if state is None or state.is_public:
            if scope is Scope.TENANT:
                raise NoTenantActive(
                    f"{model._meta.label} is tenant-scoped and no tenant is active. Serve the "
                    "request through TenantMiddleware or wrap the code in "
                    "`with tenant_context(tenant):`; list its app in OMNITENANT_CONFIG"
                    "['SHARED_APPS'] or ['MASTER_APPS'] if it is not per-tenant data."
                )
            return config.MASTER_DB_ALIAS
        if state.pool_key is not None:
            return tenant_alias()
        return config.MASTER_DB_ALIAS

    #: Reads and writes go to the same alias (one frame less per query).
    db_for_read = _db_for
    db_for_write = _db_for

    def allow_relation(self, obj1: models.Model, obj2: models.Model, **hints: Any) -> bool | None:
        return None

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        try:
            scope = scope_of_app(app_label)
        except ImproperlyConfigured:
            return False  # `check` reports omnitenant.E001; nothing migrates meanwhile
        state = get_current_state()
        in_tenant = state is not None and not state.is_public
        on_database_tenant = state is not None and state.pool_key is not None
        if on_database_tenant or db == get_config().TENANT_DB_ALIAS:
            # A database tenant's tenant and shared apps migrate in its own database only.
            return (
                on_database_tenant
                and db == get_config().TENANT_DB_ALIAS
                and scope is not Scope.MASTER
            )
        if scope is Scope.MASTER:
            return not in_tenant and db == get_config().MASTER_DB_ALIAS
        if scope is Scope.TENANT:
            return in_tenant
        return True
