"""The ``OMNITENANT_CONFIG`` settings dict, read lazily and re-read when tests override it."""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULT_SHARED_APPS = ("contenttypes", "auth", "sessions", "admin")


@dataclass(frozen=True)
class Config:
    TENANT_MODEL: str
    DOMAIN_MODEL: str
    TENANT_RESOLVER: str = "omnitenant_async.resolvers.CustomDomainTenantResolver"
    # Hosts served by the public schema / master database (no tenant).
    PUBLIC_HOST: tuple[str, ...] = ()
    # Parent domain for SubdomainTenantResolver; defaults to the first PUBLIC_HOST.
    BASE_DOMAIN: str | None = None
    TENANT_HEADER: str = "X-Tenant-ID"
    PATH_PREFIX: str = "t"
    # Query-string parameter read by the Channels middleware (None: not used).
    QUERY_PARAM: str | None = None
    MASTER_DB_ALIAS: str = "default"
    # App labels living only in the master database's public schema.
    MASTER_APPS: tuple[str, ...] = ()
    # App labels migrated in public *and* in every tenant; the tenant's copy wins.
    SHARED_APPS: tuple[str, ...] = DEFAULT_SHARED_APPS
    # Schemas appended to every tenant's search_path after its own (public is always last).
    EXTRA_SEARCH_PATHS: tuple[str, ...] = ()
    TEMPLATE_SCHEMA: str | None = None
    # Clones of the template kept ready, so that create() renames one instead of cloning
    # (provisioning/spares.py); 0: off. Needs TEMPLATE_SCHEMA.
    SPARE_SCHEMAS: int = 0
    # URLconf of the public host / of every tenant (None: ROOT_URLCONF); a tenant's
    # config["urlconf"] overrides the latter (omnitenant_async.urlconf).
    PUBLIC_URLCONF: str | None = None
    TENANT_URLCONF: str | None = None
    # Send ``SET search_path`` in the same message as the next query (no extra round trip).
    PIGGYBACK_SEARCH_PATH: bool = True
    # A connection pooler between the engine and PostgreSQL (docs/deployment.md): None (none,
    # detected and refused if there is one), "session" (PgBouncer session mode) or
    # "transaction" (every transaction carries its own SET LOCAL search_path).
    POOLER: str | None = None
    REGISTRY_TTL: float = 60.0
    # Found keys (hosts, tenant ids) cached per process, least recently used evicted first;
    # ~750 bytes each, 7 MB at the default (bench/bench_memory.py).
    REGISTRY_MAX_ENTRIES: int = 10_000
    REGISTRY_NEGATIVE_TTL: float = 5.0
    REGISTRY_MAX_NEGATIVE: int = 1024
    # Cross-process invalidation (docs/deployment.md): LISTEN in each serving process, on the
    # master alias's server unless INVALIDATION_DSN (a libpq conninfo/URI) names a direct one.
    INVALIDATION_LISTEN: bool = True
    INVALIDATION_DSN: str | None = None
    # Seconds in the Retry-After of the 503 answered while the database cannot be reached.
    RETRY_AFTER: int = 5
    MIGRATION_THREADS: int = 4
    # Database tenants (docs/database-tenants.md): the virtual alias and its pools. The
    # process's budget of server connections to tenant databases is MAX_POOLS x POOL_SIZE.
    TENANT_DB_ALIAS: str = "tenants"
    DATABASE_POOL_MAX_POOLS: int = 20
    DATABASE_POOL_SIZE: int = 2
    DATABASE_POOL_MAX_IDLE: float = 60.0
    DATABASE_POOL_TIMEOUT: float = 10.0
    # Check each pooled connection of a tenant database on checkout (engines/health.py).
    DATABASE_POOL_CHECK: bool = True
    DATABASE_NAME_PREFIX: str = "tenant_"
    # Clone new tenant databases from this (migrated) database instead of an empty one.
    DATABASE_TEMPLATE: str | None = None
    # Database that CREATE/DROP DATABASE connect to on a tenant's server.
    DATABASE_MAINTENANCE_DB: str = "postgres"
    # Channels consumers: spread their database work over N threads (None/0: asgiref's one).
    CHANNELS_DB_THREADS: int | None = None
    # omnitenant_async.asgi: reused request threads (None: the master pool's max_size, or 8).
    ASGI_THREADS: int | None = None

    @property
    def base_domain(self) -> str | None:
        return self.BASE_DOMAIN or (self.PUBLIC_HOST[0] if self.PUBLIC_HOST else None)

    @property
    def master_apps(self) -> frozenset[str]:
        """``MASTER_APPS`` plus the apps of the tenant and domain models and our own."""
        labels = {self.TENANT_MODEL.partition(".")[0], self.DOMAIN_MODEL.partition(".")[0]}
        return frozenset(self.MASTER_APPS) | labels | {"omnitenant_async"}


#: Every key OMNITENANT_CONFIG may hold; others are reported by check omnitenant.W005.
KNOWN_KEYS: frozenset[str] = frozenset(f.name for f in fields(Config))

_TUPLE_KEYS = ("PUBLIC_HOST", "MASTER_APPS", "SHARED_APPS", "EXTRA_SEARCH_PATHS")


def _as_tuple(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ImproperlyConfigured(
        f"OMNITENANT_CONFIG[{key!r}] has value {value!r}; it must be a string or a list of strings."
    )


@functools.cache
def get_config() -> Config:
    """Return the validated configuration; raise ``ImproperlyConfigured`` naming the bad key."""
    raw = getattr(settings, "OMNITENANT_CONFIG", None)
    if not isinstance(raw, dict):
        raise ImproperlyConfigured(
            "Set OMNITENANT_CONFIG in your settings to a dict with at least 'TENANT_MODEL' and "
            "'DOMAIN_MODEL' (e.g. {'TENANT_MODEL': 'customers.Tenant', ...})."
        )
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in KNOWN_KEYS:
            continue  # a typo: reported by check omnitenant.W005, naming the closest key
        if key in _TUPLE_KEYS:
            values[key] = _as_tuple(key, value)
        else:
            values[key] = value
    for key in ("TENANT_MODEL", "DOMAIN_MODEL"):
        model = values.get(key)
        if not isinstance(model, str) or model.count(".") != 1:
            raise ImproperlyConfigured(
                f"OMNITENANT_CONFIG[{key!r}] must be an 'app_label.ModelName' string, "
                f"got {model!r}."
            )
    values["PUBLIC_HOST"] = tuple(h.lower() for h in values.get("PUBLIC_HOST", ()))
    return Config(**values)


@receiver(setting_changed)
def _reset_config(*, setting: str, **kwargs: Any) -> None:
    if setting in ("OMNITENANT_CONFIG", "DATABASES"):
        get_config.cache_clear()
