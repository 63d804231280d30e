"""Data seeded by a migration, plus what Django has no operation for: a sequence used as a
column default, a view, a PL/pgSQL function and its trigger, comments on them."""

from __future__ import annotations

from typing import Any

from django.db import migrations

CURRENCIES = [("EUR", "Euro"), ("USD", "US Dollar"), ("GBP", "Pound Sterling")]
COUNTRIES = [
    ("FR", "France", "EUR"),
    ("US", "United States", "USD"),
    ("GB", "United Kingdom", "GBP"),
]


def seed(apps: Any, schema_editor: Any) -> None:
    Currency = apps.get_model("scale_app", "Currency")
    Country = apps.get_model("scale_app", "Country")
    Setting = apps.get_model("scale_app", "Setting")
    Team = apps.get_model("scale_app", "Team")
    by_code = {}
    for code, name in CURRENCIES:
        by_code[code] = Currency.objects.create(code=code, name=name)
    for code, name, currency in COUNTRIES:
        Country.objects.create(code=code, name=name, currency=by_code[currency])
    Setting.objects.create(key="invoice_prefix", value="INV-")
    Team.objects.create(name="Support")


def unseed(apps: Any, schema_editor: Any) -> None:
    for model in ("Country", "Currency", "Setting", "Team"):
        apps.get_model("scale_app", model).objects.all().delete()


SQL = """
CREATE SEQUENCE scale_app_order_number_seq START 1000 INCREMENT 1;
ALTER SEQUENCE scale_app_order_number_seq OWNED BY scale_app_order.number;
ALTER TABLE scale_app_order ALTER COLUMN number SET DEFAULT nextval('scale_app_order_number_seq');
COMMENT ON SEQUENCE scale_app_order_number_seq IS 'Human-facing order numbers';
CREATE VIEW scale_app_open_orders AS
    SELECT o.id, o.number, c.name AS customer, o.total
    FROM scale_app_order o JOIN scale_app_customer c ON c.id = o.customer_id
    WHERE o.status <> 'shipped';
COMMENT ON VIEW scale_app_open_orders IS 'Orders not shipped yet';
CREATE FUNCTION scale_app_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER scale_app_ticket_touch BEFORE INSERT OR UPDATE ON scale_app_ticket
    FOR EACH ROW EXECUTE FUNCTION scale_app_touch();
COMMENT ON TRIGGER scale_app_ticket_touch ON scale_app_ticket IS 'Keeps updated current';
COMMENT ON INDEX order_cust_status_idx IS 'Customer order list';
COMMENT ON CONSTRAINT product_price_gte_0 ON scale_app_product IS 'No negative prices';
"""

REVERSE_SQL = """
DROP TRIGGER scale_app_ticket_touch ON scale_app_ticket;
DROP FUNCTION scale_app_touch();
DROP VIEW scale_app_open_orders;
ALTER TABLE scale_app_order ALTER COLUMN number DROP DEFAULT;
DROP SEQUENCE scale_app_order_number_seq;
"""


class Migration(migrations.Migration):
    dependencies = [("scale_app", "0001_initial")]

    operations = [
        migrations.RunPython(seed, unseed),
        migrations.RunSQL(SQL, REVERSE_SQL),
    ]
