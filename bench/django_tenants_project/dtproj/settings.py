"""django-tenants on the benchmarked view: same URL, view, pool and uvicorn as the other variants.

Runs in its own virtualenv (bench/.venvs/django-tenants). The repository root is put on
``sys.path`` only to share ``bench.common`` (pool size, database from OMNITENANT_PG_*).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[3]))

from bench.common import database

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

SHARED_APPS = ["django_tenants", "dtcustomers", "django.contrib.contenttypes"]
TENANT_APPS = ["django.contrib.contenttypes", "dtnotes"]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]
TENANT_MODEL = "dtcustomers.Client"
TENANT_DOMAIN_MODEL = "dtcustomers.Domain"

# TenantMainMiddleware is a MiddlewareMixin: under ASGI its process_request (a Domain query,
# then connection.set_tenant) runs in a sync_to_async hop on the request's thread.
MIDDLEWARE = [
    "django_tenants.middleware.main.TenantMainMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "dtproj.urls"
DATABASES = {
    "default": database(
        "django_tenants.postgresql_backend", "OMNITENANT_BENCH_DT_DB", "omnitenant_bench_dt"
    )
}
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
}
