"""Provisioning by cloning the template schema (backends/clone.py), on bench.scale_app.

A subprocess with ``bench.scale_settings`` (the demo plus a 30-table app and TEMPLATE_SCHEMA)
migrates the template, clones one tenant and migrates another, and prints both catalogs
(bench/clone_check.py); they must be equal object by object, schema names normalized.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.usefixtures("django_db")


def run_check(*args: str) -> dict[str, Any]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.scale_settings"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.clone_check", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out = []
    for kind in sorted(set(a) | set(b)):
        left = {json.dumps(r) for r in a.get(kind, [])}
        right = {json.dumps(r) for r in b.get(kind, [])}
        out += [f"{kind}: only in clone: {r}" for r in sorted(left - right)]
        out += [f"{kind}: only in migrated: {r}" for r in sorted(right - left)]
    return out


@pytest.fixture(scope="module")
def checked() -> dict[str, Any]:
    return run_check()


def test_create_clones_when_the_template_is_current(checked: dict[str, Any]) -> None:
    assert checked["how"] == "cloned", checked["why"]


def test_cloned_catalog_equals_migrated(checked: dict[str, Any]) -> None:
    cloned, migrated = checked["cloned"], checked["migrated"]
    diff = differences(cloned, migrated)
    assert diff == [], "\n".join(diff)
    # The comparison is not vacuous: the app's objects are there.
    assert len([t for t in cloned["tables"] if t[0].startswith("scale_app_")]) >= 25
    fks = [c for c in cloned["constraints"] if c[2] == "f"]
    assert len(fks) >= 30 and {c[4] for c in fks} == {"<S>"}  # FKs point into the tenant
    assert any(s[0] == "scale_app_order_number_seq" and s[9] == "a:scale_app_order.number"
               for s in cloned["sequences"])  # fmt: skip
    assert [v[0] for v in cloned["views"]] == ["scale_app_open_orders"]
    assert [t[1] for t in cloned["triggers"]] == ["scale_app_ticket_touch"]
    assert len(cloned["comments"]) >= 6
    seeded = {row[0]: row[1] for row in cloned["data"]}
    assert seeded["scale_app_currency"] == 3 and seeded["django_migrations"] > 20


def test_migrate_check_is_clean_on_a_clone(checked: dict[str, Any]) -> None:
    assert checked["unapplied_on_clone"] == []


def test_comparison_catches_a_foreign_key_left_on_the_template() -> None:
    broken = run_check("--break-fk")
    diff = differences(broken["cloned"], broken["migrated"])
    assert any("omnitenant_template" in line for line in diff), diff
