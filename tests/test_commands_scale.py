"""The management commands with many tenants: showtenants paging and search, deletetenant of a
batch, tenant_command --all-tenants (sequential and in parallel threads)."""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections
from django.db.backends.signals import connection_created
from django.test.utils import CaptureQueriesContext

from omnitenant_async import get_current_state, use_master_db
from omnitenant_async.isolation import IsolationType
from omnitenant_async.testing import create_test_tenant, drop_test_tenant
from omnitenant_async.utils import get_tenant_model
from tests.conftest import free_port
from tests.test_commands import manage, schema_exists, tenant_row

SCALE_IDS = ("scale-a", "scale-b", "scale-c", "scale-db", "scale-down", "scale-broken")
HEADER = re.compile(r"^\[([a-z0-9-]+)\](?: FAILED: (.*))?$")

pytestmark = pytest.mark.usefixtures("django_db")


@pytest.fixture(autouse=True)
def _drop_scale_tenants() -> Iterator[None]:
    yield
    for tenant_id in SCALE_IDS:
        drop_test_tenant(tenant_id)


def run(*args: Any, **options: Any) -> tuple[str, str]:
    """``(stdout, stderr)`` of a command that must succeed."""
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def run_failing(*args: Any, **options: Any) -> tuple[str, str, str]:
    """``(stdout, stderr, error message)`` of a command that must raise ``CommandError``."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue(), str(info.value)


def all_ids() -> list[str]:
    with use_master_db():
        return list(
            get_tenant_model().objects.order_by("tenant_id").values_list("tenant_id", flat=True)
        )


def sections(text: str) -> list[tuple[str, str | None, str]]:
    """``[(tenant_id, failure or None, body)]`` of tenant_command's per-tenant output."""
    result: list[tuple[str, str | None, str]] = []
    for line in text.splitlines(keepends=True):
        match = HEADER.match(line.rstrip("\n"))
        if match:
            result.append((match[1], match[2], ""))
        else:
            assert result, f"output before the first header: {line!r}"
            tenant_id, failure, body = result[-1]
            result[-1] = (tenant_id, failure, body + line)
    return result


def marker_owners(body: str) -> list[str]:
    """The ``tenant_id`` of each ``notes.marker`` row that ``dumpdata`` printed."""
    return [row["fields"]["tenant_id"] for row in json.loads(body)]


# -- showtenants ----------------------------------------------------------------------------------


def test_showtenants_pages_in_the_database(tenants: dict[str, Any]) -> None:
    """A page is one LIMIT/OFFSET query plus the domains of that page's tenants only."""
    ids = all_ids()
    assert len(ids) >= 24
    assert run("showtenants", count=True)[0] == f"{len(ids)}\n"
    with CaptureQueriesContext(connections["default"]) as queries:
        page = json.loads(run("showtenants", format="json", limit=5, offset=10)[0])
    assert [row["tenant_id"] for row in page] == ids[10:15]
    assert all(row["domains"] == [f"{row['tenant_id']}.localhost"] for row in page)
    sql = [q["sql"] for q in queries.captured_queries]
    assert len(sql) == 2, sql
    assert "LIMIT 5 OFFSET 10" in sql[0]
    in_list = re.search(r"IN \(([^)]*)\)", sql[1])
    assert "customers_domain" in sql[1] and in_list and len(in_list[1].split(",")) == 5

    table = run("showtenants", "--limit", "3")[0].splitlines()
    assert [line.split()[0] for line in table[2:5]] == ids[:3]
    assert table[5:] == [f"Tenants 1-3 of {len(ids)}. Next page: --offset 3."]
    last = run("showtenants", "--offset", str(len(ids) - 2))[0].splitlines()
    assert last[-1] == f"Tenants {len(ids) - 1}-{len(ids)} of {len(ids)}."
    assert (
        run("showtenants", offset=len(ids))[0]
        == f"No tenants at offset {len(ids)} ({len(ids)} match).\n"
    )


