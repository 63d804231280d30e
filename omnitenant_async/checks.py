"""System checks (``manage.py check``): one id per problem, listed in docs/checks.md."""

from __future__ import annotations

import difflib
from importlib import import_module
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections
from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict

from .asgi import configured_threads, pool_max_size
from .conf import KNOWN_KEYS, Config, get_config
from .engines.budget import connection_budget, server_connection_limit
from .engines.postgresql.pooler import POOLER_MODES, behind_pooler
from .models import BaseDomain, BaseTenant
from .resolvers import get_resolver

ENGINES = ("omnitenant_async.backends.postgresql",)
DATABASE_ENGINE = "omnitenant_async.backends.postgresql_dbs"
ROUTER = "omnitenant_async.routers.TenantRouter"
MIDDLEWARE = "omnitenant_async.middleware.TenantMiddleware"


def _config() -> Config | None:
    """The configuration, or ``None`` when it is broken: ``check_config`` reports that (E001)
    once, and the other checks, which need a configuration, stay silent."""
    try:
        return get_config()
    except ImproperlyConfigured:
        return None


@checks.register()
def check_config(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        config = get_config()
    except ImproperlyConfigured as err:
        return [checks.Error(str(err), id="omnitenant.E001")]
    errors: list[checks.CheckMessage] = []
    for key, base in (("TENANT_MODEL", BaseTenant), ("DOMAIN_MODEL", BaseDomain)):
        label = getattr(config, key)
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            errors.append(
                checks.Error(
                    f"OMNITENANT_CONFIG[{key!r}] refers to {label!r}, which is not installed.",
                    hint="Add its app to INSTALLED_APPS or fix the 'app_label.ModelName' string.",
                    id="omnitenant.E002",
                )
            )
            continue
        if not issubclass(model, base):
            errors.append(
                checks.Error(
                    f"{label} must subclass omnitenant_async.models.{base.__name__}.",
                    id="omnitenant.E007",
                )
            )
    try:
        get_resolver()
    except ImproperlyConfigured as err:
        errors.append(checks.Error(str(err), id="omnitenant.E006"))
    return errors


@checks.register()
def check_unknown_keys(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A misspelt key would otherwise be ignored silently, leaving its default in force."""
    raw = getattr(settings, "OMNITENANT_CONFIG", None)
    if not isinstance(raw, dict):
        return []  # E001
    messages: list[checks.CheckMessage] = []
    for key in sorted(k for k in raw if k not in KNOWN_KEYS):
        close = difflib.get_close_matches(str(key).upper(), KNOWN_KEYS, n=1)
        hint = f"Did you mean {close[0]!r}?" if close else "See docs/checks.md for the keys."
        messages.append(
            checks.Warning(
                f"OMNITENANT_CONFIG has an unknown key {key!r}; it is ignored.",
                hint=hint,
                id="omnitenant.W005",
            )
        )
    return messages


@checks.register()
def check_router_and_middleware(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    routers = [
        r if isinstance(r, str) else f"{type(r).__module__}.{type(r).__name__}"
        for r in settings.DATABASE_ROUTERS
    ]
    if ROUTER not in routers:
        messages.append(
            checks.Error(
                f"{ROUTER} is not in DATABASE_ROUTERS.",
                hint="Without it tenant-scoped models are not kept out of the public schema.",
                id="omnitenant.E003",
            )
        )
    middleware = list(settings.MIDDLEWARE)
    if MIDDLEWARE not in middleware:
        messages.append(
            checks.Warning(
                f"{MIDDLEWARE} is not in MIDDLEWARE; requests will run with no tenant.",
                id="omnitenant.W001",
            )
        )
    elif middleware[0] != MIDDLEWARE:
        messages.append(
            checks.Warning(
                f"{MIDDLEWARE} should be first in MIDDLEWARE.",
                hint="Middleware above it (sessions, auth) would run outside the tenant.",
                id="omnitenant.W004",
            )
        )
    return messages


@checks.register(checks.Tags.database)
def check_databases(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    config = _config()
    if config is None:
        return []  # check_config reports it (E001)
    master = config.MASTER_DB_ALIAS
    messages: list[checks.CheckMessage] = []
    db = settings.DATABASES.get(master)
    if db is None:
        return [
            checks.Error(f"MASTER_DB_ALIAS {master!r} is not in DATABASES.", id="omnitenant.E004")
        ]
    if db.get("ENGINE") not in ENGINES:
        messages.append(
            checks.Error(
                f"DATABASES[{master!r}]['ENGINE'] is {db.get('ENGINE')!r}.",
                hint="Set it to 'omnitenant_async.backends.postgresql' for schema tenants.",
                id="omnitenant.E008",
            )
        )
    for alias, conf in settings.DATABASES.items():
        if not str(conf.get("ENGINE", "")).startswith("omnitenant_async."):
            continue
        if conf.get("CONN_MAX_AGE", 0) != 0:
            messages.append(
                checks.Error(
                    f"DATABASES[{alias!r}]['CONN_MAX_AGE'] must be 0.",
                    hint="Under ASGI every request has its own thread: persistent connections "
                    "are orphaned. Use the pool (OPTIONS['pool']) instead.",
                    id="omnitenant.E005",
                )
            )
        options = conf.get("OPTIONS") or {}
        if conf.get("ENGINE") == DATABASE_ENGINE:
            continue  # pools per tenant database are built in (DATABASE_POOL_* settings)
        if not (isinstance(options, dict) and options.get("pool")):
            messages.append(
                checks.Warning(
                    f"DATABASES[{alias!r}] does not use Django's connection pool.",
                    hint="Set OPTIONS['pool'] = {'min_size': ..., 'max_size': ...}; each request "
                    "otherwise opens a new connection.",
                    id="omnitenant.W002",
                )
            )
    return messages


@checks.register(checks.Tags.database)
def check_database_tenants(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """The virtual alias of database tenants, and its connection budget vs. max_connections."""
    config = _config()
    if config is None:
        return []  # check_config reports it (E001)
    alias = config.TENANT_DB_ALIAS
    conf = settings.DATABASES.get(alias)
    misnamed = [a for a, c in settings.DATABASES.items() if c.get("ENGINE") == DATABASE_ENGINE]
    if conf is None:
        return [
            checks.Error(
                f"DATABASES[{a!r}] uses {DATABASE_ENGINE!r} but TENANT_DB_ALIAS is {alias!r}.",
                hint=f"Rename the alias to {alias!r} or set OMNITENANT_CONFIG['TENANT_DB_ALIAS'].",
                id="omnitenant.E010",
            )
            for a in misnamed
        ]
    if conf.get("ENGINE") != DATABASE_ENGINE:
        return [
            checks.Error(
                f"DATABASES[{alias!r}]['ENGINE'] is {conf.get('ENGINE')!r}.",
                hint=f"The alias of database tenants must use {DATABASE_ENGINE!r}.",
                id="omnitenant.E011",
            )
        ]
    if not databases or config.MASTER_DB_ALIAS not in databases:
        return []  # the budget check needs the server: `check --database default`, migrate
    budget = connection_budget()
    try:
        limit = server_connection_limit(config.MASTER_DB_ALIAS)
    except ImproperlyConfigured:
        return []  # the engine refused the connection (an undeclared pooler): E030 says so
    if limit is None or budget.total <= limit:
        return []
    return [
        checks.Warning(
            f"One process may open {budget.total} connections ({budget.max_pools} tenant pools x "
            f"{budget.pool_size} + {budget.master_pool} master) but the server allows {limit}.",
            hint="Lower DATABASE_POOL_MAX_POOLS / DATABASE_POOL_SIZE or the master pool, raise "
            "max_connections, or put PgBouncer in front; the budget counts per process.",
            id="omnitenant.W010",
        )
    ]


@checks.register()
def check_channels_db_threads(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """More consumer DB threads than pooled connections only makes the threads queue."""
    config = _config()
    if config is None:
        return []  # check_config reports it (E001)
    threads = config.CHANNELS_DB_THREADS or 0
    options = (settings.DATABASES.get(config.MASTER_DB_ALIAS) or {}).get("OPTIONS") or {}
    pool = options.get("pool") if isinstance(options, dict) else None
    if threads <= 1 or not pool:
        return []
    # psycopg_pool's defaults: min_size=4, max_size=min_size.
    sizes = pool if isinstance(pool, dict) else {}
    max_size = int(sizes.get("max_size") or sizes.get("min_size") or 4)
    if threads <= max_size:
        return []
    return [
        checks.Warning(
            f"CHANNELS_DB_THREADS is {threads} but the {config.MASTER_DB_ALIAS!r} pool holds at "
            f"most {max_size} connections; the extra threads only wait for a connection.",
            hint="Lower CHANNELS_DB_THREADS or raise OPTIONS['pool']['max_size'].",
            id="omnitenant.W003",
        )
    ]


@checks.register()
def check_invalidation(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The cross-process invalidation must be able to listen (docs/deployment.md)."""
    config = _config()
    if config is None:
        return []  # check_config reports it (E001)
    messages: list[checks.CheckMessage] = []
    dsn = config.INVALIDATION_DSN
    if dsn is not None:
        try:
            conninfo_to_dict(dsn)
        except (ProgrammingError, TypeError) as err:
            messages.append(
                checks.Error(
                    f"OMNITENANT_CONFIG['INVALIDATION_DSN'] is not a libpq connection string "
                    f"({err}).",
                    hint="Use 'host=db port=5432 dbname=app user=app' or "
                    "'postgresql://app@db:5432/app', pointing at the server, not a pooler.",
                    id="omnitenant.E020",
                )
            )
    if not isinstance(config.RETRY_AFTER, int) or config.RETRY_AFTER < 0:
        messages.append(
            checks.Error(
                f"OMNITENANT_CONFIG['RETRY_AFTER'] is {config.RETRY_AFTER!r}; it must be a "
                "whole number of seconds (the 503's Retry-After header).",
                id="omnitenant.E021",
            )
        )
    pooled = config.POOLER == "transaction"
    if config.INVALIDATION_LISTEN and pooled and not dsn:
        messages.append(
            checks.Warning(
                "POOLER is 'transaction' but INVALIDATION_DSN is not set: the invalidation "
                "listener's LISTEN would go through the pooler, which drops notifications, "
                "and other workers would serve changed tenants for REGISTRY_TTL.",
                hint="Set OMNITENANT_CONFIG['INVALIDATION_DSN'] to a direct connection to the "
                "PostgreSQL server (docs/deployment.md).",
                id="omnitenant.W030",
            )
        )
    return messages


@checks.register()
def check_registry(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The bound of the registry's found entries (docs/operations.md, "Scale settings")."""
    config = _config()
    if config is None:
        return []  # check_config reports it (E001)
    bound = config.REGISTRY_MAX_ENTRIES
    if isinstance(bound, int) and not isinstance(bound, bool) and bound >= 1:
        return []
    return [
        checks.Error(
            f"OMNITENANT_CONFIG['REGISTRY_MAX_ENTRIES'] is {bound!r}; it must be a whole "
            "number >= 1 (the most hosts and tenant ids cached per process).",
            hint="Use at least the number of hosts served within REGISTRY_TTL; the default "
            "10000 holds about 7 MB (docs/operations.md, Scale settings).",
            id="omnitenant.E050",
        )
    ]


@checks.register()
def check_spares(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``SPARE_SCHEMAS``: a count, and only with a template to clone them from."""
    config = _config()
    if config is None:
        return []  # check_config reports it (E001)
    count = config.SPARE_SCHEMAS
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        return [
            checks.Error(
                f"OMNITENANT_CONFIG['SPARE_SCHEMAS'] is {count!r}; it must be a whole number "
                ">= 0 (the clones of the template kept ready for create(); 0 turns them off).",
                id="omnitenant.E070",
            )
        ]
    if count and not config.TEMPLATE_SCHEMA:
        return [
            checks.Error(
                f"OMNITENANT_CONFIG['SPARE_SCHEMAS'] is {count} but no TEMPLATE_SCHEMA is set: "
                "spare schemas are clones of the template.",
                hint="Set OMNITENANT_CONFIG['TEMPLATE_SCHEMA'] (docs/operations.md), or "
                "SPARE_SCHEMAS to 0.",
                id="omnitenant.E071",
            )
        ]
    return []


@checks.register(checks.Tags.urls)
def check_urlconfs(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """PUBLIC_URLCONF and TENANT_URLCONF name importable modules (omnitenant_async.urlconf)."""
    config = _config()
    if config is None:
        return []  # check_config reports it (E001)
    messages: list[checks.CheckMessage] = []
    for key in ("PUBLIC_URLCONF", "TENANT_URLCONF"):
        module = getattr(config, key)
        if module is None:
            continue
        try:
            import_module(module)
        except Exception as err:  # ImportError, or the module itself failing to import
            messages.append(
                checks.Error(
                    f"OMNITENANT_CONFIG[{key!r}] = {module!r} cannot be imported "
                    f"({type(err).__name__}: {err}).",
                    hint="Give the dotted path of a URLconf module, like ROOT_URLCONF, or None "
                    "for ROOT_URLCONF.",
                    id="omnitenant.E060",
                )
            )
    return messages


@checks.register(checks.Tags.database)
def check_pooler(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """POOLER's value and what a transaction pooler needs; with ``--database``, detection."""
    config = _config()
    if config is None:
        return []  # check_config reports it (E001)
    if config.POOLER not in POOLER_MODES:
        return [
            checks.Error(
                f"OMNITENANT_CONFIG['POOLER'] is {config.POOLER!r}.",
                hint="Use None (no pooler), 'session' or 'transaction' (docs/deployment.md).",
                id="omnitenant.E031",
            )
        ]
    messages: list[checks.CheckMessage] = []
    master: dict[str, Any] = settings.DATABASES.get(config.MASTER_DB_ALIAS) or {}
    if config.POOLER == "transaction":
        if not master.get("DISABLE_SERVER_SIDE_CURSORS"):
            messages.append(
                checks.Error(
                    "POOLER is 'transaction' but server-side cursors are enabled: their "
                    "WITH HOLD cursors are session state the pooler does not keep.",
                    hint=f"Set DATABASES[{config.MASTER_DB_ALIAS!r}]"
                    "['DISABLE_SERVER_SIDE_CURSORS'] = True.",
                    id="omnitenant.E032",
                )
            )
        options: dict[str, Any] = master.get("OPTIONS") or {}
        if options.get("server_side_binding"):
            messages.append(
                checks.Error(
                    "POOLER is 'transaction' but OPTIONS['server_side_binding'] is on: "
                    "prepared statements are session state the pooler does not keep.",
                    hint="Remove OPTIONS['server_side_binding'].",
                    id="omnitenant.E033",
                )
            )
    if config.POOLER is None and databases and config.MASTER_DB_ALIAS in databases:
        messages += _detect_pooler(config.MASTER_DB_ALIAS, behind_pooler)
    return messages


def _detect_pooler(alias: str, behind_pooler: Any) -> list[checks.CheckMessage]:
    wrapper = connections[alias]
    try:
        with wrapper.cursor():
            raw = wrapper.connection
            found = raw is not None and behind_pooler(raw)
    except ImproperlyConfigured:
        found = True  # the engine refused it at connect time
    except DatabaseError:
        return []  # the server is unreachable: other checks and the request path say so
    if not found:
        return []
    return [
        checks.Error(
            f"DATABASES[{alias!r}] reaches PostgreSQL through a connection pooler, but "
            "OMNITENANT_CONFIG['POOLER'] is not set; the engine refuses such connections.",
            hint="Set POOLER to 'transaction' (PgBouncer transaction mode) or 'session'.",
            id="omnitenant.E030",
        )
    ]


@checks.register()
def check_asgi_threads(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """More reused request threads (omnitenant_async.asgi) than pooled connections."""
    try:
        threads = configured_threads()
    except ImproperlyConfigured as err:
        return [checks.Error(str(err), id="omnitenant.E041")]
    max_size = pool_max_size()
    if max_size is None or threads <= max_size:
        return []
    return [
        checks.Warning(
            f"ASGI_THREADS is {threads} but the master pool holds at most {max_size} "
            "connections; requests on the extra threads only wait for a connection (and may "
            "time out).",
            hint="Lower OMNITENANT_CONFIG['ASGI_THREADS'] or raise OPTIONS['pool']['max_size'].",
            id="omnitenant.W040",
        )
    ]
