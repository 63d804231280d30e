"""The baseline: stock Django PostgreSQL backend, no tenancy, same view, URLconf and pool."""

from __future__ import annotations

from .common import database

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django.contrib.contenttypes", "demo.notes"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "bench.plain_urls"
DATABASES = {
    "default": database(
        "django.db.backends.postgresql", "OMNITENANT_BENCH_PLAIN_DB", "omnitenant_bench_plain"
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
}
