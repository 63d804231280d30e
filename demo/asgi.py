"""The demo's ASGI application: Django for HTTP, Channels for the live feed's WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
django_asgi_app = get_asgi_application()  # sets Django up before the imports below

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from demo.notes.routing import websocket_urlpatterns  # noqa: E402
from omnitenant_async.channels import TenantAuthMiddlewareStack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": TenantAuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
