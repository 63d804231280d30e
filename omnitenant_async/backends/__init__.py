"""The documented ENGINE paths, kept stable while the code lives elsewhere.

``DATABASES[...]["ENGINE"]`` names ``omnitenant_async.backends.postgresql`` (schema tenants) or
``omnitenant_async.backends.postgresql_dbs`` (database tenants); Django imports ``<ENGINE>.base``.
The engines themselves are in :mod:`omnitenant_async.engines`, provisioning in
:mod:`omnitenant_async.provisioning`.
"""

from __future__ import annotations

import warnings
from typing import Any

_MOVED = {"BaseTenantBackend", "get_tenant_backend"}


def __getattr__(name: str) -> Any:
    """``from omnitenant_async.backends import get_tenant_backend`` still works, with a warning.

    Imported lazily: Django imports this package for the ENGINE while it loads models, before
    provisioning (which needs the tenant model) can be.
    """
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"omnitenant_async.backends.{name} moved to omnitenant_async.provisioning.{name}.",
        DeprecationWarning,
        stacklevel=2,
    )
    from .. import provisioning  # lazy on purpose, see above

    return getattr(provisioning, name)
