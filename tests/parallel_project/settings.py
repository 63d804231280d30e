"""The demo's settings with a test database of its own, for ``manage.py test --parallel``."""

from demo.settings import *  # noqa: F403
from demo.settings import DATABASES

DATABASES["default"]["TEST"] = {"NAME": "ot_parallel_project"}
