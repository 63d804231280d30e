from __future__ import annotations

from django.apps import AppConfig, apps
from django.core.exceptions import ImproperlyConfigured
from django.db.models.signals import post_delete, post_save


class OmnitenantAsyncConfig(AppConfig):
    name = "omnitenant_async"
    label = "omnitenant_async"
    verbose_name = "Omnitenant (async)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at the top: Django imports this module before any model can be,
        # and these modules reach models and database settings.
        from . import (
            checks,  # noqa: F401  (registers the system checks)
            urlconf,  # noqa: F401  (tenant_context switches the URLconf)
        )
        from .engines import database_settings  # noqa: F401  (builds database tenants' state)

        if apps.is_installed("channels"):  # W020/W021 (channels_redis); imports channels
            from .channels import checks as channel_checks  # noqa: F401
        from .conf import get_config
        from .invalidation import invalidate_registry

        try:
            config = get_config()
            models = [apps.get_model(label) for label in (config.TENANT_MODEL, config.DOMAIN_MODEL)]
        except (ImproperlyConfigured, LookupError, ValueError):
            # A broken OMNITENANT_CONFIG must not crash start-up: `manage.py check` reports it
            # as omnitenant.E001/E002, which it could not if ready() raised first.
            return
        for model in models:
            label = model._meta.label
            post_save.connect(
                invalidate_registry, sender=model, dispatch_uid=f"omnitenant-{label}-save"
            )
            post_delete.connect(
                invalidate_registry, sender=model, dispatch_uid=f"omnitenant-{label}-del"
            )
        if apps.is_installed("django.contrib.contenttypes"):
            from . import _contenttypes

            _contenttypes.install()
