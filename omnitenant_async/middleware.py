"""Django HTTP middleware: resolve the tenant and run the rest of the request inside it.

Put it first in ``MIDDLEWARE`` so sessions, auth and views all run in the tenant. It is async
first (no thread hop under ASGI) and also works in a sync stack. It never uses
``MiddlewareMixin.process_request``: the tenant is set and reset around ``get_response`` in one
frame, with a token, so nothing leaks past the request.

While the database cannot be reached, the resolution step answers ``503`` with
``Retry-After`` (never a 500, never a cached "unknown tenant"), and so does a view whose query
fails to connect. A view that fails because its tenant was deleted meanwhile answers 404. The
first request also starts the process's invalidation listener (``omnitenant_async.invalidation``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.urls import set_script_prefix
from django.utils.cache import patch_vary_headers

from .conf import get_config
from .context import TenantState, activate, deactivate, tenant_context
from .exceptions import InvalidTenantInput, OmnitenantError, TenantNotFound
from .invalidation import ensure_listener
from .registry import registry
from .resolvers import BaseTenantResolver, RequestInfo, get_resolver
from .urlconf import UNCHANGED, chosen_urlconf

logger = logging.getLogger("omnitenant_async.middleware")

#: Errors that mean "the database cannot be reached (now)": answered 503, never cached.
UNAVAILABLE = (OperationalError, InterfaceError)

GetResponse = Callable[[HttpRequest], HttpResponseBase]
AGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


class TenantMiddleware:
    """Sets ``request.tenant`` (the tenant model instance, ``None`` on the public host).

    Unknown tenants raise ``Http404`` and malformed hosts, headers or paths raise
    ``InvalidTenantInput`` (a ``SuspiciousOperation``): Django answers them with your
    ``handler404``/``handler400``. The host is read with Django's ``get_host()``, so
    ``ALLOWED_HOSTS`` is enforced (``DisallowedHost``, 400) before any lookup and
    ``USE_X_FORWARDED_HOST`` is honoured. Each request gets its own copy of the tenant
    instance: changing ``request.tenant`` affects no other request.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse | AGetResponse) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        ensure_listener()
        resolver = get_resolver()
        info = RequestInfo.from_request(request)
        try:
            state = resolver.resolve(info).with_own_tenant()
        except TenantNotFound as err:
            raise Http404(str(err)) from err
        except UNAVAILABLE as err:
            return unavailable(err)
        with tenant_context(state):
            self._prepare(request, resolver, info, state)
            response = cast(HttpResponseBase, self.get_response(request))
        return self._finish(response, resolver)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        ensure_listener()
        resolver = get_resolver()
        info = RequestInfo.from_request(request)
        try:
            state = resolver.cached(info) or await resolver.aresolve(info)
        except TenantNotFound as err:
            raise Http404(str(err)) from err
        except UNAVAILABLE as err:
            return unavailable(err)
        state = state.with_own_tenant()
        activation = activate(state)  # tenant_context's halves: one object less per request
        try:
            self._prepare(request, resolver, info, state)
            response = await self.get_response(request)  # type: ignore[misc]
        finally:
            deactivate(activation)
        return self._finish(response, resolver)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """A view's database failure: 503 if unreachable, 404 if its tenant is gone meanwhile.

        A request resolved just before its tenant was deleted (or its schema dropped) fails at
        its first query; the row is re-checked *without* the cache, so it answers 404 like the
        next request will. Anything else stays Django's (500).
        """
        if isinstance(exception, UNAVAILABLE):
            return unavailable(exception)
        if isinstance(exception, TenantNotFound):
            raise Http404(str(exception)) from exception
        if not isinstance(exception, (DatabaseError, OmnitenantError)) or isinstance(
            exception, InvalidTenantInput
        ):
            return None
        state: TenantState | None = getattr(request, "tenant_state", None)
        if state is None or state.tenant_id is None:
            return None
        try:
            gone = not registry.tenant_exists(state.tenant_id)
        except UNAVAILABLE as err:
            return unavailable(err)
        if gone:
            registry.clear()  # do not wait for the notification: the next request is a 404 too
            raise Http404(f"Tenant {state.tenant_id!r} no longer exists.") from exception
        return None

    @staticmethod
    def _prepare(
        request: HttpRequest, resolver: BaseTenantResolver, info: RequestInfo, state: TenantState
    ) -> None:
        """Put the tenant on the request; called inside its ``tenant_context``."""
        request.tenant = state.tenant  # type: ignore[attr-defined]
        request.tenant_state = state  # type: ignore[attr-defined]
        urlconf = chosen_urlconf()  # what entering the tenant_context chose, computed once
        if urlconf is not UNCHANGED:  # PUBLIC_URLCONF / TENANT_URLCONF / config["urlconf"]
            request.urlconf = urlconf
        prefix = resolver.path_prefix(info)
        if prefix:
            request.path_info = request.path_info[len(prefix) :] or "/"
            request.META["SCRIPT_NAME"] = request.META.get("SCRIPT_NAME", "") + prefix
            set_script_prefix(request.META["SCRIPT_NAME"])

    @staticmethod
    def _finish(response: HttpResponseBase, resolver: BaseTenantResolver) -> HttpResponseBase:
        if resolver.vary_on:
            patch_vary_headers(response, resolver.vary_on)
        return response


def unavailable(err: Exception) -> HttpResponse:
    """``503 Service Unavailable`` with ``Retry-After``: the database cannot be reached now."""
    logger.warning("Database unavailable, answering 503: %s", describe(err))
    response = HttpResponse(
        "Service temporarily unavailable: the database cannot be reached. Retry shortly.\n",
        status=503,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = str(get_config().RETRY_AFTER)
    return response


def describe(err: BaseException) -> str:
    """``PoolTimeout: couldn't get a connection...``: the driver's class says what ran out."""
    cause = err.__cause__ or err
    return f"{type(cause).__name__}: {cause}"
