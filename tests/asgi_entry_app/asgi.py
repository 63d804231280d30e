"""tests/asgi_entry_app served through omnitenant_async.asgi (HTTP only)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.asgi_entry_app.settings")

from omnitenant_async.asgi import get_asgi_application

application = get_asgi_application()
