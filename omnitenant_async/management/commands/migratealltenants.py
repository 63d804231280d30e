from __future__ import annotations

import sys
import time
import traceback
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...backends.migration import TenantMigrationResult, migrate_tenants
from ...conf import get_config
from ...context import use_master_db
from ...registry import get_tenant_model
from .._tenants import ask, can_prompt


class Command(BaseCommand):
    help = (
        "Run every tenant's migrations in parallel threads; exit non-zero naming the tenants "
        "that failed."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("app_label", nargs="?", help="Only migrate this app.")
        parser.add_argument("migration_name", nargs="?", help="Migrate the app to this migration.")
        parser.add_argument(
            "--threads", type=int, default=None,
            help="Tenants migrated at once (default: OMNITENANT_CONFIG['MIGRATION_THREADS']).",
        )  # fmt: skip
        parser.add_argument(
            "--noinput", "--no-input", action="store_false", dest="interactive",
            help="Do not ask for confirmation (only asked in a terminal).",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        threads = options["threads"]
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
        with use_master_db():
            tenants = list(get_tenant_model().objects.order_by("tenant_id"))
        if not tenants:
            self.stdout.write("No tenants to migrate.")
            return
        stdin = options.get("stdin") or sys.stdin
        if options["interactive"] and can_prompt(stdin):
            answer = ask(stdin, self.stdout, f"Migrate {len(tenants)} tenants? (y/N)")
            if answer.lower() not in ("y", "yes"):
                raise CommandError("Aborted; no tenant was migrated.")
        self._verbosity = options["verbosity"]
        self._show_traceback = bool(options.get("traceback"))
        start = time.perf_counter()
        if get_config().TEMPLATE_SCHEMA:  # first: tenants created meanwhile clone a current one
            from ...backends.clone import migrate_template

            t0 = time.perf_counter()
            try:
                template = migrate_template(
                    options["app_label"], options["migration_name"], verbosity=0
                )
            except Exception as err:
                raise CommandError(
                    f"Migrating the template schema failed ({type(err).__name__}: {err}); no "
                    "tenant was migrated."
                ) from err
            self.stdout.write(f"[template] {template} ok ({time.perf_counter() - t0:.2f}s)")
        results = migrate_tenants(
            tenants,
            threads=threads,
            app_label=options["app_label"],
            migration_name=options["migration_name"],
            verbosity=options["verbosity"],
            on_progress=self._progress,
        )
        failed = [r.tenant_id for r in results if not r.ok]
        elapsed = time.perf_counter() - start
        self.stdout.write(
            f"Migrated {len(results) - len(failed)} of {len(results)} tenants in {elapsed:.2f}s "
            f"({min(threads, len(tenants))} threads)."
        )
        if failed:
            raise CommandError(
                f"{len(failed)} tenant(s) failed to migrate: {', '.join(failed)}. See the errors "
                "above, or re-run one with `manage.py migratetenant --tenant-id <id>`."
            )

    def _progress(self, done: int, total: int, result: TenantMigrationResult) -> None:
        head = f"[{done}/{total}] {result.tenant_id}"
        if result.error is None:
            self.stdout.write(f"{head} {self.style.SUCCESS('ok')} ({result.seconds:.2f}s)")
        else:
            error = f"{type(result.error).__name__}: {result.error}".strip()
            self.stdout.write(
                f"{head} {self.style.ERROR('FAILED')} ({result.seconds:.2f}s): {error}"
            )
        if self._verbosity >= 2 and result.output:
            self.stdout.write(result.output.rstrip())
        if self._show_traceback and result.error is not None:
            self.stderr.write("".join(traceback.format_exception(result.error)))
