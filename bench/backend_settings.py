"""Plain Django's project (``bench.plain_settings``) on the schema engine, with no tenant.

For ``bench/bench_pooler.py --against backend-session|backend-transaction``: the same view,
URLconf, database and middleware as plain Django; only ``ENGINE`` differs, with
``OMNITENANT_CONFIG["POOLER"]`` from ``OMNITENANT_BENCH_POOLER``. No tenant is ever active, so
every statement runs on the public path: in ``"session"`` mode the engine sends nothing of its
own (the cost of its Python layer alone), in ``"transaction"`` mode each statement still
carries its ``SET LOCAL`` (the cost of the second statement too).
"""

from __future__ import annotations

import os

from .plain_settings import *  # noqa: F403
from .plain_settings import DATABASES

DATABASES["default"]["ENGINE"] = "omnitenant_async.backends.postgresql"
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
OMNITENANT_CONFIG = {
    "TENANT_MODEL": "customers.Tenant",
    "DOMAIN_MODEL": "customers.Domain",
    "POOLER": os.environ.get("OMNITENANT_BENCH_POOLER", "transaction"),
}
ROOT_URLCONF = "bench.pooler_urls"
