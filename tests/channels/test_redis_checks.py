"""System checks W020 (socket_timeout) and W021 (capacity) for channels_redis layers."""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import pytest
from channels_redis.core import RedisChannelLayer
from django.core import checks as django_checks
from django.test import override_settings

import demo.settings
from omnitenant_async.channels import checks
from tests.conftest import ROOT

URL = "redis://127.0.0.1:6379/0"
CORE = "channels_redis.core.RedisChannelLayer"
PUBSUB = "channels_redis.pubsub.RedisPubSubChannelLayer"
GOOD_HOST = {"address": URL, "socket_timeout": 10}


class QuickPollLayer(RedisChannelLayer):  # type: ignore[misc]  # channels_redis is untyped (Any)
    """A subclass that blocks for 1 s per BZPOPMIN: a 2 s socket_timeout is then enough."""

    brpop_timeout = 1


@pytest.fixture(autouse=True)
def redis_py_8(monkeypatch: pytest.MonkeyPatch) -> None:
    """Check as on redis-py 8, whose 5 s default ``socket_timeout`` W020 is about, whatever
    redis-py is installed (the lowest supported, 5.0, has no default timeout, so a host that
    leaves it unset would not warn there). One test sets 7 itself to check the other branch."""
    monkeypatch.setattr(checks, "_redis_py_major", lambda: 8)


def layer(backend: str = CORE, **config: Any) -> dict[str, Any]:
    return {"default": {"BACKEND": backend, "CONFIG": config}}


def found(layers: dict[str, Any]) -> list[str]:
    """The ids the checks report for ``CHANNEL_LAYERS = layers``, through Django's registry."""
    with override_settings(CHANNEL_LAYERS=layers):
        messages = django_checks.run_checks()
    return sorted(m.id for m in messages if m.id in ("omnitenant.W020", "omnitenant.W021"))


def test_the_app_registers_the_checks() -> None:
    """In a fresh process that never imports the module itself: ``manage.py check`` reports
    both warnings for a bare Redis layer (OmnitenantAsyncConfig.ready() registers them)."""
    code = (
        "import django, sys\n"
        "django.setup()\n"
        "assert 'omnitenant_async.channels.checks' in sys.modules, 'not imported by ready()'\n"
        "sys.modules['omnitenant_async.channels.checks']._redis_py_major = lambda: 8\n"
        "from django.core.checks import run_checks\n"
        "from django.test import override_settings\n"
        f"with override_settings(CHANNEL_LAYERS={layer(hosts=[URL])!r}):\n"
        "    print(sorted(m.id for m in run_checks() if m.id.startswith('omnitenant.W02')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60, capture_output=True,
        text=True,
    )  # fmt: skip
    assert out.stdout.strip() == "['omnitenant.W020', 'omnitenant.W021']", out.stderr


def test_documented_configuration_is_silent() -> None:
    """The configuration docs/channels.md recommends (and the demo uses) passes both checks."""
    assert found(layer(hosts=[GOOD_HOST], capacity=1000)) == []
    if demo.settings.CHANNEL_LAYERS["default"]["BACKEND"] == CORE:  # OMNITENANT_REDIS_URL set
        assert found(copy.deepcopy(demo.settings.CHANNEL_LAYERS)) == []


@pytest.mark.parametrize(
    "hosts",
    [
        pytest.param(None, id="no-hosts"),
        pytest.param([URL], id="bare-url"),
        pytest.param([("127.0.0.1", 6379)], id="tuple"),
        pytest.param([{"address": URL}], id="dict-without-timeout"),
        pytest.param([GOOD_HOST, {"address": URL}], id="second-host-without-timeout"),
        pytest.param([{"address": URL, "socket_timeout": 5}], id="equal-to-bzpopmin"),
        pytest.param([{"address": URL, "socket_timeout": 3}], id="below-bzpopmin"),
        pytest.param([f"{URL}?socket_timeout=5.5"], id="url-query-too-low"),
        pytest.param([{"address": f"{URL}?socket_timeout=2", "socket_timeout": 10}], id="url-wins"),
        pytest.param([{"master_name": "m", "sentinels": [("127.0.0.1", 26379)]}], id="sentinel"),
    ],
)
def test_w020_short_or_default_socket_timeout(hosts: Any) -> None:
    assert found(layer(hosts=hosts, capacity=1000)) == ["omnitenant.W020"]


