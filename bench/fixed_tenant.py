"""A middleware that makes one schema tenant current, for ``--against engine-fixed-tenant``.

No resolution, no copy of the tenant, no URLconf: only the ContextVar set and reset around
the request. With it in place of ``TenantMiddleware``, ``bench/bench_pooler.py`` measures what
the engine below the middleware costs (router, ``SET LOCAL`` per statement) for a tenant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from omnitenant_async.context import TenantState, activate, deactivate

#: The first tenant of ``bench/seed.py``; its only host is ``b00.localhost``.
STATE = TenantState("b00", schema_name="b00")


class FixedTenantMiddleware:
    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]]) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        activation = activate(STATE)
        try:
            return await self.get_response(request)
        finally:
            deactivate(activation)
