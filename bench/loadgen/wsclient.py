"""A cheap Socket.IO-over-WebSocket client for load generation: one ``asyncio.Protocol`` each.

No Socket.IO packet objects and no JSON on the hot path: the client walks frame headers, counts
what it was told to count, and hands complete text/binary messages to a callback only when the
scenario needs their content. It sends masked frames with an all-zero masking key (valid per
RFC 6455 section 5.3: the key is chosen by the client and XOR with zero is free), so sending costs
one header concatenation. All of that keeps the generator's CPU per message well below any
server's, which is what lets a single generator core drive every peer to its limit (its CPU is
reported next to the server's so a saturated generator is never mistaken for a server limit).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

from bench.loadgen.tcp import open_tcp

__all__ = ["SourceAddresses", "WSClient", "client_frame", "connect_ws"]

_ZERO_MASK = b"\x00\x00\x00\x00"
_LINGER_RST = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT left on the generator side


def client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A final, masked (zero key) client frame."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
    return header + _ZERO_MASK + payload


_PONG = client_frame(b"3")
_NSP_CONNECT = client_frame(b"40")


class SourceAddresses:
    """Round-robin over 127.0.0.2..: each source address has its own ~28k ephemeral ports, so
    tens of thousands of loopback connections do not run out."""

    __slots__ = ("_i", "_n")

    def __init__(self, count: int = 200) -> None:
        self._n = count
        self._i = 0

    def next(self) -> str:
        """The next source address."""
        self._i += 1
        return f"127.0.{(self._i % self._n) // 250}.{2 + (self._i % self._n) % 250}"


class WSClient(asyncio.Protocol):
    """One Engine.IO/Socket.IO WebSocket client.

    ``on_message(client, text_or_bytes)`` gets every message that is not a heartbeat, unless
    ``sink`` is set: then messages are only counted, ``sink.add(n)`` once per read (fan-out
    receivers; set ``sink`` once ``connected`` resolved). Frames ``on_message`` appends to
    ``out`` are written in one call at the end of the read.
    """

    __slots__ = (
        "_buf",
        "_handshaken",
        "connected",
        "on_message",
        "out",
        "received",
        "sink",
        "tag",
        "transport",
    )

    def __init__(
        self,
        connected: asyncio.Future[int],
        on_message: Callable[[WSClient, Any], None] | None = None,
    ) -> None:
        self.connected = connected
        self.on_message = on_message
        self.sink: Any = None
        self.out: list[bytes] = []
        self.tag: Any = None  # scenario state (e.g. next ack id)
        self.received = 0
        self._buf = b""
        self._handshaken = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        key = base64.b64encode(os.urandom(16)).decode()
        self.send_raw(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def send_text(self, text: str) -> None:
        """Send one text message."""
        assert self.transport is not None
        self.transport.write(client_frame(text.encode()))

    def send_raw(self, data: bytes) -> None:
        """Send pre-built frames (see :func:`client_frame`)."""
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        """Drop the connection at once (RST)."""
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_exception(exc or ConnectionError("closed during handshake"))

    def data_received(self, data: bytes) -> None:
        if self._buf:
            data = self._buf + data
            self._buf = b""
        if not self._handshaken:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._buf = data
                return
            if not data.startswith(b"HTTP/1.1 101"):
                self.connected.set_exception(ConnectionError(data[:end].decode("latin-1")))
                assert self.transport is not None
                self.transport.abort()
                return
            self._handshaken = True
            data = data[end + 4 :]
        pos = 0
        n = len(data)
        sink = self.sink
        received = 0
        while n - pos >= 2:
            length = data[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                start = pos + 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > n:
                break
            pos = end
            if length == 1 and data[start] == 0x32:  # "2": ping -> pong
                self.send_raw(_PONG)
                continue
            if sink is not None and length > 2:
                received += 1
                continue
            self._message(data, start, end)
        if received:
            sink.add(received)
        if self.out:
            assert self.transport is not None
            self.transport.write(b"".join(self.out))
            self.out.clear()
        if pos < n:
            self._buf = data[pos:]

    def _message(self, data: bytes, start: int, end: int) -> None:
        # The opcode sits in the frame's first byte, found again from the header layout.
        payload = data[start:end]
        length = end - start
        header = 2 if length < 126 else (4 if length < 65536 else 10)
        opcode = data[start - header] & 0x0F
        if opcode == 1:
            if not self.connected.done():
                if payload[:1] == b"0":  # Engine.IO OPEN -> Socket.IO CONNECT
                    self.send_raw(_NSP_CONNECT)
                    return
                if payload[:2] == b"40":
                    self.connected.set_result(0)
                    return
                if payload[:2] == b"44":
                    self.connected.set_exception(ConnectionError(payload.decode()))
                    return
            self.received += 1
            if self.on_message is not None:
                self.on_message(self, payload)
        elif opcode == 2:
            self.received += 1
            if self.on_message is not None:
                self.on_message(self, payload)
        elif opcode == 8:
            assert self.transport is not None
            self.transport.abort()


async def connect_ws(
    port: int,
    source: str,
    on_message: Callable[[WSClient, Any], None] | None = None,
    timeout: float = 15.0,  # noqa: ASYNC109
) -> WSClient:
    """Open a WebSocket, complete the Engine.IO handshake and join namespace ``/``."""
    loop = asyncio.get_running_loop()
    connected: asyncio.Future[int] = loop.create_future()
    _, client = await open_tcp(lambda: WSClient(connected, on_message), port, source, timeout)
    try:
        await asyncio.wait_for(connected, timeout)
    except BaseException:
        client.close()
        raise
    return client
