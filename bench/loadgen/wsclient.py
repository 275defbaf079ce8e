"""A cheap Socket.IO-over-WebSocket client for load generation: one ``asyncio.Protocol`` each.

No Socket.IO packet objects and no JSON on the hot path: the client walks frame headers, counts
what it was told to count, and hands complete text/binary messages to a callback only when the
scenario needs their content. That keeps the generator's CPU per message well below any
server's, which is what lets a single generator core drive every peer to its limit (its CPU is
reported next to the server's so a saturated generator is never mistaken for a server limit).

How the client writes is its *mode* (``--client-writes``), because it changes what a server is
measured doing:

``per-message`` (the default: what browsers and Node's socket.io-client do)
    Every client message is one frame with a fresh random 4-byte masking key, written with its
    own ``transport.write`` the moment it exists. uvloop (0.23) writes at once when the socket
    has nothing queued (``UVStream._initiate_write`` -> ``uv_try_write``), so that is one
    ``write()`` syscall per message; only a full socket buffer would make uvloop queue (and so
    coalesce) writes, as the kernel does for a browser. The upgrade request carries a browser's
    headers (Origin of the same host, User-Agent, Accept-*, Cache-Control, Pragma).
``batched`` (the generator before issue 15)
    Frames have an all-zero masking key (valid per RFC 6455 5.3, and XOR with zero is free; but
    Node's ``ws`` skips unmasking a zero key, so it flatters Node), the frames a client sends in
    reply to one read leave together in one write at the end of that read, and a scenario's
    initial burst (echo's 16 requests per client) is one write. A server then finds many
    messages in one read and amortizes its per-read costs over them.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import socket
import struct
from collections.abc import Callable
from typing import Any, Final, Literal

from bench.loadgen.tcp import open_tcp

__all__ = [
    "BATCHED",
    "CLIENT_WRITES",
    "PER_MESSAGE",
    "ClientWrites",
    "SourceAddresses",
    "WSClient",
    "apply_mask",
    "client_frame",
    "connect_ws",
    "masked_frame",
    "upgrade_request",
]

ClientWrites = Literal["per-message", "batched"]
PER_MESSAGE: Final = "per-message"
BATCHED: Final = "batched"
CLIENT_WRITES: Final[tuple[ClientWrites, ...]] = (PER_MESSAGE, BATCHED)

_ZERO_MASK = b"\x00\x00\x00\x00"
_LINGER_RST = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT left on the generator side
# Browsers take the key from a CSPRNG; the generator only needs it unpredictable to the server,
# and os.urandom would cost a getrandom() syscall per frame on the generator's core.
_random_key = random.Random(os.urandom(16)).getrandbits
_BIG_MASK_FROM = 2048  # from here the C masker (websockets.speedups) beats the big-int XOR


def _header(n: int, opcode: int) -> bytes:
    if n < 126:
        return bytes((0x80 | opcode, 0x80 | n))
    if n < 65536:
        return bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    return bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")


def client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A final, masked client frame with the all-zero key (the ``batched`` mode's frames)."""
    return _header(len(payload), opcode) + _ZERO_MASK + payload


def _xor_mask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    key = int.from_bytes((mask * ((n >> 2) + 1))[:n], "little")
    return (int.from_bytes(payload, "little") ^ key).to_bytes(n, "little")


def _load_apply_mask() -> Callable[[bytes, bytes], bytes]:
    try:
        from websockets.speedups import apply_mask as c_mask  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - websockets is a dev dependency
        return _xor_mask

    def apply(payload: bytes, mask: bytes) -> bytes:
        return _xor_mask(payload, mask) if len(payload) < _BIG_MASK_FROM else c_mask(payload, mask)

    return apply


apply_mask: Final = _load_apply_mask()
"""XOR ``payload`` with the repeating 4-byte ``mask`` (RFC 6455 5.3; its own inverse)."""


def masked_frame(payload: bytes, opcode: int = 1, mask: bytes | None = None) -> bytes:
    """A final client frame masked as a browser masks it: a fresh random key per frame
    (``mask`` fixes the key, for tests)."""
    if mask is None:
        mask = _random_key(32).to_bytes(4, "little")
    return _header(len(payload), opcode) + mask + (apply_mask(payload, mask) if payload else b"")


