"""Django imports ``<ENGINE>.base``; the engine is in ``omnitenant_async.engines``."""

from ...engines.postgresql_dbs.base import DatabaseWrapper

__all__ = ["DatabaseWrapper"]
