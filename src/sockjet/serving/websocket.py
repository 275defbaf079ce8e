"""WebSocket (RFC 6455, RFC 7692) for the native server: the frame codec and one protocol per socket.

The codec is hand-written on purpose. bench/ws_codec.py measured it against websockets' sans-I/O
protocol, wsproto, aiohttp's reader and picows (numbers and the reasoning in docs/architecture.md,
"WebSocket codec choice"): on the hot path (one small masked text frame per read) this loop parses
a frame in a fraction of the pure-Python libraries' time, because it does exactly what a server
needs and nothing more: no per-frame objects, no generator hand-offs, one list of finished messages
per read. Every rule it enforces is listed in :class:`FrameParser` and tested byte by byte. The one
thing pure Python is slow at, XORing large payloads with the mask, is delegated to websockets' C
masker when that package is installed (:func:`unmask` is the exact fallback).

Outbound, every frame is built once per :class:`~sockjet.engine.io.Outgoing` (cached in
``ws_frame``) and everything queued for one connection during one event-loop iteration leaves in a
single ``transport.write`` (see :class:`Flusher`). A connection holds its queued frames itself and
hands them to the transport only while the transport accepts more (``pause_writing`` /
``resume_writing``), at most 64 KiB per write: a large burst, or a broadcast to many slow clients,
is then held once (the frames are shared), not copied into every transport's buffer.

Inbound, ``pause_reading()`` stops reading the socket; messages already parsed from the last read
are held, in order, and delivered on ``resume_reading()``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib
import logging
import zlib
from collections import deque
from collections.abc import Callable
from enum import IntEnum
from typing import TYPE_CHECKING, Final, cast

from sockjet.errors import PayloadTooLarge, ProtocolError

if TYPE_CHECKING:
    from sockjet.engine.io import Outgoing, WebSocketHandler

__all__ = [
    "DeflateParams",
    "Flusher",
    "FrameError",
    "FrameParser",
    "MessageTooBig",
    "Opcode",
    "WebSocketProtocol",
    "accept_key",
    "build_frame",
    "close_frame",
    "negotiate_deflate",
    "parse_close",
]

logger = logging.getLogger("sockjet.serving")

GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
COMPRESS_THRESHOLD: Final = 1024
"""Outbound messages shorter than this are never compressed (what Node's ws does too)."""
WRITE_CHUNK: Final = 64 * 1024
"""Most bytes handed to the transport in one write (the transport's default high-water mark):
what a connection copies of a shared frame is bounded by this, not by the frame's size."""


class Opcode(IntEnum):
    CONTINUATION = 0
    TEXT = 1
    BINARY = 2
    CLOSE = 8
    PING = 9
    PONG = 10


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    NO_STATUS = 1005
    INVALID_DATA = 1007
    TOO_BIG = 1009
    INTERNAL_ERROR = 1011


# Close codes a peer may send (RFC 6455 7.4.1 plus the IANA-registered 1012-1014, 3000-4999).
_VALID_CLOSE_CODES: Final = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)


class FrameError(ProtocolError):
    """The client broke the WebSocket protocol; ``code`` is the close code to answer with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = int(code)
        self.reason = reason


class MessageTooBig(FrameError, PayloadTooLarge):
    """A message (or its decompressed form, or its fragment count) over the limit: close 1009."""

    def __init__(self, reason: str) -> None:
        super().__init__(CloseCode.TOO_BIG, reason)


# --------------------------------------------------------------------------------------------
# Masking. Client payloads are XORed with a 4-byte key. Pure Python has no vector XOR: for short
# payloads a big-int XOR is fastest; from ~1 KiB the four strided ``bytes.translate`` passes win
# (about 2x at 64 KiB). Both are exact; bench/ws_codec.py measures them.

_XOR_TABLES: Final = [bytes(b ^ k for b in range(256)) for k in range(256)]


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR ``payload`` with the repeating 4-byte ``mask`` (RFC 6455 5.3)."""
    n = len(payload)
    if n < 2048:
        key = int.from_bytes((mask * ((n >> 2) + 1))[:n], "little")
        return (int.from_bytes(payload, "little") ^ key).to_bytes(n, "little")
    out = bytearray(n)
    tables = _XOR_TABLES
    out[0::4] = payload[0::4].translate(tables[mask[0]])
    out[1::4] = payload[1::4].translate(tables[mask[1]])
    out[2::4] = payload[2::4].translate(tables[mask[2]])
    out[3::4] = payload[3::4].translate(tables[mask[3]])
    return bytes(out)


