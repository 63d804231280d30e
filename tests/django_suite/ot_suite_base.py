"""Settings shared by ``settings_ours`` and ``settings_stock`` (Django's own test suite).

``scripts/django-suite`` runs Django's ``tests/runtests.py`` twice with ``--settings`` pointing at
one of the two modules; this directory is put on ``PYTHONPATH`` (the repository root is not: its
``tests`` package must not mix with Django's test apps).

Both runs use the same throwaway PostgreSQL (``OMNITENANT_PG_HOST``/``_PORT``, superuser
``postgres``) and Django's native psycopg pool; only ENGINE differs.
"""

from __future__ import annotations

import os

import django


def databases(engine: str) -> dict[str, dict[str, object]]:
    common = {
        "ENGINE": engine,
        "USER": os.environ.get("OMNITENANT_PGUSER", "postgres"),
        "PASSWORD": os.environ.get("OMNITENANT_PGPASSWORD", ""),
        "HOST": os.environ.get("OMNITENANT_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("OMNITENANT_PG_PORT", "5432"),
        "CONN_MAX_AGE": 0,  # the pool requires it
        "OPTIONS": {"pool": {"min_size": 1, "max_size": 8, "timeout": 20}},
    }
    return {
        "default": {**common, "NAME": "django_suite"},
        "other": {**common, "NAME": "django_suite_other"},
    }


# The rest as in Django's tests/test_sqlite.py.
SECRET_KEY = "django_tests_secret_key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
USE_TZ = False
if django.VERSION < (6, 0):  # as Django's own tests/test_sqlite.py of that series
    DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
# Writes one JSON file of test ids per outcome (OT_SUITE_RESULT) for the comparison.
TEST_RUNNER = "ot_suite_runner.CollectingRunner"
