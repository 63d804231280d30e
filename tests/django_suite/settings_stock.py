"""Django's own test suite on Django's stock PostgreSQL engine, with the native pool."""

# Top-level under scripts/django-suite, which puts this directory on sys.path (mypy does not).
from ot_suite_base import *  # type: ignore[import-not-found]  # noqa: F403
from ot_suite_base import databases

DATABASES = databases("django.db.backends.postgresql")
