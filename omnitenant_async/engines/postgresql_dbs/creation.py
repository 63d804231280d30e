"""Test-database hooks of the virtual alias: it has no database of its own to create."""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql.creation import DatabaseCreation as _PostgresCreation

_Creation: Any = _PostgresCreation


class DatabaseCreation(_Creation):
    """Tenant databases are made by ``get_tenant_backend(tenant).create()``, not by Django."""

    def create_test_db(self, *args: Any, **kwargs: Any) -> str:
        return str(self.connection.settings_dict.get("NAME") or "")

    def destroy_test_db(self, *args: Any, **kwargs: Any) -> None:
        return None
