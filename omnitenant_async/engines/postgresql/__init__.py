"""Schema-per-tenant engine (documented ENGINE path: ``omnitenant_async.backends.postgresql``)."""
