"""The database-per-tenant variant: the schema variant's project plus the ``tenants`` alias.

Tenants ``d000``..: one database each (``omnitenant_bench_d000``...), their rows in the master
database ``omnitenant_bench_dbs``. Pool limits from OMNITENANT_BENCH_DB_MAX_POOLS and
OMNITENANT_BENCH_DB_POOL_SIZE.
"""

from __future__ import annotations

import os

from .common import database
from .tenant_settings import *  # noqa: F403
from .tenant_settings import OMNITENANT_CONFIG as _SCHEMA_CONFIG

DATABASES = {
    "default": database(
        "omnitenant_async.backends.postgresql", "OMNITENANT_BENCH_DBS_DB", "omnitenant_bench_dbs"
    ),
    "tenants": {
        "ENGINE": "omnitenant_async.backends.postgresql_dbs",
        "CONN_MAX_AGE": 0,
        # Tells this process's tenant connections apart in pg_stat_activity.
        "OPTIONS": {"application_name": os.environ.get("OMNITENANT_BENCH_APP_NAME", "bench")},
    },
}
OMNITENANT_CONFIG = {
    **_SCHEMA_CONFIG,
    "DATABASE_POOL_MAX_POOLS": int(os.environ.get("OMNITENANT_BENCH_DB_MAX_POOLS", "50")),
    "DATABASE_POOL_SIZE": int(os.environ.get("OMNITENANT_BENCH_DB_POOL_SIZE", "2")),
    "DATABASE_NAME_PREFIX": "omnitenant_bench_",
}
