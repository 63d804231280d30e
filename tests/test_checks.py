"""System checks: each misconfiguration is reported with its id, a clean config with none."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from omnitenant_async import checks
from omnitenant_async.conf import get_config

from .conftest import ROOT


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
        ({"TENANT_MODEL": "notes.Note", "DOMAIN_MODEL": "customers.Domain"}, "omnitenant.E007"),
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
        assert ids(checks.check_router_and_middleware) == {"omnitenant.W004"}
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
        assert "omnitenant.E008" in ids(checks.check_databases)


def test_channels_db_threads_beyond_the_pool() -> None:
    config = dict(settings.OMNITENANT_CONFIG)
    options = settings.DATABASES["default"]["OPTIONS"]
    assert isinstance(options, dict)  # typed object: demo.settings mixes value types
    max_size = options["pool"]["max_size"]
    with override_settings(OMNITENANT_CONFIG={**config, "CHANNELS_DB_THREADS": max_size + 1}):
        assert ids(checks.check_channels_db_threads) == {"omnitenant.W003"}
    with override_settings(OMNITENANT_CONFIG={**config, "CHANNELS_DB_THREADS": max_size}):
        assert ids(checks.check_channels_db_threads) == set()


def test_unknown_key_is_named_with_the_closest_valid_one() -> None:
    config = dict(settings.OMNITENANT_CONFIG)
    with override_settings(OMNITENANT_CONFIG={**config, "REGISTRY_TTLS": 5, "zzz": 1}):
        messages = checks.check_unknown_keys()
    assert {m.id for m in messages} == {"omnitenant.W005"}
    by_key = {m.msg: m.hint for m in messages}
    assert by_key["OMNITENANT_CONFIG has an unknown key 'REGISTRY_TTLS'; it is ignored."] == (
        "Did you mean 'REGISTRY_TTL'?"
    )
    assert len(by_key) == 2
    assert checks.check_unknown_keys() == []


CHECK_ID = re.compile(r"""id=f?["'](omnitenant\.[EW]\d{3})["']""")


def test_every_problem_has_its_own_id_listed_in_the_docs() -> None:
    used: list[str] = []
    for path in sorted((ROOT / "omnitenant_async").rglob("*.py")):
        used += CHECK_ID.findall(path.read_text())
    assert len(used) >= 18
    assert sorted(used) == sorted(set(used)), "a check id is used for two problems"
    listed = set(re.findall(r"`(omnitenant\.[EW]\d{3})`", (ROOT / "docs/checks.md").read_text()))
    assert set(used) == listed


BROKEN_SETTINGS = {
    "missing": "del OMNITENANT_CONFIG",
    "wrong_label": "OMNITENANT_CONFIG = {**OMNITENANT_CONFIG, 'TENANT_MODEL': 'nope.Tenant'}",
    "not_a_dict": "OMNITENANT_CONFIG = ['customers.Tenant']",
    "bad_domain_label": "OMNITENANT_CONFIG = {**OMNITENANT_CONFIG, 'DOMAIN_MODEL': 'customers'}",
}


@pytest.mark.parametrize("case", sorted(BROKEN_SETTINGS))
def test_manage_py_check_reports_a_broken_config(case: str, tmp_path: Path) -> None:
    """ready() must not crash on it: ``check`` itself reports E001/E002, without a traceback."""
    (tmp_path / "broken_settings.py").write_text(
        f"from demo.settings import *  # noqa\n{BROKEN_SETTINGS[case]}\n"
    )
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="broken_settings",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Traceback" not in output, output
    assert re.search(r"omnitenant\.E00[12]", output), output
