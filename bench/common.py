"""Settings shared by every benchmarked project, so all variants get the same pool and server.

Pure Python (and psycopg) on purpose: the django-tenants project imports it from its own
virtualenv, and its settings modules import it before Django is set up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

POOL_SIZE = int(os.environ.get("OMNITENANT_BENCH_POOL", "8"))


def pool_options() -> dict[str, int]:
    """Django's native pool (psycopg_pool), fixed size: identical for every variant."""
    return {"min_size": POOL_SIZE, "max_size": POOL_SIZE, "timeout": 20}


def server() -> dict[str, str]:
    """USER, PASSWORD, HOST and PORT of a DATABASES entry: the server OMNITENANT_PG_* name."""
    return {
        "USER": os.environ.get("OMNITENANT_PGUSER", "postgres"),
        "PASSWORD": os.environ.get("OMNITENANT_PGPASSWORD", ""),
        "HOST": os.environ.get("OMNITENANT_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("OMNITENANT_PG_PORT", "5432"),
    }


def database(engine: str, name_env: str, default_name: str) -> dict[str, Any]:
    """A DATABASES entry on the server named by the OMNITENANT_PG_* environment variables."""
    return {
        "ENGINE": engine,
        "NAME": os.environ.get(name_env, default_name),
        **server(),
        "CONN_MAX_AGE": 0,
        # application_name lets the bench find this server's backends in pg_stat_activity.
        "OPTIONS": {
            "pool": pool_options(),
            "application_name": os.environ.get("OMNITENANT_BENCH_APP_NAME", "bench"),
        },
    }


def conninfo(dbname: str = "postgres", db: Mapping[str, Any] | None = None) -> str:
    """libpq conninfo of database ``dbname`` on the server of a DATABASES entry ``db`` (by
    default the server OMNITENANT_PG_* name)."""
    db = server() if db is None else db
    params = {"host": db["HOST"], "port": db["PORT"], "user": db["USER"], "dbname": dbname}
    if db.get("PASSWORD"):
        params["password"] = db["PASSWORD"]
    return make_conninfo(**{key: str(value) for key, value in params.items()})


def drop_database(db: Mapping[str, Any]) -> None:
    """DROP DATABASE the DATABASES entry ``db`` names, whoever is still connected to it."""
    with psycopg.connect(conninfo("postgres", db), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db["NAME"])))


def flag(name: str, default: bool) -> bool:
    return os.environ.get(name, "1" if default else "0").lower() in ("1", "true", "yes", "on")
