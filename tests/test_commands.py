"""The tenant management commands against the real database, via call_command and manage.py."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models.signals import post_migrate

from omnitenant_async import get_current_state, tenant_context, use_master_db
from omnitenant_async.provisioning.migration import migrate_tenants
from omnitenant_async.signals import tenant_migrated
from omnitenant_async.testing import create_test_tenant, drop_test_tenant
from omnitenant_async.utils import get_domain_model, get_tenant_model
from tests.conftest import ROOT

OPS_IDS = ("ops-a", "ops-b", "ops-c", "ops-p", "ops-orphan", "ops-broken", "ops-sub", "ops-q")
MANAGE = [sys.executable, str(ROOT / "demo" / "manage.py")]

pytestmark = pytest.mark.usefixtures("django_db")


@pytest.fixture(autouse=True)
def _drop_ops_tenants() -> Iterator[None]:
    yield
    for tenant_id in OPS_IDS:
        drop_test_tenant(tenant_id)


@pytest.fixture(scope="module")
def ops_shared(django_db: None) -> Iterator[Any]:
    """A migrated tenant that tests only read from (created once for the module)."""
    tenant = create_test_tenant("ops-shared", ["ops-shared.localhost"], name="Ops Shared")
    yield tenant
    drop_test_tenant(tenant)


def run(*args: Any, **options: Any) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def manage(
    *args: str, stdin: Any = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MANAGE, *args], cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True,
        stdin=stdin, input=input, timeout=120,
    )  # fmt: skip


def schema_tables(schema: str) -> set[str]:
    with use_master_db(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema]
        )
        return {row[0] for row in cursor.fetchall()}


def schema_exists(schema: str) -> bool:
    with use_master_db(), connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
        return cursor.fetchone() is not None


def tenant_row(tenant_id: str) -> Any:
    with use_master_db():
        return get_tenant_model().objects.filter(tenant_id=tenant_id).first()


# -- createtenant ---------------------------------------------------------------------------------


def test_createtenant_creates_migrated_schema_and_domains() -> None:
    out = run(
        "createtenant", tenant_id="ops-a", name="Ops A",
        domains=["ops-a.localhost", "Alt.Ops-A.localhost."],
    )  # fmt: skip
    assert "Created tenant 'ops-a' (migrated; domains: ops-a.localhost, alt.ops-a.localhost)" in out
    tenant = tenant_row("ops-a")
    assert tenant.name == "Ops A"
    assert {"notes_note", "notes_marker", "django_migrations", "auth_user"} <= schema_tables(
        "ops-a"
    )
    with use_master_db():
        domains = list(get_domain_model().objects.filter(tenant=tenant).order_by("-is_primary"))
    assert [(d.domain, d.is_primary) for d in domains] == [
        ("ops-a.localhost", True),
        ("alt.ops-a.localhost", False),
    ]
    from demo.notes.models import Note

    with tenant_context(tenant):
        Note.objects.create(text="hello")
        assert list(Note.objects.values_list("text", flat=True)) == ["hello"]


def test_createtenant_no_migrate_then_migratetenant() -> None:
    assert run("createtenant", tenant_id="ops-c", migrate=False, verbosity=0) == ""
    out = run("createtenant", tenant_id="ops-b", migrate=False)
    assert "not migrated" in out and "migratetenant --tenant-id ops-b" in out
    assert schema_exists("ops-b") and schema_tables("ops-b") == set()

    plan = run("migratetenant", tenant_id="ops-b", plan=True)
    assert "notes.0001_initial" in plan and "contenttypes.0001_initial" in plan
    assert schema_tables("ops-b") == set(), "--plan must not apply anything"

    out = run("migratetenant", tenant_id="ops-b")
    assert "Tenant 'ops-b' migrated." in out
    assert {"notes_note", "django_migrations"} <= schema_tables("ops-b")
    # customers is master-scoped: its migration is recorded, its tables are not created.
    assert "customers_tenant" not in schema_tables("ops-b")

    undo = run("migratetenant", "notes", "zero", tenant_id="ops-b", plan=True)
    assert "Undo Create model Note" in undo
    assert "notes_note" in schema_tables("ops-b")
    run("migratetenant", "notes", "zero", tenant_id="ops-b")
    assert "notes_note" not in schema_tables("ops-b")
    assert "auth_user" in schema_tables("ops-b")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tenant_id": "Bad_Id"}, "is not a valid DNS label"),
        ({"tenant_id": "public"}, "is reserved"),
        ({"tenant_id": "pg-ops"}, "is reserved"),
        ({"tenant_id": "ops-c", "domains": ["not a host"]}, "is not a valid domain"),
        ({"tenant_id": "ops-c", "config": "{nope"}, "--config is not valid JSON"),
        ({"tenant_id": "ops-c", "config": "[1]"}, "--config must be a JSON object"),
        ({"tenant_id": "ops-c", "name": "x" * 201}, "at most 200 characters"),
    ],
)
def test_createtenant_rejects_bad_input(options: dict[str, Any], message: str) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        run("createtenant", **options)
    assert tenant_row(options["tenant_id"]) is None
    if options["tenant_id"] != "public":
        assert not schema_exists(options["tenant_id"])


def test_createtenant_refuses_existing_tenant_and_taken_domain(ops_shared: Any) -> None:
    with pytest.raises(CommandError, match="Tenant 'ops-shared' already exists"):
        run("createtenant", tenant_id="ops-shared")
    with pytest.raises(CommandError, match=r"ops-shared\.localhost \(tenant 'ops-shared'\)"):
        run("createtenant", tenant_id="ops-c", domains=["ops-shared.localhost"])
    assert tenant_row("ops-c") is None and not schema_exists("ops-c")


def test_createtenant_keeps_a_foreign_schema_and_leaves_no_row() -> None:
    """A schema of that name already exists: refuse, never drop it, leave no tenant row."""
    with use_master_db(), connection.cursor() as cursor:
        cursor.execute('CREATE SCHEMA "ops-orphan"')
        cursor.execute('CREATE TABLE "ops-orphan".precious (id int)')
    with pytest.raises(CommandError, match="already exists"):
        run("createtenant", tenant_id="ops-orphan", domains=["ops-orphan.localhost"])
    assert tenant_row("ops-orphan") is None
    assert schema_tables("ops-orphan") == {"precious"}
    with use_master_db():
        assert not get_domain_model().objects.filter(domain="ops-orphan.localhost").exists()


def test_createtenant_without_id_and_without_terminal_fails() -> None:
    with pytest.raises(CommandError, match="--tenant-id is required"):
        run("createtenant", interactive=False)
    with pytest.raises(CommandError, match="--tenant-id is required"):
        run("createtenant", stdin=io.StringIO("ops-p\n"))  # not a tty: no prompt


def test_createtenant_prompts_in_a_real_terminal() -> None:
    """manage.py createtenant with a pty as stdin asks, re-asks on a bad id, and creates."""
    master, slave = pty.openpty()
    try:
        os.write(master, b"Bad Id\nops-p\nOps Prompted\nops-p.localhost, www.ops-p.localhost\n\n")
        result = manage("createtenant", stdin=slave)
    finally:
        os.close(slave)
        os.close(master)
    assert result.returncode == 0, result.stderr
    assert "Tenant id: Error: Tenant id 'Bad Id' is not a valid DNS label" in result.stdout
    assert "Isolation (schema/database) [schema]:" in result.stdout
    tenant = tenant_row("ops-p")
    assert tenant.name == "Ops Prompted" and tenant.isolation_type == 0
    with use_master_db():
        assert sorted(tenant.domains.values_list("domain", flat=True)) == [
            "ops-p.localhost",
            "www.ops-p.localhost",
        ]


def database_exists(name: str) -> bool:
    with use_master_db(), connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        return cursor.fetchone() is not None


def test_database_tenant_through_the_commands(
    monkeypatch: pytest.MonkeyPatch, fast_hasher: None
) -> None:
    """createtenant --isolation database, then the other commands, on the master's server."""
    name = os.environ["OMNITENANT_PGDATABASE"] + "_ops_dbt"
    config = json.dumps({"database": {"NAME": name}})
    try:
        out = run("createtenant", tenant_id="ops-dbt", isolation="database", config=config,
                  domains=["ops-dbt.localhost"])  # fmt: skip
        assert "Created tenant 'ops-dbt' (migrated" in out and database_exists(name)
        assert not schema_exists("ops-dbt")
        rows = {r["tenant_id"]: r for r in json.loads(run("showtenants", format="json"))}
        assert rows["ops-dbt"]["isolation"] == "database"
        assert "No planned migration operations" in run(
            "migratetenant", tenant_id="ops-dbt", plan=True
        )
        monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "pw")
        run("createtenantsuperuser", tenant_id="ops-dbt", username="ops-dbt-boss",
            email="b@example.com", interactive=False)  # fmt: skip
        assert "ops-dbt-boss" in _usernames(tenant_row("ops-dbt"))
        assert "ops-dbt-boss" not in _usernames(None)
        [result] = migrate_tenants([tenant_row("ops-dbt")])
        assert result.ok, result.error
        out = run("deletetenant", tenant_id="ops-dbt", drop=True, interactive=False)
        assert "Deleted tenant 'ops-dbt' and its database." in out
        assert not database_exists(name) and tenant_row("ops-dbt") is None
    finally:
        if tenant_row("ops-dbt") is not None:
            drop_test_tenant("ops-dbt")