def _load_c_mask() -> Callable[[bytes, bytes], bytes]:
    """websockets' C masker (SIMD, ~50x faster at 64 KiB) when installed, else ours."""
    try:
        module = importlib.import_module("websockets.speedups")
    except ImportError:
        return unmask
    return cast("Callable[[bytes, bytes], bytes]", module.apply_mask)


_apply_mask: Final = _load_c_mask()


# --------------------------------------------------------------------------------------------
# Building server frames (never masked).


def build_frame(opcode: int, payload: bytes, *, rsv1: bool = False) -> bytes:
    """One final (FIN) server-to-client frame."""
    first = 0x80 | opcode | (0x40 if rsv1 else 0)
    n = len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return bytes((first, 126)) + n.to_bytes(2, "big") + payload
    return bytes((first, 127)) + n.to_bytes(8, "big") + payload


_SHORT_HEADERS: Final = {
    first: [bytes((first, n)) for n in range(126)] for first in (0x81, 0x82)
}  # the 2-byte headers of small frames, prebuilt: the common case allocates one bytes object


def data_frame(data: str | bytes) -> bytes:
    """A text frame for ``str``, a binary frame for ``bytes``."""
    if isinstance(data, str):
        payload = data.encode()
        first = 0x81
    else:
        payload = data
        first = 0x82
    n = len(payload)
    if n < 126:
        return _SHORT_HEADERS[first][n] + payload
    return build_frame(first & 0x0F, payload)


def close_frame(code: int | None = CloseCode.NORMAL, reason: str = "") -> bytes:
    """A close frame; the reason is cut (on a character boundary) to fit 125 bytes."""
    if code is None or code == CloseCode.NO_STATUS:
        return build_frame(Opcode.CLOSE, b"")
    encoded = reason.encode()
    if len(encoded) > 123:
        encoded = encoded[:123].decode("utf-8", "ignore").encode()
    return build_frame(Opcode.CLOSE, code.to_bytes(2, "big") + encoded)


