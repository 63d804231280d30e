"""Per-host URLconf: the public host, tenants, and one tenant may each have their own.

``OMNITENANT_CONFIG["PUBLIC_URLCONF"]`` serves the public host (no tenant),
``["TENANT_URLCONF"]`` every tenant (default: ``ROOT_URLCONF``), and a tenant whose
``config`` holds ``"urlconf"`` gets that one. The middleware sets it as ``request.urlconf``
(Django resolves the request with it), and ``tenant_context`` switches Django's current URLconf
while a tenant is active, so ``reverse()`` in a task, a command or a nested
``tenant_context`` builds that tenant's URLs. With none of the three set nothing is switched.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from django.urls import get_urlconf, set_urlconf

from .conf import get_config
from .context import TenantState, on_activate

#: ``urlconf_for()`` when no URLconf follows the tenant (the feature is off for this state).
UNCHANGED = object()


def urlconf_for(state: TenantState | None) -> Any:
    """The URLconf module path ``state`` is served with, ``None`` for ``ROOT_URLCONF``, or
    :data:`UNCHANGED` when nothing is configured for it."""
    if state is None:
        return UNCHANGED  # nothing active: leave the URLconf to whoever set it
    config = get_config()
    if state.tenant_id is None:
        if state.is_public and config.PUBLIC_URLCONF:
            return config.PUBLIC_URLCONF
        return None if config.PUBLIC_URLCONF or config.TENANT_URLCONF else UNCHANGED
    own = getattr(state.tenant, "config", None)
    if isinstance(own, dict) and own.get("urlconf"):
        return own["urlconf"]
    if config.TENANT_URLCONF:
        return config.TENANT_URLCONF
    return None if config.PUBLIC_URLCONF else UNCHANGED


#: True while the current URLconf is one this module chose (for an enclosing tenant_context).
_switched: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "omnitenant_async.urlconf.switched", default=False
)


def chosen_urlconf() -> Any:
    """The URLconf the innermost ``tenant_context`` switched to, or :data:`UNCHANGED`.

    The middleware sets it as ``request.urlconf`` from inside the tenant's context, so a
    request computes :func:`urlconf_for` once, when the context is entered.
    """
    return get_urlconf() if _switched.get() else UNCHANGED


def _switch(state: TenantState | None) -> Callable[[], None] | None:
    """``tenant_context`` hook: make ``state``'s URLconf current; return how to undo it."""
    wanted = urlconf_for(state)
    if wanted is UNCHANGED:
        if not _switched.get():
            return None  # nothing of ours to undo: the project's own URLconf stays
        wanted = None  # inside a tenant with its own URLconf: this state has the project's
    previous = get_urlconf()
    token = _switched.set(True)
    set_urlconf(wanted)

    def undo() -> None:
        set_urlconf(previous)
        _switched.reset(token)

    return undo


on_activate(_switch)
