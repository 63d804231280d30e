"""The demo project plus ``bench.scale_app`` (30 tenant tables) and a template schema.

Used by tests/test_clone.py (in a subprocess) and bench/bench_provision.py; the demo's own
INSTALLED_APPS, and so the rest of the suite, never see the app.
"""

from __future__ import annotations

from demo.settings import *  # noqa: F403
from demo.settings import INSTALLED_APPS as _DEMO_APPS
from demo.settings import OMNITENANT_CONFIG as _DEMO_CONFIG

INSTALLED_APPS = [*_DEMO_APPS, "bench.scale_app"]
OMNITENANT_CONFIG = {**_DEMO_CONFIG, "TEMPLATE_SCHEMA": "omnitenant_template"}
