"""Run a management command inside one tenant, several, or all of them.

With more than one tenant each run is buffered and printed when it ends, under a ``[tenant_id]``
header, so runs in parallel threads never interleave. Each run gets a fresh
``contextvars.Context`` (the tenant is a ContextVar, so no thread sees another's) and closes its
connections when done, as ``provisioning.migration`` does.
"""

from __future__ import annotations

import argparse
import contextvars
import io
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from django.core.management import call_command, get_commands, load_command_class
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from ...context import tenant_context, use_master_db
from ...models import BaseTenant
from ...registry import get_tenant_model
from .._tenants import (
    add_tenant_ids_argument,
    get_tenant,
    get_tenants,
    raw_stream,
    tenant_ids_option,
)


@dataclass(frozen=True, slots=True)
class TenantRun:
    """What one tenant's run printed, and its error (``None`` when it succeeded)."""

    tenant_id: str
    stdout: str
    stderr: str
    error: BaseException | None = None


class Command(BaseCommand):
    help = (
        "Run any management command inside a tenant, e.g. "
        "`tenant_command --tenant-id acme createsuperuser`, or in many: --tenant-id repeated, "
        "or --all-tenants [--parallel N]. The options go before the command."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        add_tenant_ids_argument(which, "Run in this tenant; repeat it for several.")
        which.add_argument(
            "--all-tenants", action="store_true", help="Run in every tenant (tenant id order)."
        )
        parser.add_argument(
            "--parallel", type=int, default=1, metavar="N",
            help="Tenants run at once, each in its own thread (default 1: one after another). "
            "Each needs a database connection: keep N at or below the pool's max_size.",
        )  # fmt: skip
        parser.add_argument("subcommand", metavar="command", help="The command to run.")
        parser.add_argument(
            "args", nargs=argparse.REMAINDER, help="Arguments and options of the command."
        )

    def handle(self, *args: str, subcommand: str, **options: Any) -> None:
        ids = tenant_ids_option(options["tenant_ids"])
        if len(ids) == 1:  # the command's own output, streamed as it runs
            with tenant_context(get_tenant(ids[0])):
                call_command(
                    subcommand, *args, stdout=raw_stream(self.stdout),
                    stderr=raw_stream(self.stderr),
                )  # fmt: skip
            return
        parallel = options["parallel"]
        if parallel < 1:
            raise CommandError(
                f"--parallel must be at least 1, got {parallel} (leave it out to run the tenants "
                "one after another)."
            )
        check_command(subcommand, args)
        tenants = get_tenants(ids) if ids else all_tenants()
        if not tenants:
            self.stdout.write("No tenants.")
            return
        self._run_all(tenants, subcommand, args, parallel, options)

    def _run_all(
        self,
        tenants: list[Any],
        subcommand: str,
        args: Sequence[str],
        parallel: int,
        options: dict[str, Any],
    ) -> None:
        self._traceback = bool(options.get("traceback"))
        start = time.perf_counter()
        failed: list[str] = []

        def done(result: TenantRun) -> None:
            self._report(result)
            if result.error is not None:
                failed.append(result.tenant_id)

        run_in_tenants(tenants, lambda tenant: run_in(tenant, subcommand, args), parallel, done)
        if options["verbosity"] >= 1:
            self.stderr.write(
                f"Ran `{subcommand}` in {len(tenants) - len(failed)} of {len(tenants)} tenants "
                f"in {time.perf_counter() - start:.2f}s ({min(parallel, len(tenants))} at once)."
            )
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(tenants)} tenants failed: {', '.join(failed)}. See the "
                f"errors above, or re-run one with `manage.py tenant_command --tenant-id <id> "
                f"{subcommand} ...`."
            )

    def _report(self, result: TenantRun) -> None:
        """The tenant's header, its stdout as it was written, and its stderr line by line."""
        header = f"[{result.tenant_id}]"
        if result.error is None:
            self.stdout.write(header)
        else:
            self.stdout.write(f"{header} {self.style.ERROR('FAILED')}: {describe(result.error)}")
        if result.stdout:
            out = result.stdout
            self.stdout.write(out if out.endswith("\n") else out + "\n", ending="")
        for line in result.stderr.splitlines():
            self.stderr.write(f"{header} {line}")
        if self._traceback and result.error is not None:
            self.stderr.write("".join(traceback.format_exception(result.error)))


def all_tenants() -> list[Any]:
    with use_master_db():
        return list(get_tenant_model().objects.order_by("tenant_id"))


def check_command(subcommand: str, args: Sequence[str]) -> None:
    """Fail once, before any tenant runs, on an unknown command or arguments it refuses."""
    commands = get_commands()
    if subcommand not in commands:
        raise CommandError(f"Unknown command: {subcommand!r}")
    app = commands[subcommand]
    command = app if isinstance(app, BaseCommand) else load_command_class(app, subcommand)
    command.create_parser("manage.py", subcommand).parse_args(list(args))


def describe(err: BaseException) -> str:
    if isinstance(err, SystemExit):
        return f"exited with status {err.code}"
    if isinstance(err, CommandError):
        return str(err)
    return f"{type(err).__name__}: {err}"


def run_in(tenant: BaseTenant, subcommand: str, args: Sequence[str]) -> TenantRun:
    """Run the command inside ``tenant``, its output buffered; never raises (but Ctrl-C)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with tenant_context(tenant):
            call_command(subcommand, *args, stdout=out, stderr=err)
    except SystemExit as exit_:  # e.g. `migrate --check`
        if exit_.code not in (None, 0):
            return TenantRun(tenant.tenant_id, out.getvalue(), err.getvalue(), exit_)
    except Exception as error:
        return TenantRun(tenant.tenant_id, out.getvalue(), err.getvalue(), error)
    finally:
        connections.close_all()
    return TenantRun(tenant.tenant_id, out.getvalue(), err.getvalue())


def run_in_tenants(
    tenants: Sequence[Any],
    job: Callable[[Any], TenantRun],
    parallel: int,
    on_done: Callable[[TenantRun], None],
) -> None:
    """``job(tenant)`` for each tenant, ``parallel`` at a time, each in a fresh context.

    ``on_done`` is called in the calling thread as each finishes. One at a time runs in the
    calling thread itself, in tenant order.
    """
    if parallel == 1:
        for tenant in tenants:
            on_done(contextvars.Context().run(job, tenant))
        return
    pool = ThreadPoolExecutor(
        max_workers=min(parallel, len(tenants)), thread_name_prefix="omnitenant-command"
    )
    try:
        futures = [pool.submit(contextvars.Context().run, job, tenant) for tenant in tenants]
        for future in as_completed(futures):
            on_done(future.result())
    finally:
        # On Ctrl-C (or a failing callback) do not start the tenants still queued.
        pool.shutdown(wait=True, cancel_futures=True)
