"""Test classes run by ``django test --parallel 2`` on our engine (tests/test_statements.py).

Not named ``test_*.py``: pytest must not collect them (the TransactionTestCase flushes the
database it runs in).

Two classes, so the runner really clones the test database (``CREATE DATABASE ... TEMPLATE``)
through the engine, and each worker writes to its own clone.
"""

from django.db import connection
from django.test import TestCase, TransactionTestCase

from demo.customers.models import Tenant


class TenantRowsTest(TestCase):
    def test_rows_are_written_in_a_clone(self) -> None:
        Tenant.objects.create(tenant_id="parallel-a", name="A")
        self.assertEqual(Tenant.objects.filter(tenant_id="parallel-a").count(), 1)
        print(f"database={connection.settings_dict['NAME']}")


class SearchPathTest(TransactionTestCase):
    def test_public_path(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SHOW search_path")
            self.assertEqual(cursor.fetchone()[0], '"public"')  # set by the engine, quoted
        print(f"database={connection.settings_dict['NAME']}")
