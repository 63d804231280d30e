from __future__ import annotations

import csv
import io
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Exists, OuterRef, Q, QuerySet

from ...context import use_master_db
from ...isolation import IsolationType
from ...registry import get_domain_model, get_tenant_model
from .._tenants import ISOLATION_NAMES

COLUMNS = ("tenant_id", "name", "isolation", "domains", "primary_domain")


class Command(BaseCommand):
    help = (
        "List the tenants with their isolation and domains; --search, --isolation, --limit and "
        "--offset select them in the database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--format", choices=("table", "json", "csv"), default="table",
            help="csv: a header row, then one row a tenant; domains separated by spaces.",
        )  # fmt: skip
        parser.add_argument(
            "--search", metavar="TEXT",
            help="Only tenants whose id, name or any domain contains TEXT (any case).",
        )  # fmt: skip
        parser.add_argument("--isolation", choices=sorted(ISOLATION_NAMES))
        parser.add_argument(
            "--limit", type=int, metavar="N", help="At most N tenants (default: all)."
        )
        parser.add_argument(
            "--offset", type=int, metavar="N", help="Skip the first N (in tenant id order)."
        )
        parser.add_argument(
            "--count", action="store_true", help="Print only the number of matching tenants."
        )

    def handle(self, *args: Any, format: str, **options: Any) -> None:
        limit, offset = _paging(options["limit"], options["offset"], options["count"])
        footer = None
        with use_master_db():
            tenants = matching_tenants(options["search"], options["isolation"])
            if options["count"]:
                self.stdout.write(str(tenants.count()))
                return
            paged = limit is not None or offset > 0
            stop = None if limit is None else offset + limit
            rows = tenant_rows(tenants[offset:stop] if paged else tenants)
            if paged and format == "table":
                footer = page_footer(offset, len(rows), tenants.count())
        if format == "json":
            self.stdout.write(json.dumps(rows, indent=2))
        elif format == "csv":
            self.stdout.write(render_csv(rows), ending="")
        elif footer is not None:
            self.stdout.write(f"{render_table(rows)}\n{footer}" if rows else footer)
        elif not rows:
            filtered = options["search"] or options["isolation"]
            self.stdout.write("No matching tenants." if filtered else "No tenants.")
        else:
            self.stdout.write(render_table(rows))


def _paging(limit: int | None, offset: int | None, count: bool) -> tuple[int | None, int]:
    """``(limit, offset)`` checked; ``--count`` counts every match, so it takes neither."""
    if count and (limit is not None or offset is not None):
        raise CommandError(
            "--count prints the number of all matching tenants: leave out --limit and --offset "
            "(filter with --search and --isolation)."
        )
    if limit is not None and limit < 1:
        raise CommandError(f"--limit must be at least 1, got {limit} (leave it out for all).")
    if offset is not None and offset < 0:
        raise CommandError(f"--offset must be 0 or more, got {offset}.")
    return limit, offset or 0


def matching_tenants(search: str | None, isolation: str | None) -> QuerySet[Any]:
    """The tenants to show, in tenant id order, filtered in the database.

    A domain matches through ``EXISTS``, not a join: a tenant with two matching domains is
    one row, and slicing the queryset stays a plain ``LIMIT``/``OFFSET``.
    """
    tenants: QuerySet[Any] = get_tenant_model().objects.order_by("tenant_id")
    if isolation is not None:
        tenants = tenants.filter(isolation_type=ISOLATION_NAMES[isolation])
    if search:
        domains = get_domain_model().objects.filter(tenant=OuterRef("pk"), domain__icontains=search)
        tenants = tenants.filter(
            Q(tenant_id__icontains=search) | Q(name__icontains=search) | Exists(domains)
        )
    return tenants


def page_footer(offset: int, shown: int, total: int) -> str:
    """``Tenants 51-100 of 10000. Next page: --offset 100.`` under a paged table."""
    if shown == 0:
        return f"No tenants at offset {offset} ({total} match)."
    line = f"Tenants {offset + 1}-{offset + shown} of {total}."
    if offset + shown < total:
        line += f" Next page: --offset {offset + shown}."
    return line


def tenant_rows(tenants: QuerySet[Any] | None = None) -> list[dict[str, Any]]:
    """One dict a tenant; the domains of only these tenants are fetched (one more query)."""
    with use_master_db():
        if tenants is None:
            tenants = get_tenant_model().objects.order_by("tenant_id")
        rows = []
        for tenant in tenants.prefetch_related("domains"):
            domains = sorted(tenant.domains.all(), key=lambda d: (not d.is_primary, d.pk))
            primary = next((d.domain for d in domains if d.is_primary), None)
            rows.append(
                {
                    "tenant_id": tenant.tenant_id,
                    "name": tenant.name,
                    "isolation": IsolationType(tenant.isolation_type).name.lower(),
                    "domains": [d.domain for d in domains],
                    "primary_domain": primary,
                }
            )
    return rows


def render_table(rows: list[dict[str, Any]]) -> str:
    cells = [
        [", ".join(v) if isinstance(v, list) else (v or "-") for v in (row[c] for c in COLUMNS)]
        for row in rows
    ]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(COLUMNS)]
    lines = [COLUMNS, tuple("-" * w for w in widths), *cells]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def render_csv(rows: list[dict[str, Any]]) -> str:
    """RFC 4180 quoting by the csv module (names may hold commas and quotes); header first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(
            " ".join(v) if isinstance(v, list) else ("" if v is None else v)
            for v in (row[c] for c in COLUMNS)
        )
    return out.getvalue()
