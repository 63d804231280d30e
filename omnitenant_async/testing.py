"""Helpers for your own tests: real tenants on the real database, clients bound to a tenant.

``create_test_tenant`` makes the row, the schema (migrated) and the domains;
``drop_test_tenant`` removes all of it. ``tenant_client(tenant)`` activates the tenant for the
block (fixtures you create there land in its schema) and yields a ``Client`` whose requests go
to the tenant's primary domain; ``async_tenant_client`` is the ``AsyncClient`` twin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client

from .context import tenant_context, use_master_db
from .isolation import IsolationType
from .management._tenants import create_tenant, primary_domain
from .models import BaseTenant
from .provisioning import get_tenant_backend
from .registry import get_tenant_model

__all__ = [
    "HostAsyncClient",
    "acreate_test_tenant",
    "adrop_test_tenant",
    "async_tenant_client",
    "create_test_tenant",
    "drop_test_tenant",
    "tenant_client",
]


def create_test_tenant(
    tenant_id: str,
    domains: Sequence[str] = (),
    *,
    name: str | None = None,
    isolation: IsolationType = IsolationType.SCHEMA,
    config: dict[str, Any] | None = None,
    migrate: bool = True,
) -> BaseTenant:
    """Create a tenant with its storage and domains (the first is primary); return the row."""
    return create_tenant(
        tenant_id,
        name=name,
        domains=domains,
        isolation=isolation,
        config=config,
        run_migrations=migrate,
    )


async def acreate_test_tenant(
    tenant_id: str,
    domains: Sequence[str] = (),
    *,
    name: str | None = None,
    isolation: IsolationType = IsolationType.SCHEMA,
    config: dict[str, Any] | None = None,
    migrate: bool = True,
) -> BaseTenant:
    return await sync_to_async(create_test_tenant)(
        tenant_id, domains, name=name, isolation=isolation, config=config, migrate=migrate
    )


def drop_test_tenant(tenant: BaseTenant | str) -> None:
    """Delete a tenant (a row or a tenant id), its domains and its data; no error if gone.

    Given an id with no row, a leftover schema of that name is dropped.
    """
    tenant_id = tenant if isinstance(tenant, str) else tenant.tenant_id
    Tenant = get_tenant_model()
    with use_master_db():
        row = Tenant.objects.filter(tenant_id=tenant_id).first()
    if row is None:
        row = Tenant(tenant_id=tenant_id) if isinstance(tenant, str) else tenant
    get_tenant_backend(row).delete(drop=True)


async def adrop_test_tenant(tenant: BaseTenant | str) -> None:
    await sync_to_async(drop_test_tenant)(tenant)


def _host_of(tenant: BaseTenant, host: str | None) -> str:
    host = host or primary_domain(tenant)
    if host is None:
        raise ValueError(
            f"Tenant {tenant.tenant_id!r} has no domain; add one or pass host='...' explicitly."
        )
    return host


@contextmanager
def tenant_client(
    tenant: BaseTenant, *, host: str | None = None, **client_kwargs: Any
) -> Iterator[Client]:
    """Activate ``tenant`` for the block and yield a ``Client`` sending its primary domain."""
    client = Client(headers={"host": _host_of(tenant, host)}, **client_kwargs)
    with tenant_context(tenant):
        yield client


class HostAsyncClient(AsyncClient):
    """An ``AsyncClient`` whose requests carry one ``Host`` header.

    Django's ``AsyncClient`` always sends ``host: testserver`` and *appends* a ``host`` passed
    in ``headers=`` (the request then sees ``testserver,<host>``), so we replace it instead.
    """

    def __init__(self, host: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host

    async def request(self, **request: Any) -> Any:
        headers = [(k, v) for k, v in request.get("headers", []) if k != b"host"]
        request["headers"] = [(b"host", self.host.encode("latin-1")), *headers]
        return await super().request(**request)


@asynccontextmanager
async def async_tenant_client(
    tenant: BaseTenant, *, host: str | None = None, **client_kwargs: Any
) -> AsyncIterator[HostAsyncClient]:
    """Async twin of :func:`tenant_client`: yields a :class:`HostAsyncClient`."""
    client = HostAsyncClient(await sync_to_async(_host_of)(tenant, host), **client_kwargs)
    async with tenant_context(tenant):
        yield client
