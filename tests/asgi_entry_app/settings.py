"""The demo with the views of tests/test_asgi_entry.py, served by omnitenant_async.asgi."""

import os

from tests.release_app.settings import *  # noqa: F403

ROOT_URLCONF = "tests.asgi_entry_app.urls"
OMNITENANT_CONFIG = {
    **OMNITENANT_CONFIG,  # noqa: F405
    "ASGI_THREADS": int(os.environ.get("OMNITENANT_ASGI_THREADS", "1")),
}
