"""A logging filter that stamps each record with the tenant active when it was logged.

``LOGGING["filters"] = {"tenant": {"()": "omnitenant_async.logging.TenantLogFilter"}}``, then
``%(tenant_id)s`` in a formatter. Records logged with no tenant get ``-``.
"""

from __future__ import annotations

import logging

from .context import get_current_state

__all__ = ["TenantLogFilter"]


class TenantLogFilter(logging.Filter):
    """Adds ``record.tenant_id``; never drops a record."""

    def __init__(self, name: str = "", *, none: str = "-") -> None:
        super().__init__(name)
        self.none = none

    def filter(self, record: logging.LogRecord) -> bool:
        state = get_current_state()
        tenant_id = state.tenant_id if state is not None else None
        record.tenant_id = tenant_id or self.none
        return True
