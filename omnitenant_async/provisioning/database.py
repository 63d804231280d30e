"""Database-per-tenant provisioning: ``CREATE DATABASE`` on the tenant's own server."""

from __future__ import annotations

from typing import Any, cast

import psycopg
from django.db import connections
from psycopg import errors, sql

from ..conf import get_config
from ..context import TenantState
from ..engines.database_settings import (
    DatabaseSettings,
    database_key,
    database_settings_for,
    validate_database_name,
)
from ..engines.pools import pool_registry
from ..exceptions import TenantAlreadyExists, TenantProvisioningError
from ..routers import tenant_alias
from .base import BaseTenantBackend


class DatabaseTenantBackend(BaseTenantBackend):
    """Create, migrate and drop a tenant's own database (possibly on another server)."""

    @property
    def db_settings(self) -> DatabaseSettings:
        return database_settings_for(self.tenant)

    @property
    def database_name(self) -> str:
        return str(self.db_settings["NAME"])

    def migration_state(self) -> TenantState:
        return TenantState.from_tenant(self.tenant)

    @property
    def migration_alias(self) -> str:
        return tenant_alias()

    def _server(self) -> psycopg.Connection[Any]:
        """An autocommit connection to the maintenance database of the tenant's server."""
        db = self.db_settings
        maintenance = {**db, "NAME": get_config().DATABASE_MAINTENANCE_DB}
        wrapper = cast(Any, connections[tenant_alias()])
        params = wrapper.connection_params_for(maintenance)
        try:
            return psycopg.connect(**params, autocommit=True)
        except psycopg.Error as err:
            raise TenantProvisioningError(
                f"Tenant {self.tenant.tenant_id!r}: cannot reach database server "
                f"{db['HOST'] or 'localhost'}:{db['PORT'] or 5432} as {db['USER']!r}: {err}"
            ) from err

    def create_storage(self) -> None:
        db = self.db_settings
        name = str(db["NAME"])
        validate_database_name(name)
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if db.get("TEMPLATE"):
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(db["TEMPLATE"]))
        try:
            with self._server() as conn:
                conn.execute(statement)
        except errors.DuplicateDatabase as err:
            raise TenantAlreadyExists(
                f"Database {name!r} already exists on {db['HOST']}:{db['PORT']}. Delete it with "
                "get_tenant_backend(tenant).delete(drop=True), or set another "
                "config['database']['NAME']."
            ) from err
        except errors.InsufficientPrivilege as err:
            raise TenantProvisioningError(
                f"Role {db['USER']!r} may not create database {name!r}: {err}. Grant it "
                "CREATEDB (ALTER ROLE ... CREATEDB) or create the database beforehand and "
                "call migrate() instead of create()."
            ) from err
        except errors.ObjectInUse as err:
            raise TenantProvisioningError(
                f"Cannot clone template database {db['TEMPLATE']!r}: {err}. Close every "
                "connection to the template first."
            ) from err
        except psycopg.Error as err:
            raise TenantProvisioningError(f"Could not create database {name!r}: {err}") from err

    def drop_storage(self) -> None:
        db = self.db_settings
        name = str(db["NAME"])
        validate_database_name(name)
        self._release_own_connections(database_key(db))
        statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        try:
            with self._server() as conn:
                conn.execute(statement)
        except psycopg.Error as err:
            raise TenantProvisioningError(f"Could not drop database {name!r}: {err}") from err

    def _release_own_connections(self, key: str) -> None:
        """Give back this thread's connection to the database and close its pool."""
        wrapper = cast(Any, connections[tenant_alias()])
        held = wrapper.connection
        if held is not None and getattr(held, "_ot_db", None) == key:
            wrapper.close()
        pool_registry.close(key)

    def exists(self) -> bool:
        with self._server() as conn:
            row = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [self.database_name]
            ).fetchone()
        return row is not None
