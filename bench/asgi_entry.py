"""Django's ASGI handler, or omnitenant_async.asgi's (OMNITENANT_BENCH_ENTRY=ours)."""

import os

if os.environ.get("OMNITENANT_BENCH_ENTRY") == "ours":
    from omnitenant_async.asgi import get_asgi_application
else:
    from django.core.asgi import get_asgi_application  # type: ignore[assignment]

application = get_asgi_application()
