"""Spare schemas: the template cloned ahead of time, so that ``create()`` only renames one.

A clone spends 50-80 ms on the server, nearly all of it creating ~250 relations and their
files (bench/RESULTS.md); no statement order removes that. With
``OMNITENANT_CONFIG["SPARE_SCHEMAS"] = N`` the work is done before a sign-up needs it: N schemas
named ``omnitenant_spare_<hex>`` (an underscore, so never a tenant id) are cloned from the
template and stamped, by ``COMMENT ON SCHEMA``, with the digest of the plan that made them.

``create()`` claims a spare whose stamp is the *current* plan's digest and renames it to the
tenant's schema in one transaction (``ALTER SCHEMA ... RENAME``: one catalog row, no file is
touched; nothing inside a clone names its schema), then wakes a background thread that clones
a replacement. A spare of an older template is never claimed; refilling drops it. Claims lock
the spare with a transaction-level advisory lock (``pg_try_advisory_xact_lock``), so two
concurrent ``create()`` never get the same one, and nothing relies on session state (safe
behind a transaction-mode pooler).
"""

from __future__ import annotations

import contextvars
import logging
import os
import secrets
import threading
from dataclasses import dataclass

from django.db import DatabaseError, connections, transaction
from psycopg import errors, sql

from ..conf import get_config
from ..context import use_master_db
from .clone import ClonePlan, _raw, clone_plan

__all__ = [
    "SPARE_PREFIX",
    "SpareReport",
    "claim_spare",
    "drop_spares",
    "fill_spares",
    "list_spares",
    "refill_spares_soon",
    "wait_for_spares",
]

logger = logging.getLogger("omnitenant_async.provisioning")

#: Spare schemas are named this plus 12 hex digits. Tenant ids are DNS labels (no ``_``).
SPARE_PREFIX = "omnitenant_spare_"

# First key of the advisory locks that guard spares ('otsp'); the second is the schema's oid.
_LOCK_SPACE = 0x6F747370

# Names in [prefix, prefix with its last character raised): a range scan of pg_namespace's
# name index, not a pass over every tenant's schema ("name" sorts bytewise).
_ABOVE = SPARE_PREFIX[:-1] + chr(ord(SPARE_PREFIX[-1]) + 1)
_BETWEEN = f"nspname >= '{SPARE_PREFIX}' AND nspname < '{_ABOVE}'"

# The first spare with this stamp that no other transaction holds, locked until commit.
_CLAIM_QUERY = f"""
WITH spare AS MATERIALIZED (
    SELECT oid, nspname FROM pg_namespace
     WHERE {_BETWEEN} AND obj_description(oid, 'pg_namespace') = %(digest)s
     ORDER BY nspname)
SELECT nspname FROM spare WHERE pg_try_advisory_xact_lock(%(space)s, oid::int4) LIMIT 1
"""

_LIST_QUERY = f"""
SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace
 WHERE {_BETWEEN} ORDER BY nspname
"""


@dataclass(frozen=True, slots=True)
class SpareReport:
    """What :func:`fill_spares` did: spares made, stale ones dropped, current ones now."""

    made: int
    dropped: int
    ready: int
    #: Why none could be made (no current template), else empty.
    why: str = ""


def _alias(alias: str | None) -> str:
    return alias or get_config().MASTER_DB_ALIAS


def list_spares(alias: str | None = None) -> list[tuple[str, str | None]]:
    """``(name, stamp)`` of every spare schema on the master database."""
    with use_master_db(), connections[_alias(alias)].cursor() as cursor:
        cursor.execute(_LIST_QUERY)
        return [(name, stamp) for name, stamp in cursor.fetchall()]


