"""The pooler test app: its HTTP views, the demo's feed and a probing WebSocket consumer."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.pooler_app.settings")
django_asgi_app = get_asgi_application()  # sets Django up before the imports below

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from demo.notes.routing import websocket_urlpatterns  # noqa: E402
from omnitenant_async.channels import TenantAuthMiddlewareStack  # noqa: E402

from .consumers import ProbeConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": TenantAuthMiddlewareStack(
            URLRouter([path("ws/probe/", ProbeConsumer.as_asgi()), *websocket_urlpatterns])
        ),
    }
)