def upgrade_request(key: str, port: int | None = None, browser: bool = False) -> bytes:
    """The HTTP upgrade request; ``browser``: with the headers Chrome sends from a page served
    by the same host (``Sec-WebSocket-Extensions`` left out: the generator does not inflate, and
    none of the compared servers negotiates permessage-deflate by default)."""
    if not browser:
        return (
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    host = f"127.0.0.1:{port}" if port else "127.0.0.1"
    return (
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Connection: Upgrade\r\n"
        "Pragma: no-cache\r\n"
        "Cache-Control: no-cache\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36\r\n"
        "Upgrade: websocket\r\n"
        f"Origin: http://{host}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Accept-Encoding: gzip, deflate, br, zstd\r\n"
        "Accept-Language: en-US,en;q=0.9\r\n"
        f"Sec-WebSocket-Key: {key}\r\n\r\n"
    ).encode()


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
    """One Engine.IO/Socket.IO WebSocket client, writing in mode ``writes`` (module docstring).

    ``on_message(client, text_or_bytes)`` gets every message that is not a heartbeat, unless
    ``sink`` is set: then messages are only counted, ``sink.add(n)`` once per read (fan-out
    receivers; set ``sink`` once ``connected`` resolved). Scenarios send with :meth:`send`:
    ``per-message`` writes each message at once, ``batched`` collects the frames in ``out``,
    written in one call at the end of the read (or by :meth:`flush`).
    """

    __slots__ = (
        "_buf",
        "_handshaken",
        "connected",
        "on_message",
        "out",
        "per_message",
        "port",
        "received",
        "sink",
        "tag",
        "transport",
    )

    def __init__(
        self,
        connected: asyncio.Future[int],
        on_message: Callable[[WSClient, Any], None] | None = None,
        writes: ClientWrites = PER_MESSAGE,
        port: int | None = None,
    ) -> None:
        if writes not in CLIENT_WRITES:
            raise ValueError(f"unknown client writes mode {writes!r}")
        self.connected = connected
        self.on_message = on_message
        self.per_message = writes == PER_MESSAGE
        self.port = port
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
        self.send_raw(upgrade_request(key, self.port, browser=self.per_message))

    def frame(self, payload: bytes, opcode: int = 1) -> bytes:
        """``payload`` framed as this client's mode frames it (random or zero key)."""
        return masked_frame(payload, opcode) if self.per_message else client_frame(payload, opcode)

    def send(self, payload: bytes, opcode: int = 1) -> None:
        """Send one message: ``per-message`` writes its frame now (one syscall); ``batched``
        queues it in ``out`` (written at the end of the current read, or by :meth:`flush`)."""
        if self.per_message:
            assert self.transport is not None
            self.transport.write(masked_frame(payload, opcode))
        else:
            self.out.append(client_frame(payload, opcode))

    def send_text(self, text: str) -> None:
        """Send one text message at once (one write, whatever the mode)."""
        assert self.transport is not None
        self.transport.write(self.frame(text.encode()))

    def flush(self) -> None:
        """Write the frames queued in ``out`` (``batched``) in one call."""
        if self.out:
            assert self.transport is not None
            self.transport.write(b"".join(self.out))
            self.out.clear()

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (pre-built frames, the upgrade request)."""
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
                self.send_raw(masked_frame(b"3") if self.per_message else _PONG)
                continue
            if sink is not None and length > 2:
                received += 1
                continue
            self._message(data, start, end)
        if received:
            sink.add(received)
        if self.out:
            self.flush()
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
                    self.send_raw(masked_frame(b"40") if self.per_message else _NSP_CONNECT)
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
    writes: ClientWrites = PER_MESSAGE,
) -> WSClient:
    """Open a WebSocket, complete the Engine.IO handshake and join namespace ``/``."""
    loop = asyncio.get_running_loop()
    connected: asyncio.Future[int] = loop.create_future()
    _, client = await open_tcp(
        lambda: WSClient(connected, on_message, writes, port), port, source, timeout
    )
    try:
        await asyncio.wait_for(connected, timeout)
    except BaseException:
        client.close()
        raise
    return client
