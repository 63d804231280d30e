"""Database-per-tenant engine (documented path: ``omnitenant_async.backends.postgresql_dbs``)."""