# -- showtenants ----------------------------------------------------------------------------------


def test_showtenants_table_and_json(ops_shared: Any) -> None:
    create_test_tenant("ops-c", migrate=False)
    rows = {r["tenant_id"]: r for r in json.loads(run("showtenants", format="json"))}
    assert rows["ops-shared"] == {
        "tenant_id": "ops-shared",
        "name": "Ops Shared",
        "isolation": "schema",
        "domains": ["ops-shared.localhost"],
        "primary_domain": "ops-shared.localhost",
    }
    assert rows["ops-c"]["domains"] == [] and rows["ops-c"]["primary_domain"] is None
    table = run("showtenants").splitlines()
    assert table[0].split() == ["tenant_id", "name", "isolation", "domains", "primary_domain"]
    shared = next(line for line in table if line.startswith("ops-shared "))
    assert (
        shared.split() == ["ops-shared", "Ops", "Shared", "schema"] + ["ops-shared.localhost"] * 2
    )
    assert next(line for line in table if line.startswith("ops-c ")).split()[-1] == "-"


# -- migratetenant / migratealltenants ------------------------------------------------------------


def test_migratetenant_unknown_tenant() -> None:
    with pytest.raises(CommandError, match="No tenant with id 'nope'.*showtenants"):
        run("migratetenant", tenant_id="nope")


