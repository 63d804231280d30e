"""Find the tenant of a connection from its host, subdomain, header or path.

Resolvers read a neutral :class:`RequestInfo`, built from a Django ``HttpRequest`` or from an
ASGI scope, so HTTP and WebSocket connections share them. Parsing is pure and cheap; the lookup
goes through the cached :mod:`registry`, so a warm request makes no query. Resolvers raise
:class:`~omnitenant_async.exceptions.TenantNotFound` (answered 404) or
:class:`~omnitenant_async.exceptions.InvalidTenantInput` (answered 400).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.core.exceptions import DisallowedHost, ImproperlyConfigured
from django.http import HttpRequest
from django.http.request import split_domain_port, validate_host
from django.utils.module_loading import import_string

from .conf import get_config
from .context import PUBLIC, TenantState
from .exceptions import InvalidTenantInput, TenantNotFound
from .hosts import request_host
from .registry import registry
from .validators import HOSTNAME_RE, is_dns_label


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What a resolver may look at: host (as sent), path, lower-case headers, query string."""

    host: str
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    query_string: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest) -> RequestInfo:
        meta = request.META
        return cls(
            host=request_host(request),  # get_host(): ALLOWED_HOSTS, USE_X_FORWARDED_HOST
            path=request.path_info,
            headers=_LazyHeaders(request),
            query_string=meta.get("QUERY_STRING", ""),
        )

    @classmethod
    def from_scope(cls, scope: Mapping[str, Any]) -> RequestInfo:
        """Build from an ASGI ``http`` or ``websocket`` scope, with ``get_host()``'s rules.

        Raises ``DisallowedHost`` for a host outside ``ALLOWED_HOSTS``.
        """
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers", ())
        }
        qs = scope.get("query_string", b"")
        return cls(
            host=allowed_host(_raw_scope_host(scope, headers)),
            path=scope.get("path", "/"),
            headers=headers,
            query_string=qs.decode("latin-1") if isinstance(qs, bytes) else str(qs),
        )

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        if value is None:
            value = self.headers.get(name.lower())
        return value

    def query_param(self, name: str) -> str | None:
        """The parameter's value; repeated with different values it is refused, not guessed."""
        try:
            values = set(parse_qs(self.query_string, max_num_fields=50).get(name, ()))
        except ValueError as err:  # more than 50 fields: refuse (400), never a 500
            raise InvalidTenantInput("The query string has too many fields.") from err
        if len(values) > 1:
            raise InvalidTenantInput(f"The {name!r} query parameter is given different values.")
        return values.pop() if values else None


def _raw_scope_host(scope: Mapping[str, Any], headers: Mapping[str, str]) -> str:
    """``HttpRequest._get_raw_host()`` for a scope: X-Forwarded-Host, Host, then the server."""
    if settings.USE_X_FORWARDED_HOST and "x-forwarded-host" in headers:
        return headers["x-forwarded-host"]
    if "host" in headers:
        return headers["host"]
    server = scope.get("server")
    if not server:
        return ""
    host, port = str(server[0]), str(server[1]) if len(server) > 1 else ""
    default_port = "443" if scope.get("scheme") in ("https", "wss") else "80"
    return host if not port or port == default_port else f"{host}:{port}"


def allowed_host(raw: str) -> str:
    """``raw`` if Django's ``get_host()`` would accept it, else ``DisallowedHost``."""
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    domain, _port = split_domain_port(raw)
    if domain and validate_host(domain, allowed):
        return raw
    raise DisallowedHost(
        f"Invalid host {raw!r}: add it to ALLOWED_HOSTS (or check USE_X_FORWARDED_HOST behind "
        "a proxy)."
    )


class _LazyHeaders(Mapping[str, str]):
    """``request.headers``, built only if a resolver reads a header (most never do)."""

    __slots__ = ("_request",)

    def __init__(self, request: HttpRequest) -> None:
        self._request = request

    def __getitem__(self, name: str) -> str:
        return self._request.headers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._request.headers)

    def __len__(self) -> int:
        return len(self._request.headers)


@functools.lru_cache(maxsize=4096)
def parse_host(raw: str) -> str:
    """Lower-case host without port or trailing dot; raise ``InvalidTenantInput`` if malformed.

    Pure, and called for every request: the hosts in use are parsed once (a malformed one,
    which raises, is never cached).
    """
    if not raw:
        raise InvalidTenantInput("The request has no Host header.")
    if len(raw) > 261 or not raw.isascii() or not raw.isprintable():
        raise InvalidTenantInput("The Host header is not a valid host name.")
    host = raw.lower()
    if host.startswith("["):  # IPv6 literal, never a tenant domain but may be PUBLIC_HOST
        end = host.find("]")
        if end == -1 or (host[end + 1 :] and not _is_port(host[end + 2 :], host[end + 1])):
            raise InvalidTenantInput("The Host header is not a valid host name.")
        return host[: end + 1]
    name, sep, port = host.rpartition(":")
    if not sep:
        name = host
    elif not _is_port(port, ":"):
        raise InvalidTenantInput("The Host header has an invalid port.")
    name = name.removesuffix(".")
    if not HOSTNAME_RE.match(name):
        raise InvalidTenantInput("The Host header is not a valid host name.")
    return name


def _is_port(port: str, sep: str) -> bool:
    return sep == ":" and port.isdigit() and 0 < len(port) <= 5 and int(port) <= 65535


