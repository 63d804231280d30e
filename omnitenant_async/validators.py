"""Validation of tenant ids, schema names and host names.

A tenant id doubles as a DNS label (subdomain routing) and as a PostgreSQL schema name, so it is
held to the intersection: lower-case RFC 1035 label, at most 63 characters.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

from .conf import get_config
from .exceptions import InvalidTenantName

DNS_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# A host as we accept it from a client: labels of letters, digits and hyphens, dot-separated.
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)

RESERVED_NAMES = frozenset(
    {"public", "information_schema", "default", "master", "postgres", "template0", "template1"}
)
RESERVED_PREFIXES = ("pg_", "pg-")


def is_dns_label(value: str) -> bool:
    return bool(DNS_LABEL_RE.match(value))


# PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes.
MAX_IDENTIFIER_BYTES = 63


def is_reserved(value: str) -> bool:
    """``public``, ``information_schema``, ``pg_*`` and the names of system databases."""
    return value.lower() in RESERVED_NAMES or value.lower().startswith(RESERVED_PREFIXES)


def validate_tenant_id(value: str) -> None:
    """Raise :class:`InvalidTenantName` unless ``value`` can name a tenant.

    Reserved names are reported as reserved before the DNS-label rule, so ``pg_foo`` is told
    why it is refused rather than that ``_`` is not a DNS character.
    """
    if not isinstance(value, str) or not value:
        raise InvalidTenantName(f"Tenant id {value!r} must be a non-empty string.")
    if is_reserved(value):
        raise InvalidTenantName(
            f"Tenant id {value!r} is reserved (public, information_schema, pg_* and the names of "
            "system databases cannot be tenants). Choose another id."
        )
    if len(value) > MAX_IDENTIFIER_BYTES:
        raise InvalidTenantName(
            f"Tenant id {value[:20]!r}... is {len(value)} characters long; the limit is "
            f"{MAX_IDENTIFIER_BYTES} (a DNS label, and PostgreSQL's identifier length)."
        )
    if not DNS_LABEL_RE.match(value):
        raise InvalidTenantName(
            f"Tenant id {value!r} is not a valid DNS label: use 1-63 lower-case letters, digits "
            "and hyphens, starting and ending with a letter or digit."
        )


def validate_schema_identifier(value: str) -> None:
    """Raise :class:`InvalidTenantName` unless ``value`` can be used as a tenant's schema.

    Any PostgreSQL identifier is accepted (it is always quoted): ``acme_corp``, ``Acme``, the
    schemas django-tenants made. Refused: empty, longer than 63 bytes (PostgreSQL would
    silently truncate it to another name), NUL, and the system schemas.
    """
    if not isinstance(value, str) or not value:
        raise InvalidTenantName(f"Schema name {value!r} must be a non-empty string.")
    if "\x00" in value or len(value.encode()) > MAX_IDENTIFIER_BYTES:
        raise InvalidTenantName(
            f"Schema name {value!r} is not a valid PostgreSQL identifier (at most "
            f"{MAX_IDENTIFIER_BYTES} bytes, no NUL character)."
        )
    if value == "information_schema" or value.startswith("pg_") or value == "public":
        raise InvalidTenantName(
            f"Schema {value!r} is a system schema (public, information_schema, pg_*); it cannot "
            "hold a tenant."
        )


def validate_schema_name(value: str) -> None:
    """Like :func:`validate_tenant_id`; also refuses the configured template schema."""
    validate_tenant_id(value)
    if value == get_config().TEMPLATE_SCHEMA:
        raise InvalidTenantName(f"Schema {value!r} is the template schema; it cannot be a tenant.")


def validate_domain(value: str) -> None:
    """Raise ``ValidationError`` unless ``value`` is a lower-case host name without port."""
    if not isinstance(value, str) or not HOSTNAME_RE.match(value):
        raise ValidationError(
            "%(value)r is not a valid domain: use lower-case host names such as "
            "'acme.example.com', without scheme or port.",
            params={"value": value},
            code="invalid_domain",
        )


def django_validate_tenant_id(value: str) -> None:
    """Model-field flavour of :func:`validate_tenant_id` (raises ``ValidationError``)."""
    try:
        validate_tenant_id(value)
    except InvalidTenantName as err:
        raise ValidationError(str(err), code="invalid_tenant_id") from None
