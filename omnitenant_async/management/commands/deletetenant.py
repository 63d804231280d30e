from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...isolation import IsolationType
from ...models import BaseTenant
from ...provisioning import get_tenant_backend
from .._tenants import (
    USER_ERRORS,
    add_drop_arguments,
    add_tenant_ids_argument,
    ask,
    error_message,
    get_tenants,
    preview_ids,
    tenant_ids_option,
)


class Command(BaseCommand):
    help = (
        "Delete tenants' rows and domains. Their schemas or databases (their data) are kept "
        "unless --drop is given."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        add_tenant_ids_argument(parser, "A tenant to delete; repeat it for several.")
        parser.add_argument(
            "--from-file", metavar="PATH",
            help="Also delete the tenants listed in PATH, one id a line ('-': stdin; blank "
            "lines and # comments are ignored).",
        )  # fmt: skip
        add_drop_arguments(parser, "Also drop the schemas or databases: ALL data.")

    def handle(self, *args: Any, drop: bool, **options: Any) -> None:
        stdin = options.get("stdin") or sys.stdin
        confirm = drop and options["interactive"]
        ids = requested_ids(options["tenant_ids"], options["from_file"], stdin, confirm)
        tenants = get_tenants(ids)  # every id checked before any is deleted
        if confirm:
            self._confirm(tenants, stdin)
        self._verbosity = options["verbosity"]
        self._traceback = bool(options.get("traceback"))
        if len(tenants) == 1:
            error = self._delete(tenants[0], drop)
            if error is not None:
                raise CommandError(f"Deleting tenant {tenants[0].tenant_id!r} failed: {error}")
            return
        failed = [t.tenant_id for t in tenants if self._delete_reporting(t, drop) is not None]
        if self._verbosity >= 1:
            self.stdout.write(f"Deleted {len(tenants) - len(failed)} of {len(tenants)} tenants.")
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(tenants)} tenants failed: {', '.join(failed)}. See the "
                "errors above; the other tenants were deleted."
            )

    def _confirm(self, tenants: list[Any], stdin: TextIO) -> None:
        """One tenant: type its id. Several: type how many, so a long list is not waved on."""
        if len(tenants) == 1:
            tenant_id = tenants[0].tenant_id
            answer = ask(
                stdin, self.stdout,
                f"This drops the {storage_kind(tenants[0])} of tenant {tenant_id!r} and ALL its "
                "data. Type the tenant id to confirm",
            )  # fmt: skip
            if answer != tenant_id:
                raise CommandError("Confirmation did not match the tenant id; nothing was deleted.")
            return
        kinds = " and ".join(sorted({f"{storage_kind(t)}s" for t in tenants}, reverse=True))
        ids = [t.tenant_id for t in tenants]
        answer = ask(
            stdin, self.stdout,
            f"This drops the {kinds} of {len(ids)} tenants ({preview_ids(ids)}) and ALL their "
            "data. Type the number of tenants to confirm",
        )  # fmt: skip
        if answer != str(len(ids)):
            raise CommandError(
                f"Confirmation did not match the number of tenants ({len(ids)}); nothing was "
                "deleted."
            )

    def _delete(self, tenant: BaseTenant, drop: bool) -> str | None:
        """Delete one tenant and print its line; the error message if it failed."""
        try:
            get_tenant_backend(tenant).delete(drop=drop)
        except USER_ERRORS as err:
            return self._failure(err, error_message(err))
        except Exception as err:  # one tenant's surprise must not stop the others
            return self._failure(err, f"{type(err).__name__}: {err}")
        if self._verbosity < 1:
            return None
        tenant_id, storage = tenant.tenant_id, storage_kind(tenant)
        if drop:
            self.stdout.write(
                self.style.SUCCESS(f"Deleted tenant {tenant_id!r} and its {storage}.")
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(f"Deleted tenant {tenant_id!r}")
                + f"; its {storage} and data were kept (use --drop to remove them)."
            )
        return None

    def _delete_reporting(self, tenant: BaseTenant, drop: bool) -> str | None:
        """:meth:`_delete`, printing a failure on stderr (and going on with the next tenant)."""
        error = self._delete(tenant, drop)
        if error is not None:
            self.stderr.write(f"Deleting tenant {tenant.tenant_id!r} failed: {error}")
        return error

    def _failure(self, err: Exception, message: str) -> str:
        if self._traceback:
            self.stderr.write("".join(traceback.format_exception(err)))
        return message


def storage_kind(tenant: BaseTenant) -> str:
    return IsolationType(tenant.isolation_type).label.lower()


def requested_ids(
    tenant_ids: str | list[str] | None, from_file: str | None, stdin: TextIO, confirm: bool
) -> list[str]:
    """The ids of ``--tenant-id`` then ``--from-file``, or a ``CommandError`` saying how."""
    ids = tenant_ids_option(tenant_ids)
    if from_file is not None:
        if from_file == "-" and confirm:
            raise CommandError(
                "--from-file - reads the tenant ids from stdin, which leaves nothing to read "
                "the --drop confirmation from: put the ids in a file, or pass --noinput."
            )
        listed = read_tenant_ids(from_file, stdin)
        if not listed:
            raise CommandError(f"--from-file {from_file!r} lists no tenant id; nothing to delete.")
        ids += listed
    if not ids:
        raise CommandError(
            "Name the tenants to delete: --tenant-id ID (repeat it for several) or "
            "--from-file PATH (one id a line, '-' for stdin)."
        )
    return ids


def read_tenant_ids(path: str, stdin: TextIO) -> list[str]:
    """Tenant ids, one a line, from ``path`` (``-``: stdin).

    Blank lines and ``#`` comments (a whole line, or after an id) are skipped. The ids are
    checked later, all at once.
    """
    try:
        text = stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CommandError(f"Cannot read --from-file {path!r}: {err}.") from err
    ids = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [tenant_id for tenant_id in ids if tenant_id]