def claim_spare(schema: str, plan: ClonePlan, alias: str | None = None) -> str | None:
    """Rename a current spare to ``schema``; return the spare's name, or ``None`` if none is left.

    Raises the ``DatabaseError`` of a ``schema`` that already exists (the spare stays).
    """
    alias = _alias(alias)
    connection = connections[alias]
    for _ in range(3):  # a spare renamed by a claim that committed after our scan: next one
        try:
            with use_master_db(), transaction.atomic(using=alias), connection.cursor() as cursor:
                params: dict[str, str | int] = {"digest": plan.digest, "space": _LOCK_SPACE}
                cursor.execute(_CLAIM_QUERY, params)
                row = cursor.fetchone()
                if row is None:
                    return None
                rename = sql.SQL("ALTER SCHEMA {} RENAME TO {}; COMMENT ON SCHEMA {} IS NULL")
                new = sql.Identifier(schema)
                cursor.execute(
                    rename.format(sql.Identifier(row[0]), new, new).as_string(_raw(cursor))
                )
                return str(row[0])
        except DatabaseError as err:
            if not isinstance(err.__cause__, errors.InvalidSchemaName):
                raise
    return None


def _make_spare(plan: ClonePlan, alias: str) -> str:
    name = SPARE_PREFIX + secrets.token_hex(6)
    connection = connections[alias]
    with use_master_db(), transaction.atomic(using=alias), connection.cursor() as cursor:
        stamp = sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
            sql.Identifier(name), sql.Literal(plan.digest)
        )
        cursor.execute(plan.statement(name, _raw(cursor)) + "\n" + stamp.as_string(_raw(cursor)))
    return name


def _drop(name: str, alias: str) -> bool:
    """Drop one spare unless a claim holds it (then it is that claim's)."""
    connection = connections[alias]
    with use_master_db(), transaction.atomic(using=alias), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(%s, oid::int4) FROM pg_namespace WHERE nspname = %s",
            [_LOCK_SPACE, name],
        )
        row = cursor.fetchone()
        if row is None or not row[0]:
            return False
        drop = sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name))
        cursor.execute(drop.as_string(_raw(cursor)))
    return True


def fill_spares(count: int | None = None, alias: str | None = None) -> SpareReport:
    """Drop stale spares and clone new ones until ``count`` (``SPARE_SCHEMAS``) are current.

    Spares beyond ``count`` are kept (the next sign-ups claim them). Without a current
    template nothing is made, and every spare is stale.
    """
    alias = _alias(alias)
    count = get_config().SPARE_SCHEMAS if count is None else count
    plan, why = clone_plan(alias)
    digest = plan.digest if plan is not None else None
    dropped = 0
    ready = 0
    for name, stamp in list_spares(alias):
        if stamp == digest:
            ready += 1
        elif _drop(name, alias):
            dropped += 1
    if plan is None:
        return SpareReport(made=0, dropped=dropped, ready=0, why=why)
    made = 0
    while ready + made < count:
        _make_spare(plan, alias)
        made += 1
    return SpareReport(made=made, dropped=dropped, ready=ready + made)


def drop_spares(alias: str | None = None) -> int:
    """Drop every spare schema no claim holds; return how many were dropped."""
    alias = _alias(alias)
    return sum(_drop(name, alias) for name, _ in list_spares(alias))


class _Refiller:
    """One daemon thread per process that tops the spares up after claims.

    It runs in an empty context (no tenant), on its own thread's connections, which it
    closes after each round, and logs failures: a failed refill only means the next
    ``create()`` clones.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        with self._lock:
            self._idle.clear()
            self._wanted.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="omnitenant-spares", daemon=True
                )
                self._thread.start()

    def wait(self, timeout: float | None) -> bool:
        return self._idle.wait(timeout)

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            try:
                report = contextvars.Context().run(fill_spares)
                if report.made or report.dropped:
                    logger.info(
                        "Spare schemas: %d made, %d stale dropped, %d ready.",
                        report.made, report.dropped, report.ready,
                    )  # fmt: skip
            except Exception:
                logger.exception("Refilling spare schemas failed; create() clones meanwhile.")
            finally:
                connections.close_all()
            with self._lock:
                if not self._wanted.is_set():
                    self._idle.set()


_refiller = _Refiller()


def _reset_after_fork() -> None:
    global _refiller
    _refiller = _Refiller()  # the parent's thread does not exist in the child


os.register_at_fork(after_in_child=_reset_after_fork)


def refill_spares_soon() -> None:
    """Wake this process's refill thread (started on first use); returns at once."""
    _refiller.request()


def wait_for_spares(timeout: float | None = None) -> bool:
    """Wait until this process's refill thread is idle; ``False`` on timeout."""
    return _refiller.wait(timeout)
