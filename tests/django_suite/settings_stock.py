"""Django's own test suite on Django's stock PostgreSQL engine, with the native pool."""

from ot_suite_base import *  # noqa: F403
from ot_suite_base import databases

DATABASES = databases("django.db.backends.postgresql")
