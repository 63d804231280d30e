"""Per-tenant data of the demo (tenant-scoped: one table per tenant schema)."""

from django.db import models


class Marker(models.Model):
    """One row per tenant naming its owner: tests check every response carries its own."""

    tenant_id = models.CharField(max_length=63)

    def __str__(self) -> str:
        return self.tenant_id


class Note(models.Model):
    text = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.text
