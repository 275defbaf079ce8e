"""The WebSocket frame codec (RFC 6455, RFC 7692), sans I/O: frames in and out, permessage-deflate.

Hand-written on purpose. bench/ws_codec.py measured it against websockets' sans-I/O protocol,
wsproto, aiohttp's reader and picows (numbers and the reasoning in docs/architecture.md, "WebSocket
codec choice"): on the hot path (one small masked text frame per read) this loop parses a frame in
a fraction of the pure-Python libraries' time, because it does exactly what a server needs and
nothing more: no per-frame objects, no generator hand-offs, one list of finished messages per read.
Every rule it enforces is listed in :class:`FrameParser` and tested byte by byte. The one thing
pure Python is slow at, XORing large payloads with the mask, is delegated to websockets' C masker
when that package is installed (:func:`unmask` is the exact fallback).

The native server's connection (:mod:`sockjet.serving.websocket`) drives it.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import zlib
from collections.abc import Callable
from enum import IntEnum
from typing import Final, cast

from sockjet.errors import PayloadTooLarge, ProtocolError

__all__ = [
    "COMPRESS_THRESHOLD",
    "SHORT_TEXT_HEADERS",
    "CloseCode",
    "DeflateParams",
    "Event",
    "FrameError",
    "FrameParser",
    "MessageTooBig",
    "Opcode",
    "accept_key",
    "build_frame",
    "close_frame",
    "data_frame",
    "deflate_frame",
    "negotiate_deflate",
    "parse_close",
    "unmask",
]

GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
COMPRESS_THRESHOLD: Final = 1024
"""Outbound messages shorter than this are never compressed (what Node's ws does too)."""


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
    """websockets' C masker (SIMD: 64 KiB in ~1.3 us against ~100 us) when installed, else ours."""
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
SHORT_TEXT_HEADERS: Final = _SHORT_HEADERS[0x81]
"""The header of a text frame of ``n < 126`` payload bytes is ``SHORT_TEXT_HEADERS[n]``."""


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
        size = len(data)
        if chunks:
            chunks.append(data)
            self._buffered += size
            if self._buffered < self._need:
                return []
            data = b"".join(chunks)
            chunks.clear()
            size = len(data)
        elif (
            # Exactly one small masked text frame: a browser's message read on its own. Its
            # second byte is 0x80 | length with length = size - 6 (2 header bytes, 4 key bytes).
            6 < size < 132
            and data[1] == size + 122
            and data[0] == 0x81
            and not self._frag_opcode
            and size - 6 <= self._max_payload
        ):
            try:
                return [(1, self._mask(data[6:], data[2:6]).decode())]
            except UnicodeDecodeError:
                raise FrameError(CloseCode.INVALID_DATA, "text message is not UTF-8") from None
        events: list[Event] = []
        pos = 0
        mask = self._mask
        max_payload = self._max_payload
        plain = not self._frag_opcode  # no fragmented message in progress (_frame changes it)
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
            if (b0 != 0x81 and b0 != 0x82) or b1 < 0x80 or not plain:
                self._check_header(b0, b1, length)
            elif length > max_payload:
                raise MessageTooBig(f"message of {length} bytes over max_payload")
            end = header + length
            if end > size:
                need = end - pos
                break
            payload = mask(data[header:end], data[header - 4 : header]) if length else b""
            pos = end
            if b0 == 0x81:  # (not plain: _check_header refused it)
                try:
                    events.append((1, payload.decode()))
                except UnicodeDecodeError:
                    raise FrameError(CloseCode.INVALID_DATA, "text message is not UTF-8") from None
            elif b0 == 0x82:
                events.append((2, payload))
            else:
                event = self._frame(b0, payload, length)
                plain = not self._frag_opcode
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