def parse_close(payload: bytes) -> tuple[int, str]:
    """The (code, reason) of a client close frame; 1005 when it carries no code."""
    if not payload:
        return CloseCode.NO_STATUS, ""
    if len(payload) == 1:
        raise FrameError(CloseCode.PROTOCOL_ERROR, "close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if code not in _VALID_CLOSE_CODES and not 3000 <= code <= 4999:
        raise FrameError(CloseCode.PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise FrameError(CloseCode.INVALID_DATA, "close reason is not UTF-8") from None
    return code, reason


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value for a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


# --------------------------------------------------------------------------------------------
# permessage-deflate (RFC 7692).


class DeflateParams:
    """What was agreed for one connection."""

    __slots__ = ("client_no_context_takeover", "server_max_window_bits")

    def __init__(self, client_no_context_takeover: bool, server_max_window_bits: int) -> None:
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits


def negotiate_deflate(offers: str) -> tuple[str, DeflateParams] | None:
    """Pick the first acceptable permessage-deflate offer from a Sec-WebSocket-Extensions value.

    Returns the response header value and the agreed parameters, or None. We always answer
    ``server_no_context_takeover``: each outbound message is compressed on its own, so one
    compressed broadcast frame serves every connection.
    """
    for offer in offers.split(","):
        name, *raw_params = (part.strip() for part in offer.split(";"))
        if name.lower() != "permessage-deflate":
            continue
        params: dict[str, str | None] = {}
        for raw in raw_params:
            key, sep, value = raw.partition("=")
            key = key.strip().lower()
            if key in params:
                break
            params[key] = value.strip().strip('"') if sep else None
        else:
            agreed = _agree(params)
            if agreed is not None:
                return agreed
    return None


def _agree(params: dict[str, str | None]) -> tuple[str, DeflateParams] | None:
    response = ["permessage-deflate", "server_no_context_takeover"]
    client_no_context = False
    window = 15
    for key, value in params.items():
        if key == "server_no_context_takeover" or key == "client_no_context_takeover":
            if value is not None:
                return None
            if key == "client_no_context_takeover":
                client_no_context = True
                response.append(key)
        elif key == "server_max_window_bits":
            if value is None or not value.isdigit() or not 8 <= int(value) <= 15:
                return None
            window = int(value)
            response.append(f"server_max_window_bits={window}")
        elif key == "client_max_window_bits":
            # We inflate with a 32 KiB window, which reads any smaller one: nothing to answer.
            if value is not None and (not value.isdigit() or not 8 <= int(value) <= 15):
                return None
        else:
            return None
    return "; ".join(response), DeflateParams(client_no_context, window)


class _Inflater:
    """Per-connection decompressor whose output is capped (deflate bombs end in 1009)."""

    __slots__ = ("_decompressor", "_limit", "_reset")

    def __init__(self, limit: int, no_context_takeover: bool) -> None:
        self._decompressor = zlib.decompressobj(-15)
        self._limit = limit
        self._reset = no_context_takeover

    def inflate(self, payload: bytes) -> bytes:
        try:
            out = self._decompressor.decompress(payload + b"\x00\x00\xff\xff", self._limit + 1)
        except zlib.error:
            raise FrameError(CloseCode.INVALID_DATA, "invalid compressed data") from None
        if len(out) > self._limit:
            raise MessageTooBig("decompressed message over max_payload")
        if self._reset:
            self._decompressor = zlib.decompressobj(-15)
        return out


def deflate_frame(data: str | bytes, window_bits: int) -> bytes:
    """A compressed (RSV1) frame, compressed on its own (no context carried over)."""
    payload = data.encode() if isinstance(data, str) else data
    compressor = zlib.compressobj(6, zlib.DEFLATED, -window_bits)
    body = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    opcode = Opcode.TEXT if isinstance(data, str) else Opcode.BINARY
    return build_frame(opcode, body[:-4], rsv1=True)


# --------------------------------------------------------------------------------------------
# Parsing client frames.

Event = tuple[int, str | bytes]
"""``(Opcode.TEXT, str)``, ``(Opcode.BINARY, bytes)``, or a control frame ``(opcode, payload)``."""


class FrameParser:
    """Incremental, sans-I/O parser of client-to-server frames.

    :meth:`feed` takes bytes as they arrive and returns complete messages and control frames. It
    raises only :class:`FrameError` (:class:`MessageTooBig` for 1009), after which the parser
    must not be fed again. The rules, each a close code:

    - unmasked frame, RSV bits without a negotiated extension, unknown opcode, fragmented or
      over-125-byte control frame, continuation without a message, a new message inside a
      fragmented one: 1002;
    - invalid UTF-8 in a text message, corrupt compressed data: 1007;
    - a message over ``max_payload`` (checked on the declared length, before any of the payload
      is buffered; summed across fragments), more than ``max_fragments`` fragments, or a
      decompressed message over ``max_payload``: 1009.

    Memory held is bounded by ``max_payload`` plus one read.
    """

    __slots__ = (
        "_buffered",
        "_chunks",
        "_frag_compressed",
        "_frag_opcode",
        "_frag_size",
        "_fragments",
        "_inflater",
        "_mask",
        "_max_fragments",
        "_max_payload",
        "_need",
    )

    def __init__(
        self,
        max_payload: int,
        max_fragments: int = 1024,
        deflate: DeflateParams | None = None,
        *,
        mask: Callable[[bytes, bytes], bytes] | None = None,
    ) -> None:
        self._mask = mask or _apply_mask
        self._max_payload = max_payload
        self._max_fragments = max_fragments
        self._inflater = (
            _Inflater(max_payload, deflate.client_no_context_takeover) if deflate else None
        )
        self._chunks: list[bytes] = []  # an unfinished frame, joined once it is complete
        self._buffered = 0
        self._need = 0
        self._frag_opcode = 0  # opcode of the fragmented message in progress, 0 when none
        self._fragments: list[bytes] = []
        self._frag_size = 0
        self._frag_compressed = False

    def feed(self, data: bytes) -> list[Event]:
        """Parse what arrived; return the messages and control frames it completed, in order."""
        chunks = self._chunks
        if chunks:
            chunks.append(data)
            self._buffered += len(data)
            if self._buffered < self._need:
                return []
            data = b"".join(chunks)
            chunks.clear()
        events: list[Event] = []
        pos = 0
        size = len(data)
        mask = self._mask
        while True:
            avail = size - pos
            if avail < 2:
                need = 2
                break
            b0 = data[pos]
            b1 = data[pos + 1]
            length = b1 & 0x7F
            if length < 126:
                header = pos + 6
            elif length == 126:
                if avail < 8:
                    need = 8
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                header = pos + 8
            else:
                if avail < 14:
                    need = 14
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                header = pos + 14
            # The common case (0x81/0x82, masked, no fragment in progress) takes four tests.
            if (b0 != 0x81 and b0 != 0x82) or b1 < 0x80 or self._frag_opcode:
                self._check_header(b0, b1, length)
            elif length > self._max_payload:
                raise MessageTooBig(f"message of {length} bytes over max_payload")
            end = header + length
            if end > size:
                need = end - pos
                break
            payload = mask(data[header:end], data[header - 4 : header]) if length else b""
            pos = end
            if b0 == 0x81:
                try:
                    events.append((1, payload.decode()))
                except UnicodeDecodeError:
                    raise FrameError(CloseCode.INVALID_DATA, "text message is not UTF-8") from None
            elif b0 == 0x82:
                events.append((2, payload))
            else:
                event = self._frame(b0, payload, length)
                if event is not None:
                    events.append(event)
        if pos < size:
            chunks.append(data[pos:] if pos else data)
            self._buffered = size - pos
            self._need = need
        return events

    def _frame(self, b0: int, payload: bytes, length: int) -> Event | None:
        """Everything but a plain unfragmented text/binary frame."""
        opcode = b0 & 0x0F
        if opcode >= 8:
            return opcode, payload
        if opcode:  # the first fragment, or a compressed message
            if not b0 & 0x80:
                self._frag_opcode = opcode
                self._fragments.append(payload)
                self._frag_size = length
                self._frag_compressed = bool(b0 & 0x40)
                return None
            payload = self._inflate(payload)
            return (opcode, payload) if opcode == 2 else (opcode, _decode(payload))
        self._fragments.append(payload)
        self._frag_size += length
        if b0 & 0x80:
            return self._assemble()
        if len(self._fragments) >= self._max_fragments:
            raise MessageTooBig(f"message in over {self._max_fragments} fragments")
        return None

    def _check_header(self, b0: int, b1: int, length: int) -> None:
        """Every rule of the frame header; the slow path taken by all but plain data frames."""
        opcode = b0 & 0x0F
        if not b1 & 0x80:
            raise FrameError(CloseCode.PROTOCOL_ERROR, "client frame is not masked")
        if b0 & 0x70 and (b0 & 0x30 or self._inflater is None or not 1 <= opcode <= 2):
            raise FrameError(CloseCode.PROTOCOL_ERROR, "reserved bits set")
        if opcode >= 8:
            if opcode > Opcode.PONG:
                raise FrameError(CloseCode.PROTOCOL_ERROR, f"unknown opcode {opcode}")
            if not b0 & 0x80:
                raise FrameError(CloseCode.PROTOCOL_ERROR, "fragmented control frame")
            if length > 125:
                raise FrameError(CloseCode.PROTOCOL_ERROR, "control frame over 125 bytes")
            return
        if opcode > Opcode.BINARY:
            raise FrameError(CloseCode.PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if opcode == Opcode.CONTINUATION:
            if not self._frag_opcode:
                raise FrameError(CloseCode.PROTOCOL_ERROR, "continuation without a message")
        elif self._frag_opcode:
            raise FrameError(CloseCode.PROTOCOL_ERROR, "new message inside a fragmented one")
        if length > self._max_payload - self._frag_size:
            raise MessageTooBig(f"message of {self._frag_size + length}+ bytes over max_payload")

    def _assemble(self) -> Event:
        opcode = self._frag_opcode
        payload = b"".join(self._fragments)
        compressed = self._frag_compressed
        self._fragments.clear()
        self._frag_opcode = self._frag_size = 0
        self._frag_compressed = False
        if compressed:
            payload = self._inflate(payload)
        return (opcode, payload) if opcode == Opcode.BINARY else (opcode, _decode(payload))

    def _inflate(self, payload: bytes) -> bytes:
        assert self._inflater is not None  # RSV1 is refused in _check_header without it
        return self._inflater.inflate(payload)


def _decode(payload: bytes) -> str:
    try:
        return payload.decode()
    except UnicodeDecodeError:
        raise FrameError(CloseCode.INVALID_DATA, "text message is not UTF-8") from None


# --------------------------------------------------------------------------------------------
# The connection.


class Flusher:
    """Writes each dirty connection's queued frames once per event-loop iteration.

    One ``call_soon`` per iteration for the whole server (not one per connection): a broadcast
    to a thousand sockets queues a thousand frames and costs one callback and one write each.
    Also holds the per-iteration cache of compressed broadcast frames.
    """

    __slots__ = ("_deflated", "_dirty", "_loop", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[WebSocketProtocol] = []
        self._scheduled = False
        self._deflated: dict[tuple[Outgoing, int], bytes] = {}

    def mark(self, conn: WebSocketProtocol) -> None:
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def deflated(self, message: Outgoing, window_bits: int) -> bytes:
        """The compressed frame of ``message``, built once per iteration for all connections."""
        key = (message, window_bits)
        frame = self._deflated.get(key)
        if frame is None:
            frame = self._deflated[key] = deflate_frame(message.data, window_bits)
        return frame

    def _flush(self) -> None:
        self._scheduled = False
        dirty = self._dirty
        self._dirty = []
        self._deflated.clear()
        for conn in dirty:
            try:
                conn.flush()
            except Exception:
                # one broken connection must not keep the others' frames from going out
                logger.exception("writing to a WebSocket failed; dropping that connection")
                conn.abort()


_OPEN: Final = 0
_CLOSING: Final = 1  # we sent a close frame and wait for the peer's
_CLOSED: Final = 2


class WebSocketProtocol(asyncio.Protocol):
    """One accepted WebSocket: the engine's :class:`~sockjet.engine.io.WebSocketConnection`.

    ``handler.on_close(code, reason)`` is called exactly once: with the peer's close code when
    it sent a close frame (1005 if it gave none), with the code we closed with when the peer
    broke the protocol (1002, 1007, 1009, 1011), or with None when the connection dropped or the
    peer never answered our close frame.
    """

    __slots__ = (
        "_close_timeout",
        "_compress_bits",
        "_drain_level",
        "_flusher",
        "_handler",
        "_head",
        "_held",
        "_notified",
        "_on_lost",
        "_out",
        "_out_size",
        "_parser",
        "_pending_pong",
        "_plain",
        "_read_paused",
        "_state",
        "_timer",
        "_transport",
        "_writing_paused",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        parser: FrameParser,
        flusher: Flusher,
        *,
        close_timeout: float,
        deflate: DeflateParams | None = None,
        on_lost: Callable[[WebSocketProtocol], None] | None = None,
    ) -> None:
        self._transport = transport
        self._parser = parser
        self._flusher = flusher
        self._close_timeout = close_timeout
        # Outbound compression needs a window zlib can produce (9-15); 8 means "don't compress".
        bits = deflate.server_max_window_bits if deflate else 0
        self._compress_bits = bits if bits >= 9 else 0
        self._on_lost = on_lost
        self._handler: WebSocketHandler | None = None
        self._out: deque[bytes] = deque()
        self._out_size = 0  # bytes of _out not yet written (the first frame minus _head)
        self._head = 0  # bytes of _out[0] already written
        self._drain_level: int | None = None  # watch_drain's level, while armed
        self._read_paused = False
        self._held: list[Event] | None = None  # parsed while paused, delivered on resume
        self._state = _OPEN
        self._timer: asyncio.TimerHandle | None = None
        self._writing_paused = False
        self._plain = True  # open, writable, no frame half-written, no drain watched
        self._pending_pong: bytes | None = None
        self._notified = False

    def start(self, handler: WebSocketHandler, data: bytes = b"") -> None:
        """Attach the engine's handler, process bytes that arrived with the handshake, then
        read (the HTTP protocol paused reading for the switch), unless the handler paused."""
        self._handler = handler
        if data:
            self.data_received(data)
        if not self._read_paused and self._state != _CLOSED:
            self._transport.resume_reading()

    # -- WebSocketConnection --------------------------------------------------------------

    def send(self, message: Outgoing) -> None:
        """Queue one message; it leaves with everything else queued in this loop iteration."""
        if self._state != _OPEN:
            return
        frame = message.ws_frame
        if self._compress_bits and message.compress and len(message.data) >= COMPRESS_THRESHOLD:
            frame = self._flusher.deflated(message, self._compress_bits)
        elif frame is None:
            frame = message.ws_frame = data_frame(message.data)
        if not self._out:
            self._flusher.mark(self)
        self._out.append(frame)
        self._out_size += len(frame)

    @property
    def buffered_amount(self) -> int:
        """Bytes queued here plus bytes the transport has not handed to the kernel yet."""
        if self._state == _CLOSED:
            return self._out_size
        return self._out_size + self._transport.get_write_buffer_size()

    def watch_drain(self, level: int) -> None:
        """Call the handler's ``on_drain()`` after a write leaves at most ``level`` buffered
        (or nothing queued here while the transport takes more)."""
        self._drain_level = level
        self._plain = False
        self._flusher.mark(self)  # checked at the next flush even if nothing else is written

    def pause_reading(self) -> None:
        """Stop reading the socket; what was already parsed is held (see the module docs)."""
        if not self._read_paused:
            self._read_paused = True
            if self._state != _CLOSED:
                self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Deliver the held messages, then read the socket again (unless paused again)."""
        if not self._read_paused:
            return
        self._read_paused = False
        held, self._held = self._held, None
        if held:
            self._dispatch(held)
        if not self._read_paused and self._state != _CLOSED:
            self._transport.resume_reading()

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Send a close frame after what is queued, then wait for the peer's. Idempotent."""
        if self._state != _OPEN:
            return
        self._state = _CLOSING
        self._queue(close_frame(code, reason))
        self._timer = asyncio.get_running_loop().call_later(
            self._close_timeout, self._finish, None, ""
        )

    def shutdown(self) -> None:
        """Server shutdown: close with 1001 "going away"."""
        self.close(CloseCode.GOING_AWAY, "going away")

    def fail(self, code: int, reason: str) -> None:
        """Close at once with ``code`` (a protocol violation or an internal error)."""
        self._fail(code, reason)

    def abort(self) -> None:
        """Drop the TCP connection without a close handshake; what is queued is discarded."""
        self._out.clear()
        self._out_size = self._head = 0
        self._transport.abort()

    # -- writing --------------------------------------------------------------------------

    def _queue(self, frame: bytes) -> None:
        if not self._out:
            self._flusher.mark(self)
        self._out.append(frame)
        self._out_size += len(frame)

    def flush(self) -> None:
        """Hand what is queued to the transport: in one write when it is small (the usual
        case), else in chunks for as long as the transport takes them."""
        out = self._out
        if out and self._plain and self._out_size <= WRITE_CHUNK:
            # the fan-out hot path: one write per connection per loop iteration
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()
            self._out_size = 0
            return
        if out and self._state != _CLOSED and not self._writing_paused:
            self._write_chunks()
        if self._drain_level is not None:
            self._check_drain()

    def _replain(self) -> None:
        self._plain = (
            self._state != _CLOSED
            and not self._writing_paused
            and not self._head
            and self._drain_level is None
        )

    def _write_chunks(self) -> None:
        out = self._out
        write = self._transport.write
        while out and not self._writing_paused:  # write() may pause us (pause_writing)
            first = out[0]
            head = self._head
            left = len(first) - head
            if left > WRITE_CHUNK:
                end = head + WRITE_CHUNK
                self._head = end
                self._out_size -= WRITE_CHUNK
                write(memoryview(first)[head:end])
                continue
            out.popleft()
            self._head = 0
            parts: list[bytes | memoryview] = [memoryview(first)[head:] if head else first]
            size = left
            while out and size + len(out[0]) <= WRITE_CHUNK:
                frame = out.popleft()
                parts.append(frame)
                size += len(frame)
            self._out_size -= size
            write(parts[0] if len(parts) == 1 else b"".join(parts))
        self._replain()

    def _check_drain(self) -> None:
        level = self._drain_level
        if level is None or self._state == _CLOSED:
            return
        if self.buffered_amount <= level or (not self._out and not self._writing_paused):
            self._drain_level = None
            self._replain()
            handler = self._handler
            if handler is not None:
                try:
                    handler.on_drain()
                except Exception:
                    logger.exception("WebSocket drain handler failed")

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._plain = False

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._replain()
        pong = self._pending_pong
        if pong is not None:
            self._pending_pong = None
            self._queue(pong)
        self.flush()

    # -- reading --------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._state == _CLOSED:
            return
        try:
            events = self._parser.feed(data)
        except FrameError as exc:
            self._fail(exc.code, exc.reason)
            return
        if events:
            self._dispatch(events)

    def _dispatch(self, events: list[Event]) -> None:
        """Hand parsed messages and control frames on, in order, until reading is paused."""
        handler = self._handler
        assert handler is not None
        try:
            for index, (opcode, payload) in enumerate(events):
                if self._read_paused:
                    held = self._held
                    self._held = events[index:] if held is None else held + events[index:]
                    return
                if opcode <= Opcode.BINARY:
                    if self._state == _OPEN:
                        handler.on_message(payload)
                elif opcode == Opcode.PING:
                    self._pong(cast("bytes", payload))
                elif opcode == Opcode.CLOSE:
                    self._on_close_frame(cast("bytes", payload))
                    return
        except Exception:
            logger.exception("WebSocket handler failed")
            self._fail(CloseCode.INTERNAL_ERROR, "internal error")

    def _pong(self, payload: bytes) -> None:
        # O(1) and no timer: answered in the next flush; while the peer does not read, only the
        # latest pong is kept (RFC 6455 5.5.3 allows answering only the most recent ping).
        if self._state != _OPEN:
            return
        frame = build_frame(Opcode.PONG, payload)
        if self._writing_paused:
            self._pending_pong = frame
        else:
            self._queue(frame)

    def _on_close_frame(self, payload: bytes) -> None:
        try:
            code, reason = parse_close(payload)
        except FrameError as exc:
            self._fail(exc.code, exc.reason)
            return
        if self._state == _OPEN:
            self._queue(close_frame(code))  # echo the code, as RFC 6455 5.5.1 suggests
        self._finish(code, reason)

    def _fail(self, code: int, reason: str) -> None:
        """Close at once for a protocol violation (RFC 6455 7.1.7)."""
        if self._state == _OPEN:
            self._queue(close_frame(code, reason))
        self._finish(code, reason)

    def _finish(self, code: int | None, reason: str) -> None:
        """Write what is queued, close the TCP connection (the server closes first), notify.

        What the transport would not take is still written when it is small (a close frame
        behind a few messages); a large backlog is given up: the connection is ending.
        """
        if self._state == _CLOSED:
            return
        self.flush()
        out = self._out
        if out and self._out_size <= 4 * WRITE_CHUNK:
            head = self._head
            self._transport.write(b"".join([memoryview(out[0])[head:], *list(out)[1:]]))
        out.clear()
        self._out_size = self._head = 0
        self._state = _CLOSED
        self._plain = False
        if self._timer is not None:
            self._timer.cancel()
        transport = self._transport
        transport.close()
        if transport.get_write_buffer_size():
            # A peer that never reads must not keep the socket forever.
            self._timer = asyncio.get_running_loop().call_later(
                self._close_timeout, transport.abort
            )
        self._notify(code, reason)

    def _notify(self, code: int | None, reason: str) -> None:
        if self._notified or self._handler is None:
            return
        self._notified = True
        try:
            self._handler.on_close(code, reason)
        except Exception:
            logger.exception("WebSocket on_close handler failed")

    def eof_received(self) -> bool | None:
        return None  # a half-close without a close frame is a drop: let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self._state = _CLOSED
        self._plain = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._out.clear()
        self._out_size = self._head = 0
        self._pending_pong = None
        self._held = None
        if self._on_lost is not None:
            self._on_lost(self)
        self._notify(None, "")
