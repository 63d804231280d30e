"""System checks for ``channels_redis`` layers in ``CHANNEL_LAYERS`` (docs/channels.md, "Redis").

- ``omnitenant.W020``: a ``RedisChannelLayer`` whose hosts leave ``socket_timeout`` at redis-py 8's
  default of 5 s, or set it to at most the layer's 5 s blocking ``BZPOPMIN``. The socket read then
  times out before Redis answers, and every consumer idle for 5 s dies with
  ``redis.exceptions.TimeoutError`` (channels_redis#422).
- ``omnitenant.W021``: a ``RedisChannelLayer`` left at the default ``capacity`` of 100. All
  consumers of one process share one Redis key of at most ``capacity`` pending messages, and
  ``group_send`` drops what does not fit without an error.

The pub/sub layer is exempt from both: it reads with its own 0.1 s timeout, whatever
``socket_timeout`` is, and keeps no capacity-bounded key.

Nothing here imports ``redis`` or ``channels_redis`` at import time: the version comes from
``importlib.metadata``, and a custom backend class is imported only when a check runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

CORE_BACKEND = "channels_redis.core.RedisChannelLayer"
PUBSUB_BACKEND = "channels_redis.pubsub.RedisPubSubChannelLayer"
#: ``RedisChannelLayer.brpop_timeout``: how long one ``BZPOPMIN`` blocks, in seconds.
BZPOPMIN_TIMEOUT = 5.0
#: How much longer than ``BZPOPMIN`` the socket must wait for Redis's (empty) answer.
SOCKET_TIMEOUT_MARGIN = 1.0
DEFAULT_CAPACITY = 100
RECOMMENDED_SOCKET_TIMEOUT = 10
RECOMMENDED_CAPACITY = 1000

_UNSET = object()  # a host that does not set socket_timeout


@checks.register()
def check_redis_channel_layers(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W020 and W021 for every ``RedisChannelLayer`` (or subclass) in ``CHANNEL_LAYERS``."""
    messages: list[checks.CheckMessage] = []
    for alias, layer in _redis_layers():
        config = layer.get("CONFIG") or {}
        if not isinstance(config, dict):
            continue
        messages += _check_socket_timeout(alias, config, _bzpopmin_timeout(layer["BACKEND"]))
        messages += _check_capacity(alias, config)
    return messages


def _redis_layers() -> Iterator[tuple[str, dict[str, Any]]]:
    """``(alias, layer)`` of the layers whose backend is channels_redis's list-based layer."""
    layers = getattr(settings, "CHANNEL_LAYERS", None)
    if not isinstance(layers, dict):
        return
    for alias, layer in layers.items():
        if isinstance(layer, dict) and _is_core_layer(layer.get("BACKEND")):
            yield str(alias), layer


def _is_core_layer(backend: object) -> bool:
    """Whether ``backend`` names ``RedisChannelLayer`` or a subclass (never the pub/sub one)."""
    if not isinstance(backend, str) or backend == PUBSUB_BACKEND:
        return False
    if backend == CORE_BACKEND:
        return True
    try:
        cls = import_string(backend)
        from channels_redis.core import RedisChannelLayer  # optional: the redis extra
    except ImportError:  # channels_redis absent, or a backend Channels itself will report
        return False
    return isinstance(cls, type) and issubclass(cls, RedisChannelLayer)


def _bzpopmin_timeout(backend: str) -> float:
    """The backend's ``brpop_timeout`` (a subclass may change it), else channels_redis's 5 s."""
    if backend != CORE_BACKEND:
        try:
            value = getattr(import_string(backend), "brpop_timeout", BZPOPMIN_TIMEOUT)
        except ImportError:
            return BZPOPMIN_TIMEOUT
        if isinstance(value, int | float):
            return float(value)
    return BZPOPMIN_TIMEOUT


def _redis_py_major() -> int | None:
    """redis-py's major version, or ``None`` when it is not installed."""
    try:
        version = metadata.version("redis")
    except metadata.PackageNotFoundError:
        return None
    major = version.split(".", 1)[0]
    return int(major) if major.isdigit() else None


