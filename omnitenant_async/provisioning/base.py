"""What every provisioning backend does, in sync and async twins."""

from __future__ import annotations

import io
import logging
from typing import Literal, TextIO

from asgiref.sync import sync_to_async
from django.core.management import call_command

from ..conf import get_config
from ..context import TenantState, tenant_context, use_master_db
from ..models import BaseTenant
from ..signals import tenant_created, tenant_deleted, tenant_migrated
from ..validators import validate_schema_name

logger = logging.getLogger("omnitenant_async.provisioning")

#: How ``create()`` provisioned: from the template, by migrations, or storage only.
Provisioned = Literal["cloned", "migrated", "created"]


class BaseTenantBackend:
    """Create, migrate and delete one tenant's storage.

    ``create`` makes the storage then migrates it; ``delete`` removes the tenant row and drops
    the storage only when ``drop=True``. The ``a``-prefixed twins run the same work in a
    thread (``sync_to_async``), so they can be awaited from async views and consumers.
    """

    def __init__(self, tenant: BaseTenant) -> None:
        self.tenant = tenant
        self.provisioned_why = ""

    # -- to implement -------------------------------------------------------------------------
    def create_storage(self) -> None:
        raise NotImplementedError

    def drop_storage(self) -> None:
        raise NotImplementedError

    def exists(self) -> bool:
        """Whether the tenant's schema or database is there (with or without its row)."""
        raise NotImplementedError

    def migration_state(self) -> TenantState:
        """The state migrations run in (e.g. the schema alone on the search_path)."""
        raise NotImplementedError

    @property
    def migration_alias(self) -> str:
        return get_config().MASTER_DB_ALIAS

    def clone_storage(self) -> tuple[bool, str]:
        """Create the storage as a copy of a migrated template: ``(cloned, why)``.

        ``(False, why)`` when there is no current template (nothing was created); the caller
        then creates the storage and migrates it.
        """
        return False, "this backend does not clone"

    # -- operations ---------------------------------------------------------------------------
    def create(
        self, run_migrations: bool = True, *, verbosity: int = 0, stdout: TextIO | None = None
    ) -> Provisioned:
        """Save the row if new, create the storage, migrate it; on failure undo what it did.

        With ``run_migrations`` a schema tenant is cloned from the template schema when it is
        current (docs/operations.md), else migrated. Returns ``"cloned"``, ``"migrated"`` or
        (without ``run_migrations``) ``"created"``; the reason is logged on
        ``omnitenant_async.provisioning`` and kept in ``self.provisioned_why``.
        """
        validate_schema_name(self.tenant.tenant_id)
        new_row = self.tenant.pk is None
        if new_row:
            with use_master_db():
                self.tenant.save()
        cloned, why = False, "run_migrations=False"
        try:
            if run_migrations:
                cloned, why = self.clone_storage()
            if not cloned:
                self.create_storage()
        except BaseException:
            self._forget_row(new_row)
            raise
        self.provisioned_why = why
        tenant_created.send(sender=type(self.tenant), tenant=self.tenant)
        if not run_migrations:
            return "created"
        if cloned:
            logger.info("Tenant %r: %s.", self.tenant.tenant_id, why)
            tenant_migrated.send(sender=type(self.tenant), tenant=self.tenant)
            return "cloned"
        try:
            self.migrate(verbosity=verbosity, stdout=stdout)
        except BaseException:
            self.drop_storage()  # all or nothing: no half-migrated tenant is left behind
            self._forget_row(new_row)
            raise
        logger.info("Tenant %r: migrated (not cloned: %s).", self.tenant.tenant_id, why)
        return "migrated"

    def _forget_row(self, new_row: bool) -> None:
        if new_row and self.tenant.pk is not None:
            with use_master_db():
                type(self.tenant).objects.filter(pk=self.tenant.pk).delete()
            self.tenant.pk = None

    def migrate(
        self,
        app_label: str | None = None,
        migration_name: str | None = None,
        *,
        verbosity: int = 0,
        stdout: TextIO | None = None,
    ) -> None:
        """Run Django's ``migrate`` inside the tenant (only the tenant's apps are touched)."""
        args = [a for a in (app_label, migration_name) if a]
        with tenant_context(self.migration_state()):
            call_command(
                "migrate",
                *args,
                database=self.migration_alias,
                interactive=False,
                verbosity=verbosity,
                skip_checks=True,
                stdout=stdout or io.StringIO(),
            )
        tenant_migrated.send(sender=type(self.tenant), tenant=self.tenant)

    def delete(self, *, drop: bool = False) -> None:
        """Delete the tenant row (and its domains); drop its data only when ``drop=True``."""
        with use_master_db():
            if self.tenant.pk is not None:
                type(self.tenant).objects.filter(pk=self.tenant.pk).delete()
        if drop:
            self.drop_storage()
        tenant_deleted.send(sender=type(self.tenant), tenant=self.tenant, dropped=drop)

    async def acreate(self, run_migrations: bool = True, *, verbosity: int = 0) -> Provisioned:
        return await sync_to_async(self.create)(run_migrations, verbosity=verbosity)

    async def amigrate(
        self, app_label: str | None = None, migration_name: str | None = None, *, verbosity: int = 0
    ) -> None:
        await sync_to_async(self.migrate)(app_label, migration_name, verbosity=verbosity)

    async def adelete(self, *, drop: bool = False) -> None:
        await sync_to_async(self.delete)(drop=drop)
