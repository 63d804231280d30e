"""Validation of tenant ids, schema names and host names.

A tenant id doubles as a DNS label (subdomain routing) and as a PostgreSQL schema name, so it is
held to the intersection: lower-case RFC 1035 label, at most 63 characters.
"""

from __future__ import annotations

import re

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


def validate_tenant_id(value: str) -> None:
    """Raise :class:`InvalidTenantName` unless ``value`` can name a tenant."""
    if not isinstance(value, str) or not DNS_LABEL_RE.match(value):
        raise InvalidTenantName(
            f"Tenant id {value!r} is not a valid DNS label: use 1-63 lower-case letters, digits "
            "and hyphens, starting and ending with a letter or digit."
        )
    if value in RESERVED_NAMES or value.startswith(RESERVED_PREFIXES):
        raise InvalidTenantName(
            f"Tenant id {value!r} is reserved (public, information_schema, pg_* and the names of "
            "system databases cannot be tenants). Choose another id."
        )


def validate_schema_name(value: str) -> None:
    """Like :func:`validate_tenant_id`; also refuses the configured template schema."""
    from .conf import get_config

    validate_tenant_id(value)
    if value == get_config().TEMPLATE_SCHEMA:
        raise InvalidTenantName(f"Schema {value!r} is the template schema; it cannot be a tenant.")


def validate_domain(value: str) -> None:
    """Raise ``ValidationError`` unless ``value`` is a lower-case host name without port."""
    from django.core.exceptions import ValidationError

    if not isinstance(value, str) or not HOSTNAME_RE.match(value):
        raise ValidationError(
            "%(value)r is not a valid domain: use lower-case host names such as "
            "'acme.example.com', without scheme or port.",
            params={"value": value},
            code="invalid_domain",
        )


def django_validate_tenant_id(value: str) -> None:
    """Model-field flavour of :func:`validate_tenant_id` (raises ``ValidationError``)."""
    from django.core.exceptions import ValidationError

    try:
        validate_tenant_id(value)
    except InvalidTenantName as err:
        raise ValidationError(str(err), code="invalid_tenant_id") from None
