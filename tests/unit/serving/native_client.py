"""Test support for the native server: a fake engine and raw HTTP / WebSocket clients.

The fake engine implements the EngineServer contract the serving layer relies on (path,
max_payload, per_message_deflate, handle_request, check_websocket, open_websocket, close), so
these tests exercise the serving layer alone, over real sockets on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sockjet.engine.io import BodyError, HTTPRequest, HTTPResponse, Outgoing, WebSocketConnection
from sockjet.serving.native import NativeLimits, NativeServer, serve

TIMEOUT = 5.0
FAST = NativeLimits(
    header_timeout=0.3,
    body_timeout=0.3,
    keepalive_timeout=0.3,
    close_timeout=0.3,
    shutdown_timeout=0.5,
    max_url_size=200,
    max_header_line=300,
    max_header_size=1000,
    max_headers=10,
    max_pipelined=4,
    max_ws_fragments=8,
)
WS_PATH = "/socket.io/?EIO=4&transport=websocket"
KEY = base64.b64encode(b"0123456789abcdef").decode()


class FakeHandler:
    """Records what the serving layer delivers; echoes messages back (commands aside)."""

    def __init__(self, conn: WebSocketConnection) -> None:
        self.conn = conn
        self.messages: list[str | bytes] = []
        self.closes: list[tuple[int | None, str]] = []
        self.closed = asyncio.Event()
        self.received = asyncio.Event()

    def on_message(self, data: str | bytes) -> None:
        self.messages.append(data)
        self.received.set()
        if data == "close-me":
            self.conn.close(4000, "bye")
        elif data == "twice":
            self.conn.send(Outgoing("one"))
            self.conn.send(Outgoing("two"))
        elif data == "raise":
            raise RuntimeError("handler bug")
        elif isinstance(data, str) and data.startswith("uncompressed:"):
            self.conn.send(Outgoing(data, compress=False))
        else:
            self.conn.send(Outgoing(data))

    def on_close(self, code: int | None, reason: str) -> None:
        self.closes.append((code, reason))
        self.closed.set()


@dataclass
class FakeEngine:
    path: str = "/socket.io/"
    max_payload: int = 1000
    per_message_deflate: bool = False
    requests: list[HTTPRequest] = field(default_factory=list)
    handlers: list[FakeHandler] = field(default_factory=list)
    refuse_ws: HTTPResponse | None = None
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    fail_open: bool = False
    closed: bool = False
    bodies: list[bytes] = field(default_factory=list)

    async def handle_request(self, request: HTTPRequest) -> HTTPResponse:
        self.requests.append(request)
        if "wait" in request.query:  # a long-poll: held until the test opens the gate
            self.waiting.set()
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        if "boom" in request.query:
            raise RuntimeError("engine bug")
        received = request.body
        if request.receive_body is not None:  # a POST to the engine: its body may still arrive
            try:
                received = await request.receive_body()
            except BodyError as error:
                return HTTPResponse(error.status or 400, [("content-type", "text/plain")], b"")
            self.bodies.append(received)
        body = f"{request.method} {request.path} {len(received)}".encode()
        return HTTPResponse(200, [("content-type", "text/plain")], body)

    async def check_websocket(self, request: HTTPRequest) -> HTTPResponse | None:
        return self.refuse_ws

    def open_websocket(self, request: HTTPRequest, conn: WebSocketConnection) -> FakeHandler:
        if self.fail_open:
            raise RuntimeError("open failed")
        handler = FakeHandler(conn)
        self.handlers.append(handler)
        self.opened.set()
        return handler

    async def close(self) -> None:
        self.closed = True


@contextlib.asynccontextmanager
async def running(
    engine: FakeEngine | None = None, limits: NativeLimits = FAST, **kwargs: object
) -> AsyncIterator[NativeServer]:
    server = await serve(engine or FakeEngine(), port=0, limits=limits, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        await server.close()


# -- raw HTTP -----------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class Client:
    """A raw TCP client: write bytes, read HTTP responses and WebSocket frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def response(self, *, head: bool = False) -> Response:
        async with asyncio.timeout(TIMEOUT):
            status_line = await self.reader.readline()
            assert status_line.startswith(b"HTTP/1.1 "), status_line
            status = int(status_line.split()[1])
            headers: dict[str, str] = {}
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = b"" if head or status == 101 else await self.reader.readexactly(length)
        return Response(status, headers, body)

    async def get(self, target: str, extra: str = "") -> Response:
        self.send(f"GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
        return await self.response()

    async def eof(self) -> bytes:
        """Everything until the server closes the connection."""
        async with asyncio.timeout(TIMEOUT):
            return await self.reader.read()

    # -- WebSocket --

    async def frame(self) -> tuple[int, int, bytes]:
        """(first byte, opcode, payload) of one server frame."""
        async with asyncio.timeout(TIMEOUT):
            b0, b1 = await self.reader.readexactly(2)
            assert not b1 & 0x80, "server frames are never masked"
            length = b1 & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return b0, b0 & 0x0F, await self.reader.readexactly(length)

    async def close_frame(self) -> tuple[int | None, str]:
        while True:
            _, opcode, payload = await self.frame()
            if opcode == 8:
                break
        if not payload:
            return None, ""
        return struct.unpack("!H", payload[:2])[0], payload[2:].decode()


@contextlib.asynccontextmanager
async def client(port: int) -> AsyncIterator[Client]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield Client(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def upgrade_request(path: str = WS_PATH, extra: str = "", *, key: str = KEY) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


@contextlib.asynccontextmanager
async def websocket(port: int, extra: str = "") -> AsyncIterator[Client]:
    async with client(port) as c:
        c.send(upgrade_request(extra=extra))
        response = await c.response()
        assert response.status == 101, response
        c.headers = response.headers  # type: ignore[attr-defined]
        yield c


def frame(
    opcode: int,
    payload: bytes | str = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length: int | None = None,
) -> bytes:
    """A client frame (masked unless told otherwise); ``length`` overrides the declared length."""
    data = payload.encode() if isinstance(payload, str) else payload
    n = len(data) if length is None else length
    first = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if masked else 0
    if n < 126:
        header = bytes((first, mask_bit | n))
    elif n < 65536:
        header = bytes((first, mask_bit | 126)) + struct.pack("!H", n)
    else:
        header = bytes((first, mask_bit | 127)) + struct.pack("!Q", n)
    if not masked:
        return header + data
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))
