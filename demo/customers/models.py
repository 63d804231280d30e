from omnitenant_async.models import BaseDomain, BaseTenant


class Tenant(BaseTenant):
    """The demo's customers; lives in the public schema (master-scoped)."""


class Domain(BaseDomain):
    """Host names of the demo's customers."""
