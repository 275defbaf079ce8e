"""A cheap Engine.IO long-polling client: one keep-alive HTTP/1.1 connection, one request at a
time (handshake GET, POST ``40``, then GET after GET). Packets in each response body are counted
(``sink.add``); a ping in a body is answered by a POST ``3`` before the next GET, on the same
connection. Bodies come with a Content-Length or chunked (uvicorn's)."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Any

from bench.loadgen.tcp import open_tcp

__all__ = ["PollClient", "connect_polling"]

_LINGER_RST = struct.pack("ii", 1, 0)
_SEP = b"\x1e"


class PollClient(asyncio.Protocol):
    """One polling client; ``connected`` resolves when the namespace CONNECT arrived."""

    __slots__ = ("_buf", "_path", "connected", "sink", "transport")

    def __init__(self, connected: asyncio.Future[None]) -> None:
        self.connected = connected
        self.sink: Any = None
        self._buf = b""
        self._path = "/socket.io/?EIO=4&transport=polling"
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        self._get()

    def _get(self) -> None:
        self.transport.write(f"GET {self._path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())

    def _post(self, body: bytes) -> None:
        self.transport.write(
            f"POST {self._path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    def close(self) -> None:
        """Drop the connection (RST)."""
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_exception(exc or ConnectionError("closed during handshake"))

    def data_received(self, data: bytes) -> None:
        data = self._buf + data if self._buf else data
        while True:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                break
            head = data[:end].lower()
            at = head.find(b"content-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at)
                length = int(head[at + 15 : stop if stop > 0 else None])
                if len(data) < end + 4 + length:
                    break
                body = data[end + 4 : end + 4 + length]
                rest = data[end + 4 + length :]
            elif b"transfer-encoding: chunked" in head:
                parsed = _dechunk(data, end + 4)
                if parsed is None:
                    break
                body, rest = parsed
            else:
                self._fail(f"no body length: {data[:end]!r}")
                return
            status = head[9:12]
            data = rest
            if status != b"200":
                self._fail(f"HTTP {status!r}: {body[:200]!r}")
                return
            self._response(body)
        self._buf = data

    def _fail(self, reason: str) -> None:
        if not self.connected.done():
            self.connected.set_exception(ConnectionError(reason))
        self.transport.abort()

    def _response(self, body: bytes) -> None:
        if body == b"ok":  # a POST was answered
            self._get()
            return
        if not self.connected.done():
            if body[:1] == b"0":
                sid = json.loads(body[1:].split(_SEP)[0])["sid"]
                self._path = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
                self._post(b"40")
                return
            if body[:2] == b"40":
                self.connected.set_result(None)
                self._get()
                return
        packets = body.split(_SEP)
        pinged = b"2" in packets
        if self.sink is not None:
            self.sink.add(len(packets) - pinged)
        if pinged:
            self._post(b"3")
        else:
            self._get()


def _dechunk(data: bytes, pos: int) -> tuple[bytes, bytes] | None:
    """A complete chunked body starting at ``pos``: (body, what follows), or None if partial."""
    parts: list[bytes] = []
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(data[pos:eol].split(b";")[0], 16)
        if size == 0:
            if len(data) < eol + 4:
                return None
            return b"".join(parts), data[eol + 4 :]
        if len(data) < eol + 2 + size + 2:
            return None
        parts.append(data[eol + 2 : eol + 2 + size])
        pos = eol + 2 + size + 2


async def connect_polling(
    port: int,
    source: str,
    timeout: float = 15.0,  # noqa: ASYNC109
) -> PollClient:
    """Open a polling session and join namespace ``/``."""
    loop = asyncio.get_running_loop()
    connected: asyncio.Future[None] = loop.create_future()
    _, client = await open_tcp(lambda: PollClient(connected), port, source, timeout)
    try:
        await asyncio.wait_for(connected, timeout)
    except BaseException:
        client.close()
        raise
    return client
