"""``request.get_host()``, remembered per Host header once Django has accepted it.

Django's ``get_host()`` reads three settings through the lazy settings object and validates the
host against ``ALLOWED_HOSTS`` on every call (~4 µs), and ``CommonMiddleware`` calls it again
for the same request. The answer depends only on the raw header and those settings, so a host
Django accepted once is remembered (bounded, and forgotten when a setting it depends on
changes) and the next request with the same header skips the validation. A header Django has
not accepted always goes through ``get_host()``, which raises its own ``DisallowedHost``.
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest

#: Settings ``get_host()``'s answer depends on.
HOST_SETTINGS = frozenset({"ALLOWED_HOSTS", "DEBUG", "USE_X_FORWARDED_HOST"})

#: Accepted raw hosts; a flood of distinct (accepted) hosts empties it rather than growing it.
MAX_REMEMBERED = 1024

_accepted: set[str] = set()
_stock_get_host = HttpRequest.get_host


@functools.cache
def _forwarded() -> bool:
    """``settings.USE_X_FORWARDED_HOST``, read once (until :func:`forget`)."""
    return bool(settings.USE_X_FORWARDED_HOST)


def request_host(request: HttpRequest) -> str:
    """What ``request.get_host()`` returns (or raises), without its work for a known host.

    A request class that overrides ``get_host()`` is always asked itself.
    """
    if type(request).get_host is not _stock_get_host:
        return request.get_host()
    raw = _raw_header(request.META)
    if raw is not None and raw in _accepted:
        return raw
    host = request.get_host()  # DisallowedHost for a host outside ALLOWED_HOSTS
    if host == raw:
        if len(_accepted) >= MAX_REMEMBERED:
            _accepted.clear()
        _accepted.add(host)
    return host


def _raw_header(meta: Any) -> str | None:
    """The header ``get_host()`` reads (``None``: it falls back to ``SERVER_NAME``)."""
    if _forwarded() and "HTTP_X_FORWARDED_HOST" in meta:
        return meta["HTTP_X_FORWARDED_HOST"]  # type: ignore[no-any-return]
    return meta.get("HTTP_HOST")  # type: ignore[no-any-return]


def forget() -> None:
    """Validate every host again (a setting changed)."""
    _accepted.clear()
    _forwarded.cache_clear()


@receiver(setting_changed)
def _forget_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in HOST_SETTINGS:
        forget()
