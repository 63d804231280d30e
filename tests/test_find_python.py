"""scripts/lib.sh find_python says why an interpreter is unusable, for a user who may not run it.

As root the checks run as ``nobody`` (``runuser``): root reads everything, so only another
user sees "permission denied". As a normal user they run as that user.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ROOT

AS_ROOT = os.geteuid() == 0
RUNUSER = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
pytestmark = pytest.mark.skipif(AS_ROOT and RUNUSER is None, reason="as root, runuser is needed")
OTHER_USER = "nobody" if AS_ROOT else None


@pytest.fixture
def place() -> Iterator[Path]:
    """A directory the other user may enter, holding a copy of scripts/lib.sh."""
    path = Path(tempfile.mkdtemp(prefix="omnitenant-fp-", dir="/tmp"))
    path.chmod(0o755)
    (path / "scripts").mkdir(mode=0o755)
    shutil.copy(ROOT / "scripts" / "lib.sh", path / "scripts" / "lib.sh")
    (path / "scripts" / "lib.sh").chmod(0o644)
    yield path
    for sub in path.rglob("*"):
        if sub.is_dir() and not sub.is_symlink():
            sub.chmod(0o755)
    shutil.rmtree(path)


def fake_python(directory: Path) -> Path:
    """A working Python >= 3.12 (a wrapper of this one) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    python = directory / "python3.13"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    return python


def find_python(place: Path, **env: str) -> subprocess.CompletedProcess[str]:
    cmd = ["bash", str(place / "scripts" / "lib.sh"), "find_python"]
    if OTHER_USER and RUNUSER:
        cmd = [RUNUSER, "-u", OTHER_USER, "--", *cmd]
    base = {"PATH": "/usr/bin:/bin", "HOME": str(place)}
    return subprocess.run(
        cmd, cwd=place, env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def test_explicit_python_in_a_private_directory(place: Path) -> None:
    private = place / "private"
    python = fake_python(private / "bin")
    private.chmod(0o700 if AS_ROOT else 0o000)  # root's: nobody may not enter it
    result = find_python(place, OMNITENANT_PYTHON=str(python))
    assert result.returncode == 1
    user = OTHER_USER or os.environ.get("USER") or ""
    assert f"is not a working Python >= 3.12: permission denied: {user}" in result.stderr
    assert f"cannot enter {private} (d" in result.stderr
    assert "uv python install 3.13" in result.stderr and "OMNITENANT_PYTHON=" in result.stderr


def test_explicit_python_without_read_or_exec_permission(place: Path) -> None:
    python = fake_python(place / "bin")
    python.chmod(0o700 if AS_ROOT else 0o000)
    result = find_python(place, OMNITENANT_PYTHON=str(python))
    assert result.returncode == 1
    assert "permission denied: not readable and executable by" in result.stderr
    assert stat.filemode(python.stat().st_mode) in result.stderr  # -rwx------


def test_explicit_python_that_is_too_old_or_missing(place: Path) -> None:
    missing = find_python(place, OMNITENANT_PYTHON=str(place / "nope"))
    assert missing.returncode == 1 and "nope is not a working Python >= 3.12: no such file" in (
        missing.stderr
    )
    old = place / "bin" / "python3"
    old.parent.mkdir()
    old.write_text('#!/bin/sh\necho "Python 3.11.2"\nexit 1\n')
    old.chmod(0o755)
    result = find_python(place, OMNITENANT_PYTHON=str(old))
    assert "does not start: Python 3.11.2" in result.stderr


def test_search_lists_interpreters_found_but_not_usable(place: Path) -> None:
    """No OMNITENANT_PYTHON: a python3.13 on PATH that points into a private directory."""
    private = place / "private"
    python = fake_python(private / "bin")
    on_path = place / "onpath"
    on_path.mkdir(mode=0o755)
    (on_path / "python3.13").symlink_to(python)
    private.chmod(0o700 if AS_ROOT else 0o000)
    result = find_python(place, PATH=f"{on_path}:/usr/bin:/bin")
    if result.returncode == 0:
        pytest.skip(f"this machine has a usable Python >= 3.12 anyway: {result.stdout}")
    assert "Found, not usable:" in result.stderr
    assert f"{on_path}/python3.13: permission denied:" in result.stderr
    assert f"cannot enter {private}" in result.stderr
