"""Settings of ``bench.bench_overhead``: the tenancy settings plus two unpooled aliases.

``plain`` is the stock PostgreSQL backend on the plain database; ``engine`` is the schema engine
on the tenancy database. Both keep one connection, so a query costs the same round trips as on
a warm pooled connection, without the pool in the way.
"""

from __future__ import annotations

from .common import database
from .tenant_settings import *  # noqa: F403
from .tenant_settings import DATABASES as _TENANT_DATABASES


def _unpooled(engine: str, name_env: str, default_name: str) -> dict[str, object]:
    db = database(engine, name_env, default_name)
    db["OPTIONS"] = {}
    return db


DATABASES = {
    **_TENANT_DATABASES,
    "plain": _unpooled(
        "django.db.backends.postgresql", "OMNITENANT_BENCH_PLAIN_DB", "omnitenant_bench_plain"
    ),
    "engine": _unpooled(
        "omnitenant_async.backends.postgresql", "OMNITENANT_BENCH_DB", "omnitenant_bench"
    ),
}
