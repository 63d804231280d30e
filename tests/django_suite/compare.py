"""Compare two result files of ``ot_suite_runner`` (stock engine vs ours).

    python compare.py STOCK.json OURS.json

Prints each run's counts, then every difference: a test that fails, errors or unexpectedly
succeeds in one run and not (or not the same way) in the other, with its traceback; a test
skipped in one run only; a different number of tests run. Exit status: 0 identical, 1 different,
2 a run crashed or left no result.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

KINDS = ("failures", "errors", "unexpected_successes")


def load(path: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"{path}: no result ({exc})")
        return None
    return data


def bad(data: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """``{test id: (kind, traceback)}`` for every test that did not pass as it should."""
    out: dict[str, tuple[str, str]] = {}
    for kind in KINDS:
        items = data.get(kind) or {}
        if isinstance(items, list):
            items = dict.fromkeys(items, "")
        for test_id, text in items.items():
            out[test_id] = (kind, text)
    return out


def summary(name: str, data: dict[str, Any]) -> str:
    return (
        f"{name}: {data.get('tests_run', 0)} run, {len(data.get('failures') or {})} failed, "
        f"{len(data.get('errors') or {})} errors, {len(data.get('skipped') or {})} skipped, "
        f"{len(data.get('expected_failures') or [])} expected failures, "
        f"{len(data.get('unexpected_successes') or [])} unexpected successes"
    )


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    names = ("stock", "ours")
    stock, ours = load(argv[1]), load(argv[2])
    if stock is None or ours is None:
        return 2
    rc = 0
    for name, data in zip(names, (stock, ours), strict=True):
        print(summary(name, data))
        if data.get("crash"):
            print(f"--- {name}: the run crashed ---\n{data['crash']}")
            rc = 2
    if stock["tests_run"] != ours["tests_run"]:
        print(f"DIFFERENT: tests run: stock {stock['tests_run']}, ours {ours['tests_run']}")
        rc = rc or 1

    bad_stock, bad_ours = bad(stock), bad(ours)
    for test_id in sorted(set(bad_stock) | set(bad_ours)):
        s, o = bad_stock.get(test_id), bad_ours.get(test_id)
        if s is not None and o is not None and s[0] == o[0]:
            continue
        rc = rc or 1
        print(f"DIFFERENT: {test_id}: stock {s[0] if s else 'ok'}, ours {o[0] if o else 'ok'}")
        for name, entry in (("stock", s), ("ours", o)):
            if entry is not None and entry[1]:
                print(f"--- {name} ---\n{entry[1].rstrip()}\n")

    skip_stock, skip_ours = stock.get("skipped") or {}, ours.get("skipped") or {}
    for test_id in sorted(set(skip_stock) ^ set(skip_ours)):
        rc = rc or 1
        where, reason = (
            ("stock", skip_stock[test_id])
            if test_id in skip_stock
            else (
                "ours",
                skip_ours[test_id],
            )
        )
        print(f"DIFFERENT: {test_id}: skipped on {where} only ({reason})")

    if rc == 0:
        print("identical: the same tests fail, error and skip on both engines")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