def test_migrate_tenants_runs_in_parallel_threads_each_in_its_own_schema(
    tenants: dict[str, Any],
) -> None:
    """24 tenants over 4 threads: each migration sees its own schema, in a worker thread."""
    seen: list[tuple[str, str | None, str]] = []
    lock = threading.Lock()

    def on_post_migrate(**kwargs: Any) -> None:
        state = get_current_state()
        schema = state.schema_name if state else None
        with lock:
            seen.append((threading.current_thread().name, schema, kwargs["using"]))

    migrated: list[str] = []
    post_migrate.connect(on_post_migrate, dispatch_uid="ops-test")
    tenant_migrated.connect(lambda tenant, **kw: migrated.append(tenant.tenant_id), weak=False,
                            dispatch_uid="ops-test-migrated")  # fmt: skip
    try:
        ordered = sorted(tenants.values(), key=lambda t: t.tenant_id)
        progress: list[tuple[int, int, str]] = []
        results = migrate_tenants(
            ordered, threads=4, on_progress=lambda d, n, r: progress.append((d, n, r.tenant_id))
        )
    finally:
        post_migrate.disconnect(dispatch_uid="ops-test")
        tenant_migrated.disconnect(dispatch_uid="ops-test-migrated")
    assert [r.tenant_id for r in results] == [t.tenant_id for t in ordered]
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert [p[0] for p in progress] == list(range(1, 25)) and {p[1] for p in progress} == {24}
    assert sorted(p[2] for p in progress) == sorted(tenants)
    assert sorted(migrated) == sorted(tenants)
    threads = {name for name, _, _ in seen}
    assert 1 < len(threads) <= 4 and all(n.startswith("omnitenant-migrate") for n in threads)
    # Each tenant's post_migrate (one per installed app) ran with that tenant's schema active.
    schemas = [schema for _, schema, _ in seen]
    assert set(schemas) == set(tenants)
    assert all(schemas.count(t) == schemas.count("t00") for t in tenants)
    assert get_current_state() is None, "the caller's context must not change"


