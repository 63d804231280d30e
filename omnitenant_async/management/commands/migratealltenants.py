from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from ...conf import get_config
from ...context import use_master_db
from ...provisioning.clone import migrate_template
from ...provisioning.migration import TenantMigrationResult, migrate_tenants
from ...provisioning.migration_state import (
    MigrationTargetError,
    PendingTenants,
    find_pending_tenants,
)
from ...registry import get_tenant_model
from .._tenants import ask, can_prompt, refresh_spares


def format_duration(seconds: float) -> str:
    """``42s``, ``6m40s``, ``2h05m``: short enough for a progress line."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    return f"{total // 3600}h{total % 3600 // 60:02d}m"


def eta_seconds(done: int, total: int, busy_seconds: float, workers: int) -> float:
    """Time left: the mean time per finished tenant, times the tenants left, over the workers."""
    if done <= 0:
        return 0.0
    return busy_seconds / done * (total - done) / max(workers, 1)


class Command(BaseCommand):
    help = (
        "Migrate the tenants that have migrations to apply (found with a few queries), in "
        "parallel threads or processes; exit non-zero naming the tenants that failed."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("app_label", nargs="?", help="Only migrate this app.")
        parser.add_argument("migration_name", nargs="?", help="Migrate the app to this migration.")
        workers = parser.add_mutually_exclusive_group()
        workers.add_argument(
            "--threads", type=int, default=None,
            help="Tenants migrated at once in threads (default: OMNITENANT_CONFIG"
            "['MIGRATION_THREADS']).",
        )  # fmt: skip
        workers.add_argument(
            "--processes", type=int, default=None,
            help="Migrate in N processes instead of threads (this one and N - 1 spawned "
            "workers): faster on several cores (migrate is mostly Python, which threads run "
            "one at a time).",
        )  # fmt: skip
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--all", action="store_true", dest="migrate_all",
            help="Migrate every tenant, even those whose django_migrations shows nothing to do.",
        )  # fmt: skip
        which.add_argument(
            "--only-pending", action="store_true",
            help="Only migrate tenants with migrations to apply (the default).",
        )  # fmt: skip
        parser.add_argument(
            "--noinput", "--no-input", action="store_false", dest="interactive",
            help="Do not ask for confirmation (only asked in a terminal).",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        threads, processes = self._worker_counts(options["threads"], options["processes"])
        if options["migrate_all"] and options["only_pending"]:
            raise CommandError("Pass --all or --only-pending, not both.")
        app_label, migration_name = options["app_label"], options["migration_name"]
        with use_master_db():
            tenants = list(get_tenant_model().objects.order_by("tenant_id"))
        if not tenants:
            if get_config().TEMPLATE_SCHEMA:  # the first tenant is cloned from it: keep it current
                self._migrate_template(app_label, migration_name)
                refresh_spares(self.stdout)
            self.stdout.write("No tenants to migrate.")
            return
        start = time.perf_counter()
        check = self._check(tenants, app_label, migration_name, options["migrate_all"])
        template = get_config().TEMPLATE_SCHEMA
        if not check.pending and not check.template_pending:
            self.stdout.write(f"All {len(tenants)} tenants are up to date; nothing to migrate.")
            refresh_spares(self.stdout)
            return
        stdin = options.get("stdin") or sys.stdin
        if options["interactive"] and can_prompt(stdin):
            also = " and the template schema" if check.template_pending else ""
            question = f"Migrate {len(check.pending)} of {len(tenants)} tenants{also}? (y/N)"
            if ask(stdin, self.stdout, question).lower() not in ("y", "yes"):
                raise CommandError("Aborted; no tenant was migrated.")
        self._verbosity = options["verbosity"]
        self._show_traceback = bool(options.get("traceback"))
        if template and check.template_pending:
            self._migrate_template(app_label, migration_name)
        elif template:
            self.stdout.write(f"[template] {template} up to date")
        refresh_spares(self.stdout)  # before the tenants: sign-ups meanwhile get current spares
        if not check.pending:
            self.stdout.write(f"All {len(tenants)} tenants are up to date.")
            return
        self._migrate(check, threads, processes, app_label, migration_name, start)

    def _worker_counts(
        self, threads: int | None, processes: int | None
    ) -> tuple[int | None, int | None]:
        """``(threads, processes)``: exactly one is set, and at least 1."""
        if processes is not None:
            if threads is not None:
                raise CommandError("Pass --threads N or --processes N, not both.")
            if processes < 1:
                raise CommandError(f"--processes must be at least 1, got {processes}.")
            return None, processes
        if threads is None:
            threads = get_config().MIGRATION_THREADS
            if threads < 1:
                raise CommandError(
                    f"OMNITENANT_CONFIG['MIGRATION_THREADS'] must be at least 1, got {threads}; "
                    "fix the setting or pass --threads N."
                )
        elif threads < 1:  # 0 used to mean "the default" silently
            raise CommandError(
                f"--threads must be at least 1, got {threads} (leave it out for the default, "
                f"OMNITENANT_CONFIG['MIGRATION_THREADS'] = {get_config().MIGRATION_THREADS})."
            )
        return threads, None

    def _check(
        self, tenants: list[Any], app_label: str | None, name: str | None, migrate_all: bool
    ) -> PendingTenants:
        """Find the tenants to migrate; one summary line says how many and why."""
        template = get_config().TEMPLATE_SCHEMA
        if migrate_all:
            self.stdout.write(f"Migrating all {len(tenants)} tenants (--all).")
            return PendingTenants(tenants, why="--all", template_pending=bool(template))
        try:
            check = find_pending_tenants(tenants, app_label, name, template=template)
        except MigrationTargetError as err:
            raise CommandError(f"{err} No tenant was migrated.") from err
        except DatabaseError as err:
            self.stdout.write(
                f"Could not check which tenants are up to date ({type(err).__name__}: "
                f"{err}); migrating all {len(tenants)} tenants."
            )
            return PendingTenants(tenants, why=str(err), template_pending=bool(template))
        if not check.checked:
            self.stdout.write(
                f"Migrating all {len(tenants)} tenants: {check.why}; their migration history "
                "cannot tell which are up to date."
            )
            return check
        self.stdout.write(
            f"Checked {len(tenants)} tenants in {check.seconds:.2f}s: "
            f"{len(check.up_to_date)} up to date, {len(check.pending)} to migrate."
        )
        return check

    def _migrate_template(self, app_label: str | None, migration_name: str | None) -> None:
        """First: tenants created meanwhile are cloned from a current template."""
        t0 = time.perf_counter()
        try:
            template = migrate_template(app_label, migration_name, verbosity=0)
        except Exception as err:
            raise CommandError(
                f"Migrating the template schema failed ({type(err).__name__}: {err}); no "
                "tenant was migrated."
            ) from err
        self.stdout.write(f"[template] {template} ok ({time.perf_counter() - t0:.2f}s)")

    def _migrate(
        self,
        check: PendingTenants,
        threads: int | None,
        processes: int | None,
        app_label: str | None,
        migration_name: str | None,
        start: float,
    ) -> None:
        count = processes if processes is not None else threads
        self._workers = min(count or 1, len(check.pending))
        self._busy = 0.0
        results = migrate_tenants(
            check.pending,
            threads=threads,
            processes=processes,
            app_label=app_label,
            migration_name=migration_name,
            verbosity=self._verbosity,
            on_progress=self._progress,
        )
        failed = [r.tenant_id for r in results if not r.ok]
        elapsed = time.perf_counter() - start
        kind = "processes" if processes is not None else "threads"
        skipped = f"; {len(check.up_to_date)} up to date" if check.checked else ""
        self.stdout.write(
            f"Migrated {len(results) - len(failed)} of {len(results)} tenants in {elapsed:.2f}s "
            f"({self._workers} {kind}){skipped}."
        )
        if failed:
            raise CommandError(
                f"{len(failed)} tenant(s) failed to migrate: {', '.join(failed)}. See the errors "
                "above, or re-run one with `manage.py migratetenant --tenant-id <id>`."
            )

    def _progress(self, done: int, total: int, result: TenantMigrationResult) -> None:
        self._busy += result.seconds
        head = f"[{done}/{total}] {result.tenant_id}"
        eta = format_duration(eta_seconds(done, total, self._busy, self._workers))
        if result.error is None:
            self.stdout.write(
                f"{head} {self.style.SUCCESS('ok')} ({result.seconds:.2f}s) ETA {eta}"
            )
        else:
            error = f"{type(result.error).__name__}: {result.error}".strip()
            self.stdout.write(
                f"{head} {self.style.ERROR('FAILED')} ({result.seconds:.2f}s) ETA {eta}: {error}"
            )
        if self._verbosity >= 2 and result.output:
            self.stdout.write(result.output.rstrip())
        if self._show_traceback and result.error is not None:
            self.stderr.write(result.traceback)
