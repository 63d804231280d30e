"""Tenant lifecycle signals. Every one is sent with ``sender=<tenant model>`` and ``tenant=``."""

from __future__ import annotations

from django.dispatch import Signal

#: After a tenant's schema or database was created (before migrations run).
tenant_created = Signal()
#: After a tenant's migrations ran (also sent by ``migratetenant``/``migratealltenants``).
tenant_migrated = Signal()
#: After a tenant was deleted; ``dropped=True`` when its schema or database was dropped too.
tenant_deleted = Signal()
