"""Where we lean on Django's private code, the installed Django must still be what we read.

Three places stand in for, or around, private Django code (docs/architecture.md, "Django
internals we rely on"). Each test reads the installed Django's source, so an upgrade that
changes what we depend on fails here, naming the code to review, instead of misbehaving.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

from django.contrib.contenttypes.models import ContentTypeManager
from django.db.backends.postgresql import base as pg

from omnitenant_async._contenttypes import TenantKeyedCache
from omnitenant_async.engines.postgresql_dbs.base import _SettingsView


def _tree(func: Callable[..., Any]) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(func)))


def _self_attributes(func: Callable[..., Any]) -> set[str]:
    """Every ``self.<name>`` that ``func`` reads or writes."""
    return {
        node.attr
        for node in ast.walk(_tree(func))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    }


def test_get_connection_params_reads_only_what_the_settings_view_has() -> None:
    """``postgresql_dbs`` runs Django's ``get_connection_params`` on a ``_SettingsView``."""
    view = _SettingsView.__init__.__code__.co_names
    used = _self_attributes(pg.DatabaseWrapper.get_connection_params)
    missing = used - set(view)
    assert not missing, (
        f"Django's get_connection_params now reads self.{', self.'.join(sorted(missing))}; "
        "give engines/postgresql_dbs/base.py:_SettingsView those attributes."
    )


# sha256 of Django's _configure_connection, _configure_timezone and _configure_role as read by
# engines/postgresql_dbs/base.py:DatabaseWrapper._configurer (Django 5.2 through 6.1).
CONFIGURE_SOURCES = {"513bf31b181b0945e4947b7f1a679920d6f4b189933fb23a7cdf90be2a19f6b8"}


def _configure_fingerprint() -> str:
    parts = [
        textwrap.dedent(inspect.getsource(getattr(pg.DatabaseWrapper, name)))
        for name in ("_configure_connection", "_configure_timezone", "_configure_role")
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def test_pool_configure_matches_djangos_per_connection_set_up() -> None:
    """Tenant pools configure connections like Django's pool does (time zone, assume_role)."""
    fingerprint = _configure_fingerprint()
    assert fingerprint in CONFIGURE_SOURCES, (
        "Django's per-connection set-up (postgresql DatabaseWrapper._configure_connection / "
        "_configure_timezone / _configure_role) changed. Re-read it, bring "
        "engines/postgresql_dbs/base.py:DatabaseWrapper._configurer in line, then add "
        f"{fingerprint!r} to CONFIGURE_SOURCES."
    )


def _cache_uses() -> set[str]:
    """How ContentTypeManager touches ``self._cache``: 'm:<method>', '[]' or '=' (outside init)."""
    uses: set[str] = set()
    for name, member in vars(ContentTypeManager).items():
        if not inspect.isfunction(member):
            continue
        for node in ast.walk(_tree(member)):
            for child in ast.iter_child_nodes(node):
                if not (
                    isinstance(child, ast.Attribute)
                    and child.attr == "_cache"
                    and isinstance(child.value, ast.Name)
                    and child.value.id == "self"
                ):
                    continue
                if isinstance(node, ast.Attribute):
                    uses.add(f"m:{node.attr}")
                elif isinstance(node, ast.Subscript):
                    uses.add("[]")
                elif isinstance(node, ast.Compare):
                    uses.add("in")
                elif isinstance(node, ast.Assign) and name != "__init__":
                    uses.add("=")
    return uses


def test_contenttype_cache_is_used_only_through_what_the_tenant_cache_keys() -> None:
    """``_contenttypes.install`` swaps the manager's per-alias dict for a per-tenant one."""
    keyed = {"[]", "in"} | {f"m:{name}" for name in ("get", "setdefault", "clear")}
    uses = _cache_uses()
    assert uses, "ContentTypeManager no longer has a _cache: review omnitenant_async/_contenttypes"
    assert uses <= keyed, (
        f"ContentTypeManager now uses its _cache through {sorted(uses - keyed)}; "
        "TenantKeyedCache (omnitenant_async/_contenttypes.py) keys only "
        f"{sorted(keyed)}: extend it so no tenant reads another's content type ids."
    )
    assert isinstance(ContentTypeManager().__dict__.get("_cache"), dict)
    assert issubclass(TenantKeyedCache, dict)


# sha256 of Django's postgresql DatabaseIntrospection.get_table_list (5.2 through 6.1), whose
# query engines/postgresql/introspection.py restates without the per-row visibility check.
TABLE_LIST_SOURCES = {"f936789e0b417183cd2cf29bc446ba09baac79fe2181d0026fbd7589d65169fe"}


def test_table_list_matches_djangos_query() -> None:
    from django.db.backends.postgresql import introspection

    source = textwrap.dedent(inspect.getsource(introspection.DatabaseIntrospection.get_table_list))
    fingerprint = hashlib.sha256(source.encode()).hexdigest()
    assert fingerprint in TABLE_LIST_SOURCES, (
        "Django's postgresql get_table_list changed. Bring "
        "omnitenant_async/engines/postgresql/introspection.py:TABLE_LIST in line (same columns, "
        f"same relkinds), check tests/test_introspection.py, then add {fingerprint!r} to "
        "TABLE_LIST_SOURCES."
    )


def _calls(func: Callable[..., Any]) -> list[str]:
    """The ``self.<method>(...)`` calls of ``func``, in source order."""
    calls = [
        node
        for node in ast.walk(_tree(func))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "self"
    ]
    return [c.func.attr for c in sorted(calls, key=lambda c: (c.lineno, c.col_offset))]  # type: ignore[attr-defined]


def test_connect_builds_the_params_once_for_get_new_connection_only() -> None:
    """The engine skips ``connect()``'s own ``get_connection_params()`` on a pooled alias
    (engines/postgresql/base.py): it must be connect()'s first call of it, and its result
    must go nowhere but to ``get_new_connection``, which must read it only when unpooled."""
    from django.db.backends.base.base import BaseDatabaseWrapper

    connect = inspect.unwrap(BaseDatabaseWrapper.connect)
    calls = _calls(connect)
    assert calls.count("get_connection_params") == 1
    assert calls.index("get_connection_params") < calls.index("get_new_connection")
    names = [
        n.id for n in ast.walk(_tree(connect)) if isinstance(n, ast.Name) and n.id == "conn_params"
    ]
    assert len(names) == 2, "connect() now uses conn_params for more than get_new_connection"
    new = _tree(pg.DatabaseWrapper.get_new_connection)
    reads = [
        n for n in ast.walk(new)
        if isinstance(n, ast.Name) and n.id == "conn_params" and isinstance(n.ctx, ast.Load)
    ]  # fmt: skip
    assert len(reads) == 1, "get_new_connection now reads conn_params outside Database.connect()"
    pool_branch = next(
        n for n in ast.walk(new) if isinstance(n, ast.If) and "pool" in ast.unparse(n.test)
    )
    assert "conn_params" not in ast.unparse(ast.Module(body=pool_branch.body, type_ignores=[]))
