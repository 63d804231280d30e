"""Abstract tenant and domain models for the project's concrete ``Tenant`` and ``Domain``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models

from .conf import get_config
from .exceptions import InvalidTenantName
from .isolation import IsolationType
from .validators import django_validate_tenant_id, validate_domain, validate_schema_name

if TYPE_CHECKING:
    from django.db.models.fields.related_descriptors import RelatedManager


class TenantQuerySetManager(models.Manager[Any]):
    """Manager of master-scoped models (tenants, domains): always reads the master database.

    The router sends these models to the master alias whatever tenant is active; this manager
    only makes that explicit, so ``Tenant.objects`` works even inside ``tenant_context``.
    """

    def get_queryset(self) -> models.QuerySet[Any]:
        return super().get_queryset().using(get_config().MASTER_DB_ALIAS)


class BaseTenant(models.Model):
    """A customer. ``tenant_id`` is its DNS label and, for schema isolation, its schema name."""

    IsolationType: ClassVar[type[IsolationType]] = IsolationType

    tenant_id = models.CharField(
        max_length=63,
        unique=True,
        validators=[django_validate_tenant_id],
        help_text="DNS label (a-z, 0-9, hyphen); also the schema name of schema tenants.",
    )
    name = models.CharField(max_length=200)
    isolation_type = models.PositiveSmallIntegerField(
        choices=IsolationType.choices, default=IsolationType.SCHEMA
    )
    config = models.JSONField(
        default=dict,
        blank=True,
        help_text="Backend settings, e.g. {'database': {'HOST': ..., 'NAME': ...}}.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySetManager()
    # The reverse of the concrete domain model's FK (related_name="domains"); typed here
    # because the abstract model cannot declare it.
    domains: RelatedManager[Any]

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.name} ({self.tenant_id})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Refuse an invalid or reserved ``tenant_id`` before anything reaches the database.

        ``objects.create()`` and ``save()`` skip field validators; without this, ``public``
        would be saved (and only provisioning would refuse it) and a 64-character id would
        surface as the database's ``DataError``.
        """
        self.validate_tenant_id()
        super().save(*args, **kwargs)

    def validate_tenant_id(self) -> None:
        """Raise ``ValidationError`` (on field ``tenant_id``) unless the id can be a tenant."""
        try:
            validate_schema_name(self.tenant_id)
        except InvalidTenantName as err:
            raise ValidationError({"tenant_id": [str(err)]}, code="invalid_tenant_id") from None
        try:
            IsolationType(self.isolation_type)
        except ValueError:
            raise ValidationError(
                {"isolation_type": [f"{self.isolation_type!r} is not an IsolationType."]}
            ) from None


def _tenant_model_label() -> str:
    """The FK target of ``BaseDomain``, read when the project's models load.

    With a broken ``OMNITENANT_CONFIG`` the label falls back to whatever string is there (or a
    placeholder), so Django can finish loading and ``manage.py check`` reports
    ``omnitenant.E001`` instead of a traceback.
    """
    try:
        return get_config().TENANT_MODEL
    except ImproperlyConfigured:
        raw = getattr(settings, "OMNITENANT_CONFIG", None)
        label = raw.get("TENANT_MODEL") if isinstance(raw, dict) else None
        return label if isinstance(label, str) and label else "omnitenant_async.TenantModelUnset"


class BaseDomain(models.Model):
    """A host name that resolves to a tenant; a tenant may have several, one primary."""

    domain = models.CharField(max_length=253, unique=True, validators=[validate_domain])
    tenant = models.ForeignKey(
        # Read when the project's models load, like AUTH_USER_MODEL.
        _tenant_model_label(),
        on_delete=models.CASCADE,
        related_name="domains",
    )
    is_primary = models.BooleanField(default=False)

    objects = TenantQuerySetManager()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.domain

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.domain = self.domain.lower().rstrip(".")
        super().save(*args, **kwargs)
