"""Django HTTP middleware: resolve the tenant and run the rest of the request inside it.

Put it first in ``MIDDLEWARE`` so sessions, auth and views all run in the tenant. It is async
first (no thread hop under ASGI) and also works in a sync stack. It never uses
``MiddlewareMixin.process_request``: the tenant is set and reset around ``get_response`` in one
frame, with a token, so nothing leaks past the request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import Http404, HttpRequest, HttpResponseBase
from django.urls import set_script_prefix
from django.utils.cache import patch_vary_headers

from .context import TenantState, tenant_context
from .exceptions import TenantNotFound
from .resolvers import BaseTenantResolver, RequestInfo, get_resolver

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
        resolver = get_resolver()
        info = RequestInfo.from_request(request)
        try:
            state = resolver.resolve(info).with_own_tenant()
        except TenantNotFound as err:
            raise Http404(str(err)) from err
        self._prepare(request, resolver, info, state)
        with tenant_context(state):
            response = cast(HttpResponseBase, self.get_response(request))
        return self._finish(response, resolver)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        resolver = get_resolver()
        info = RequestInfo.from_request(request)
        try:
            state = (await resolver.aresolve(info)).with_own_tenant()
        except TenantNotFound as err:
            raise Http404(str(err)) from err
        self._prepare(request, resolver, info, state)
        with tenant_context(state):
            response = await self.get_response(request)  # type: ignore[misc]
        return self._finish(response, resolver)

    @staticmethod
    def _prepare(
        request: HttpRequest, resolver: BaseTenantResolver, info: RequestInfo, state: TenantState
    ) -> None:
        request.tenant = state.tenant  # type: ignore[attr-defined]
        request.tenant_state = state  # type: ignore[attr-defined]
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
