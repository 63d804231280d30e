"""``bench/bench_tenant_count.py``: the HTTP bench's tenancy project, provisioned by cloning.

Same view, pool and middleware as ``bench.tenant_settings``; its own database, and a template
schema so that thousands of tenants are created by cloning it.
"""

from __future__ import annotations

import os

from .tenant_settings import *  # noqa: F403
from .tenant_settings import DATABASES, OMNITENANT_CONFIG

DATABASES["default"]["NAME"] = os.environ.get("OMNITENANT_BENCH_COUNT_DB", "omnitenant_bench_count")
OMNITENANT_CONFIG = {**OMNITENANT_CONFIG, "TEMPLATE_SCHEMA": "omnitenant_template"}
