"""Django's DiscoverRunner that also writes the outcome of every test as JSON.

``scripts/django-suite`` compares two such files (stock engine vs ours) with ``compare.py``.
The file named by the environment variable ``OT_SUITE_RESULT`` gets::

    {"tests_run": N, "failures": {id: traceback}, "errors": {id: traceback},
     "skipped": {id: reason}, "expected_failures": [id], "unexpected_successes": [id],
     "crash": null | traceback}

Parallel runs (``--parallel N``) replay every worker's events onto the main process's result, so
the ids are the same whatever the number of processes. ``crash`` is set when the run itself broke
(test database set-up or tear-down, a worker dying): then the counts are partial. Subtest ids
that print an object (``[<object object at 0x7f...>]``) lose the address, which changes from run
to run.

One work-around, for both engines alike: Django's parallel runner forks its workers *after* the
system checks have reopened the parent's pool (``DatabaseWrapper._connection_pools`` is a class
attribute, and ``setup_worker_connection`` only closes the connection, which goes back to that
pool). Every worker then draws the parent's idle connections - the same sockets, to the template
database - and the run hangs or times out on the pool. So the runner closes every pool right
before the suite starts; each worker then opens its own, on its clone.
"""

from __future__ import annotations

import json
import os
import re
import traceback
import unittest
from typing import Any

from django.db import connections
from django.test.runner import DiscoverRunner

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def test_id(test: Any) -> str:
    return _ADDRESS.sub(" at 0x...", test.id())


def _ids(pairs: list[tuple[Any, str]]) -> dict[str, str]:
    return {test_id(test): text for test, text in pairs}


def close_pools() -> None:
    for conn in connections.all(initialized_only=True):
        conn.close()
        close_pool = getattr(conn, "close_pool", None)
        if close_pool is not None:
            close_pool()


class CollectingRunner(DiscoverRunner):
    _ot_result: unittest.TestResult | None = None

    def run_suite(self, suite: Any, **kwargs: Any) -> Any:
        close_pools()
        result = super().run_suite(suite, **kwargs)
        self._ot_result = result
        return result

    def run_tests(self, *args: Any, **kwargs: Any) -> Any:
        crash = None
        try:
            return super().run_tests(*args, **kwargs)
        except BaseException:
            crash = traceback.format_exc()
            raise
        finally:
            self._ot_write(crash)

    def _ot_write(self, crash: str | None) -> None:
        path = os.environ.get("OT_SUITE_RESULT")
        if not path:
            return
        r = self._ot_result
        data: dict[str, Any] = {"tests_run": 0, "crash": crash}
        if r is not None:
            data.update(
                tests_run=r.testsRun,
                failures=_ids(r.failures),
                errors=_ids(r.errors),
                skipped=_ids(r.skipped),
                expected_failures=sorted(test_id(t) for t, _ in r.expectedFailures),
                unexpected_successes=sorted(test_id(t) for t in r.unexpectedSuccesses),
            )
        elif crash is None:
            data["crash"] = "the runner returned before running the suite"
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
