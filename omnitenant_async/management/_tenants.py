"""What the tenant management commands (and ``omnitenant_async.testing``) share."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO, cast

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import DatabaseError, transaction

from ..backends import get_tenant_backend
from ..conf import get_config
from ..context import use_master_db
from ..exceptions import OmnitenantError, TenantAlreadyExists
from ..isolation import IsolationType
from ..registry import get_domain_model, get_tenant_model
from ..validators import validate_domain, validate_tenant_id

ISOLATION_NAMES = {t.name.lower(): IsolationType(t.value) for t in IsolationType}
# Errors a command turns into a CommandError (a message and exit status 1, no traceback).
USER_ERRORS = (OmnitenantError, ValidationError, DatabaseError, ValueError)


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
) -> Any:
    """Create a tenant row, its storage and its domains, all or nothing.

    The domains are added last, so no request can reach a tenant whose schema is not ready.
    """
    validate_tenant_id(tenant_id)
    domains = normalize_domains(domains)
    Tenant, Domain = get_tenant_model(), get_domain_model()
    with use_master_db():
        if Tenant.objects.filter(tenant_id=tenant_id).exists():
            raise TenantAlreadyExists(f"Tenant {tenant_id!r} already exists.")
        taken = list(Domain.objects.filter(domain__in=domains).select_related("tenant"))
        if taken:
            owners = ", ".join(f"{d.domain} (tenant {d.tenant.tenant_id!r})" for d in taken)
            raise TenantAlreadyExists(f"Domain already in use: {owners}.")
        tenant = Tenant(
            tenant_id=tenant_id,
            name=name or tenant_id,
            isolation_type=isolation,
            config=config or {},
        )
        tenant.full_clean(validate_unique=False)
        backend = get_tenant_backend(tenant)
        # All or nothing: on failure create() removes the row and storage it made.
        backend.create(run_migrations=run_migrations, verbosity=verbosity, stdout=stdout)
        try:
            with transaction.atomic(using=get_config().MASTER_DB_ALIAS):
                for i, domain in enumerate(domains):
                    Domain.objects.create(domain=domain, tenant=tenant, is_primary=i == 0)
        except BaseException:
            backend.delete(drop=True)
            raise
    return tenant


def primary_domain(tenant: Any) -> str | None:
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
    """Prompt on ``stdout`` and read a line from ``stdin``, asking again while ``check`` fails."""
    while True:
        suffix = f" [{default}]" if default else ""
        stdout.write(f"{prompt}{suffix}: ", ending="")
        stdout.flush()
        line = stdin.readline()
        if not line:
            raise CommandError("Aborted: no input.")
        value = line.strip() or (default or "")
        if check is None:
            return value
        try:
            check(value)
        except USER_ERRORS as err:
            stdout.write(f"Error: {error_message(err)}")
            continue
        return value
