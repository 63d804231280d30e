"""Errors raised by omnitenant_async. All derive from :class:`OmnitenantError`."""

from __future__ import annotations

from django.core.exceptions import SuspiciousOperation
from django.http import Http404


class OmnitenantError(Exception):
    """Base class of every error raised by omnitenant_async."""


class TenantNotFound(OmnitenantError):
    """No tenant matches the host, header, path or id that was asked for."""

    def __init__(self, lookup: str, value: str) -> None:
        self.lookup = lookup
        self.value = value
        super().__init__(f"No tenant found for {lookup} {value!r}.")


class DomainNotFound(TenantNotFound):
    """No domain row matches the request's host."""

    def __init__(self, value: str) -> None:
        super().__init__("domain", value)


class InvalidTenantInput(OmnitenantError, SuspiciousOperation):
    """A host, header or path could not be a tenant reference at all.

    It subclasses :class:`SuspiciousOperation`, so Django answers 400 if it escapes a view.
    """


class NoTenantActive(OmnitenantError):
    """A tenant-scoped model was queried while no tenant was active (we fail closed)."""


class InvalidTenantName(OmnitenantError, ValueError):
    """A tenant id or schema name is not a DNS label, or is reserved."""


class TenantAlreadyExists(OmnitenantError):
    """Provisioning found the tenant's schema or database already there."""


class TenantProvisioningError(OmnitenantError):
    """Creating, migrating or deleting a tenant's schema or database failed."""


class TenantSwitchInTransaction(OmnitenantError):
    """The tenant changed inside an atomic block on a connection that cannot follow it."""


class TenantSchemaMissing(TenantNotFound, Http404):
    """The active tenant's schema no longer exists (dropped, maybe by another process).

    PostgreSQL skips a missing schema on the ``search_path``, so without this check a stale
    worker would read and write ``public``'s shared tables (``auth_user``, sessions) for the
    dropped tenant. It is an ``Http404``: a view that hits it answers 404.
    """

    def __init__(self, schema_name: str) -> None:
        super().__init__("schema", schema_name)
