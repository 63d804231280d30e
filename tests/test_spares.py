"""Spare schemas (provisioning/spares.py): clones made ahead of time, claimed by ``create()``.

On the demo's apps with a template schema of their own; every test leaves no spare, template
or tenant of its own behind. The catalog of a claimed spare is compared with a migrated
tenant's on bench.scale_app in tests/test_clone.py.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, connections, transaction
from django.test import override_settings
from psycopg import sql

from demo.notes.models import Marker
from omnitenant_async import tenant_context, use_master_db
from omnitenant_async.checks import check_spares
from omnitenant_async.exceptions import TenantAlreadyExists
from omnitenant_async.provisioning import get_tenant_backend
from omnitenant_async.provisioning.clone import clone_plan, migrate_template
from omnitenant_async.provisioning.spares import (
    SPARE_PREFIX,
    drop_spares,
    fill_spares,
    list_spares,
    wait_for_spares,
)
from omnitenant_async.utils import get_tenant_model

pytestmark = pytest.mark.usefixtures("django_db")

TEMPLATE = "sp_template"


def execute(statement: str | sql.Composable, params: list[Any] | None = None) -> list[Any]:
    with use_master_db(), connection.cursor() as cursor:
        raw = connection.connection
        text = statement if isinstance(statement, str) else statement.as_string(raw)
        cursor.execute(text, params)
        return list(cursor.fetchall()) if cursor.description else []


def schema_exists(name: str) -> bool:
    return bool(execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [name]))


def applied(schema: str) -> set[tuple[str, str]]:
    table = sql.Identifier(schema, "django_migrations")
    return {(a, n) for a, n in execute(sql.SQL("SELECT app, name FROM {}").format(table))}


def config(**extra: Any) -> dict[str, Any]:
    return {**settings.OMNITENANT_CONFIG, "TEMPLATE_SCHEMA": TEMPLATE, **extra}


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def spares_on() -> Iterator[list[Any]]:
    """SPARE_SCHEMAS = 2 on a migrated template; yields a list for the tenants a test makes."""
    made: list[Any] = []
    with override_settings(OMNITENANT_CONFIG=config(SPARE_SCHEMAS=2)):
        migrate_template()
        try:
            yield made
        finally:
            assert wait_for_spares(60), "the refill thread did not finish"
            with use_master_db():
                for tenant in made:
                    get_tenant_backend(tenant).delete(drop=True)
            drop_spares()
            execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(TEMPLATE)))
    assert list_spares() == []


def new_tenant(made: list[Any], tenant_id: str) -> Any:
    tenant = get_tenant_model()(tenant_id=tenant_id, name=tenant_id)
    made.append(tenant)
    return tenant


def test_create_renames_a_spare_and_refills(spares_on: list[Any]) -> None:
    report = fill_spares()
    assert (report.made, report.ready) == (2, 2)
    before = {name for name, _ in list_spares()}
    assert len(before) == 2 and all(n.startswith(SPARE_PREFIX) for n in before)

    tenant = new_tenant(spares_on, "sp-a")
    backend = get_tenant_backend(tenant)
    assert backend.create() == "cloned"
    claimed = next(n for n in before if n in backend.provisioned_why)
    assert "ahead of time" in backend.provisioned_why
    assert claimed not in {name for name, _ in list_spares()}  # renamed, not copied
    assert schema_exists("sp-a")
    assert applied("sp-a") == applied(TEMPLATE)
    assert execute("SELECT obj_description('\"sp-a\"'::regnamespace, 'pg_namespace')") == [(None,)]
    with tenant_context(tenant):  # a working tenant, holding only its own rows
        assert Marker.objects.count() == 0
        Marker.objects.create(tenant_id="sp-a")
        assert list(Marker.objects.values_list("tenant_id", flat=True)) == ["sp-a"]

    assert wait_for_spares(60)
    after = {name for name, _ in list_spares()}
    assert len(after) == 2 and claimed not in after  # a replacement was cloned


def test_without_a_current_spare_create_clones(spares_on: list[Any]) -> None:
    assert list_spares() == []
    tenant = new_tenant(spares_on, "sp-b")
    backend = get_tenant_backend(tenant)
    assert backend.create() == "cloned"
    assert "ahead of time" not in backend.provisioned_why
    assert wait_for_spares(60)
    assert len(list_spares()) == 2  # the claim attempt asked for a refill


def test_spares_of_an_older_template_are_never_claimed(spares_on: list[Any]) -> None:
    fill_spares()
    stale = {name for name, _ in list_spares()}
    table = sql.Identifier(TEMPLATE, "django_migrations")
    fake = sql.SQL("INSERT INTO {} (app, name, applied) VALUES ('notes', '9999_gone', now())")
    execute(fake.format(table))  # the template moved on (an applied row the graph lacks)
    try:
        tenant = new_tenant(spares_on, "sp-c")
        backend = get_tenant_backend(tenant)
        assert backend.create() == "cloned"
        assert "ahead of time" not in backend.provisioned_why
        assert ("notes", "9999_gone") in applied("sp-c")
        assert wait_for_spares(60)
        current = {name for name, _ in list_spares()}
        assert len(current) == 2 and not current & stale  # stale ones dropped, new ones made
    finally:
        execute(sql.SQL("DELETE FROM {} WHERE name = '9999_gone'").format(table))


def test_a_clone_aborts_if_the_template_is_migrated_meanwhile(spares_on: list[Any]) -> None:
    plan, why = clone_plan()
    assert plan is not None, why
    table = sql.Identifier(TEMPLATE, "django_migrations")
    fake = sql.SQL("INSERT INTO {} (app, name, applied) VALUES ('notes', '9999_new', now())")
    execute(fake.format(table))  # as if a migration of the template committed meanwhile
    try:
        with pytest.raises(DatabaseError, match="migrated while it was being cloned"):
            with use_master_db(), transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(plan.statement("sp-mixed", connection.connection))
        assert not schema_exists("sp-mixed")
    finally:
        execute(sql.SQL("DELETE FROM {} WHERE name = '9999_new'").format(table))


def test_an_existing_schema_is_refused_and_the_spare_kept(spares_on: list[Any]) -> None:
    fill_spares()
    before = list_spares()
    execute('CREATE SCHEMA "sp-dup"')
    try:
        with pytest.raises(TenantAlreadyExists, match="sp-dup"):
            get_tenant_backend(get_tenant_model()(tenant_id="sp-dup", name="x")).create()
        assert list_spares() == before
        with use_master_db():
            assert not get_tenant_model().objects.filter(tenant_id="sp-dup").exists()
    finally:
        execute('DROP SCHEMA "sp-dup" CASCADE')


def test_concurrent_creates_never_share_a_spare(spares_on: list[Any]) -> None:
    fill_spares(count=6)
    tenants = [new_tenant(spares_on, f"sp-c{i:02d}") for i in range(12)]
    start = threading.Barrier(6)

    def create(tenant: Any) -> str:
        try:
            start.wait(timeout=30)
        except threading.BrokenBarrierError:
            pass
        try:
            backend = get_tenant_backend(tenant)
            with use_master_db():
                assert backend.create() == "cloned"
            return backend.provisioned_why
        finally:
            connections.close_all()

    with ThreadPoolExecutor(6) as pool:
        whys = list(pool.map(create, tenants))
    claimed = [w.rsplit("'", 2)[-2] for w in whys if "ahead of time" in w]
    assert len(claimed) >= 6 and len(set(claimed)) == len(claimed), whys
    for tenant in tenants:  # each tenant has its own complete schema
        assert applied(tenant.tenant_id) == applied(TEMPLATE)
        with tenant_context(tenant):
            Marker.objects.create(tenant_id=tenant.tenant_id)
    for tenant in tenants:
        with tenant_context(tenant):
            labels = list(Marker.objects.values_list("tenant_id", flat=True))
            assert labels == [tenant.tenant_id]


def test_the_commands_refill_list_and_drop(spares_on: list[Any]) -> None:
    out = run("migratetenant", "--template")
    assert "[spares] 2 ready (2 made, 0 stale dropped" in out
    listed = run("refillspares", "--list")
    assert listed.count(SPARE_PREFIX) == 2
    assert "3 spare schema(s) ready: 1 made" in run("refillspares", "--count", "3")
    assert "Dropped 3 spare schema(s)." in run("refillspares", "--drop")
    assert list_spares() == []
    with pytest.raises(CommandError, match="at least 0"):
        run("refillspares", "--count", "-1")
    with (
        override_settings(OMNITENANT_CONFIG=config(TEMPLATE_SCHEMA=None)),
        pytest.raises(CommandError, match="no TEMPLATE_SCHEMA configured"),
    ):
        run("refillspares", "--count", "1")


def test_a_failing_refill_does_not_stop_a_migration(
    spares_on: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from omnitenant_async.management import _tenants

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise DatabaseError("disk full")

    monkeypatch.setattr(_tenants, "fill_spares", broken)
    out = run("migratetenant", "--template")
    assert "[spares] refill failed (disk full); create() clones meanwhile" in out
    assert f"Template schema '{TEMPLATE}' migrated." in out


def test_createtenant_leaves_the_spares_full(spares_on: list[Any]) -> None:
    fill_spares()
    out = io.StringIO()
    call_command("createtenant", tenant_id="sp-cli", name="cli", stdout=out)
    with use_master_db():
        spares_on.append(get_tenant_model().objects.get(tenant_id="sp-cli"))
    assert "Created tenant 'sp-cli'" in out.getvalue()
    assert len(list_spares()) == 2  # the replacement was made before the command returned


def test_a_claim_inside_a_transaction_refills_after_commit(spares_on: list[Any]) -> None:
    fill_spares()
    with use_master_db(), transaction.atomic():
        assert get_tenant_backend(new_tenant(spares_on, "sp-tx")).create() == "cloned"
        assert wait_for_spares(0)  # nothing asked yet: the claim is not committed
    assert wait_for_spares(60)
    assert len(list_spares()) == 2


def test_only_names_with_the_prefix_are_spares(spares_on: list[Any]) -> None:
    names = ["omnitenant_spare", "omnitenant_sparea", "omnitenant_spare_zz"]
    for name in names:
        execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        assert list_spares() == [("omnitenant_spare_zz", None)]
        report = fill_spares()  # unstamped: stale, dropped; the neighbours are left alone
        assert (report.dropped, report.made) == (1, 2)
        assert schema_exists("omnitenant_spare") and schema_exists("omnitenant_sparea")
    finally:
        for name in names:
            execute(sql.SQL("DROP SCHEMA IF EXISTS {}").format(sql.Identifier(name)))


def test_droporphans_never_lists_spares(spares_on: list[Any]) -> None:
    fill_spares()
    out = run("droporphans")
    assert SPARE_PREFIX not in out


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"SPARE_SCHEMAS": -1}, "omnitenant.E070"),
        ({"SPARE_SCHEMAS": "2"}, "omnitenant.E070"),
        ({"SPARE_SCHEMAS": True}, "omnitenant.E070"),
        ({"SPARE_SCHEMAS": 2, "TEMPLATE_SCHEMA": None}, "omnitenant.E071"),
        ({"SPARE_SCHEMAS": 2}, None),
        ({"SPARE_SCHEMAS": 0, "TEMPLATE_SCHEMA": None}, None),
    ],
)
def test_checks(extra: dict[str, Any], expected: str | None) -> None:
    with override_settings(OMNITENANT_CONFIG=config(**extra)):
        ids = [m.id for m in check_spares()]
    assert ids == ([expected] if expected else [])
