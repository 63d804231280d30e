"""``CHANNELS_DB_THREADS``: consumers' database work spread over N reused threads."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from omnitenant_async.channels.threads import configured_threads, executor_for

from .consumers import NOTE_PREFIX, application
from .harness import HARNESSES, Socket, close_all, connect_all, recv_all
from .test_isolation import expected_ok


def config(threads: Any) -> dict[str, Any]:
    return {**settings.OMNITENANT_CONFIG, "CHANNELS_DB_THREADS": threads}


@pytest.mark.parametrize("bad", [-1, "4", 2.5, True])
def test_bad_setting_is_refused(bad: Any) -> None:
    with override_settings(OMNITENANT_CONFIG=config(bad)):
        with pytest.raises(ImproperlyConfigured, match="CHANNELS_DB_THREADS"):
            configured_threads()


def test_executors_are_reused_and_chosen_by_channel_name() -> None:
    with pytest.raises(ValueError):
        executor_for("specific.abc!def", 0)
    first = executor_for("specific.abc!def", 4)
    assert first is executor_for("specific.abc!def", 4)
    chosen = {executor_for(f"specific.x!{i}", 4) for i in range(64)}
    assert len(chosen) == 4


async def run_probes(path: str, harness: str, tenant_ids: list[str]) -> dict[int, set[str]]:
    """3 sockets per tenant, 3 rounds; every reply checked. Returns socket -> threads used."""
    app = application()
    owners = [t for t in tenant_ids[:4] for _ in range(3)]
    sockets = [Socket(app, harness, path, f"{t}.localhost") for t in owners]
    await connect_all(sockets, harness)
    used: dict[int, set[str]] = defaultdict(set)
    for round_ in range(3):
        for i, (owner, socket) in enumerate(zip(owners, sockets, strict=True)):
            await socket.send({"op": "probe", "tag": f"{NOTE_PREFIX}threads-{owner}-{i}-{round_}"})
        for i, reply in enumerate(await recv_all(sockets, harness)):
            expected_ok(reply, owners[i], "sync" if "sync" in path else "async")
            used[i].add(reply["thread"])
    await close_all(sockets)
    return used


@pytest.mark.asyncio
@pytest.mark.parametrize("harness", HARNESSES)
@pytest.mark.parametrize("path", ["/ws/json/", "/ws/sync/"])
async def test_db_work_spreads_over_n_threads(
    tenant_ids: list[str], harness: str, path: str
) -> None:
    with override_settings(OMNITENANT_CONFIG=config(4)):
        used = await run_probes(path, harness, tenant_ids)
    assert all(len(threads) == 1 for threads in used.values()), used  # a socket keeps its thread
    every = set().union(*used.values())
    assert all(name.startswith("omnitenant-db4-") for name in every), every
    assert len(every) >= 2, every  # 12 sockets over 4 threads (probability of 1: 4**-11)


@pytest.mark.asyncio
async def test_consumer_attribute_overrides_the_setting(tenant_ids: list[str]) -> None:
    used = await run_probes("/ws/threaded/", "asgiref", tenant_ids)
    every = set().union(*used.values())
    assert every and all(name.startswith("omnitenant-db2-") for name in every), every


@pytest.mark.asyncio
async def test_off_by_default_one_shared_thread(tenant_ids: list[str]) -> None:
    used = await run_probes("/ws/json/", "asgiref", tenant_ids)
    every = set().union(*used.values())
    assert len(every) == 1 and not next(iter(every)).startswith("omnitenant-db"), every


@pytest.mark.asyncio
async def test_handler_switching_tenant_is_contained_with_threads(tenant_ids: list[str]) -> None:
    own, other = tenant_ids[:2]
    with override_settings(OMNITENANT_CONFIG=config(3)):
        for path in ("/ws/json/", "/ws/sync/"):
            socket = Socket(application(), "asgiref", path, f"{own}.localhost")
            await socket.connect()
            for op in ("evil", "evil-sync"):
                await socket.send({"op": op, "to": other})
                assert (await socket.recv())["ctx"] == other
                await socket.send({"op": "whoami"})
                assert await socket.recv() == {"ctx": own, "marker": own}
            await socket.close()
