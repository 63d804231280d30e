"""``django.tasks`` tasks of the demo (Django >= 6.0 only; the tests skip them on 5.2)."""

from __future__ import annotations

from typing import Any

from omnitenant_async.context import get_current_state
from omnitenant_async.tasks import tenant_task

from .models import Marker


@tenant_task
def whoami(tag: str = "") -> dict[str, Any]:
    """The tenant in the context and its marker row (None when enqueued with no tenant)."""
    state = get_current_state()
    tenant = state.tenant_id if state is not None else None
    marker = Marker.objects.values_list("tenant_id", flat=True).first() if tenant else None
    return {"tenant": tenant, "marker": marker, "tag": tag}


@tenant_task
async def awhoami(tag: str = "") -> dict[str, Any]:
    """The async twin: runs on the event loop, queries with the async ORM."""
    state = get_current_state()
    tenant = state.tenant_id if state is not None else None
    row = await Marker.objects.afirst() if tenant else None
    return {"tenant": tenant, "marker": row and row.tenant_id, "tag": tag}


@tenant_task
def marker() -> str:
    """Fails closed (NoTenantActive) when enqueued with no tenant."""
    return str(Marker.objects.values_list("tenant_id", flat=True).first())
