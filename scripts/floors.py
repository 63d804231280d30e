"""Print pip constraints that pin every dependency floor declared in pyproject.toml.

    python scripts/floors.py [EXTRA...]    # default: the core dependencies and every extra

Each ``name>=X`` among ``[project] dependencies`` and the given extras becomes ``name==X``;
Django is pinned to its floor's feature release (``Django==5.2.*``: the latest security release
of the lowest supported series). A requirement without a ``>=`` floor is an error: every
dependency must declare the lowest version we test. Run by ``ensure_min_venv`` (scripts/lib.sh)
to build .venv-min, where ``OMNITENANT_DEPS=lowest scripts/test`` runs the suite.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# name, optional [extras], then the version specifiers (PEP 508 without markers).
REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*?)\s*$")


def floors(extras: list[str]) -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"])
    for extra in extras or list(project["optional-dependencies"]):
        reqs += project["optional-dependencies"][extra]
    pins: dict[str, str] = {}
    for req in reqs:
        m = REQ.match(req.split(";", 1)[0])
        if m is None:
            raise SystemExit(f"cannot parse requirement {req!r} in pyproject.toml")
        name, spec = m.group(1), m.group(2)
        lows = [s.strip()[2:].strip() for s in spec.split(",") if s.strip().startswith(">=")]
        if len(lows) != 1:
            raise SystemExit(f"requirement {req!r} in pyproject.toml has no single '>=' floor")
        key = re.sub(r"[-_.]+", "-", name).lower()
        low = lows[0]
        if key == "django":
            low = ".".join(low.split(".")[:2]) + ".*"
        if pins.get(key, low) != low:
            raise SystemExit(f"{name} has two different floors in pyproject.toml")
        pins[key] = low
    return pins


def main(argv: list[str]) -> int:
    for name, low in sorted(floors(argv).items()):
        print(f"{name}=={low}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
