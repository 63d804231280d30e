"""Django's own test suite on our engine, with the native pool, in default settings.

PIGGYBACK_SEARCH_PATH keeps its default (on). The engine reads OMNITENANT_CONFIG when it
applies the search_path, so a minimal one is set; the model labels are only validated for
shape (omnitenant_async is not in Django's INSTALLED_APPS here, so they are never looked up).
"""

# Top-level under scripts/django-suite, which puts this directory on sys.path (mypy does not).
from ot_suite_base import *  # type: ignore[import-not-found]  # noqa: F403
from ot_suite_base import databases

DATABASES = databases("omnitenant_async.backends.postgresql")
OMNITENANT_CONFIG = {"TENANT_MODEL": "customers.Tenant", "DOMAIN_MODEL": "customers.Domain"}
