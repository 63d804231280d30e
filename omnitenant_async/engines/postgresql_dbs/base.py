"""The virtual alias of database tenants.

One alias (``TENANT_DB_ALIAS``, default ``"tenants"``) serves every database tenant: at each
checkout the wrapper connects to the database of the tenant in the ContextVar, through that
database's pool in :data:`~omnitenant_async.engines.pools.pool_registry`. The physical connection
is tagged with its database (``_ot_db``), so a thread whose tenant changes gives the held
connection back to *its own* pool and takes one from the new tenant's - except inside a
transaction, where that would silently split the work across two databases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base as pg
from django.utils.asyncio import async_unsafe
from psycopg import IsolationLevel, sql
from psycopg_pool import ConnectionPool

from ...conf import get_config
from ...context import TenantState, get_current_state
from ...exceptions import NoTenantActive, TenantSwitchInTransaction
from .. import health, leases
from ..pools import ExitAwareConnection, pool_registry
from .creation import DatabaseCreation

_PostgresWrapper: Any = pg.DatabaseWrapper


def _database_state() -> TenantState:
    """The active database tenant's state; raise :class:`NoTenantActive` otherwise."""
    state = get_current_state()
    if state is None or state.pool_key is None or state.db_settings is None:
        raise NoTenantActive(
            "No database tenant is active, so the tenant database alias has nowhere to connect. "
            "Serve the request through TenantMiddleware or wrap the code in "
            "`with tenant_context(tenant):` with a tenant whose isolation_type is DATABASE."
        )
    return state


class _SettingsView:
    """Just enough of a wrapper for Django's ``get_connection_params`` to read other settings."""

    def __init__(self, wrapper: Any, settings_dict: dict[str, Any]) -> None:
        self.settings_dict = settings_dict
        self.ops = wrapper.ops
        self.timezone = wrapper.timezone


class DatabaseWrapper(_PostgresWrapper):
    creation_class = DatabaseCreation
    connection: Any  # the psycopg connection held by this thread's wrapper, or None

    # -- where to connect ---------------------------------------------------------------------
    def connection_params_for(self, db: Mapping[str, Any]) -> dict[str, Any]:
        """psycopg connect kwargs for a tenant's settings, built by Django's own code."""
        merged = {**self.settings_dict, **db, "OPTIONS": dict(db["OPTIONS"])}
        params: dict[str, Any] = _PostgresWrapper.get_connection_params(_SettingsView(self, merged))
        return params

    def get_connection_params(self) -> dict[str, Any]:
        db = _database_state().db_settings
        assert db is not None
        return self.connection_params_for(db)

    @property
    def pool(self) -> ConnectionPool | None:
        """The held connection's pool, else the current tenant's (if open)."""
        if self.connection is not None:
            return getattr(self.connection, "_pool", None)
        state = get_current_state()
        return pool_registry.get(state.pool_key) if state and state.pool_key else None

    def close_pool(self) -> None:
        pool_registry.close_all()

    def _make_pool(self, state: TenantState) -> ConnectionPool:
        config = get_config()
        db = state.db_settings
        assert db is not None
        kwargs = self.connection_params_for(db)
        kwargs["autocommit"] = True  # Django sets the real mode after checkout
        return ConnectionPool(
            kwargs=kwargs,
            open=False,
            min_size=0,
            max_size=config.DATABASE_POOL_SIZE,
            max_idle=config.DATABASE_POOL_MAX_IDLE,
            timeout=config.DATABASE_POOL_TIMEOUT,
            num_workers=1,
            connection_class=ExitAwareConnection,
            name=f"ot:{state.pool_key}",
            configure=self._configurer(db),
            # Checked on checkout, like the schema engine's connections (no round trip unless
            # something arrived while idle): a server restart must not fail one request per
            # pooled connection. DATABASE_POOL_CHECK = False opts out.
            check=health.check_cheaply if config.DATABASE_POOL_CHECK else None,
        )

    def _configurer(self, db: Mapping[str, Any]) -> Callable[[Any], None]:
        """Per physical connection: time zone and ``assume_role`` (no wrapper kept alive)."""
        timezone_name = self.timezone_name
        set_tz = self.ops.set_time_zone_sql()
        role = db["OPTIONS"].get("assume_role")

        def configure(conn: Any) -> None:
            with conn.cursor() as cursor:
                if timezone_name and conn.info.parameter_status("TimeZone") != timezone_name:
                    cursor.execute(set_tz, [timezone_name])
                if role:
                    cursor.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))

        return configure

    # -- checkout and return ------------------------------------------------------------------
    @async_unsafe
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        state = _database_state()
        assert state.pool_key is not None and state.db_settings is not None
        level = state.db_settings["OPTIONS"].get("isolation_level")
        try:
            self.isolation_level = (
                IsolationLevel.READ_COMMITTED if level is None else IsolationLevel(level)
            )
        except ValueError:
            raise ImproperlyConfigured(
                f"Invalid transaction isolation level {level!r} in the OPTIONS of tenant "
                f"database {state.pool_key!r}. Use one of the psycopg.IsolationLevel values."
            ) from None
        config = get_config()
        conn = pool_registry.checkout(
            state.pool_key,
            lambda: self._make_pool(state),
            max_pools=config.DATABASE_POOL_MAX_POOLS,
            timeout=config.DATABASE_POOL_TIMEOUT,
        )
        conn._ot_db = state.pool_key
        if level is not None:
            conn.isolation_level = self.isolation_level
        leases.track(self)  # checked in if this thread ends holding it
        return conn

    def _close(self) -> None:
        conn: Any = self.connection
        if conn is None:
            return
        with self.wrap_database_errors:
            try:
                pool_registry.checkin(conn)
            finally:
                self.connection = None

    @async_unsafe
    def ensure_connection(self) -> None:
        """Connect to the current tenant's database, giving back a connection to another.

        With no database tenant active a held connection is kept: Django's bookkeeping (e.g.
        ``close_old_connections`` after the middleware reset the tenant) must still work;
        queries are refused by :meth:`create_cursor`.
        """
        conn: Any = self.connection
        if conn is not None:
            state = get_current_state()
            wanted = state.pool_key if state is not None else None
            held = getattr(conn, "_ot_db", None)
            if wanted is None or wanted == held:
                return
            if self.in_atomic_block or not self.autocommit:
                raise TenantSwitchInTransaction(
                    f"The tenant changed to database {wanted!r} inside a transaction on "
                    f"{held!r}. Finish the atomic block before switching tenants, or run the "
                    "other tenant's work outside it."
                )
            self.close()
        super().ensure_connection()

    def create_cursor(self, name: str | None = None) -> Any:
        _database_state()  # fail closed: never run a query without a database tenant
        return super().create_cursor(name)
