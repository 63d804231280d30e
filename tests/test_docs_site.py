"""The documentation site builds with warnings as errors, and documents every setting.

The build is ``scripts/docs``'s: ``mkdocs build --strict`` on ``mkdocs.yml`` (broken links and
anchors, pages missing from the nav, docstrings the API reference cannot render all fail it).
It needs the ``docs`` extra, which ``test`` includes; without it the test is skipped, except in
CI (``CI`` set), where a missing tool must not pass for a clean build.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from omnitenant_async.conf import KNOWN_KEYS

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_PAGE = ROOT / "docs" / "settings.md"
# A heading that is exactly one key: "### `REGISTRY_TTL`".
KEY_HEADING = re.compile(r"^#{2,6}\s+`?([A-Z][A-Z0-9_]*)`?\s*$", re.MULTILINE)
DOCS_PACKAGES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def _missing_packages() -> list[str]:
    missing = []
    for name in DOCS_PACKAGES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # the parent package of a dotted name is missing
            found = False
        if not found:
            missing.append(name)
    return missing


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = _missing_packages()
    if missing:
        message = (
            f"the docs extra is not installed (missing: {', '.join(missing)}); "
            'pip install -e ".[docs]"'
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (
        f"mkdocs build --strict failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )
    return out


def test_site_builds_strict(site: Path) -> None:
    assert (site / "index.html").is_file()
    # The API reference is generated from the docstrings, not left empty.
    api = (site / "api" / "context" / "index.html").read_text(encoding="utf-8")
    assert 'id="omnitenant_async.context.tenant_context"' in api
    # CHANGELOG.md is included, not linked.
    changelog = (site / "changelog" / "index.html").read_text(encoding="utf-8")
    assert 'id="changelog"' in changelog and "--8&lt;--" not in changelog


def test_every_setting_has_a_heading() -> None:
    headings = set(KEY_HEADING.findall(SETTINGS_PAGE.read_text(encoding="utf-8")))
    assert sorted(KNOWN_KEYS - headings) == [], "settings without a heading in docs/settings.md"
    assert sorted(headings - KNOWN_KEYS) == [], (
        "headings in docs/settings.md that are not OMNITENANT_CONFIG keys (renamed or removed?)"
    )


def test_every_setting_has_an_anchor(site: Path) -> None:
    """Each key is linkable as ``settings.md#<key in lower case>``."""
    page = (site / "settings" / "index.html").read_text(encoding="utf-8")
    ids = set(re.findall(r'id="([^"]+)"', page))
    assert sorted(k for k in KNOWN_KEYS if k.lower() not in ids) == []
