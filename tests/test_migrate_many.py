"""migratealltenants at scale: up-to-date tenants found by batched queries and skipped.

Against the real database. The shared tenants t00..t23 are only read (they stay migrated);
the tests that need a tenant behind, broken or without tables make their own ``mm-*`` ones.
Calls are counted with wrappers around the real methods, never with mocks.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader
from django.test.utils import CaptureQueriesContext, override_settings
from psycopg import sql

from omnitenant_async import use_master_db
from omnitenant_async.management.commands.migratealltenants import eta_seconds, format_duration
from omnitenant_async.provisioning import get_tenant_backend
from omnitenant_async.provisioning.migration import migrate_tenants
from omnitenant_async.provisioning.migration_state import expected_migrations, pending_schemas
from omnitenant_async.provisioning.schema import SchemaTenantBackend
from omnitenant_async.testing import create_test_tenant, drop_test_tenant
from omnitenant_async.utils import get_tenant_model

from .conftest import TENANT_IDS

MM_IDS = ("mm-behind", "mm-empty", "mm-broken", "mm-other")
TEMPLATE = "mm_template"
PROGRESS = re.compile(
    r"^\[(\d+)/(\d+)\] (\S+) (ok|FAILED) \(\d+\.\d\ds\) ETA (\d+s|\d+m\d\ds|\d+h\d\dm)(: .*)?$"
)

pytestmark = pytest.mark.usefixtures("tenants")


@pytest.fixture(autouse=True)
def _drop_mm_tenants() -> Iterator[None]:
    yield
    for tenant_id in MM_IDS:
        drop_test_tenant(tenant_id)


class Calls:
    """Counts the calls of a real method (it still runs), from any thread."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> None:
        self.args: list[Any] = []
        self._lock = threading.Lock()
        original: Callable[..., Any] = getattr(owner, name)

        def counting(instance: Any, *args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.args.append(instance)
            return original(instance, *args, **kwargs)

        monkeypatch.setattr(owner, name, counting)

    def __len__(self) -> int:
        return len(self.args)

    def reset(self) -> None:
        """Forget the calls so far (those of a test's own set-up)."""
        with self._lock:
            self.args.clear()


@pytest.fixture
def migrate_calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Every tenant ``migrate`` that actually runs (``SchemaTenantBackend.migrate``)."""
    return Calls(monkeypatch, SchemaTenantBackend, "migrate")


@pytest.fixture
def graph_builds(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Every migration graph built (each ``migrate`` builds one, the check one in all)."""
    return Calls(monkeypatch, MigrationLoader, "build_graph")


def run(*args: Any, **options: Any) -> str:
    out = io.StringIO()
    call_command("migratealltenants", *args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def tenant_count() -> int:
    with use_master_db():
        return int(get_tenant_model().objects.count())


def applied(schema: str) -> set[tuple[str, str]]:
    with use_master_db(), connection.cursor() as cursor:
        table = sql.Identifier(schema, "django_migrations").as_string(cursor.cursor.connection)
        cursor.execute(f"SELECT app, name FROM {table}")
        return {(app, name) for app, name in cursor.fetchall()}


def execute(statement: sql.Composable) -> None:
    with use_master_db(), connection.cursor() as cursor:
        cursor.execute(statement.as_string(cursor.cursor.connection))


def behind_tenant(tenant_id: str = "mm-behind") -> Any:
    """A migrated tenant rolled back one migration (notes to zero)."""
    tenant = create_test_tenant(tenant_id)
    get_tenant_backend(tenant).migrate("notes", "zero")
    assert ("notes", "0001_initial") not in applied(tenant_id)
    return tenant


def broken_tenant(tenant_id: str = "mm-broken") -> Any:
    """No migration history over existing tables: migrate re-creates them and fails."""
    tenant = create_test_tenant(tenant_id)
    execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(tenant_id, "django_migrations")))
    return tenant


def progress(out: str) -> list[re.Match[str]]:
    lines = [line for line in out.splitlines() if line.startswith("[") and "/" in line[:12]]
    matches = [PROGRESS.match(line) for line in lines]
    assert all(matches), lines
    return [m for m in matches if m]


def test_up_to_date_tenants_are_skipped_without_a_graph_each(
    migrate_calls: Calls, graph_builds: Calls
) -> None:
    total = tenant_count()
    out = run(threads=2, interactive=False)
    assert len(migrate_calls) == 0 and len(graph_builds) == 1, out
    assert re.search(
        rf"Checked {total} tenants in \d+\.\d\ds: {total} up to date, 0 to migrate", out
    )
    assert f"All {total} tenants are up to date; nothing to migrate." in out
    assert progress(out) == []


