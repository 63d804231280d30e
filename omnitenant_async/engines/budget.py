"""How many server connections one process may open, compared with the server's limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connections

from ..conf import get_config
from ..context import use_master_db

# psycopg_pool's default size, which Django uses for ``OPTIONS["pool"] = True``.
_PSYCOPG_POOL_DEFAULT = 4


@dataclass(frozen=True, slots=True)
class ConnectionBudget:
    """Per process: tenant pools x their size, plus the master alias's pool."""

    max_pools: int
    pool_size: int
    master_pool: int

    @property
    def tenant_connections(self) -> int:
        return self.max_pools * self.pool_size

    @property
    def total(self) -> int:
        return self.tenant_connections + self.master_pool


def master_pool_size(db_settings: dict[str, Any]) -> int:
    """``max_size`` of an alias's Django pool (0 when it does not pool)."""
    pool = (db_settings.get("OPTIONS") or {}).get("pool")
    if pool is True:
        return _PSYCOPG_POOL_DEFAULT
    if isinstance(pool, dict):
        min_size = int(pool.get("min_size", _PSYCOPG_POOL_DEFAULT))
        return int(pool.get("max_size") or min_size)
    return 0


def connection_budget() -> ConnectionBudget:
    config = get_config()
    master = connections.settings[config.MASTER_DB_ALIAS]
    return ConnectionBudget(
        config.DATABASE_POOL_MAX_POOLS, config.DATABASE_POOL_SIZE, master_pool_size(master)
    )


def server_connection_limit(alias: str) -> int | None:
    """``max_connections`` minus the superuser reserve on ``alias``'s server; None if unknown."""
    try:
        with use_master_db(), connections[alias].temporary_connection() as cursor:
            cursor.execute(
                "SELECT current_setting('max_connections')::int"
                " - current_setting('superuser_reserved_connections')::int"
            )
            row = cursor.fetchone()
    except DatabaseError:
        return None
    return int(row[0]) if row else None