def test_migratealltenants_progress_and_summary(tenants: dict[str, Any]) -> None:
    out = run("migratealltenants", threads=3, interactive=False, migrate_all=True)
    lines = [line for line in out.splitlines() if line.startswith("[")]
    with use_master_db():
        total = get_tenant_model().objects.count()
    assert len(lines) == total >= 24
    pattern = re.compile(rf"^\[(\d+)/{total}\] (\S+) ok \(\d+\.\d\ds\) ETA \S+$")
    matches = [pattern.match(line) for line in lines]
    assert all(matches), lines
    assert [int(m[1]) for m in matches if m] == list(range(1, total + 1))
    assert set(tenants) <= {m[2] for m in matches if m}
    assert re.search(rf"Migrated {total} of {total} tenants in \d+\.\d\ds \(3 threads\)", out)


@pytest.mark.parametrize("threads", [0, -1])
def test_migratealltenants_rejects_zero_threads(threads: int) -> None:
    """0 used to fall back to the default (4) without a word."""
    with pytest.raises(CommandError, match="--threads must be at least 1, got"):
        run("migratealltenants", threads=threads, interactive=False)


def test_migratealltenants_zero_threads_through_manage_py() -> None:
    result = manage("migratealltenants", "--noinput", "--threads", "0")
    assert result.returncode == 1 and "[" not in result.stdout
    assert "CommandError: --threads must be at least 1, got 0" in result.stderr


def _break_tenant(tenant_id: str) -> None:
    """Drop the tenant's migration history: migrate then re-creates existing tables and fails."""
    create_test_tenant(tenant_id)
    with use_master_db(), connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{tenant_id}".django_migrations')


def test_migratealltenants_fails_naming_the_broken_tenant(tenants: dict[str, Any]) -> None:
    _break_tenant("ops-broken")
    out = io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command("migratealltenants", interactive=False, stdout=out)
    assert str(info.value).startswith("1 tenant(s) failed to migrate: ops-broken.")
    text = out.getvalue()
    assert re.search(
        r"\] ops-broken FAILED \(\d+\.\d\ds\) ETA \S+: ProgrammingError: .*already exists",
        text,
    )
    # The other tenants are current: skipped, counted in one line.
    assert re.search(r"Checked \d+ tenants in \S+: \d+ up to date, 1 to migrate\.", text)
    assert not any(re.search(rf"\] {t} ok \(", text) for t in tenants)
    assert re.search(r"Migrated (\d+) of (\d+) tenants", text)


def test_migratealltenants_exit_status_through_manage_py(tenants: dict[str, Any]) -> None:
    _break_tenant("ops-broken")
    failed = manage("migratealltenants", "--noinput", "--threads", "4")
    assert failed.returncode == 1
    assert "CommandError: 1 tenant(s) failed to migrate: ops-broken." in failed.stderr
    assert "ops-broken FAILED" in failed.stdout and "up to date, 1 to migrate" in failed.stdout

    drop_test_tenant("ops-broken")
    ok = manage("migratealltenants", "--noinput")
    assert ok.returncode == 0, ok.stderr
    assert "ops-broken" not in ok.stdout and "up to date; nothing to migrate" in ok.stdout


# -- deletetenant ---------------------------------------------------------------------------------


def test_deletetenant_keeps_data_unless_drop() -> None:
    create_test_tenant("ops-a", ["ops-a.localhost"])
    out = run("deletetenant", tenant_id="ops-a")
    assert "its schema and data were kept" in out
    assert tenant_row("ops-a") is None
    with use_master_db():
        assert not get_domain_model().objects.filter(domain="ops-a.localhost").exists()
    assert "notes_note" in schema_tables("ops-a")


