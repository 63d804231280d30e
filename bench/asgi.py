"""ASGI entry of the tenancy and plain variants (DJANGO_SETTINGS_MODULE picks which)."""

from django.core.asgi import get_asgi_application

application = get_asgi_application()
