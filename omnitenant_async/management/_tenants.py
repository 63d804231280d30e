"""What the tenant management commands (and ``omnitenant_async.testing``) share."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO, cast

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import CommandError
from django.db import DatabaseError, transaction

from ..conf import get_config
from ..context import use_master_db
from ..exceptions import OmnitenantError, TenantAlreadyExists, TenantProvisioningError
from ..isolation import IsolationType
from ..models import BaseTenant
from ..provisioning import get_tenant_backend
from ..provisioning.spares import fill_spares
from ..registry import get_domain_model, get_tenant_model
from ..validators import validate_domain, validate_tenant_id

ISOLATION_NAMES = {t.name.lower(): IsolationType(t.value) for t in IsolationType}
# Errors a command turns into a CommandError (a message and exit status 1, no traceback).
USER_ERRORS = (OmnitenantError, ValidationError, DatabaseError, ValueError, ImproperlyConfigured)


def error_message(err: BaseException) -> str:
    if isinstance(err, ValidationError):
        return "; ".join(err.messages)
    return str(err)


def raw_stream(wrapper: Any) -> TextIO:
    """The stream under a command's ``OutputWrapper``, to hand to a nested ``call_command``.

    Passing ``self.stdout`` itself nests two wrappers: the outer one appends its ``"\\n"`` to
    every write, whatever ``ending`` the inner command chose, so ``dumpdata`` would put every
    token on its own line. The nested command wraps the raw stream in its own wrapper instead.
    """
    return cast(TextIO, getattr(wrapper, "_out", wrapper))


def get_tenant(tenant_id: str) -> Any:
    """The tenant row with ``tenant_id``, or a ``CommandError`` that says how to list them."""
    with use_master_db():
        tenant = get_tenant_model().objects.filter(tenant_id=tenant_id).first()
    if tenant is None:
        raise CommandError(
            f"No tenant with id {tenant_id!r}. List the tenants with `manage.py showtenants`."
        )
    return tenant


# Ids per ``tenant_id IN (...)`` query: a batch of 10,000 stays far below any parameter limit.
ID_QUERY_CHUNK = 1000


def add_tenant_ids_argument(parser: Any, help: str) -> None:
    """``--tenant-id ID``, repeatable, into ``options["tenant_ids"]``.

    Read it with :func:`tenant_ids_option`. ``parser`` may be a mutually exclusive group.
    """
    parser.add_argument("--tenant-id", action="append", dest="tenant_ids", metavar="ID", help=help)


def add_drop_arguments(parser: Any, help: str) -> None:
    """``--drop`` (``help`` says what is lost) and ``--noinput`` to skip its confirmation."""
    parser.add_argument("--drop", action="store_true", help=help)
    parser.add_argument(
        "--noinput", "--no-input", action="store_false", dest="interactive",
        help="Do not ask to confirm --drop.",
    )  # fmt: skip


def tenant_ids_option(value: str | Sequence[str] | None) -> list[str]:
    """``options["tenant_ids"]`` as a list: ``call_command(..., tenant_id="acme")`` passes a str."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def get_tenants(tenant_ids: Iterable[str]) -> list[Any]:
    """The rows of ``tenant_ids`` (in that order, each once), all checked before any is used.

    An unknown id is a ``CommandError`` naming every unknown one, so a command working on a
    batch does nothing to it until the whole list is right.
    """
    wanted = list(dict.fromkeys(tenant_ids))
    found: dict[str, Any] = {}
    with use_master_db():
        for start in range(0, len(wanted), ID_QUERY_CHUNK):
            chunk = wanted[start : start + ID_QUERY_CHUNK]
            rows = get_tenant_model().objects.filter(tenant_id__in=chunk)
            found.update((tenant.tenant_id, tenant) for tenant in rows)
    missing = [tenant_id for tenant_id in wanted if tenant_id not in found]
    if missing:
        raise CommandError(_unknown_ids_message(missing, len(wanted)))
    return [found[tenant_id] for tenant_id in wanted]