def test_showtenants_search_matches_id_name_or_any_domain() -> None:
    create_test_tenant(
        "scale-a", ["scale-a.localhost", "shop.scalebrand.localhost", "www.scalebrand.localhost"],
        name="Alpha Widgets", migrate=False,
    )  # fmt: skip
    create_test_tenant("scale-b", ["beta.localhost"], name="Beta Gadgets", migrate=False)
    with use_master_db():
        get_tenant_model().objects.create(
            tenant_id="scale-db", name="Gamma Widgets", isolation_type=IsolationType.DATABASE
        )

    def found(*args: str) -> list[str]:
        return [
            row["tenant_id"] for row in json.loads(run("showtenants", "--format", "json", *args)[0])
        ]

    # A non-primary domain, in another case; two matching domains still give one row.
    assert found("--search", "SCALEBRAND") == ["scale-a"]
    assert found("--search", "widgets") == ["scale-a", "scale-db"]
    assert found("--search", "widgets", "--isolation", "database") == ["scale-db"]
    assert found("--search", "BETA.local") == ["scale-b"]
    assert found("--search", "scale-", "--limit", "2", "--offset", "1") == ["scale-b", "scale-db"]
    assert run("showtenants", "--search", "scale", "--count")[0] == "3\n"
    assert run("showtenants", search="no-such-text")[0] == "No matching tenants.\n"
    csv_text = run("showtenants", "--search", "gadgets", "--format", "csv")[0]
    assert csv_text.splitlines()[1:] == [
        "scale-b,Beta Gadgets,schema,beta.localhost,beta.localhost"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "--limit", "5"], "--count prints the number of all matching tenants"),
        (["--limit", "0"], "--limit must be at least 1, got 0"),
        (["--offset", "-1"], "--offset must be 0 or more, got -1"),
    ],
)
def test_showtenants_refuses_bad_paging(args: list[str], message: str) -> None:
    assert message in run_failing("showtenants", *args)[2]


# -- deletetenant of many -------------------------------------------------------------------------


def test_deletetenant_checks_every_id_before_deleting_any() -> None:
    for tenant_id in ("scale-a", "scale-b"):
        create_test_tenant(tenant_id, migrate=False)
    out, _, error = run_failing(
        "deletetenant", "--tenant-id", "scale-a", "--tenant-id", "nope-1",
        "--tenant-id", "scale-b", "--tenant-id", "nope-2", "--drop", "--noinput",
    )  # fmt: skip
    assert error.startswith("No tenants with ids 'nope-1', 'nope-2' (2 of the 4 given); nothing")
    assert out == ""
    for tenant_id in ("scale-a", "scale-b"):
        assert tenant_row(tenant_id) is not None and schema_exists(tenant_id)
    assert "Name the tenants to delete" in run_failing("deletetenant")[2]


def test_deletetenant_from_a_file_asks_for_the_number_of_tenants(
    tenants: dict[str, Any], tmp_path: Path
) -> None:
    for tenant_id in ("scale-a", "scale-b", "scale-c"):
        create_test_tenant(tenant_id, migrate=False)
    listing = tmp_path / "ids.txt"
    listing.write_text("# to remove\nscale-a\n\n  scale-b  # moved away\nscale-c\nscale-a\n")
    _, _, error = run_failing(
        "deletetenant", from_file=str(listing), drop=True, stdin=io.StringIO("scale-a\n")
    )
    assert error == "Confirmation did not match the number of tenants (3); nothing was deleted."
    assert all(tenant_row(t) is not None for t in ("scale-a", "scale-b", "scale-c"))

    out, _ = run("deletetenant", from_file=str(listing), drop=True, stdin=io.StringIO("3\n"))
    assert out == (
        "This drops the schemas of 3 tenants ('scale-a', 'scale-b', 'scale-c') and ALL their "
        "data. Type the number of tenants to confirm: "
        "Deleted tenant 'scale-a' and its schema.\n"
        "Deleted tenant 'scale-b' and its schema.\n"
        "Deleted tenant 'scale-c' and its schema.\n"
        "Deleted 3 of 3 tenants.\n"
    )
    for tenant_id in ("scale-a", "scale-b", "scale-c"):
        assert tenant_row(tenant_id) is None and not schema_exists(tenant_id)
    assert tenant_row("t00") is not None and schema_exists("t00")


def test_deletetenant_ids_from_stdin_quietly() -> None:
    for tenant_id in ("scale-a", "scale-b"):
        create_test_tenant(tenant_id, migrate=False)
    stdin = "scale-a\n# comment\n\nscale-b\n"
    _, _, error = run_failing("deletetenant", from_file="-", drop=True, stdin=io.StringIO(stdin))
    assert "put the ids in a file, or pass --noinput" in error
    assert tenant_row("scale-a") is not None

    out, err = run(
        "deletetenant", from_file="-", drop=True, interactive=False, verbosity=0,
        stdin=io.StringIO(stdin),
    )  # fmt: skip
    assert (out, err) == ("", "")
    assert tenant_row("scale-a") is None and not schema_exists("scale-a")
    assert tenant_row("scale-b") is None and not schema_exists("scale-b")


