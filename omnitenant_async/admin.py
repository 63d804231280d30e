"""Django admin: tenants are managed on the public host, tenant data inside each tenant.

Nothing is registered here; register the classes for your models::

    admin.site.register(Tenant, TenantAdmin)              # public host only
    admin.site.register(Note, NoteAdmin)                  # NoteAdmin(TenantRestrictAdminMixin, ...)
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, models, transaction
from django.http import HttpRequest

from .conf import get_config
from .context import get_current_state
from .exceptions import OmnitenantError, TenantAlreadyExists
from .models import BaseTenant
from .provisioning import get_tenant_backend
from .registry import get_domain_model, get_tenant_model

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Any]
    _TabularInline = admin.TabularInline[Any, Any]
else:
    _ModelAdmin = admin.ModelAdmin
    _TabularInline = admin.TabularInline

__all__ = ["DomainInline", "PublicOnlyAdminMixin", "TenantAdmin", "TenantRestrictAdminMixin"]


def tenant_is_active() -> bool:
    """True inside a tenant (a tenant host); False on the public host or with no tenant."""
    state = get_current_state()
    return state is not None and not state.is_public


class TenantRestrictAdminMixin(_ModelAdmin):
    """For tenant-scoped models: administrable inside a tenant only, hidden on the public host.

    Without it the public host's admin would list the model and fail on its (absent) table.
    """

    def has_module_permission(self, request: HttpRequest) -> bool:
        return tenant_is_active() and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return tenant_is_active() and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return tenant_is_active() and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return tenant_is_active() and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return tenant_is_active() and super().has_delete_permission(request, obj)


class PublicOnlyAdminMixin(_ModelAdmin):
    """For master data (tenants, domains): administrable on the public host only.

    A tenant's own superuser must not see or edit the other tenants.
    """

    def has_module_permission(self, request: HttpRequest) -> bool:
        return not tenant_is_active() and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not tenant_is_active() and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not tenant_is_active() and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not tenant_is_active() and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not tenant_is_active() and super().has_delete_permission(request, obj)


class _ConfiguredDomainModel:
    """``DomainInline.model``, read when used: importing the admin must not need a valid config.

    With a broken ``OMNITENANT_CONFIG`` it is ``None`` (Django's admin check then says so, next
    to ``omnitenant.E001``) instead of an import-time traceback.
    """

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        try:
            get_tenant_model()  # the inline's foreign key must point at an installed model
            return get_domain_model()
        except (ImproperlyConfigured, LookupError, ValueError):
            return None


class DomainInline(_TabularInline):
    model = _ConfiguredDomainModel()
    fields = ("domain", "is_primary")
    extra = 1


def provision(tenant: BaseTenant, *, adopt: bool = True) -> str:
    """Create the tenant's schema (or database) and migrate it.

    If the storage already exists (e.g. kept by ``deletetenant`` without ``--drop``), migrate it
    when ``adopt`` is true, else raise ``TenantAlreadyExists``.
    """
    backend = get_tenant_backend(tenant)
    try:
        backend.create(run_migrations=True)
    except TenantAlreadyExists:
        if not adopt:
            raise
        backend.migrate()
        return "migrated"
    return "created and migrated"


class TenantAdmin(PublicOnlyAdminMixin):
    """Tenants with their domains inline; ``tenant_id`` and isolation are fixed once created.

    A tenant added here is provisioned (schema created and migrated) once the row is committed,
    unless ``provision_on_add = False``; the "Provision" action does it for existing rows.
    """

    list_display = ("tenant_id", "name", "isolation_type", "primary_domain", "created_at")
    list_filter = ("isolation_type",)
    search_fields = ("tenant_id", "name", "domains__domain")
    ordering = ("tenant_id",)
    fields = ("tenant_id", "name", "isolation_type", "config")
    inlines = (DomainInline,)
    actions = ("provision_tenants",)
    provision_on_add = True

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = tuple(super().get_readonly_fields(request, obj))
        if obj is not None and obj.pk is not None:
            # The id names the schema and the domains' subdomain: renaming would orphan data.
            readonly += ("tenant_id", "isolation_type")
        return readonly

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Any]:
        return super().get_queryset(request).prefetch_related("domains")

    @admin.display(description="primary domain")
    def primary_domain(self, obj: Any) -> str:
        domains = sorted(obj.domains.all(), key=lambda d: (not d.is_primary, d.pk))
        return domains[0].domain if domains else "-"

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change and self.provision_on_add:
            # After commit: the migrations must not run inside the admin's transaction.
            # A schema that is already there is not adopted silently: the action does that.
            transaction.on_commit(
                functools.partial(self._provision_one, request, obj, adopt=False),
                using=get_config().MASTER_DB_ALIAS,
            )

    @admin.action(description="Provision (create schema + migrate)")
    def provision_tenants(self, request: HttpRequest, queryset: models.QuerySet[Any]) -> None:
        for tenant in queryset:
            self._provision_one(request, tenant, adopt=True)

    def _provision_one(self, request: HttpRequest, tenant: BaseTenant, *, adopt: bool) -> None:
        try:
            done = provision(tenant, adopt=adopt)
        except TenantAlreadyExists:
            self.message_user(
                request,
                f"Tenant {tenant.tenant_id!r} was saved, but its schema or database already "
                "exists (kept from a deleted tenant?). Run the 'Provision' action to adopt and "
                "migrate it, or delete this tenant.",
                messages.WARNING,
            )
            return
        except (OmnitenantError, DatabaseError) as err:
            self.message_user(
                request,
                f"Provisioning tenant {tenant.tenant_id!r} failed: {err}. Fix the cause and run "
                "the 'Provision' action again.",
                messages.ERROR,
            )
            return
        self.message_user(request, f"Tenant {tenant.tenant_id!r}: {done}.", messages.SUCCESS)
