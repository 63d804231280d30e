"""System checks: each misconfiguration is reported with its id, a clean config with none."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from omnitenant_async import checks
from omnitenant_async.conf import get_config


def ids(*funcs: Any) -> set[str]:
    return {m.id for f in funcs for m in f()}


def test_demo_configuration_is_clean() -> None:
    assert ids(checks.check_config, checks.check_router_and_middleware) == set()
    assert {i for i in ids(checks.check_databases) if not i.startswith("omnitenant.W01")} == set()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (None, "omnitenant.E001"),
        ({"TENANT_MODEL": "customers.Tenant"}, "omnitenant.E001"),
        ({"TENANT_MODEL": "nope.Tenant", "DOMAIN_MODEL": "customers.Domain"}, "omnitenant.E002"),
        ({"TENANT_MODEL": "notes.Note", "DOMAIN_MODEL": "customers.Domain"}, "omnitenant.E002"),
        (
            {
                "TENANT_MODEL": "customers.Tenant",
                "DOMAIN_MODEL": "customers.Domain",
                "TENANT_RESOLVER": "x.Y",
            },
            "omnitenant.E006",
        ),
        (
            {
                "TENANT_MODEL": "customers.Tenant",
                "DOMAIN_MODEL": "customers.Domain",
                "PUBLIC_HOST": 3,
            },
            "omnitenant.E001",
        ),
    ],
)
def test_bad_config(config: Any, expected: str) -> None:
    with override_settings(OMNITENANT_CONFIG=config):
        assert expected in ids(checks.check_config)
    get_config()  # restored


def test_config_errors_name_the_key() -> None:
    with override_settings(
        OMNITENANT_CONFIG={"TENANT_MODEL": "customers.Tenant", "DOMAIN_MODEL": "x"}
    ):
        with pytest.raises(ImproperlyConfigured, match="DOMAIN_MODEL"):
            get_config()


def test_router_and_middleware_placement() -> None:
    with override_settings(DATABASE_ROUTERS=[]):
        assert ids(checks.check_router_and_middleware) == {"omnitenant.E003"}
    middleware = list(settings.MIDDLEWARE)
    with override_settings(MIDDLEWARE=middleware[1:] + middleware[:1]):
        assert ids(checks.check_router_and_middleware) == {"omnitenant.W001"}
    with override_settings(MIDDLEWARE=middleware[1:]):
        assert ids(checks.check_router_and_middleware) == {"omnitenant.W001"}


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_engine_conn_max_age_and_pool() -> None:
    databases = copy.deepcopy(settings.DATABASES)
    databases["default"]["CONN_MAX_AGE"] = 60
    databases["default"]["OPTIONS"] = {}
    with override_settings(DATABASES=databases):
        found = ids(checks.check_databases)
    assert {"omnitenant.E005", "omnitenant.W002"} <= found
    databases["default"]["ENGINE"] = "django.db.backends.postgresql"
    with override_settings(DATABASES=databases):
        assert "omnitenant.E004" in ids(checks.check_databases)


def test_channels_db_threads_beyond_the_pool() -> None:
    config = dict(settings.OMNITENANT_CONFIG)
    max_size = settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"]
    with override_settings(OMNITENANT_CONFIG={**config, "CHANNELS_DB_THREADS": max_size + 1}):
        assert ids(checks.check_channels_db_threads) == {"omnitenant.W003"}
    with override_settings(OMNITENANT_CONFIG={**config, "CHANNELS_DB_THREADS": max_size}):
        assert ids(checks.check_channels_db_threads) == set()
