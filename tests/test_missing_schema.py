"""A tenant whose schema vanished fails closed: never ``public``'s shared tables.

PostgreSQL skips a missing schema on the search_path. A stale worker (its registry still holds
the tenant, or its pooled connection had the path set before the drop) used to read and write
``public``'s ``auth_user`` and ``django_session`` for the dropped tenant.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.contrib.auth.models import User
from django.db import connection, connections
from django.test import Client, override_settings

from omnitenant_async import tenant_context, use_master_db
from omnitenant_async.exceptions import TenantSchemaMissing
from omnitenant_async.testing import create_test_tenant, drop_test_tenant

pytestmark = pytest.mark.usefixtures("tenants")


def drop_schema_behind_our_back(schema: str) -> None:
    """Another process drops the schema; this one's registry still holds the tenant."""
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
    ) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def doomed() -> Iterator[Any]:
    tenant = create_test_tenant("doomed", ["doomed.localhost"])
    yield tenant
    connections.close_all()
    drop_test_tenant(tenant)


def public_users() -> int:
    with use_master_db():
        return User.objects.count()


@pytest.mark.parametrize("pooler", [None, "transaction"])
def test_shared_tables_of_a_dropped_schema_never_fall_through_to_public(
    doomed: Any, pooler: str | None
) -> None:
    from django.conf import settings

    config = {**settings.OMNITENANT_CONFIG, "POOLER": pooler}
    with override_settings(OMNITENANT_CONFIG=config):
        connections.close_all()
        with tenant_context(doomed):
            User.objects.count()  # the path is set and recorded on this pooled connection
        connections.close_all()  # back to the pool, path still set on the server session
        drop_schema_behind_our_back("doomed")
        before = public_users()
        connections.close_all()
        with tenant_context(doomed):
            with pytest.raises(TenantSchemaMissing):
                User.objects.create(username="should-not-land-in-public")
            with pytest.raises(TenantSchemaMissing):  # sticky for the rest of the checkout
                User.objects.count()
        connections.close_all()
        assert public_users() == before
        assert (
            not User.objects.using("default").filter(username="should-not-land-in-public").exists()
        )


@pytest.mark.parametrize(
    ("pooler", "piggyback"), [(None, True), (None, False), ("transaction", True)]
)
def test_switching_to_a_dropped_schema_fails_at_the_set(
    doomed: Any, tenants: dict[str, Any], pooler: str | None, piggyback: bool
) -> None:
    """The SET itself checks the schema: a connection coming from another tenant cannot
    land on ``public`` either, with the SET in front of the query or sent on its own."""
    from django.conf import settings

    config = {**settings.OMNITENANT_CONFIG, "POOLER": pooler, "PIGGYBACK_SEARCH_PATH": piggyback}
    with override_settings(OMNITENANT_CONFIG=config):
        connections.close_all()
        drop_schema_behind_our_back("doomed")
        before = public_users()
        with tenant_context(tenants["t01"]):
            assert User.objects.count() >= 0  # this checkout's path is t01's now
            with tenant_context(doomed):
                with pytest.raises(TenantSchemaMissing):
                    User.objects.create(username="should-not-land-in-public")
                with pytest.raises(TenantSchemaMissing):
                    User.objects.count()
            assert User.objects.filter(username="should-not-land-in-public").count() == 0
        connections.close_all()
        assert public_users() == before


def test_a_request_for_a_dropped_schema_is_404_not_500(doomed: Any) -> None:
    client = Client(raise_request_exception=False)
    assert client.get("/whoami-sync/", headers={"host": "doomed.localhost"}).status_code == 200
    drop_schema_behind_our_back("doomed")
    connections.close_all()
    response = client.get("/whoami-sync/", headers={"host": "doomed.localhost"})
    assert response.status_code == 404