def _unknown_ids_message(missing: list[str], given: int) -> str:
    names = ", ".join(repr(tenant_id) for tenant_id in missing)
    head = f"No tenant with id {names}" if len(missing) == 1 else f"No tenants with ids {names}"
    if given == 1:
        return f"{head}. List the tenants with `manage.py showtenants`."
    return (
        f"{head} ({len(missing)} of the {given} given); nothing was done. Fix or remove them "
        "(`manage.py showtenants --search TEXT` finds tenants), then run the command again."
    )


def preview_ids(tenant_ids: Sequence[str], shown: int = 5) -> str:
    """``'a', 'b', 'c' and 997 more``: enough to recognize a long list in one line."""
    head = ", ".join(repr(tenant_id) for tenant_id in tenant_ids[:shown])
    rest = len(tenant_ids) - shown
    return f"{head} and {rest} more" if rest > 0 else head


def normalize_domains(domains: Iterable[str]) -> list[str]:
    """Lower-cased, de-duplicated, validated host names (order kept: the first is primary)."""
    result: list[str] = []
    for raw in domains:
        domain = raw.strip().lower().rstrip(".")
        if not domain or domain in result:
            continue
        validate_domain(domain)
        result.append(domain)
    return result


def check_new_tenant_id(tenant_id: str) -> None:
    """Raise unless ``tenant_id`` is valid and no tenant row has it (prompts re-ask on error)."""
    validate_tenant_id(tenant_id)
    with use_master_db():
        if get_tenant_model().objects.filter(tenant_id=tenant_id).exists():
            raise TenantAlreadyExists(
                f"Tenant {tenant_id!r} already exists (see `manage.py showtenants`); "
                "choose another id."
            )


def check_free_domains(domains: Iterable[str]) -> list[str]:
    """The normalized domains, or ``TenantAlreadyExists`` naming the owner of a taken one."""
    normalized = normalize_domains(domains)
    with use_master_db():
        taken = list(
            get_domain_model().objects.filter(domain__in=normalized).select_related("tenant")
        )
    if taken:
        owners = ", ".join(f"{d.domain} (tenant {d.tenant.tenant_id!r})" for d in taken)
        raise TenantAlreadyExists(f"Domain already in use: {owners}.")
    return normalized


def storage_label(tenant: BaseTenant) -> str:
    """``'schema' 'acme'`` or ``'database' 'tenant_acme'``: what holds the tenant's data."""
    backend = get_tenant_backend(tenant)
    if IsolationType(tenant.isolation_type) == IsolationType.DATABASE:
        return f"database {getattr(backend, 'database_name', tenant.tenant_id)!r}"
    return f"schema {tenant.tenant_id!r}"


def storage_exists(tenant: BaseTenant) -> bool:
    """Whether the tenant's schema or database is already there (with or without a row)."""
    return get_tenant_backend(tenant).exists()


def create_tenant(
    tenant_id: str,
    *,
    name: str | None = None,
    domains: Sequence[str] = (),
    isolation: IsolationType = IsolationType.SCHEMA,
    config: dict[str, Any] | None = None,
    run_migrations: bool = True,
    verbosity: int = 0,
    stdout: TextIO | None = None,
    adopt: bool = False,
) -> BaseTenant:
    """Create a tenant row, its storage and its domains, all or nothing.

    The domains are added last, so no request can reach a tenant whose schema is not ready.
    With ``adopt=True`` the schema or database must already exist (kept by ``deletetenant``
    without ``--drop``): it is attached to the new row and migrated, and never dropped, even
    when a later step fails.
    """
    check_new_tenant_id(tenant_id)
    domains = check_free_domains(domains)
    Tenant, Domain = get_tenant_model(), get_domain_model()
    with use_master_db():
        tenant: BaseTenant = Tenant(
            tenant_id=tenant_id,
            name=name or tenant_id,
            isolation_type=isolation,
            config=config or {},
        )
        tenant.full_clean(validate_unique=False)
        backend = get_tenant_backend(tenant)
        if adopt:
            _adopt(tenant, run_migrations=run_migrations, verbosity=verbosity, stdout=stdout)
        else:
            _refuse_leftover(tenant)
            # All or nothing: on failure create() removes the row and storage it made.
            backend.create(run_migrations=run_migrations, verbosity=verbosity, stdout=stdout)
        try:
            with transaction.atomic(using=get_config().MASTER_DB_ALIAS):
                for i, domain in enumerate(domains):
                    Domain.objects.create(domain=domain, tenant=tenant, is_primary=i == 0)
        except BaseException:
            if adopt:
                _forget_row(tenant)  # adopted data is never dropped
            else:
                backend.delete(drop=True)
            raise
    return tenant


