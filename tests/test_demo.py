"""The README's demo command works end to end (its own PostgreSQL, set-up, uvicorn)."""

from __future__ import annotations

import os
import subprocess

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.e2e


def test_demo_command_serves_the_demo() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNITENANT_")}
    result = subprocess.run(
        ["bash", "scripts/demo", "--check"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "OK: demo answered HTTP 200" in output
    for tenant_id in ("acme", "globex", "initech"):
        assert f"http://{tenant_id}.localhost:" in output
