"""Both variants of ``bench/bench_pooler.py`` behind PgBouncer in transaction mode.

``OMNITENANT_BENCH_VARIANT=plain``: ``bench.plain_settings`` (stock Django backend); otherwise
``bench.tenant_settings`` (the schema engine) with ``POOLER = "transaction"`` and the
invalidation listener on a direct connection (``OMNITENANT_INVALIDATION_DSN``, which the
bench sets). ``OMNITENANT_BENCH_FIXED_TENANT=1`` puts ``bench.fixed_tenant`` in place of
``TenantMiddleware``. Both serve ``bench.pooler_urls`` and disable server-side cursors, as
PgBouncer's transaction mode requires.
"""

from __future__ import annotations

import os

if os.environ.get("OMNITENANT_BENCH_VARIANT") == "plain":
    from .plain_settings import *  # noqa: F403
    from .plain_settings import DATABASES
else:
    from .tenant_settings import *  # noqa: F403
    from .tenant_settings import DATABASES, OMNITENANT_CONFIG

    OMNITENANT_CONFIG = {
        **OMNITENANT_CONFIG,
        "POOLER": "transaction",
        "INVALIDATION_DSN": os.environ["OMNITENANT_INVALIDATION_DSN"],
    }

ROOT_URLCONF = "bench.pooler_urls"
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
if os.environ.get("OMNITENANT_BENCH_FIXED_TENANT"):  # --against engine-fixed-tenant
    MIDDLEWARE = [
        "bench.fixed_tenant.FixedTenantMiddleware",
        "django.middleware.common.CommonMiddleware",
    ]
