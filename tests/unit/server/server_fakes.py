"""Test support for the Socket.IO server: a fake Engine.IO session, no network.

``FakeConn`` implements the :class:`~sockjet.engine.io.EngineSocket` contract: it records the
:class:`~sockjet.engine.io.Outgoing` objects the server sends and lets a test feed client
messages (wire strings such as ``'42["ev",1]'`` without the Engine.IO ``4``, or bytes).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from sockjet.engine.io import HTTPRequest, Outgoing
from sockjet.server.client import Client
from sockjet.server.server import Server
from sockjet.server.socket import Socket


def make_request(**headers: str) -> HTTPRequest:
    return HTTPRequest(
        method="GET",
        path="/socket.io/",
        query={"EIO": "4", "transport": "websocket", "foo": "bar"},
        headers={"host": "localhost:5000", **headers},
        remote_addr=("10.1.2.3", 50000),
        url="/socket.io/?EIO=4&transport=websocket&foo=bar",
    )


class FakeConn:
    """A fake engine session: records what is sent, feeds what the client sends."""

    _count = 0

    def __init__(self, io: Server, *, transport: str = "websocket", **headers: str) -> None:
        FakeConn._count += 1
        self._sid = f"eio{FakeConn._count}"
        self._transport = transport
        self._request = make_request(**headers)
        self.sent: list[Outgoing] = []
        self.writable = True  # False: volatile packets are dropped
        self.paused = False  # the server asked to stop reading this client
        self.pauses = 0
        self.buffered_amount = 0
        self.close_reason: str | None = None
        self.closed = asyncio.Event()
        self.client: Client = io.on_engine_connection(self)

    # -- EngineSocket -------------------------------------------------------------------------

    @property
    def sid(self) -> str:
        return self._sid

    @property
    def request(self) -> HTTPRequest:
        return self._request

    @property
    def transport(self) -> str:
        return self._transport

    def send(self, message: Outgoing, *, volatile: bool = False) -> bool:
        if self.close_reason is not None or (volatile and not self.writable):
            return False
        self.sent.append(message)
        return True

    def pause_reading(self) -> None:
        if not self.paused:
            self.paused = True
            self.pauses += 1

    def resume_reading(self) -> None:
        self.paused = False

    async def drain(self) -> None:
        return None

    def close(self, reason: str = "forced close") -> None:
        if self.close_reason is None:
            self.close_reason = reason
            self.closed.set()
            # The engine reports the close to the handler, as EngineServer does.
            self.client.on_close(reason)

    # -- test helpers -------------------------------------------------------------------------

    def feed(self, *messages: str | bytes) -> None:
        for message in messages:
            self.client.on_message(message)

    def drop(self, reason: str) -> None:
        """The engine lost the session (transport close, ping timeout...)."""
        if self.close_reason is None:
            self.close_reason = reason
            self.closed.set()
            self.client.on_close(reason)

    def take(self) -> list[str | bytes]:
        """Socket.IO payloads sent since the last call (text without the Engine.IO ``4``)."""
        out: list[str | bytes] = []
        for message in self.sent:
            data = message.data
            if isinstance(data, str):
                assert data[0] == "4", data
                out.append(data[1:])
            else:
                out.append(data)
        self.sent.clear()
        return out

    def connect(self, nsp: str = "/", auth: Any = None) -> str:
        """Send CONNECT and return the socket id from the server's reply."""
        prefix = "0" if nsp == "/" else f"0{nsp},"
        self.feed(prefix + (orjson.dumps(auth).decode() if auth is not None else ""))
        replies = self.take()
        assert replies, "no CONNECT reply"
        reply = replies[0]
        assert isinstance(reply, str) and reply.startswith(prefix), replies
        sid: str = orjson.loads(reply[len(prefix) :])["sid"]
        self.sent[:0] = [Outgoing.message(r) for r in replies[1:]]  # keep what followed
        return sid


def socket_of(io: Server, sid: str, nsp: str = "/") -> Socket:
    return io.of(nsp).sockets[sid]


async def settle(rounds: int = 5) -> None:
    """Let scheduled tasks and callbacks run."""
    for _ in range(rounds):
        await asyncio.sleep(0)
