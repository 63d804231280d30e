"""``bench/bench_asgi.py``: plain or tenancy settings (OMNITENANT_BENCH_TENANT=1), its views."""

import os

if os.environ.get("OMNITENANT_BENCH_TENANT") == "1":
    from bench.tenant_settings import *  # noqa: F403
else:
    from bench.plain_settings import *  # noqa: F403

ROOT_URLCONF = "bench.asgi_urls"
