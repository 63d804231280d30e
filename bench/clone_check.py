"""Clone a tenant and migrate another with ``bench.scale_settings``; print both catalogs as JSON.

    DJANGO_SETTINGS_MODULE=bench.scale_settings python -m bench.clone_check [--break-fk] [--spare]

Used by tests/test_clone.py. ``--break-fk`` re-points one of the clone's foreign keys at the
template after cloning, the mistake the comparison must catch. ``--spare`` makes the clone
ahead of time as a spare schema (``SPARE_SCHEMAS = 1``), which ``create()`` then renames.
"""

from __future__ import annotations

import json
import sys
from typing import Any

CLONED, MIGRATED = "zzclonedzz", "zzmigratedzz"

# Everything in one schema that a tenant's migrations can make, each as comparable text.
CATALOG_QUERIES = {
    "tables": """SELECT relname, relkind::text, relpersistence::text,
                        coalesce(array_to_string(reloptions, ','), '')
                   FROM pg_class
                  WHERE relnamespace = %(ns)s AND relkind IN ('r','p','v','m','f')""",
    "columns": """SELECT c.relname,
                         row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum)::int,
                         a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                         coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity::text,
                         a.attgenerated::text, coalesce(col_description(c.oid, a.attnum), '')
                    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                   WHERE c.relnamespace = %(ns)s AND a.attnum > 0 AND NOT a.attisdropped
                     AND c.relkind IN ('r','v','m')""",
    "sequences": """SELECT s.sequencename, s.data_type::text, s.start_value, s.increment_by,
                           s.min_value, s.max_value, s.cache_size, s.cycle,
                           coalesce(s.last_value, -1),
                           coalesce((SELECT d.deptype::text || ':' || t.relname || '.' || a.attname
                                       FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid
                                       JOIN pg_attribute a ON a.attrelid = t.oid
                                        AND a.attnum = d.refobjsubid
                                      WHERE d.objid = (quote_ident(s.schemaname) || '.' ||
                                                       quote_ident(s.sequencename))::regclass
                                        AND d.classid = 'pg_class'::regclass
                                        AND d.refclassid = 'pg_class'::regclass
                                        AND d.deptype IN ('a', 'i')
                                        AND t.relnamespace = %(ns)s), 'unowned')
                      FROM pg_sequences s WHERE s.schemaname = %(schema)s""",
    "indexes": """SELECT ic.relname, pg_get_indexdef(i.indexrelid), t.relname
                    FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                    JOIN pg_class t ON t.oid = i.indrelid WHERE ic.relnamespace = %(ns)s""",
    "constraints": """SELECT t.relname, con.conname, con.contype::text,
                             pg_get_constraintdef(con.oid),
                             coalesce(ft.relnamespace::regnamespace::text, ''),
                             coalesce(ft.relname, ''), con.convalidated, con.condeferrable,
                             con.condeferred, coalesce(ic.relname, '')
                        FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid
                        LEFT JOIN pg_class ft ON ft.oid = con.confrelid
                        LEFT JOIN pg_class ic ON ic.oid = con.conindid
                       WHERE t.relnamespace = %(ns)s""",
    "views": """SELECT relname, pg_get_viewdef(oid) FROM pg_class
                 WHERE relnamespace = %(ns)s AND relkind IN ('v', 'm')""",
    "functions": """SELECT proname, pg_get_functiondef(oid) FROM pg_proc
                     WHERE pronamespace = %(ns)s""",
    "triggers": """SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled::text
                     FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                    WHERE c.relnamespace = %(ns)s AND NOT t.tgisinternal""",
    "comments": """SELECT d.classoid::regclass::text,
                          pg_describe_object(d.classoid, d.objoid, d.objsubid),
                          d.description
                     FROM pg_description d
                    WHERE (d.classoid = 'pg_class'::regclass AND d.objoid IN
                             (SELECT oid FROM pg_class WHERE relnamespace = %(ns)s))
                       OR (d.classoid = 'pg_constraint'::regclass AND d.objoid IN
                             (SELECT oid FROM pg_constraint WHERE connamespace = %(ns)s))
                       OR (d.classoid = 'pg_trigger'::regclass AND d.objoid IN
                             (SELECT t.oid FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                               WHERE c.relnamespace = %(ns)s))
                       OR (d.classoid = 'pg_proc'::regclass AND d.objoid IN
                             (SELECT oid FROM pg_proc WHERE pronamespace = %(ns)s))""",
    "types": """SELECT typname, typtype::text FROM pg_type
                 WHERE typnamespace = %(ns)s AND typrelid = 0 AND typelem = 0""",
}


