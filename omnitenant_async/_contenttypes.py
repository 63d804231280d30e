"""Key Django's ContentType cache per tenant.

``ContentTypeManager`` caches rows per database alias. All schema tenants share one alias, and
content type ids differ between schemas, so one tenant would be served another's ids.
"""

from __future__ import annotations

from typing import Any

from .context import get_current_state


def _key(alias: Any) -> tuple[Any, str]:
    state = get_current_state()
    return (alias, state.cache_prefix if state is not None else "")


class TenantKeyedCache(dict[Any, Any]):
    def __getitem__(self, alias: Any) -> Any:
        return super().__getitem__(_key(alias))

    def __contains__(self, alias: object) -> bool:
        return super().__contains__(_key(alias))

    def get(self, alias: Any, default: Any = None) -> Any:
        return super().get(_key(alias), default)

    def setdefault(self, alias: Any, default: Any = None) -> Any:
        return super().setdefault(_key(alias), default)


def install() -> None:
    # Here, not at the top: contenttypes is optional, and its models need the app registry.
    from django.contrib.contenttypes.models import ContentType

    if not isinstance(ContentType.objects._cache, TenantKeyedCache):  # type: ignore[attr-defined]
        ContentType.objects._cache = TenantKeyedCache()  # type: ignore[attr-defined]
