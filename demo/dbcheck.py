"""Fail fast, in one line, when the demo's PostgreSQL is not reachable.

Without it a ``manage.py`` command waits for the pool's timeout (20 s) on a refused connection,
then prints a long traceback. ``scripts/demo`` writes the settings of the running demo to
``.demo-env`` at the repository root; the message says how to use it.
"""

from __future__ import annotations

import os

import psycopg

CONNECT_TIMEOUT = int(os.environ.get("OMNITENANT_PG_CONNECT_TIMEOUT", "3"))
# Commands that need no database: never probe for them.
NO_DATABASE = frozenset({"help", "version", "--help", "-h", "--version", "startapp"})


def database_problem() -> str | None:
    """``None`` if the demo's server accepts a connection, else what went wrong, in one line."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    params = {
        "host": db["HOST"],
        "port": db["PORT"],
        "user": db["USER"],
        "dbname": "postgres",  # the demo database may not exist yet: demo_setup creates it
        "connect_timeout": CONNECT_TIMEOUT,
    }
    if db.get("PASSWORD"):
        params["password"] = db["PASSWORD"]
    try:
        psycopg.connect(**params).close()
    except psycopg.Error as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        return (
            f"Cannot reach the demo's PostgreSQL at {db['HOST']}:{db['PORT']} ({reason}). Is "
            "scripts/demo running? Load the environment it wrote, then retry: "
            "`source .demo-env && .venv/bin/python demo/manage.py ...` (or set "
            "OMNITENANT_PG_HOST/OMNITENANT_PG_PORT)."
        )
    return None


def needs_database(argv: list[str]) -> bool:
    command = argv[1] if len(argv) > 1 else "help"
    return command not in NO_DATABASE and "--help" not in argv and "-h" not in argv