def dump(schema: str) -> dict[str, list[list[object]]]:
    """The catalog of ``schema``, its schema name replaced by ``<S>``, each list sorted."""
    from django.db import connection, transaction
    from psycopg import sql

    from omnitenant_async import use_master_db

    out: dict[str, list[list[object]]] = {}
    with use_master_db(), transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor.connection
        cursor.execute(
            sql.SQL("SET LOCAL search_path = {}").format(sql.Identifier(schema)).as_string(raw)
        )
        cursor.execute("SELECT oid FROM pg_namespace WHERE nspname = %s", [schema])
        (ns,) = cursor.fetchone()
        for name, query in CATALOG_QUERIES.items():
            cursor.execute(query, {"ns": ns, "schema": schema})
            rows = [
                [str(v).replace(schema, "<S>") if isinstance(v, str) else v for v in row]
                for row in cursor.fetchall()
            ]
            out[name] = sorted(rows, key=repr)
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = %s AND relkind = 'r'", [ns]
        )
        data = []
        for (table,) in sorted(cursor.fetchall()):
            t = sql.Identifier(table).as_string(raw)
            if table == "django_migrations":  # applied differs: compare what was applied
                cursor.execute(
                    "SELECT count(*), md5(string_agg(app || '.' || name, ',' ORDER BY id)) "
                    f"FROM {t}"
                )
            else:
                cursor.execute(
                    f"SELECT count(*), md5(string_agg(x::text, ',' ORDER BY x::text)) FROM {t} x"
                )
            data.append([table, *cursor.fetchone()])
        out["data"] = data
    return out


def _create_from_a_spare(backend: Any) -> str:
    from django.conf import settings
    from django.test import override_settings

    from omnitenant_async.provisioning.spares import drop_spares, fill_spares, wait_for_spares

    config = {**settings.OMNITENANT_CONFIG, "SPARE_SCHEMAS": 1}
    with override_settings(OMNITENANT_CONFIG=config):
        fill_spares()
        how: str = backend.create()
        wait_for_spares(60)
        drop_spares()
    return how


def main(argv: list[str]) -> None:
    import django

    django.setup()
    from django.db import connection

    from omnitenant_async import use_master_db
    from omnitenant_async.provisioning import get_tenant_backend
    from omnitenant_async.provisioning.clone import _unapplied, migrate_template
    from omnitenant_async.utils import get_tenant_model

    Tenant = get_tenant_model()
    template = migrate_template()
    with use_master_db():
        for tid in (CLONED, MIGRATED):
            old = Tenant.objects.filter(tenant_id=tid).first()
            get_tenant_backend(old or Tenant(tenant_id=tid)).delete(drop=True)
        cloned = Tenant(tenant_id=CLONED, name=CLONED)
        cloner = get_tenant_backend(cloned)
        if "--spare" in argv:
            how = _create_from_a_spare(cloner)
        else:
            how = cloner.create()
        migrated = Tenant(tenant_id=MIGRATED, name=MIGRATED)
        backend = get_tenant_backend(migrated)
        backend.create(run_migrations=False)
        backend.migrate()
    if "--break-fk" in argv:
        with use_master_db(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
                [f"{CLONED}.scale_app_country"],
            )
            (name,) = cursor.fetchone()
            cursor.execute(
                f"ALTER TABLE {CLONED}.scale_app_country DROP CONSTRAINT {name}, "
                f"ADD CONSTRAINT {name} FOREIGN KEY (currency_id) REFERENCES "
                f"{template}.scale_app_currency (id) DEFERRABLE INITIALLY DEFERRED"
            )
    result = {
        "how": how,
        "why": cloner.provisioned_why,
        "cloned": dump(CLONED),
        "migrated": dump(MIGRATED),
        "unapplied_on_clone": _unapplied(connection.alias, CLONED),
    }
    with use_master_db():
        for tenant in (cloned, migrated):
            get_tenant_backend(tenant).delete(drop=True)
    json.dump(result, sys.stdout, default=str)


if __name__ == "__main__":
    main(sys.argv[1:])