def test_a_tenant_rolled_back_is_found_pending_and_migrated_forward(
    migrate_calls: Calls, graph_builds: Calls
) -> None:
    behind_tenant()
    migrate_calls.reset()
    graph_builds.reset()
    total = tenant_count()
    out = run(threads=2, interactive=False)
    assert f"{total - 1} up to date, 1 to migrate" in out
    assert [b.tenant.tenant_id for b in migrate_calls.args] == ["mm-behind"]
    assert len(graph_builds) == 2  # the check, then mm-behind's migrate
    assert [(m[1], m[2], m[3], m[4]) for m in progress(out)] == [("1", "1", "mm-behind", "ok")]
    assert ("notes", "0001_initial") in applied("mm-behind")
    expected, _ = expected_migrations()
    assert expected is not None and expected <= applied("mm-behind")
    assert re.search(rf"Migrated 1 of 1 tenants in .* \(1 threads\); {total - 1} up to date\.", out)


def test_a_schema_without_django_migrations_is_pending(migrate_calls: Calls) -> None:
    empty = create_test_tenant("mm-empty", migrate=False)
    migrate_calls.reset()
    out = run(interactive=False)
    assert [b.tenant.tenant_id for b in migrate_calls.args] == ["mm-empty"], out
    expected, _ = expected_migrations()
    assert expected is not None and expected <= applied(empty.tenant_id)


def test_pending_schemas_batches_and_counts_missing_tables_as_pending(
    tenants: dict[str, Any],
) -> None:
    """21 schemas, 19 with a readable table, in batches of 10: 1 catalog query + 2 batches."""
    behind_tenant()
    create_test_tenant("mm-empty", migrate=False)
    expected, _ = expected_migrations()
    assert expected is not None
    schemas = [*sorted(tenants)[:18], "mm-behind", "mm-empty", "mm-no-such-schema"]
    with CaptureQueriesContext(connection) as queries:
        pending = pending_schemas(schemas, expected, batch_size=10)
    assert pending == {"mm-behind", "mm-empty", "mm-no-such-schema"}
    assert len(queries) == 1 + 2  # catalog, then 19 readable tables in batches of 10
    assert pending_schemas(schemas, frozenset(), batch_size=7) == {"mm-empty", "mm-no-such-schema"}


def test_all_migrates_every_tenant(migrate_calls: Calls) -> None:
    total = tenant_count()
    out = run(threads=4, interactive=False, migrate_all=True)
    assert len(migrate_calls) == total
    matches = progress(out)
    assert [int(m[1]) for m in matches] == list(range(1, total + 1))
    assert f"Migrating all {total} tenants (--all)." in out
    assert re.search(rf"Migrated {total} of {total} tenants in \d+\.\d\ds \(4 threads\)\.", out)


def test_only_pending_is_the_default_spelled_out(migrate_calls: Calls) -> None:
    behind_tenant()
    migrate_calls.reset()
    out = run(interactive=False, only_pending=True)
    assert [b.tenant.tenant_id for b in migrate_calls.args] == ["mm-behind"], out
    with pytest.raises(CommandError, match="--all or --only-pending, not both"):
        run(interactive=False, only_pending=True, migrate_all=True)


def test_progress_lines_carry_an_eta() -> None:
    behind_tenant("mm-behind")
    behind_tenant("mm-other")
    matches = progress(run(threads=1, interactive=False))
    assert [(m[1], m[2], m[3]) for m in matches] == [
        ("1", "2", "mm-behind"),
        ("2", "2", "mm-other"),
    ]
    assert matches[-1][5] == "0s"
    assert format_duration(400) == "6m40s" and format_duration(42.4) == "42s"
    assert format_duration(7500) == "2h05m" and format_duration(-1) == "0s"
    # 37 of 1000 done in 0.42 s each on 1 thread: 963 x 0.42 s left.
    assert eta_seconds(37, 1000, 37 * 0.42, 1) == pytest.approx(963 * 0.42)
    assert eta_seconds(37, 1000, 37 * 0.42, 4) == pytest.approx(963 * 0.42 / 4)
    assert eta_seconds(0, 10, 0.0, 2) == 0.0


@pytest.mark.parametrize("workers", [{"threads": 3}, {"processes": 2}])
def test_failures_stay_isolated(workers: dict[str, int]) -> None:
    """A broken tenant fails alone, named in the error; the pending one is still migrated."""
    behind_tenant()
    broken_tenant()
    out = io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command("migratealltenants", interactive=False, stdout=out, **workers)
    assert str(info.value).startswith("1 tenant(s) failed to migrate: mm-broken.")
    text = out.getvalue()
    outcome = {m[3]: m[4] for m in progress(text)}
    assert outcome == {"mm-behind": "ok", "mm-broken": "FAILED"}, text
    assert re.search(
        r"\] mm-broken FAILED \(.*\) ETA \S+: ProgrammingError: .*already exists", text
    )
    assert ("notes", "0001_initial") in applied("mm-behind")
    kind = "threads" if "threads" in workers else "processes"
    assert re.search(rf"Migrated 1 of 2 tenants in .* \(2 {kind}\)", text)


def test_processes_return_results_in_order_with_tracebacks() -> None:
    behind = behind_tenant()
    broken = broken_tenant()
    results = migrate_tenants([broken, behind], processes=2)
    assert [r.tenant_id for r in results] == ["mm-broken", "mm-behind"]
    assert not results[0].ok and "already exists" in str(results[0].error)
    assert "Traceback" in results[0].traceback and results[1].ok
    with pytest.raises(ValueError, match="threads or processes, not both"):
        migrate_tenants([behind], threads=2, processes=2)


