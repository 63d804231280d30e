from django.contrib import admin

from omnitenant_async.admin import TenantRestrictAdminMixin

from .models import Marker, Note


@admin.register(Note)
class NoteAdmin(TenantRestrictAdminMixin, admin.ModelAdmin):
    list_display = ("text", "created_at")
    search_fields = ("text",)


@admin.register(Marker)
class MarkerAdmin(TenantRestrictAdminMixin, admin.ModelAdmin):
    list_display = ("tenant_id",)
