"""Schema-per-tenant engine: ``ENGINE = "omnitenant_async.backends.postgresql"``."""