def _refuse_leftover(tenant: BaseTenant) -> None:
    """A schema/database of that name with no tenant row: say how to adopt or drop it."""
    if storage_exists(tenant):
        label = storage_label(tenant)
        raise TenantAlreadyExists(
            f"{label.capitalize()} already exists, but no tenant uses it (left by "
            "`deletetenant` without --drop?). Re-attach it with `manage.py createtenant "
            f"--adopt --tenant-id {tenant.tenant_id} ...`, or drop it with `manage.py "
            "droporphans --drop`."
        )


def _adopt(
    tenant: BaseTenant, *, run_migrations: bool, verbosity: int, stdout: TextIO | None
) -> None:
    """Save the row over an existing schema/database and migrate it; undo only the row."""
    if not storage_exists(tenant):
        raise TenantProvisioningError(
            f"Cannot adopt: {storage_label(tenant)} does not exist. List the leftovers with "
            "`manage.py droporphans`, or create the tenant without --adopt."
        )
    tenant.save()
    try:
        if run_migrations:
            get_tenant_backend(tenant).migrate(verbosity=verbosity, stdout=stdout)
    except BaseException:
        _forget_row(tenant)
        raise


def _forget_row(tenant: BaseTenant) -> None:
    with use_master_db():
        type(tenant).objects.filter(pk=tenant.pk).delete()
    tenant.pk = None


def primary_domain(tenant: BaseTenant) -> str | None:
    """The tenant's primary domain, else its first one, else ``None``."""
    with use_master_db():
        domains = sorted(tenant.domains.all(), key=lambda d: (not d.is_primary, d.pk))
    return domains[0].domain if domains else None


def can_prompt(stdin: TextIO) -> bool:
    return hasattr(stdin, "isatty") and stdin.isatty()


def ask(
    stdin: TextIO,
    stdout: Any,
    prompt: str,
    *,
    default: str | None = None,
    check: Callable[[str], object] | None = None,
) -> str:
    """Prompt on ``stdout`` and read a line from ``stdin``, asking again while ``check`` fails.

    Ctrl-C anywhere in here - while the prompt is written, while waiting for input or while
    the answer is checked - is a short ``CommandError``, not a traceback.
    """
    try:
        return _ask(stdin, stdout, prompt, default, check)
    except KeyboardInterrupt:
        stdout.write("")  # end the prompt's line
        raise CommandError("Aborted (Ctrl-C); nothing was changed.", returncode=130) from None


def _ask(
    stdin: TextIO,
    stdout: Any,
    prompt: str,
    default: str | None,
    check: Callable[[str], object] | None,
) -> str:
    while True:
        suffix = f" [{default}]" if default else ""
        stdout.write(f"{prompt}{suffix}: ", ending="")
        stdout.flush()
        line = _read_line(stdin)
        value = line.strip() or (default or "")
        if check is None:
            return value
        try:
            check(value)
        except USER_ERRORS as err:
            stdout.write(f"Error: {error_message(err)}")
            continue
        return value


def _read_line(stdin: TextIO) -> str:
    """One line of input; end of input is a short ``CommandError``, not a traceback."""
    line = stdin.readline()
    if not line:
        raise CommandError("Aborted: no input; nothing was changed.")
    return line


def refresh_spares(stdout: Any) -> None:
    """After the template changed: drop stale spare schemas, clone fresh ones (one line)."""
    if not get_config().SPARE_SCHEMAS:
        return
    start = time.perf_counter()
    try:
        report = fill_spares()
    except DatabaseError as err:  # spares only save time: never stop a migration for them
        stdout.write(f"[spares] refill failed ({err}); create() clones meanwhile")
        return
    if report.why:
        stdout.write(f"[spares] none made: {report.why}; {report.dropped} stale dropped")
        return
    stdout.write(
        f"[spares] {report.ready} ready ({report.made} made, {report.dropped} stale dropped, "
        f"{time.perf_counter() - start:.2f}s)"
    )
