"""The per-request shortcuts give what the general code they replace gives.

``context._model_copy`` (the per-request tenant copy) against ``copy.copy()``,
``TenantState.with_own_tenant`` against ``dataclasses.replace``, and the transaction-pooler
prefix against the statement it is made of.
"""

from __future__ import annotations

import dataclasses
import gc
from typing import Any

import pytest

from demo.customers.models import Tenant
from omnitenant_async.context import (
    TenantState,
    _fast_copy,
    _generic_copy,
    _own_copy,
)
from omnitenant_async.engines.postgresql import local_path
from omnitenant_async.engines.postgresql.paths import set_statement
from omnitenant_async.isolation import IsolationType


def tenant(**extra: Any) -> Tenant:
    row = Tenant(id=7, tenant_id="acme", name="Acme", config={"a": [1, {"b": 2}]}, **extra)
    row._state.adding = False
    row._state.db = "default"
    row._state.fields_cache["something"] = object()
    return row


def without_pickle_marker(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in ("_django_version", "_state")}


def test_a_model_is_copied_like_copy_copy_does() -> None:
    original = tenant()
    fast, generic = _own_copy(original), _generic_copy(original)
    assert _fast_copy[Tenant] is True  # the hand-made copy is the one in use
    assert type(fast) is Tenant
    assert without_pickle_marker(vars(fast)) == without_pickle_marker(vars(generic))
    assert vars(fast._state) == vars(generic._state)
    assert type(fast._state) is type(generic._state)
    # Nothing mutable is shared with the cached instance.
    assert fast._state is not original._state
    assert fast._state.fields_cache is not original._state.fields_cache
    assert fast.config == original.config
    assert fast.config is not original.config
    assert fast.config["a"] is not original.config["a"]
    assert fast.config["a"][1] is not original.config["a"][1]


def test_changing_the_copy_leaves_the_original_alone() -> None:
    original = tenant()
    own = _own_copy(original)
    own.name = "Changed"
    own.config["a"].append(3)
    own.config["new"] = True
    own._state.fields_cache.clear()
    own._state.adding = True
    assert original.name == "Acme"
    assert original.config == {"a": [1, {"b": 2}]}
    assert "something" in original._state.fields_cache
    assert original._state.adding is False


def test_dropping_the_copy_keeps_the_originals_fields_cache() -> None:
    # ModelState.__del__ clears its fields_cache: a shared one would empty the cached row's.
    original = tenant()
    own = _own_copy(original)
    del own
    gc.collect()
    assert "something" in original._state.fields_cache


def test_empty_and_subclassed_containers_and_memoryviews() -> None:
    class Tagged(dict[str, Any]):
        pass

    original: Any = tenant()
    original.config = {}
    original.extra_list = []
    original.tagged = Tagged(x=[1])
    original.blob = memoryview(b"abc")
    original._private = {"kept": "shared"}
    own = _own_copy(original)
    assert own.config == {} and own.config is not original.config
    assert own.extra_list == [] and own.extra_list is not original.extra_list
    assert type(own.tagged) is Tagged and own.tagged == original.tagged
    assert own.tagged["x"] is not original.tagged["x"]
    assert bytes(own.blob) == b"abc" and own.blob is not original.blob
    assert own._private is original._private  # private attributes: shallow, as before


def test_peers_are_not_carried_over() -> None:
    """Django 6's ``ModelState.peers`` (the instances fetched with this one) is dropped by
    ``copy.copy()``; the hand-made copy drops it too."""
    from django.db.models.base import ModelState

    if not hasattr(ModelState, "peers"):
        pytest.skip("this Django's ModelState has no peers (Django < 6.0)")
    original = tenant()
    model_state: Any = original._state
    model_state.peers = ("weakrefs",)
    assert "peers" not in vars(_own_copy(original)._state)
    assert "peers" not in vars(_generic_copy(original)._state)


def test_anything_else_goes_through_copy_copy() -> None:
    class FakeTenant:
        def __init__(self) -> None:
            self.tenant_id = "acme"
            self.config = {"a": [1]}

    original = FakeTenant()
    own = _own_copy(original)
    assert _fast_copy[FakeTenant] is False
    assert type(own) is FakeTenant and own.config == original.config
    assert own.config is not original.config


def test_with_own_tenant_keeps_every_field() -> None:
    row = tenant()
    state = TenantState(
        "acme",
        IsolationType.DATABASE,
        schema_name="s1",
        pool_key="u@h:1/db",
        db_settings={"NAME": "db"},
        include_public=False,
        tenant=row,
    )
    own = state.with_own_tenant()
    expected = dataclasses.replace(state, tenant=own.tenant)
    for f in dataclasses.fields(TenantState):
        assert getattr(own, f.name) is getattr(expected, f.name), f.name
    assert own == state and hash(own) == hash(state)
    assert own.tenant is not row and own.tenant is not None
    assert own.tenant.tenant_id == "acme"
    with pytest.raises(dataclasses.FrozenInstanceError):
        own.schema_name = "other"  # type: ignore[misc]
    # with_own_tenant() skips __init__: it would also skip a __post_init__ added later.
    assert not hasattr(TenantState, "__post_init__")
    assert TenantState(None).with_own_tenant() == TenantState(None)


def test_the_pooler_prefix_is_the_set_statement() -> None:
    path = ("t01", "public")
    prefix = local_path._prefix(path)
    assert prefix[:2] == (f"{set_statement(path, local=True)}; ", "t01")
    public = local_path._prefix(("public",))
    assert public[:2] == (f"{set_statement(('public',), local=True)}; ", None)
    # The placeholder forms render to the same text: tests/test_prefixed_queries.py.


@pytest.mark.parametrize("word", local_path._PLAIN_DML)
def test_plain_dml_never_refuses_a_transaction_block(word: str) -> None:
    # The regex is skipped for these: it must not be able to match them.
    for rest in ("", " 1", "X", " CONCURRENTLY", "\nVACUUM", ";COMMIT"):
        assert local_path._REFUSES_TRANSACTION_BLOCK.match(word + rest) is None
