"""The demo's Celery app: ``celery -A demo.celery worker`` (Redis broker, see demo/settings.py).

Importing ``omnitenant_async.celery`` here connects the receiver that stamps the tenant on every
message this process publishes, ``send_task`` by name included.
"""

from __future__ import annotations

import os

from celery import Celery

import omnitenant_async.celery  # noqa: F401  (stamps the tenant on published messages)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

app = Celery("demo")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
