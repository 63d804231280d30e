"""Tenant-scoped cache keys: ``CACHES[...]["KEY_FUNCTION"] = "omnitenant_async.cache.make_key"``.

Every method of Django's cache API (sync and ``a``-prefixed, ``*_many`` included) builds its
keys through the cache's ``KEY_FUNCTION``, so prefixing the tenant there scopes all of them to
the tenant active at call time. Code with no tenant, and the public schema, share a separate
``public`` namespace. ``clear()`` still empties the whole cache, every tenant's keys included.
"""

from __future__ import annotations

from .context import get_current_state

__all__ = ["PUBLIC_NAMESPACE", "make_key", "tenant_namespace"]

PUBLIC_NAMESPACE = "public"


def _escape(part: str) -> str:
    return part.replace("%", "%25").replace(":", "%3A")


def tenant_namespace() -> str:
    """``t.<tenant_id>`` for the active tenant, ``public`` when there is none."""
    state = get_current_state()
    if state is None or (state.tenant_id is None and state.is_public):
        return PUBLIC_NAMESPACE
    return _escape(state.cache_prefix)  # a bare database key may hold ':'


def make_key(key: str, key_prefix: str, version: int | str | None) -> str:
    """Django's ``<prefix>:<version>:<key>`` with the tenant namespace before the key.

    Neither the version nor the namespace can hold a ':', so two tenants' keys differ whatever
    keys and versions the code passes.
    """
    return f"{key_prefix}:{_escape(str(version))}:{tenant_namespace()}:{key}"
