"""The msgpack parser, wire-compatible with npm ``socket.io-msgpack-parser`` 3.x.

Each packet is one binary Engine.IO message: a msgpack map ``{"type", "data", "id", "nsp"}``
(``data`` and ``id`` only when present), binary data native (``bin``), so there are no
BINARY_EVENT/BINARY_ACK packets and no attachments: the encoder sends BINARY_ types as
EVENT/ACK and the decoder never returns them. ``decode(encode(p)) == p`` holds with ``p.type``
normalized that way (and tuples read back as lists).

The JavaScript side uses notepack.io, which this decoder follows:

- ext type 0 of one byte (``d4 00 00``) is JavaScript ``undefined``: it reads as ``None``, and a
  ``data``/``id`` of ``None`` means absent (so a browser's CONNECT without auth, sent as
  ``data: undefined``, is accepted). The price of notepack's encoding: a 1-byte ArrayBuffer sent
  by a Node client reads as ``None`` too.
- ext type 0 of other sizes is an ArrayBuffer/typed array sent by Node: it reads as ``bytes``
  (an 8-byte one cannot be told from a notepack ``Date``, so Dates read as 8 raw bytes).
- the msgpack timestamp extension (-1) reads as an aware ``datetime`` and ``datetime`` values are
  encoded with it; every other ext type is refused.
- unknown keys (socket.io-client adds ``options``) are ignored.

Validation is the JSON parser's (:func:`~sockjet.protocol.socketio.payload_is_valid`: a
non-reserved event name included, which socket.io-msgpack-parser does not check), plus: ``type``
an integer 0-4, ``nsp`` a string, ``id`` absent or an integer in ``[0, MAX_ACK_ID]``, nesting at
most :data:`~sockjet.protocol.json.MAX_DEPTH`. The message size is bounded by the engine's
``max_payload`` before it gets here; declared lengths beyond the message are refused by msgpack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import msgpack  # type: ignore[import-untyped]  # no stubs or py.typed upstream

from sockjet.errors import InvalidPacket
from sockjet.protocol.json import MAX_DEPTH, depth_within
from sockjet.protocol.socketio import (
    DEFAULT_LIMITS,
    MAX_ACK_ID,
    DecoderLimits,
    Packet,
    PacketType,
    Serializer,
    payload_is_valid,
)

__all__ = ["MSGPACK_SERIALIZER", "MsgpackDecoder", "MsgpackSerializer"]

_TYPES: Final = tuple(PacketType)
_WIRE_TYPE: Final = (0, 1, 2, 3, 4, 2, 3)  # no BINARY_ types in this parser
_UNDEFINED_EXT: Final = 0  # notepack's ext type for undefined and ArrayBuffer
# Every byte but those that can start a map or an array (fixmap, fixarray, array/map 16 and 32).
_NOT_CONTAINER_HEADERS: Final = bytes(
    b for b in range(256) if not (0x80 <= b <= 0x9F or 0xDC <= b <= 0xDF)
)
_SCAN_LIMIT: Final = 4096  # bytes: above it, walking the decoded tree is the cheaper check


def _ext_hook(code: int, data: bytes) -> Any:
    if code != _UNDEFINED_EXT:
        raise InvalidPacket(f"msgpack ext type {code} refused")
    return None if len(data) == 1 else data


class MsgpackDecoder:
    """Decoder of the msgpack parser: every binary message is one whole packet."""

    __slots__ = ("_limits",)

    def __init__(self, limits: DecoderLimits = DEFAULT_LIMITS) -> None:
        # Kept for symmetry with the JSON decoder: msgpack has no attachments to bound.
        self._limits = limits

    def feed(self, data: str | bytes) -> Packet:
        """Decode one Engine.IO message; raises only :class:`~sockjet.errors.InvalidPacket`."""
        if not isinstance(data, bytes | bytearray):
            if not isinstance(data, memoryview):
                raise InvalidPacket("the msgpack parser expects binary messages")
            data = data.tobytes()
        try:
            obj = msgpack.unpackb(data, raw=False, ext_hook=_ext_hook, timestamp=3)
        except InvalidPacket:
            raise
        except Exception as exc:  # msgpack raises ValueError/TypeError/...: all mean garbage
            raise InvalidPacket(f"invalid msgpack: {exc.__class__.__name__}") from None
        if obj.__class__ is not dict:
            raise InvalidPacket("a msgpack packet must be a map")
        code = obj.get("type")
        if code.__class__ is not int or not 0 <= code <= 4:
            raise InvalidPacket("invalid packet type")
        nsp = obj.get("nsp")
        if nsp.__class__ is not str:
            raise InvalidPacket("invalid namespace")
        payload = obj.get("data")
        if not payload_is_valid(code, payload, self._limits.reserved_events):
            raise InvalidPacket(f"invalid payload for packet type {code}")
        ack_id = obj.get("id")
        if ack_id is not None and (ack_id.__class__ is not int or not 0 <= ack_id <= MAX_ACK_ID):
            raise InvalidPacket("invalid ack id")
        # Each level of nesting starts with a map/array header byte, so a message with at most
        # MAX_DEPTH such bytes (anywhere, counted in one C pass) needs no walk of the decoded
        # tree. The walk cost 60% of decoding a 1 KB event; the count costs ~0.45 ns a byte, more
        # than the walk of a large message that is mostly binary or strings, so large messages
        # are walked directly (bench protocol --cases msgpack measures both).
        size = len(data)
        if (
            size > MAX_DEPTH
            and (
                size > _SCAN_LIMIT or len(data.translate(None, _NOT_CONTAINER_HEADERS)) > MAX_DEPTH
            )
            and not _depth_ok(payload)
        ):
            raise InvalidPacket(f"msgpack nested deeper than {MAX_DEPTH} levels")
        return Packet(_TYPES[code], nsp, payload, ack_id)


def _depth_ok(value: Any) -> bool:
    try:
        return depth_within(value)
    except RecursionError:  # only when the caller's own stack is already nearly exhausted
        return False


class MsgpackSerializer:
    """The msgpack Socket.IO parser (npm ``socket.io-msgpack-parser``).

    ``encode`` raises :class:`TypeError` (or ``ValueError``/``OverflowError``) for data msgpack
    cannot carry: unsupported objects, naive datetimes, integers beyond 64 bits.
    """

    name = "msgpack"

    def encode(self, packet: Packet) -> list[str | bytes]:
        """Encode ``packet`` as one binary message (always ``bytes``)."""
        # Key order as Node's socket.io server builds its packets: type, data, id, nsp.
        obj: dict[str, Any] = {"type": _WIRE_TYPE[packet.type]}
        if packet.data is not None:
            obj["data"] = packet.data
        if packet.id is not None:
            obj["id"] = packet.id
        obj["nsp"] = packet.nsp
        return [msgpack.packb(obj, datetime=True)]

    def decoder(self, limits: DecoderLimits = DEFAULT_LIMITS) -> MsgpackDecoder:
        """A new decoder for one connection."""
        return MsgpackDecoder(limits)


MSGPACK_SERIALIZER: Final = MsgpackSerializer()
"""The shared msgpack serializer (stateless)."""

if TYPE_CHECKING:  # both parsers satisfy the protocol the runtime is written against
    _CHECK: Serializer = MSGPACK_SERIALIZER
