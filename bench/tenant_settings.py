"""The tenancy variant: the demo project with only what the benchmarked view needs.

Same URLconf, view and pool as ``bench.plain_settings``; the differences are the schema
engine, the router and ``TenantMiddleware`` in front of ``CommonMiddleware``.
``OMNITENANT_BENCH_PIGGYBACK=0`` sends ``SET search_path`` as its own statement.
"""

from __future__ import annotations

from demo.settings import *  # noqa: F403
from demo.settings import OMNITENANT_CONFIG as _DEMO_CONFIG

from .common import database, flag

INSTALLED_APPS = [
    "omnitenant_async",
    "django.contrib.contenttypes",
    "demo.customers",
    "demo.notes",
]
MIDDLEWARE = [
    "omnitenant_async.middleware.TenantMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "bench.plain_urls"
DEBUG = False
DATABASES = {
    "default": database(
        "omnitenant_async.backends.postgresql", "OMNITENANT_BENCH_DB", "omnitenant_bench"
    )
}
DATABASE_ROUTERS = ["omnitenant_async.routers.TenantRouter"]
OMNITENANT_CONFIG = {
    **_DEMO_CONFIG,
    "TENANT_RESOLVER": "omnitenant_async.resolvers.CustomDomainTenantResolver",
    "SHARED_APPS": ["contenttypes"],
    "PIGGYBACK_SEARCH_PATH": flag("OMNITENANT_BENCH_PIGGYBACK", True),
}
