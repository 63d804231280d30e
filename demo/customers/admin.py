from django.contrib import admin

from omnitenant_async.admin import TenantAdmin

from .models import Tenant

admin.site.register(Tenant, TenantAdmin)
