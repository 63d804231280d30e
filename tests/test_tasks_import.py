"""``omnitenant_async.tasks`` on every supported Django, as Celery's autodiscovery sees it.

``app.autodiscover_tasks()`` imports ``<app>.tasks`` for every installed app, ours included. On
Django 5.2 (no ``django.tasks``) the module must fail as "not there", which Celery skips, and not
with another error, which stopped every worker of a Celery project at start-up.
"""

from __future__ import annotations

import importlib
import sys

import django
import pytest
from celery.loaders.base import find_related_module

HAS_DJANGO_TASKS = django.VERSION >= (6, 0)


def test_celery_autodiscovery_accepts_our_tasks_module() -> None:
    found = find_related_module("omnitenant_async", "tasks")
    if HAS_DJANGO_TASKS:
        assert found is sys.modules["omnitenant_async.tasks"]
    else:
        assert found is None


@pytest.mark.skipif(HAS_DJANGO_TASKS, reason="django.tasks exists on Django >= 6.0")
def test_importing_it_without_django_tasks_says_why() -> None:
    why = r"django\.tasks, Django >= 6\.0.*omnitenant_async\.celery"
    with pytest.raises(ImportError, match=why):
        importlib.import_module("omnitenant_async.tasks")
    with pytest.raises(ImportError, match="Django >= 6.0"):
        from omnitenant_async.tasks import tenant_task  # noqa: F401