def test_deletetenant_drop_asks_to_type_the_id() -> None:
    create_test_tenant("ops-a", ["ops-a.localhost"])
    with pytest.raises(CommandError, match="did not match"):
        run("deletetenant", tenant_id="ops-a", drop=True, stdin=io.StringIO("yes\n"))
    with pytest.raises(CommandError, match="Aborted: no input"):
        run("deletetenant", tenant_id="ops-a", drop=True, stdin=io.StringIO(""))
    assert tenant_row("ops-a") is not None and schema_exists("ops-a")

    out = run("deletetenant", tenant_id="ops-a", drop=True, stdin=io.StringIO("ops-a\n"))
    assert "Type the tenant id to confirm" in out and "Deleted tenant 'ops-a' and its schema" in out
    assert tenant_row("ops-a") is None and not schema_exists("ops-a")


def test_deletetenant_drop_noinput_and_unknown() -> None:
    create_test_tenant("ops-a")
    run("deletetenant", tenant_id="ops-a", drop=True, interactive=False)
    assert tenant_row("ops-a") is None and not schema_exists("ops-a")
    with pytest.raises(CommandError, match="No tenant with id 'ops-a'"):
        run("deletetenant", tenant_id="ops-a", drop=True, interactive=False)


# -- tenant_command / createtenantsuperuser -------------------------------------------------------


@pytest.fixture
def fast_hasher() -> Iterator[None]:
    """Hashing with PBKDF2's default work factor costs ~0.5 s a password; not what we test."""
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


def _usernames(tenant: Any | None) -> set[str]:
    User = get_user_model()
    with tenant_context(tenant):
        return set(User.objects.values_list("username", flat=True))


def test_createtenantsuperuser_creates_the_user_in_the_tenant_only(
    ops_shared: Any, monkeypatch: pytest.MonkeyPatch, fast_hasher: None
) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "s3cret-pw")
    out = run(
        "createtenantsuperuser", tenant_id="ops-shared", username="ops-boss",
        email="boss@example.com", interactive=False,
    )  # fmt: skip
    assert "Superuser created successfully." in out
    User = get_user_model()
    with tenant_context(ops_shared):
        user = User.objects.get(username="ops-boss")
        assert user.is_superuser and user.check_password("s3cret-pw")
        user.delete()
    assert "ops-boss" not in _usernames(None)


def test_tenant_command_runs_any_command_inside_the_tenant(
    ops_shared: Any, monkeypatch: pytest.MonkeyPatch, fast_hasher: None
) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "s3cret-pw")
    run(
        "tenant_command", "--tenant-id", "ops-shared", "createsuperuser",
        "--username", "ops-cmd", "--email", "cmd@example.com", "--noinput",
    )  # fmt: skip
    assert "ops-cmd" in _usernames(ops_shared)
    assert "ops-cmd" not in _usernames(None)
    with pytest.raises(CommandError, match="Unknown command: 'nosuch'"):
        run("tenant_command", "--tenant-id", "ops-shared", "nosuch")
    with tenant_context(ops_shared):
        get_user_model().objects.filter(username="ops-cmd").delete()


def test_tenant_command_through_manage_py(ops_shared: Any) -> None:
    """Options after the command name go to that command, and the data is the tenant's."""
    from demo.notes.models import Note

    with tenant_context(ops_shared):
        Note.objects.create(text="only in ops-shared")
    result = manage(
        "tenant_command", "--tenant-id", "ops-shared", "dumpdata", "notes.note", "--indent", "0"
    )
    assert result.returncode == 0, result.stderr
    assert [row["fields"]["text"] for row in json.loads(result.stdout)] == ["only in ops-shared"]
    missing = manage("tenant_command", "--tenant-id", "nope", "check")
    assert missing.returncode == 1 and "No tenant with id 'nope'" in missing.stderr


