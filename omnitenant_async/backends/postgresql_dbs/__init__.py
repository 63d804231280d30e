"""Database-per-tenant engine: ``ENGINE = "omnitenant_async.backends.postgresql_dbs"``."""