def _hosts(config: dict[str, Any]) -> list[Any]:
    """The layer's host entries as channels_redis reads them (none means localhost)."""
    hosts = config.get("hosts")
    if not hosts:
        return ["redis://localhost:6379"]
    if isinstance(hosts, str | bytes):  # channels_redis refuses it at start-up anyway
        return [hosts]
    return list(hosts) if isinstance(hosts, list | tuple) else []


def _socket_timeout(host: Any) -> object:
    """The ``socket_timeout`` a host entry gives its connections: a number, ``None`` (no
    timeout), ``_UNSET`` (redis-py's default), or a string redis-py would refuse anyway.

    As in redis-py's ``from_url``, a ``?socket_timeout=`` in the URL wins over the dict's key.
    """
    address: Any = host
    value: object = _UNSET
    if isinstance(host, dict):
        address = host.get("address")
        value = host.get("socket_timeout", _UNSET)
    elif isinstance(host, list | tuple):  # (host, port): nowhere to put a timeout
        return _UNSET
    if isinstance(address, bytes):
        address = address.decode("utf-8", "replace")
    if isinstance(address, str):
        query = parse_qs(urlsplit(address).query).get("socket_timeout")
        if query:
            try:
                return float(query[-1])
            except ValueError:
                return query[-1]
    return value


def _check_socket_timeout(
    alias: str, config: dict[str, Any], bzpopmin: float
) -> list[checks.CheckMessage]:
    """W020 when a host's reads would time out before an idle ``BZPOPMIN`` returns."""
    minimum = bzpopmin + SOCKET_TIMEOUT_MARGIN
    major = _redis_py_major()
    unset: list[str] = []
    too_low: list[str] = []
    for index, host in enumerate(_hosts(config)):
        value = _socket_timeout(host)
        if value is _UNSET:
            if major is not None and major >= 8:
                unset.append(f"hosts[{index}]")
        elif isinstance(value, int | float) and not isinstance(value, bool) and value < minimum:
            too_low.append(f"hosts[{index}] ({value:g} s)")
    if not unset and not too_low:
        return []
    problems = []
    if unset:
        problems.append(
            f"{', '.join(unset)} leave socket_timeout at redis-py {major}'s default of 5 s"
        )
    if too_low:
        problems.append(f"socket_timeout of {', '.join(too_low)} is below {minimum:g} s")
    return [
        checks.Warning(
            f"Channel layer {alias!r}: {'; '.join(problems)}. channels_redis waits for messages "
            f"with a blocking BZPOPMIN of {bzpopmin:g} s, so every consumer idle that long dies "
            "with redis.exceptions.TimeoutError and the messages sent to it are lost "
            "(channels_redis#422).",
            hint=(
                "Give each host a longer read timeout, e.g. "
                f'"hosts": [{{"address": REDIS_URL, "socket_timeout": '
                f"{RECOMMENDED_SOCKET_TIMEOUT}}}] (at least {minimum:g}; None waits forever "
                "on a dead connection). See docs/channels.md, 'Redis in production'."
            ),
            obj=f"CHANNEL_LAYERS[{alias!r}]",
            id="omnitenant.W020",
        )
    ]


def _check_capacity(alias: str, config: dict[str, Any]) -> list[checks.CheckMessage]:
    """W021 when the layer keeps channels_redis's default capacity (or less)."""
    capacity = config.get("capacity", DEFAULT_CAPACITY)
    if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity > DEFAULT_CAPACITY:
        return []
    return [
        checks.Warning(
            f"Channel layer {alias!r} has capacity={capacity}: all consumers of one process share "
            f"one Redis key of at most {capacity} pending messages, and group_send silently drops "
            "every message beyond it: a burst of group messages loses deliveries.",
            hint=(
                f'Set "capacity" in CONFIG above the largest burst one process must absorb, e.g. '
                f'"capacity": {RECOMMENDED_CAPACITY}, in every process that sends (the sender '
                "enforces it). See docs/channels.md, 'Redis in production'."
            ),
            obj=f"CHANNEL_LAYERS[{alias!r}]",
            id="omnitenant.W021",
        )
    ]
