"""The tenant ContextVar: nesting, async, and every boundary the mechanics reference measured."""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import threading
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from omnitenant_async import (
    TenantContext,
    TenantState,
    bind_context,
    get_current_state,
    get_current_tenant,
    require_state,
    spawn,
    tenant_context,
    use_master_db,
    use_public_schema,
    use_schema,
)
from omnitenant_async.context import PUBLIC
from omnitenant_async.exceptions import InvalidTenantName, NoTenantActive


def state(tenant_id: str) -> TenantState:
    return TenantState(tenant_id, schema_name=tenant_id)


def current_id() -> str | None:
    s = get_current_state()
    return s.tenant_id if s is not None else None


def test_nesting_restores_exactly() -> None:
    assert get_current_state() is None
    with tenant_context(state("a")):
        assert current_id() == "a"
        with tenant_context(state("b")):
            assert current_id() == "b"
            with use_public_schema():
                assert get_current_state() is PUBLIC
            assert current_id() == "b"
        assert current_id() == "a"
        with pytest.raises(RuntimeError):
            with tenant_context(state("c")):
                raise RuntimeError("boom")
        assert current_id() == "a"
    assert get_current_state() is None


def test_model_instance_and_facade() -> None:
    class FakeTenant:  # any object with TenantLike's attributes will do
        tenant_id = "acme"
        isolation_type = 0
        config: dict[str, object] = {}

    tenant = FakeTenant()
    with TenantContext.use_tenant(tenant) as entered:
        assert entered is tenant
        assert TenantContext.get_tenant() is tenant
        assert get_current_tenant() is tenant
        assert require_state().schema_name == "acme"
        with TenantContext.use_master_db():
            assert get_current_tenant() is None
            assert require_state().is_public
        with TenantContext.use_schema("other"):
            assert require_state().schema_name == "other"
    with pytest.raises(TypeError):
        tenant_context("acme")  # type: ignore[arg-type]  # refused at runtime: the point


def test_require_state_fails_closed() -> None:
    with pytest.raises(NoTenantActive):
        require_state()
    with tenant_context(state("a")), tenant_context(None):
        with pytest.raises(NoTenantActive):
            require_state()


def test_use_schema_validates_names() -> None:
    for bad in ("pg_catalog", "pg_foo", "information_schema", "", "x" * 64, "a\x00b"):
        with pytest.raises(InvalidTenantName):
            use_schema(bad)
    for good in ("acme_corp", "Acme Corp", 'x"; drop', "x" * 63):
        with use_schema(good):
            assert require_state().schema_name == good
    with use_master_db():
        assert require_state().is_public


def test_decorator_sync_and_async() -> None:
    @tenant_context(state("deco"))
    def sync_fn() -> str | None:
        return current_id()

    @tenant_context(state("adeco"))
    async def async_fn() -> str | None:
        await asyncio.sleep(0)
        return current_id()

    assert sync_fn() == "deco"
    assert asyncio.run(async_fn()) == "adeco"
    assert get_current_state() is None


@pytest.mark.asyncio
async def test_async_with_and_await() -> None:
    async with tenant_context(state("a")):
        await asyncio.sleep(0)
        assert current_id() == "a"
        async with tenant_context(state("b")):
            await asyncio.sleep(0)
            assert current_id() == "b"
        assert current_id() == "a"
    assert get_current_state() is None


@pytest.mark.asyncio
async def test_crosses_sync_to_async_both_thread_modes() -> None:
    seen: list[Any] = []

    def read() -> tuple[str | None, str]:
        return current_id(), threading.current_thread().name

    with tenant_context(state("s2a")):
        seen.append(await sync_to_async(read)())
        seen.append(await sync_to_async(read, thread_sensitive=False)())
    assert [s[0] for s in seen] == ["s2a", "s2a"]
    assert all(s[1] != threading.current_thread().name for s in seen)


@pytest.mark.asyncio
async def test_crosses_async_to_sync_inside_sync_to_async() -> None:
    async def inner() -> str | None:
        await asyncio.sleep(0)
        return current_id()

    def middle() -> str | None:
        return async_to_sync(inner)()

    with tenant_context(state("a2s")):
        assert await sync_to_async(middle)() == "a2s"


