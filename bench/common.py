"""Settings shared by every benchmarked project, so all variants get the same pool and server.

Pure Python on purpose: the django-tenants project imports it from its own virtualenv.
"""

from __future__ import annotations

import os
from typing import Any

POOL_SIZE = int(os.environ.get("OMNITENANT_BENCH_POOL", "8"))


def pool_options() -> dict[str, Any]:
    """Django's native pool (psycopg_pool), fixed size: identical for every variant."""
    return {"min_size": POOL_SIZE, "max_size": POOL_SIZE, "timeout": 20}


def database(engine: str, name_env: str, default_name: str) -> dict[str, Any]:
    """A DATABASES entry on the server named by the OMNITENANT_PG_* environment variables."""
    return {
        "ENGINE": engine,
        "NAME": os.environ.get(name_env, default_name),
        "USER": os.environ.get("OMNITENANT_PGUSER", "postgres"),
        "PASSWORD": os.environ.get("OMNITENANT_PGPASSWORD", ""),
        "HOST": os.environ.get("OMNITENANT_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("OMNITENANT_PG_PORT", "5432"),
        "CONN_MAX_AGE": 0,
        # application_name lets the bench find this server's backends in pg_stat_activity.
        "OPTIONS": {
            "pool": pool_options(),
            "application_name": os.environ.get("OMNITENANT_BENCH_APP_NAME", "bench"),
        },
    }


def flag(name: str, default: bool) -> bool:
    return os.environ.get(name, "1" if default else "0").lower() in ("1", "true", "yes", "on")
