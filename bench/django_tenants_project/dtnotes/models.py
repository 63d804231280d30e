from django.db import models


class Marker(models.Model):
    """One row per tenant naming its owner (same model as demo.notes.Marker)."""

    tenant_id = models.CharField(max_length=63)