def test_processes_include_this_one(tenants: dict[str, Any], migrate_calls: Calls) -> None:
    """``processes=2``: this process migrates too (the monkeypatched count sees only its own)
    while the spawned one starts; every tenant once, results in order."""
    ordered = [tenants[t] for t in TENANT_IDS]
    results = migrate_tenants(ordered, processes=2)
    assert [r.tenant_id for r in results] == TENANT_IDS
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    here = [b.tenant.tenant_id for b in migrate_calls.args]
    assert 1 <= len(here) <= len(TENANT_IDS) and len(set(here)) == len(here)


def test_a_crashed_worker_process_leaves_the_rest_to_this_one(
    tenants: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from omnitenant_async.provisioning import migration

    pools: list[Any] = []
    spawn = migration._spawned

    def keep(processes: int) -> Any:
        pools.append(spawn(processes))
        return pools[-1]

    monkeypatch.setattr(migration, "_spawned", keep)

    def kill_children(done: int, total: int, result: Any) -> None:
        if done == 1:
            for process in list(pools[0]._processes.values()):
                process.kill()

    ordered = [tenants[t] for t in TENANT_IDS]
    results = migrate_tenants(ordered, processes=2, on_progress=kill_children)
    assert [r.tenant_id for r in results] == TENANT_IDS
    failed = [r for r in results if not r.ok]
    assert len(failed) <= 1 and all("terminated abruptly" in str(r.error) for r in failed)


def test_unknown_targets_fail_before_any_migration(migrate_calls: Calls) -> None:
    with pytest.raises(CommandError, match="Cannot find a migration matching 'nope'.*No tenant"):
        run("notes", "nope", interactive=False)
    with pytest.raises(CommandError, match="No installed app with label 'nosuchapp'"):
        run("nosuchapp", interactive=False)
    assert len(migrate_calls) == 0


def test_expected_set_is_ambiguous_backwards() -> None:
    assert expected_migrations("notes", "zero")[0] is None
    rows, why = expected_migrations("auth", "0011")
    assert rows is None and "not auth's latest migration" in why
    rows, _ = expected_migrations("auth", "0012")
    assert rows is not None and ("auth", "0012_alter_user_first_name_max_length") in rows
    assert ("notes", "0001_initial") not in rows  # only what auth 0012 depends on


def test_migrating_backwards_falls_back_to_every_tenant(migrate_calls: Calls) -> None:
    """``auth 0011`` rolls tenants back: the check cannot tell, so all are migrated."""
    total = tenant_count()
    last = ("auth", "0012_alter_user_first_name_max_length")
    try:
        out = run("auth", "0011", threads=4, interactive=False)
        assert f"Migrating all {total} tenants: auth.0011_update_proxy_permissions is not" in out
        assert len(migrate_calls) == total and last not in applied("t05")
        forward = run("auth", threads=4, interactive=False)
        assert (
            f"Checked {total} tenants" in forward and f"0 up to date, {total} to migrate" in forward
        )
        assert last in applied("t05")
    finally:
        run(threads=4, interactive=False)  # whatever happened, leave every tenant current
    assert last in applied("t17")


def test_template_is_checked_and_migrated_first(migrate_calls: Calls) -> None:
    behind_tenant()
    migrate_calls.reset()
    config = {**settings_config(), "TEMPLATE_SCHEMA": TEMPLATE}
    try:
        with override_settings(OMNITENANT_CONFIG=config):
            out = run(interactive=False)
            lines = out.splitlines()
            first = next(i for i, line in enumerate(lines) if line.startswith("[1/"))
            template = next(i for i, line in enumerate(lines) if line.startswith("[template]"))
            assert template < first and re.match(rf"\[template\] {TEMPLATE} ok", lines[template])
            assert [b.tenant.tenant_id for b in migrate_calls.args] == ["mm-behind"]
            again = run(interactive=False)  # the template is checked like the tenants
            assert "nothing to migrate" in again and "[template]" not in again
    finally:
        execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(TEMPLATE)))


def settings_config() -> dict[str, Any]:
    from django.conf import settings

    return dict(settings.OMNITENANT_CONFIG)


def test_the_template_is_migrated_even_without_tenants() -> None:
    """The first tenant will be cloned from it: an empty tenant table is no reason to skip it."""
    config = {**settings_config(), "TEMPLATE_SCHEMA": TEMPLATE}
    with override_settings(OMNITENANT_CONFIG=config), use_master_db():
        with transaction.atomic():  # every tenant gone for the length of this block
            get_tenant_model().objects.all().delete()
            out = run(interactive=False)
            assert re.search(rf"^\[template\] {TEMPLATE} ok", out, re.MULTILINE), out
            assert "No tenants to migrate." in out
            expected, _ = expected_migrations()
            assert expected is not None and applied(TEMPLATE) >= expected
            transaction.set_rollback(True)
    assert tenant_count() >= 24
    execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(TEMPLATE)))