def test_tenant_command_keeps_the_commands_own_line_endings(ops_shared: Any) -> None:
    """dumpdata --format jsonl through tenant_command: byte for byte what dumpdata writes."""
    from demo.notes.models import Note

    with tenant_context(ops_shared):
        Note.objects.create(text="first")
        Note.objects.create(text="second")
        expected = run("dumpdata", "notes.note", format="jsonl")
        count = Note.objects.count()
    try:
        assert len([json.loads(line) for line in expected.splitlines()]) == count >= 2
        got = run("tenant_command", "--tenant-id", "ops-shared", "dumpdata", "notes.note",
                  "--format", "jsonl")  # fmt: skip
        assert got == expected
        indented = run("tenant_command", "--tenant-id", "ops-shared", "dumpdata", "notes.note",
                       "--indent", "2")  # fmt: skip
        with tenant_context(ops_shared):
            assert indented == run("dumpdata", "notes.note", indent=2)
        result = manage("tenant_command", "--tenant-id", "ops-shared", "dumpdata", "notes.note",
                        "--format", "jsonl")  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected
    finally:
        with tenant_context(ops_shared):
            Note.objects.all().delete()


# -- createtenant: --no-migrate, prompts, Ctrl-C --------------------------------------------------


def test_createtenant_no_migrate_attaches_no_domain() -> None:
    """A domain on an unmigrated schema would send requests to empty tables (500)."""
    with pytest.raises(CommandError, match="--no-migrate cannot be combined with --domain"):
        run("createtenant", tenant_id="ops-c", migrate=False, domains=["ops-c.localhost"])
    assert tenant_row("ops-c") is None and not schema_exists("ops-c")
    with use_master_db():
        assert not get_domain_model().objects.filter(domain="ops-c.localhost").exists()


def _pty_manage(*args: str, keys: bytes) -> subprocess.CompletedProcess[str]:
    master, slave = pty.openpty()
    try:
        os.write(master, keys)
        return manage(*args, stdin=slave)
    finally:
        os.close(slave)
        os.close(master)


def test_createtenant_prompt_reports_taken_id_and_domain_where_typed(ops_shared: Any) -> None:
    """A taken id is refused at the id prompt, a taken domain at the domains prompt."""
    keys = b"ops-shared\nops-p\nOps P\nops-shared.localhost\nops-p.localhost\n\n"
    result = _pty_manage("createtenant", keys=keys)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Tenant id: Error: Tenant 'ops-shared' already exists" in out
    assert "(blank: none): Error: Domain already in use: ops-shared.localhost (tenant " in out
    # Each error comes before the next prompt, not after the last one.
    assert out.index("already exists") < out.index("Tenant name")
    assert out.index("Domain already in use") < out.index("Isolation")
    with use_master_db():
        assert list(tenant_row("ops-p").domains.values_list("domain", flat=True)) == [
            "ops-p.localhost"
        ]


def test_createtenant_ctrl_c_at_a_prompt_exits_without_traceback() -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*MANAGE, "createtenant"], cwd=ROOT, stdin=slave, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "no prompt within 60 s"
        assert os.read(proc.stdout.fileno(), 100).startswith(b"Tenant id:")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(slave)
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.strip() == "CommandError: Aborted (Ctrl-C); nothing was changed."


# -- showtenants --format csv ---------------------------------------------------------------------


def test_showtenants_csv_quotes_with_the_csv_module(ops_shared: Any) -> None:
    create_test_tenant("ops-q", ["ops-q.localhost", "www.ops-q.localhost"],
                       name='Ops, "Quoted"\nInc')  # fmt: skip
    create_test_tenant("ops-c", migrate=False)
    text = run("showtenants", format="csv")
    assert text.startswith("tenant_id,name,isolation,domains,primary_domain\n")
    assert '"Ops, ""Quoted""\nInc"' in text
    rows = {row["tenant_id"]: row for row in csv.DictReader(io.StringIO(text))}
    assert rows["ops-q"] == {
        "tenant_id": "ops-q",
        "name": 'Ops, "Quoted"\nInc',
        "isolation": "schema",
        "domains": "ops-q.localhost www.ops-q.localhost",
        "primary_domain": "ops-q.localhost",
    }
    assert rows["ops-c"]["domains"] == "" and rows["ops-c"]["primary_domain"] == ""
    assert manage("showtenants", "--format", "csv").stdout == text


# -- leftovers of deletetenant: createtenant --adopt, droporphans ---------------------------------


def _orphans() -> dict[str, str]:
    """{name: kind} as listed by droporphans."""
    lines = run("droporphans").splitlines()
    return {
        line.split()[1]: line.split()[0]
        for line in lines
        if line.startswith(("schema", "database"))
    }


