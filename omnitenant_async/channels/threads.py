"""Reused single-thread executors for consumers' database work (``CHANNELS_DB_THREADS``).

Channels runs every consumer's sync and ORM work on asgiref's one process-wide thread. With
``N`` executors, a consumer always uses the same one (chosen by a hash of its channel name), so
its calls stay in order on one thread and one ``DatabaseWrapper``, while consumers spread over
``N`` threads. Executors are created once and reused: no thread is spawned per message.
"""

from __future__ import annotations

import threading
import zlib
from concurrent.futures import ThreadPoolExecutor

from django.core.exceptions import ImproperlyConfigured

from ..conf import get_config

_lock = threading.Lock()
_executors: dict[int, tuple[ThreadPoolExecutor, ...]] = {}


def configured_threads() -> int:
    """``CHANNELS_DB_THREADS`` as an int (0: off)."""
    value = get_config().CHANNELS_DB_THREADS
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ImproperlyConfigured(
            f"OMNITENANT_CONFIG['CHANNELS_DB_THREADS'] = {value!r}: use a whole number of threads "
            "(0 or None keeps Channels' single shared thread)."
        )
    return value


def executors(threads: int) -> tuple[ThreadPoolExecutor, ...]:
    """The ``threads`` reused single-worker executors (created on first use)."""
    found = _executors.get(threads)
    if found is None:
        with _lock:
            found = _executors.get(threads)
            if found is None:
                found = tuple(
                    ThreadPoolExecutor(1, thread_name_prefix=f"omnitenant-db{threads}-{i}")
                    for i in range(threads)
                )
                _executors[threads] = found
    return found


def executor_for(key: str, threads: int) -> ThreadPoolExecutor:
    """The executor serving ``key`` (a channel name), one of ``threads``."""
    if threads < 1:
        raise ValueError(f"executor_for() needs at least one thread, not {threads}.")
    return executors(threads)[zlib.crc32(key.encode()) % threads]
