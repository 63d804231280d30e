"""Schema-per-tenant provisioning on the master database."""

from __future__ import annotations

import logging

from django.db import DatabaseError, connections, transaction
from psycopg import errors, sql

from ..conf import get_config
from ..context import TenantState, use_master_db
from ..exceptions import TenantAlreadyExists, TenantProvisioningError
from ..validators import validate_schema_name
from .base import BaseTenantBackend
from .clone import ClonePlan, clone_plan
from .spares import claim_spare, refill_spares_soon

logger = logging.getLogger("omnitenant_async.provisioning")


class SchemaTenantBackend(BaseTenantBackend):
    @property
    def schema_name(self) -> str:
        return str(self.tenant.tenant_id)

    def migration_state(self) -> TenantState:
        # Only the tenant's schema on the path: Django's migration recorder must see the
        # tenant's django_migrations table, never public's.
        return TenantState(
            self.schema_name, schema_name=self.schema_name, include_public=False, tenant=self.tenant
        )

    def _execute(self, statement: sql.Composable) -> None:
        connection = connections[self.migration_alias]
        with use_master_db(), connection.cursor() as cursor:
            cursor.execute(statement.as_string(cursor.cursor.connection))

    def _already_exists(self) -> TenantAlreadyExists:
        return TenantAlreadyExists(
            f"Schema {self.schema_name!r} already exists. Delete it with "
            f"get_tenant_backend(tenant).delete(drop=True), or pick another tenant_id."
        )

    def create_storage(self) -> None:
        validate_schema_name(self.schema_name)
        try:
            self._execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema_name)))
        except DatabaseError as err:
            if isinstance(err.__cause__, errors.DuplicateSchema):
                raise self._already_exists() from err
            raise TenantProvisioningError(
                f"Could not create schema {self.schema_name!r}: {err}. The database role needs "
                "the CREATE privilege on the database."
            ) from err

    def clone_storage(self) -> tuple[bool, str]:
        """Copy the template schema in one transaction (provisioning/clone.py), if it is current.

        With ``SPARE_SCHEMAS``, a copy made ahead of time is renamed instead (spares.py).
        """
        validate_schema_name(self.schema_name)
        plan, why = clone_plan(self.migration_alias)
        if plan is None:
            return False, why
        if get_config().SPARE_SCHEMAS:
            claimed = self._claim_spare(plan)
            # After commit: inside a caller's transaction the claimed spare still looks free.
            transaction.on_commit(refill_spares_soon, using=self.migration_alias)
            if claimed:
                return True, f"{why}, ahead of time (spare schema {claimed!r})"
        connection = connections[self.migration_alias]
        try:
            with (
                use_master_db(),
                transaction.atomic(using=self.migration_alias),
                connection.cursor() as cursor,
            ):
                cursor.execute(plan.statement(self.schema_name, cursor.cursor.connection))
        except DatabaseError as err:
            if isinstance(err.__cause__, errors.DuplicateSchema):
                raise self._already_exists() from err
            # Rolled back: nothing was created. Migrating still gives a working tenant.
            logger.warning(
                "Cloning tenant %r failed (%s); migrating it instead.", self.schema_name, err
            )
            return False, f"cloning failed: {err}"
        return True, why

    def _claim_spare(self, plan: ClonePlan) -> str | None:
        try:
            return claim_spare(self.schema_name, plan, self.migration_alias)
        except DatabaseError as err:
            if isinstance(err.__cause__, errors.DuplicateSchema):
                raise self._already_exists() from err
            logger.warning("Claiming a spare schema failed (%s); cloning instead.", err)
            return None

    def drop_storage(self) -> None:
        validate_schema_name(self.schema_name)
        try:
            self._execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema_name))
            )
        except DatabaseError as err:
            raise TenantProvisioningError(
                f"Could not drop schema {self.schema_name!r}: {err}"
            ) from err

    def exists(self) -> bool:
        connection = connections[self.migration_alias]
        with use_master_db(), connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [self.schema_name])
            return cursor.fetchone() is not None