def test_crosses_async_to_sync_outermost() -> None:
    async def inner() -> str | None:
        return current_id()

    with tenant_context(state("outer")):
        assert async_to_sync(inner)() == "outer"


@pytest.mark.asyncio
async def test_crosses_database_sync_to_async_and_to_thread() -> None:
    from channels.db import database_sync_to_async

    with tenant_context(state("dbs2a")):
        assert await database_sync_to_async(current_id)() == "dbs2a"
        assert await asyncio.to_thread(current_id) == "dbs2a"


@pytest.mark.asyncio
async def test_executor_without_bind_sees_no_tenant_and_bind_context_fixes_it() -> None:
    """run_in_executor carries no context (mechanics E1): the tenant is *absent*, never wrong."""
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with tenant_context(state("exe")):
            assert await loop.run_in_executor(pool, current_id) is None
            assert await loop.run_in_executor(pool, bind_context(current_id)) == "exe"


@pytest.mark.asyncio
@pytest.mark.bug
async def test_tenant_set_in_sync_code_does_not_leak_to_caller() -> None:
    """asgiref copies context changes back; token-based activation must leave nothing behind."""

    def activate_and_return() -> str | None:
        with tenant_context(state("inner")):
            return current_id()

    with tenant_context(state("outer")):
        assert await sync_to_async(activate_and_return)() == "inner"
        assert current_id() == "outer"

    async def aactivate() -> None:
        async with tenant_context(state("ainner")):
            await asyncio.sleep(0)

    def sync_caller() -> str | None:
        with tenant_context(state("souter")):
            async_to_sync(aactivate)()
            return current_id()

    assert await sync_to_async(sync_caller)() == "souter"
    assert get_current_state() is None


@pytest.mark.asyncio
async def test_thousand_concurrent_tasks_never_see_each_other() -> None:
    async def worker(i: int) -> list[str | None]:
        expected = f"t{i % 97}"
        seen = []
        async with tenant_context(state(expected)):
            for _ in range(5):
                await asyncio.sleep(random.random() / 1000)
                seen.append(current_id())
                if i % 3 == 0:
                    seen.append(await sync_to_async(current_id)())
        seen.append("after" if get_current_state() is None else "LEAK")
        return [s if s in (expected, "after") else f"WRONG:{s}" for s in seen]

    results = await asyncio.gather(*(worker(i) for i in range(1000)))
    wrong = [r for rs in results for r in rs if r is not None and r.startswith(("WRONG", "LEAK"))]
    assert wrong == []
    assert sum(len(r) for r in results) > 6000


@pytest.mark.asyncio
@pytest.mark.bug
async def test_spawn_uses_explicit_tenant_not_the_creators() -> None:
    async def read() -> str | None:
        await asyncio.sleep(0)
        return current_id()

    with tenant_context(state("request")):
        plain = asyncio.create_task(read())  # snapshots the creator's tenant (the hazard)
        explicit = spawn(read(), tenant=state("job"))
        nobody = spawn(read(), tenant=None)
    assert await plain == "request"
    assert await explicit == "job"
    assert await nobody is None


def test_activate_and_deactivate_run_the_hooks_and_nest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The middleware's halves of tenant_context: hooks see each state, undos run in order."""
    from omnitenant_async import context

    seen: list[str] = []

    def hook(s: TenantState | None) -> Any:
        seen.append(f"on {s.tenant_id if s else None}")
        return lambda: seen.append(f"off {s.tenant_id if s else None}")

    monkeypatch.setattr(context, "_activation_hooks", [hook])
    outer = context.activate(state("a"))
    with tenant_context(state("b")):
        inner = context.activate(state("c"))
        assert current_id() == "c"
        context.deactivate(inner)
        assert current_id() == "b"
    assert current_id() == "a"
    context.deactivate(outer)
    assert get_current_state() is None
    assert seen == ["on a", "on b", "on c", "off c", "off b", "off a"]


def test_a_failing_hook_leaves_nothing_active(monkeypatch: pytest.MonkeyPatch) -> None:
    from omnitenant_async import context

    def broken(s: TenantState | None) -> Any:
        raise RuntimeError("hook failed")

    monkeypatch.setattr(context, "_activation_hooks", [broken])
    with pytest.raises(RuntimeError, match="hook failed"):
        context.activate(state("a"))
    assert get_current_state() is None