def test_adopt_and_drop_a_schema_left_by_deletetenant(ops_shared: Any) -> None:
    from demo.notes.models import Note

    tenant = create_test_tenant("ops-orphan", ["ops-orphan.localhost"])
    with tenant_context(tenant):
        Note.objects.create(text="kept")
    run("deletetenant", tenant_id="ops-orphan")
    orphans = _orphans()
    assert orphans.get("ops-orphan") == "schema"
    assert not {"public", "information_schema", "pg_catalog", "pg_toast", "ops-shared"} & set(
        orphans
    )
    with pytest.raises(CommandError, match=r"createtenant --adopt --tenant-id ops-orphan"):
        run("createtenant", tenant_id="ops-orphan")

    out = run("createtenant", tenant_id="ops-orphan", adopt=True, domains=["ops-orphan.localhost"])
    assert "Adopted tenant 'ops-orphan' (migrated; domains: ops-orphan.localhost)" in out
    with tenant_context(tenant_row("ops-orphan")):
        assert list(Note.objects.values_list("text", flat=True)) == ["kept"]
    assert "ops-orphan" not in _orphans()

    run("deletetenant", tenant_id="ops-orphan")
    with pytest.raises(CommandError, match="Confirmation was not 'drop'"):
        run("droporphans", "ops-orphan", drop=True, stdin=io.StringIO("yes\n"))
    assert schema_exists("ops-orphan")
    out = run("droporphans", "ops-orphan", drop=True, stdin=io.StringIO("drop\n"))
    assert "Dropped schema 'ops-orphan'." in out and not schema_exists("ops-orphan")


@pytest.mark.parametrize(
    "name", ["public", "information_schema", "pg_catalog", "pg_toast", "ops-shared", "nope"]
)
def test_droporphans_never_drops_system_or_tenant_schemas(ops_shared: Any, name: str) -> None:
    with pytest.raises(CommandError, match="Not an orphaned schema or database"):
        run("droporphans", name, drop=True, interactive=False)
    assert schema_exists("public") and schema_exists("ops-shared")


def test_droporphans_keeps_the_template_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.conf import settings
    from django.test import override_settings

    with use_master_db(), connection.cursor() as cursor:
        cursor.execute('CREATE SCHEMA "ops-sub"')
    config = {**settings.OMNITENANT_CONFIG, "TEMPLATE_SCHEMA": "ops-sub"}
    with override_settings(OMNITENANT_CONFIG=config):
        assert "ops-sub" not in _orphans()
        with pytest.raises(CommandError, match="Not an orphaned"):
            run("droporphans", "ops-sub", drop=True, interactive=False)
    assert schema_exists("ops-sub")
    assert _orphans().get("ops-sub") == "schema"


def test_createtenant_adopt_needs_an_existing_schema() -> None:
    with pytest.raises(CommandError, match="Cannot adopt: schema 'ops-c' does not exist"):
        run("createtenant", tenant_id="ops-c", adopt=True)
    assert tenant_row("ops-c") is None and not schema_exists("ops-c")


def test_adopt_and_drop_a_database_left_by_deletetenant() -> None:
    """Database tenants: the default name (DATABASE_NAME_PREFIX + id) is found and dropped."""
    name = "tenant_ops_dbo"
    try:
        run("createtenant", tenant_id="ops-dbo", isolation="database")
        run("deletetenant", tenant_id="ops-dbo")
        assert database_exists(name) and _orphans().get(name) == "database"
        out = run("createtenant", tenant_id="ops-dbo", isolation="database", adopt=True,
                  domains=["ops-dbo.localhost"])  # fmt: skip
        assert "Adopted tenant 'ops-dbo'" in out and name not in _orphans()
        run("deletetenant", tenant_id="ops-dbo")
        out = run("droporphans", name, drop=True, interactive=False)
        assert f"Dropped database {name!r}." in out and not database_exists(name)
        assert "No orphaned" in run("droporphans", "--noinput") or name not in _orphans()
    finally:
        if tenant_row("ops-dbo") is not None:
            drop_test_tenant("ops-dbo")
        if database_exists(name):
            run("droporphans", name, drop=True, interactive=False)
