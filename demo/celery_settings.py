"""The demo's settings plus the URLs of ``demo.celery_web`` (the Celery tests serve these)."""

from demo.settings import *  # noqa: F403

ROOT_URLCONF = "demo.celery_web"
