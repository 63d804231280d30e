"""Django imports ``<ENGINE>.base``; the engine is :mod:`omnitenant_async.engines.postgresql`."""

from ...engines.postgresql.base import DatabaseWrapper

__all__ = ["DatabaseWrapper"]
