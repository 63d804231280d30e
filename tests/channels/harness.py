"""Two ways to drive a WebSocket application in-process, behind one small interface.

- ``channels``: ``channels.testing.WebsocketCommunicator``. It patches Channels'
  ``close_old_connections`` out while it sends or receives, so the shared DB thread keeps one
  connection across every socket and tenant: the setting in which connection state leaks.
- ``asgiref``: asgiref's own ``ApplicationCommunicator``, as a server runs the app. Connections
  go back to Django's pool after each ``database_sync_to_async`` call.

With ``channels``, receive one socket at a time: ``mock.patch`` entered and left by concurrent
coroutines out of order would leave the no-op patched in for the rest of the process.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from channels.testing import WebsocketCommunicator

from ..asgi_client import communicator

HARNESSES = ["channels", "asgiref"]


Headers = list[tuple[bytes, bytes]]


def ws_scope(path: str, host: str | None, headers: Headers | None = None) -> dict[str, Any]:
    raw_path, _, query = path.partition("?")
    all_headers = [(b"host", host.encode("latin-1"))] if host is not None else []
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": all_headers + (headers or []),
        "subprotocols": [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


class Socket:
    """A client socket: ``connect()`` → ``(accepted, close_code)``, ``send``/``recv`` JSON."""

    def __init__(
        self, app: Any, harness: str, path: str, host: str | None, headers: Headers | None = None
    ) -> None:
        self.harness = harness
        if harness == "channels":
            all_headers = [(b"host", host.encode("latin-1"))] if host is not None else []
            self.comm: Any = WebsocketCommunicator(app, path, headers=all_headers + (headers or []))
        else:
            self.comm = communicator(app, ws_scope(path, host, headers))

    async def connect(self, timeout: float = 5) -> tuple[bool, int | None]:
        if self.harness == "channels":
            accepted, code = await self.comm.connect(timeout)
            return accepted, (None if accepted else code)
        await self.comm.send_input({"type": "websocket.connect"})
        out = await self.comm.receive_output(timeout)
        if out["type"] == "websocket.accept":
            return True, None
        assert out["type"] == "websocket.close", out
        return False, out.get("code", 1000)

    async def send(self, data: dict[str, Any]) -> None:
        if self.harness == "channels":
            await self.comm.send_json_to(data)
        else:
            await self.comm.send_input({"type": "websocket.receive", "text": json.dumps(data)})

    async def recv(self, timeout: float = 5) -> dict[str, Any]:
        if self.harness == "channels":
            return dict(await self.comm.receive_json_from(timeout))
        out = await self.comm.receive_output(timeout)
        assert out["type"] == "websocket.send", out
        return dict(json.loads(out["text"]))

    async def nothing(self, timeout: float = 0.2) -> bool:
        return bool(await self.comm.receive_nothing(timeout))

    async def close(self) -> None:
        if self.harness == "channels":
            await self.comm.disconnect()
            return
        await self.comm.send_input({"type": "websocket.disconnect", "code": 1000})
        await self.comm.wait(5)


async def recv_all(sockets: list[Socket], harness: str) -> list[dict[str, Any]]:
    """One message from each socket: concurrently, or one by one under ``channels``."""
    if harness == "channels":
        return [await s.recv() for s in sockets]
    return list(await asyncio.gather(*(s.recv() for s in sockets)))


async def connect_all(sockets: list[Socket], harness: str) -> None:
    if harness == "channels":
        results = [await s.connect() for s in sockets]
    else:
        results = list(await asyncio.gather(*(s.connect() for s in sockets)))
    assert all(accepted for accepted, _ in results), results


async def close_all(sockets: list[Socket]) -> None:
    for s in sockets:
        await s.close()
