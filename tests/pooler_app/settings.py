"""The demo plus views that exercise every kind of transaction, for the PgBouncer tests."""

from demo.settings import *  # noqa: F403

ROOT_URLCONF = "tests.pooler_app.urls"
