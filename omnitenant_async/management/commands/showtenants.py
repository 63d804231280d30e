from __future__ import annotations

import csv
import io
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ...context import use_master_db
from ...isolation import IsolationType
from ...registry import get_tenant_model

COLUMNS = ("tenant_id", "name", "isolation", "domains", "primary_domain")


class Command(BaseCommand):
    help = "List the tenants with their isolation and domains."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--format", choices=("table", "json", "csv"), default="table",
            help="csv: a header row, then one row a tenant; domains separated by spaces.",
        )  # fmt: skip

    def handle(self, *args: Any, format: str, **options: Any) -> None:
        rows = tenant_rows()
        if format == "json":
            self.stdout.write(json.dumps(rows, indent=2))
        elif format == "csv":
            self.stdout.write(render_csv(rows), ending="")
        elif not rows:
            self.stdout.write("No tenants.")
        else:
            self.stdout.write(render_table(rows))


def tenant_rows() -> list[dict[str, Any]]:
    with use_master_db():
        tenants = get_tenant_model().objects.prefetch_related("domains").order_by("tenant_id")
        rows = []
        for tenant in tenants:
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
