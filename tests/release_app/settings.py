"""The demo with a streaming view, for the connection-release tests."""

from demo.settings import *  # noqa: F403

ROOT_URLCONF = "tests.release_app.urls"
