"""Django database engines and what they stand on: pools, connection health, leases, forks.

``omnitenant_async.engines.postgresql`` is the schema-per-tenant engine and
``omnitenant_async.engines.postgresql_dbs`` the database-per-tenant one. Settings name them by
their documented paths, ``omnitenant_async.backends.postgresql`` and
``omnitenant_async.backends.postgresql_dbs``, which stay importable. Nothing here provisions a
tenant; that is :mod:`omnitenant_async.provisioning`.
"""