class BaseTenantResolver:
    """Turn a :class:`RequestInfo` into a :class:`TenantState`.

    Subclasses usually override :meth:`get_reference` only: it returns a domain (``"domain"``,
    host) or tenant id (``"tenant_id"``, id) reference, or ``None`` for the public schema.
    Override :meth:`resolve`/:meth:`aresolve` together for a lookup of your own.
    """

    #: Request headers the tenant depends on; the middleware adds them to ``Vary``.
    vary_on: tuple[str, ...] = ()

    def get_reference(self, request: RequestInfo) -> tuple[str, str] | None:
        raise NotImplementedError("BaseTenantResolver subclasses must define get_reference().")

    def resolve(self, request: RequestInfo) -> TenantState:
        ref = self.get_reference(request)
        if ref is None:
            return PUBLIC
        if ref[0] == "domain":
            return registry.get_by_domain(ref[1])
        return registry.get(*ref)

    async def aresolve(self, request: RequestInfo) -> TenantState:
        ref = self.get_reference(request)
        if ref is None:
            return PUBLIC
        if ref[0] == "domain":
            return await registry.aget_by_domain(ref[1])
        return await registry.aget(*ref)

    def cached(self, request: RequestInfo) -> TenantState | None:
        """What :meth:`aresolve` would return, if the registry has it now; else ``None``.

        The middleware tries this first: a warm tenant then costs no coroutine. A resolver
        with a lookup of its own (``aresolve`` overridden) always answers ``None``.
        """
        if type(self).aresolve is not BaseTenantResolver.aresolve:
            return None
        ref = self.get_reference(request)
        if ref is None:
            return PUBLIC
        return registry.peek(*ref)

    def path_prefix(self, request: RequestInfo) -> str:
        """The leading part of the path that named the tenant (stripped before URL routing)."""
        return ""

    def is_public_host(self, request: RequestInfo) -> bool:
        return parse_host(request.host) in get_config().PUBLIC_HOST


def _tenant_id_ref(value: str, source: str) -> tuple[str, str]:
    if not is_dns_label(value):
        raise InvalidTenantInput(f"The {source} does not hold a valid tenant id.")
    return ("tenant_id", value)


class CustomDomainTenantResolver(BaseTenantResolver):
    """The host is looked up in the domain table (several domains per tenant)."""

    def get_reference(self, request: RequestInfo) -> tuple[str, str] | None:
        return ("domain", parse_host(request.host))


class SubdomainTenantResolver(BaseTenantResolver):
    """``<tenant_id>.<BASE_DOMAIN>``; the base domain itself and ``www.`` serve public."""

    def get_reference(self, request: RequestInfo) -> tuple[str, str] | None:
        host = parse_host(request.host)
        base = get_config().base_domain
        if base is None:
            raise ImproperlyConfigured(
                "SubdomainTenantResolver needs OMNITENANT_CONFIG['BASE_DOMAIN'] (or PUBLIC_HOST)."
            )
        host = host.removeprefix("www.")
        if host == base or host in get_config().PUBLIC_HOST:
            return None
        label, dot, rest = host.partition(".")
        if not dot or rest != base:
            raise TenantNotFound("host", host)
        return _tenant_id_ref(label, "subdomain")


class HeaderTenantResolver(BaseTenantResolver):
    """The ``X-Tenant-ID`` header (``TENANT_HEADER``) names the tenant; responses vary on it."""

    @property
    def vary_on(self) -> tuple[str, ...]:  # type: ignore[override]
        return (get_config().TENANT_HEADER,)

    def get_reference(self, request: RequestInfo) -> tuple[str, str] | None:
        name = get_config().TENANT_HEADER
        value = request.header(name)
        if value is None:
            if self.is_public_host(request):
                return None
            raise InvalidTenantInput(f"The {name} header is required.")
        return _tenant_id_ref(value.strip(), f"{name} header")


class PathTenantResolver(BaseTenantResolver):
    """``/t/<tenant_id>/...`` (``PATH_PREFIX``); the prefix is stripped before URL routing.

    Paths outside the prefix are served by the public schema.
    """

    def _segments(self, path: str) -> tuple[str, str] | None:
        head = f"/{get_config().PATH_PREFIX}/"
        if not path.startswith(head):
            return None
        tenant_id, _, _ = path[len(head) :].partition("/")
        return head, tenant_id

    def get_reference(self, request: RequestInfo) -> tuple[str, str] | None:
        parse_host(request.host)  # a malformed host is refused in every mode
        found = self._segments(request.path)
        if found is None:
            return None
        return _tenant_id_ref(found[1], "path")

    def path_prefix(self, request: RequestInfo) -> str:
        found = self._segments(request.path)
        return f"{found[0]}{found[1]}" if found else ""


class QueryParamTenantResolver(BaseTenantResolver):
    """``?tenant=<tenant_id>`` (``QUERY_PARAM``), for WebSocket clients that cannot set headers."""

    def get_reference(self, request: RequestInfo) -> tuple[str, str] | None:
        name = get_config().QUERY_PARAM or "tenant"
        value = request.query_param(name)
        if value is None:
            if self.is_public_host(request):
                return None
            raise InvalidTenantInput(f"The {name!r} query parameter is required.")
        return _tenant_id_ref(value, f"{name!r} query parameter")


@functools.cache
def _load_resolver(path: str) -> BaseTenantResolver:
    try:
        cls = import_string(path)
    except ImportError as err:
        raise ImproperlyConfigured(
            f"OMNITENANT_CONFIG['TENANT_RESOLVER'] = {path!r} cannot be imported: {err}"
        ) from err
    if not (isinstance(cls, type) and issubclass(cls, BaseTenantResolver)):
        raise ImproperlyConfigured(
            f"OMNITENANT_CONFIG['TENANT_RESOLVER'] = {path!r} is not a BaseTenantResolver subclass."
        )
    return cls()


def get_resolver(path: str | None = None) -> BaseTenantResolver:
    """The configured resolver (one shared, stateless instance per dotted path)."""
    return _load_resolver(path or get_config().TENANT_RESOLVER)
