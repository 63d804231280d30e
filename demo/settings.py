"""Settings of the demo project, which is also the test project.

The database comes from the environment (the README's commands start a throwaway PostgreSQL
and export these): OMNITENANT_PG_HOST, OMNITENANT_PG_PORT, OMNITENANT_PGUSER,
OMNITENANT_PGPASSWORD, OMNITENANT_PGDATABASE.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = ["*"]  # TenantMiddleware validates hosts itself; unknown ones get 404
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "omnitenant_async",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "channels",
    "demo.customers",
    "demo.notes",
]

MIDDLEWARE = [
    "omnitenant_async.middleware.TenantMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "demo.urls"
# The admin's CSS/JS, served by demo.views.static (uvicorn alone, no collectstatic).
STATIC_URL = "static/"
ASGI_APPLICATION = "demo.asgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

POOL_MIN = int(os.environ.get("OMNITENANT_POOL_MIN", "2"))
POOL_MAX = int(os.environ.get("OMNITENANT_POOL_MAX", "16"))
POOL_TIMEOUT = float(os.environ.get("OMNITENANT_POOL_TIMEOUT", "20"))

DATABASES = {
    "default": {
        "ENGINE": "omnitenant_async.backends.postgresql",
        "NAME": os.environ.get("OMNITENANT_PGDATABASE", "omnitenant_demo"),
        "USER": os.environ.get("OMNITENANT_PGUSER", "postgres"),
        "PASSWORD": os.environ.get("OMNITENANT_PGPASSWORD", ""),
        "HOST": os.environ.get("OMNITENANT_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("OMNITENANT_PG_PORT", "5432"),
        "CONN_MAX_AGE": 0,
        "OPTIONS": {
            "pool": {"min_size": POOL_MIN, "max_size": POOL_MAX, "timeout": POOL_TIMEOUT},
            # A server that does not answer is an error in seconds, not a hang.
            "connect_timeout": int(os.environ.get("OMNITENANT_PG_CONNECT_TIMEOUT", "5")),
        },
        "TEST": {"NAME": os.environ.get("OMNITENANT_PGDATABASE", "omnitenant_demo")},
    }
}
# Database tenants (docs/database-tenants.md): one virtual alias serves them all. Each tenant's
# database comes from its config; HOST/PORT/USER/PASSWORD default to the master's.
DATABASES["tenants"] = {"ENGINE": "omnitenant_async.backends.postgresql_dbs", "CONN_MAX_AGE": 0}
DATABASE_ROUTERS = ["omnitenant_async.routers.TenantRouter"]

# Cache keys carry the tenant (docs/cache.md).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "KEY_FUNCTION": "omnitenant_async.cache.make_key",
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

OMNITENANT_CONFIG = {
    "TENANT_MODEL": "customers.Tenant",
    "DOMAIN_MODEL": "customers.Domain",
    "TENANT_RESOLVER": os.environ.get(
        "OMNITENANT_RESOLVER", "omnitenant_async.resolvers.CustomDomainTenantResolver"
    ),
    "PUBLIC_HOST": ["localhost", "127.0.0.1"],
    "BASE_DOMAIN": "localhost",
    "SHARED_APPS": ["contenttypes", "auth", "sessions", "admin"],
    "REGISTRY_TTL": float(os.environ.get("OMNITENANT_REGISTRY_TTL", "60")),
    # Connection budget to tenant databases per process: MAX_POOLS x POOL_SIZE.
    "DATABASE_POOL_MAX_POOLS": int(os.environ.get("OMNITENANT_DB_MAX_POOLS", "20")),
    "DATABASE_POOL_SIZE": int(os.environ.get("OMNITENANT_DB_POOL_SIZE", "2")),
    "CHANNELS_DB_THREADS": int(os.environ.get("OMNITENANT_CHANNELS_DB_THREADS", "0")),
    # Behind PgBouncer (docs/deployment.md): "session" or "transaction".
    "POOLER": os.environ.get("OMNITENANT_POOLER") or None,
    # The LISTEN connection must reach the server directly, not through a transaction pooler.
    "INVALIDATION_DSN": os.environ.get("OMNITENANT_INVALIDATION_DSN") or None,
}
if OMNITENANT_CONFIG["POOLER"] == "transaction":
    # Server-side cursors (WITH HOLD) are session state a transaction pooler cannot keep.
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True

# The live feed (docs/channels.md): Redis when OMNITENANT_REDIS_URL is set (several processes),
# else the in-memory layer (one process).
if os.environ.get("OMNITENANT_REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 defaults to socket_timeout=5, which aborts the layer's 5 s blocking
                # BZPOPMIN and kills idle consumers (channels_redis#422): give it more than 5 s.
                "hosts": [{"address": os.environ["OMNITENANT_REDIS_URL"], "socket_timeout": 10}],
                # Pending messages for ALL consumers of one process (one key); group_send drops
                # the rest silently. The default 100 loses bursts (docs/channels.md).
                "capacity": 1000,
                # Keeps one test's keys apart from another's on a shared Redis.
                "prefix": os.environ.get("OMNITENANT_REDIS_PREFIX", "asgi"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django.request": {"handlers": ["console"], "level": "ERROR"},
        "django.security": {"handlers": ["console"], "level": "CRITICAL"},
    },
}

# Celery (docs/tasks.md): the throwaway Redis of scripts/test, on its own database numbers so
# broker and results never meet the channel layer's or the cache tests' keys.
CELERY_BROKER_URL = os.environ.get("OMNITENANT_CELERY_BROKER_URL") or (
    os.environ.get("OMNITENANT_REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/3"
)
CELERY_RESULT_BACKEND = CELERY_BROKER_URL.rsplit("/", 1)[0] + "/4"
CELERY_TASK_SERIALIZER = CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 600
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