def test_deletetenant_goes_on_past_a_failing_tenant() -> None:
    """A database tenant whose server is down fails; the tenants around it are still deleted."""
    for tenant_id in ("scale-a", "scale-b"):
        create_test_tenant(tenant_id, migrate=False)
    with use_master_db():
        get_tenant_model().objects.create(
            tenant_id="scale-down", name="Down", isolation_type=IsolationType.DATABASE,
            config={"database": {"HOST": "127.0.0.1", "PORT": free_port()}},
        )  # fmt: skip
    out, err, error = run_failing(
        "deletetenant", tenant_id=["scale-a", "scale-down", "scale-b"], drop=True,
        interactive=False,
    )  # fmt: skip
    assert error == (
        "1 of 3 tenants failed: scale-down. See the errors above; the other tenants were deleted."
    )
    assert err.startswith("Deleting tenant 'scale-down' failed: Tenant 'scale-down': cannot reach")
    assert out.splitlines() == [
        "Deleted tenant 'scale-a' and its schema.",
        "Deleted tenant 'scale-b' and its schema.",
        "Deleted 2 of 3 tenants.",
    ]
    for tenant_id in ("scale-a", "scale-b"):
        assert tenant_row(tenant_id) is None and not schema_exists(tenant_id)


# -- tenant_command over many tenants ------------------------------------------------------------


def _break_marker_table(tenant_id: str) -> None:
    create_test_tenant(tenant_id)
    with use_master_db(), connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{tenant_id}".notes_marker')


def test_tenant_command_all_tenants_isolates_a_failing_tenant(tenants: dict[str, Any]) -> None:
    _break_marker_table("scale-broken")
    ids = all_ids()
    out, err, error = run_failing("tenant_command", "--all-tenants", "dumpdata", "notes.marker")
    assert error.startswith(f"1 of {len(ids)} tenants failed: scale-broken. See the errors above")
    runs = sections(out)
    assert [tenant_id for tenant_id, _, _ in runs] == ids, "sequential: in tenant id order"
    failures = {tenant_id: failure for tenant_id, failure, _ in runs if failure}
    assert list(failures) == ["scale-broken"]
    assert 'relation "notes_marker" does not exist' in failures["scale-broken"]
    for tenant_id, _, body in runs:
        if tenant_id in tenants:  # each run saw its own tenant's rows
            assert marker_owners(body) == [tenant_id]
    assert re.search(
        rf"Ran `dumpdata` in {len(ids) - 1} of {len(ids)} tenants in .* \(1 at once\)", err
    )
    assert get_current_state() is None

    result = manage(
        "tenant_command", "--all-tenants", "--parallel", "2", "dumpdata", "notes.marker"
    )
    assert result.returncode == 1
    assert f"CommandError: 1 of {len(ids)} tenants failed: scale-broken." in result.stderr
    assert "[t23]\n" in result.stdout and "[scale-broken] FAILED: " in result.stdout


def test_tenant_command_parallel_prints_what_sequential_prints(tenants: dict[str, Any]) -> None:
    args = ("tenant_command", "--all-tenants", "dumpdata", "notes.marker", "--indent", "2")
    sequential = sections(run(*args)[0])
    threads: set[str] = set()

    def record_thread(**kwargs: Any) -> None:
        threads.add(threading.current_thread().name)

    connection_created.connect(record_thread, dispatch_uid="scale-threads")
    try:
        parallel = sections(run("tenant_command", "--parallel", "2", *args[1:])[0])
    finally:
        connection_created.disconnect(dispatch_uid="scale-threads")
    assert len(parallel) == len(sequential) == len(all_ids())
    assert sorted(parallel) == sorted(sequential)
    assert all(failure is None for _, failure, _ in parallel)
    workers = {name for name in threads if name.startswith("omnitenant-command")}
    assert len(workers) == 2, threads
    assert get_current_state() is None


def test_tenant_command_named_tenants_and_argument_errors(tenants: dict[str, Any]) -> None:
    out, _ = run(
        "tenant_command", "--tenant-id", "t02", "--tenant-id", "t01", "dumpdata", "notes.marker"
    )
    assert [(t, marker_owners(body)) for t, _, body in sections(out)] == [
        ("t02", ["t02"]),
        ("t01", ["t01"]),
    ]

    out, _, error = run_failing(
        "tenant_command", "--tenant-id", "t01", "--tenant-id", "nope", "check"
    )
    assert error.startswith("No tenant with id 'nope' (1 of the 2 given); nothing was done.")
    assert out == ""
    cases = [
        (["--tenant-id", "t01", "--all-tenants", "check"], "not allowed with argument"),
        (["check"], "one of the arguments --tenant-id --all-tenants is required"),
        (["--all-tenants", "--parallel", "0", "check"], "--parallel must be at least 1, got 0"),
        (["--all-tenants", "nosuch"], "Unknown command: 'nosuch'"),
        (["--all-tenants", "dumpdata", "--bogus"], "unrecognized arguments: --bogus"),
    ]
    for args, message in cases:
        out, _, error = run_failing("tenant_command", *args)
        assert message in error and out == "", (args, error, out)
