"""Pools are per process: a forked child must never use the connections it inherited.

A fork copies the parent's open pools - sockets included - into the child. If both used them,
two processes would share one server session: interleaved messages, one process reading the
other's results (another tenant's rows). ``gunicorn --preload``, Django's ``test --parallel``
and Celery's prefork pool all fork after connections may exist. In the child, every inherited
pool is forgotten - not closed, since closing would end the *parent's* sessions - and kept
referenced so that no finaliser sends a Terminate message on the shared sockets.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

_forget_hooks: list[Callable[[], list[Any]]] = []
_inherited: list[Any] = []  # never closed, never collected: they belong to the parent


def on_fork(forget: Callable[[], list[Any]]) -> None:
    """Register ``forget``: in a forked child it drops its pools and returns them."""
    _forget_hooks.append(forget)


def _after_fork_in_child() -> None:
    for forget in _forget_hooks:
        _inherited.extend(forget())


os.register_at_fork(after_in_child=_after_fork_in_child)
