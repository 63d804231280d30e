"""Keep ``SPARE_SCHEMAS`` clones of the template ready for ``create()`` (provisioning/spares.py)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...provisioning.spares import drop_spares, fill_spares, list_spares
from .._tenants import USER_ERRORS, error_message


class Command(BaseCommand):
    help = (
        "Drop spare schemas of an older template and clone new ones until "
        "OMNITENANT_CONFIG['SPARE_SCHEMAS'] (or --count) are ready. --drop drops every spare "
        "(they hold no tenant data). migratealltenants and migratetenant --template refill "
        "after migrating the template; create() refills in the background."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--count", type=int,
            help="How many current spares to keep ready (default: SPARE_SCHEMAS).",
        )  # fmt: skip
        parser.add_argument("--drop", action="store_true", help="Drop every spare schema.")
        parser.add_argument("--list", action="store_true", help="List the spares; change none.")

    def handle(self, *args: Any, count: int | None, drop: bool, **options: Any) -> None:
        if count is not None and count < 0:
            raise CommandError(f"--count must be at least 0, got {count}.")
        try:
            if options["list"]:
                for name, stamp in list_spares():
                    self.stdout.write(f"{name}  (template digest {stamp})")
                return
            if drop:
                self.stdout.write(f"Dropped {drop_spares()} spare schema(s).")
                return
            start = time.perf_counter()
            report = fill_spares(count)
        except USER_ERRORS as err:
            raise CommandError(f"Refilling spare schemas failed: {error_message(err)}") from err
        if report.why:
            raise CommandError(
                f"No spare schema made: {report.why}. {report.dropped} stale one(s) dropped."
            )
        self.stdout.write(
            f"{report.ready} spare schema(s) ready: {report.made} made, {report.dropped} stale "
            f"dropped ({time.perf_counter() - start:.2f}s)."
        )
