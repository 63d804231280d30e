"""A minimal HTTP client for Django's real ASGIHandler, with full control of the headers.

Django's AsyncClient always adds ``Host: testserver``; tenant routing needs the Host we choose.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

from asgiref.testing import ApplicationCommunicator
from django.core.handlers.asgi import ASGIHandler

_handler: ASGIHandler | None = None


class Communicator(Protocol):
    """The part of asgiref's ``ApplicationCommunicator`` the tests use, with its types."""

    async def send_input(self, message: Mapping[str, Any]) -> None: ...
    async def receive_output(self, timeout: float = 1) -> dict[str, Any]: ...
    async def receive_nothing(self, timeout: float = 0.1, interval: float = 0.01) -> bool: ...
    async def wait(self, timeout: float = 1) -> None: ...


def communicator(application: Any, scope: Mapping[str, Any]) -> Communicator:
    """``ApplicationCommunicator(application, scope)``, typed: asgiref.testing has no hints."""
    return cast(Communicator, cast(Any, ApplicationCommunicator)(application, scope))


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def request(
    path: str, host: str | None, *, method: str = "GET", headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> Response:  # fmt: skip
    global _handler
    if _handler is None:
        _handler = ASGIHandler()
    raw_headers = [(b"host", host.encode("latin-1"))] if host is not None else []
    raw_headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
    ]
    path, _, query = path.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
        "root_path": "", "headers": raw_headers, "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }  # fmt: skip
    comm = communicator(_handler, scope)
    await comm.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await comm.receive_output(timeout=30)
    chunks: list[bytes] = []
    while True:
        message = await comm.receive_output(timeout=30)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await comm.wait(timeout=30)
    return Response(
        status=start["status"],
        headers={k.decode().lower(): v.decode() for k, v in start["headers"]},
        body=b"".join(chunks),
    )
