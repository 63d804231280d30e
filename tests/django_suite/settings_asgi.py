"""Django's own test settings (its tests/test_sqlite.py) with omnitenant_async.asgi substituted.

``django.core.asgi.get_asgi_application`` and ``django.core.handlers.asgi.ASGIHandler`` are
replaced before any test module is imported (runtests.py imports the settings first), so
Django's ``asgi`` and ``handlers`` tests build, subclass and call our handler.
``scripts/django-asgi-suite`` runs them.
"""

import django.core.asgi
import django.core.handlers.asgi
from test_sqlite import *  # type: ignore[import-not-found]  # noqa: F403

from omnitenant_async import asgi as _ours

django.core.handlers.asgi.ASGIHandler = _ours.TenantASGIHandler  # type: ignore[misc]  # replacing a class, on purpose
django.core.asgi.get_asgi_application = _ours.get_asgi_application
