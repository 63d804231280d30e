"""The master database's connection, typed as our engine's wrapper.

django-stubs types ``django.db.connection`` and ``connections[alias]`` as ``BaseDatabaseWrapper``,
which has neither ``pool`` nor ``close_pool``; the tests' ``default`` alias runs our engine.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections

from omnitenant_async.engines.postgresql.base import DatabaseWrapper


def engine_wrapper(alias: str = DEFAULT_DB_ALIAS) -> DatabaseWrapper:
    """This thread's ``connections[alias]`` (what ``django.db.connection`` stands for)."""
    wrapper = connections[alias]
    assert isinstance(wrapper, DatabaseWrapper), type(wrapper)
    return wrapper
