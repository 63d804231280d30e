"""Abstract tenant and domain models for the project's concrete ``Tenant`` and ``Domain``."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models

from .conf import get_config
from .isolation import IsolationType
from .validators import django_validate_tenant_id, validate_domain


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

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.name} ({self.tenant_id})"


class BaseDomain(models.Model):
    """A host name that resolves to a tenant; a tenant may have several, one primary."""

    domain = models.CharField(max_length=253, unique=True, validators=[validate_domain])
    tenant = models.ForeignKey(
        # Read when the project's models load, like AUTH_USER_MODEL.
        get_config().TENANT_MODEL,
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
