"""ASGI app of the Celery tests: the demo plus ``/celery/queue/`` and ``/ws/celery/``."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.celery_settings")
django_asgi_app = get_asgi_application()  # sets Django up before the imports below

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from demo.celery_web import QueueConsumer  # noqa: E402
from omnitenant_async.channels import TenantAuthMiddlewareStack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": TenantAuthMiddlewareStack(
            URLRouter([path("ws/celery/", QueueConsumer.as_asgi())])
        ),
    }
)
