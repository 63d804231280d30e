"""How a tenant's data is kept apart. Lives outside ``models`` so it imports before app loading."""

from __future__ import annotations

from django.db import models


class IsolationType(models.IntegerChoices):
    SCHEMA = 0, "Schema"
    DATABASE = 1, "Database"