@pytest.mark.parametrize(
    "hosts",
    [
        pytest.param([GOOD_HOST], id="10s"),
        pytest.param([{"address": URL, "socket_timeout": 6}], id="6s"),
        pytest.param([{"address": URL, "socket_timeout": None}], id="no-timeout"),
        pytest.param([f"{URL}?socket_timeout=30"], id="url-query"),
        pytest.param(
            [{"master_name": "m", "sentinels": [("127.0.0.1", 26379)], "socket_timeout": 10}],
            id="sentinel",
        ),
    ],
)
def test_w020_silent_with_a_long_enough_timeout(hosts: Any) -> None:
    assert found(layer(hosts=hosts, capacity=1000)) == []


def test_w020_message_tells_what_to_do() -> None:
    with override_settings(CHANNEL_LAYERS=layer(hosts=[URL, GOOD_HOST], capacity=1000)):
        (warning,) = checks.check_redis_channel_layers()
    assert "hosts[0]" in warning.msg and "hosts[1]" not in warning.msg
    assert "TimeoutError" in warning.msg and "#422" in warning.msg
    assert '"socket_timeout": 10' in (warning.hint or "")
    assert warning.obj == "CHANNEL_LAYERS['default']"


def test_w020_follows_a_subclass_bzpopmin_timeout() -> None:
    backend = f"{__name__}.QuickPollLayer"
    two_seconds = [{"address": URL, "socket_timeout": 2}]
    assert found(layer(backend, hosts=two_seconds, capacity=1000)) == []
    assert found(layer(backend, hosts=[URL], capacity=1000)) == ["omnitenant.W020"]
    one_second = [{"address": URL, "socket_timeout": 1}]
    assert found(layer(backend, hosts=one_second, capacity=1000)) == ["omnitenant.W020"]


def test_w020_only_where_redis_py_defaults_to_5s(monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-py 7 and older wait forever by default; an explicit short timeout still warns."""
    monkeypatch.setattr(checks, "_redis_py_major", lambda: 7)
    assert found(layer(hosts=[URL], capacity=1000)) == []
    assert found(layer(hosts=[{"address": URL, "socket_timeout": 5}], capacity=1000)) == [
        "omnitenant.W020"
    ]


@pytest.mark.parametrize("capacity", [None, 100, 50])
def test_w021_default_capacity(capacity: int | None) -> None:
    config: dict[str, Any] = {"hosts": [GOOD_HOST]}
    if capacity is not None:
        config["capacity"] = capacity
    assert found(layer(**config)) == ["omnitenant.W021"]
    with override_settings(CHANNEL_LAYERS=layer(**config)):
        (warning,) = checks.check_redis_channel_layers()
    assert '"capacity": 1000' in (warning.hint or "") and "silently drops" in warning.msg


def test_w021_silent_above_the_default() -> None:
    assert found(layer(hosts=[GOOD_HOST], capacity=101)) == []


def test_both_on_a_bare_layer_and_per_alias() -> None:
    layers = {**layer(hosts=[URL]), "second": layer(hosts=[GOOD_HOST], capacity=1000)["default"]}
    with override_settings(CHANNEL_LAYERS=layers):
        messages = checks.check_redis_channel_layers()
    assert sorted((m.id, m.obj) for m in messages) == [
        ("omnitenant.W020", "CHANNEL_LAYERS['default']"),
        ("omnitenant.W021", "CHANNEL_LAYERS['default']"),
    ]


@pytest.mark.parametrize(
    "layers",
    [
        pytest.param(layer(PUBSUB, hosts=[URL]), id="pubsub"),  # reads with its own 0.1 s timeout
        pytest.param({"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}, id="memory"),
        pytest.param({"default": {"BACKEND": "no.such.Layer"}}, id="unimportable"),
        pytest.param({}, id="none"),
    ],
)
def test_other_layers_are_left_alone(layers: dict[str, Any]) -> None:
    assert found(layers) == []
