"""Socket.IO protocol v5 packets and the default (JSON) parser, sans I/O.

Wire format of the default parser (each result is one Engine.IO message)::

    <type>[<attachments>-][<nsp>,][<ack id>][<JSON payload>]   then one binary message per attachment

e.g. ``2["foo"]``, ``2/admin,456["project:delete",123]``, ``0/admin,{"token":"123"}``,
``3/admin,456[]``, ``4{"message":"Not authorized"}``, ``51-["hello",{"_placeholder":true,"num":0}]``.
The namespace is written only when it is not ``"/"``; a namespace cannot contain ``","``.

Binary data: ``bytes`` (or ``bytearray``/``memoryview``) anywhere in an EVENT or ACK payload,
nested too, makes the encoder send a BINARY_EVENT/BINARY_ACK whose JSON carries
``{"_placeholder":true,"num":i}`` where the i-th attachment goes. The decoder puts the attachments
back and returns the packet with its BINARY_ type. So ``decode(encode(p)) == p`` holds once
``p.type`` is normalized: EVENT/ACK whose data holds bytes become BINARY_EVENT/BINARY_ACK, and a
BINARY_ type whose data holds none becomes EVENT/ACK. (Node's socket.io-parser 4.2.7 reports
reconstructed packets as EVENT/ACK instead; a server must treat both variants alike.)

The decoder enforces the rules a server must hold packets to (docs/security.md): see
:class:`JSONDecoder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Final, Protocol

import orjson

from sockjet.errors import InvalidPacket, PayloadTooLarge
from sockjet.protocol.json import DUMPS_OPTIONS, dumps, loads

__all__ = [
    "CLIENT_RESERVED_EVENTS",
    "DEFAULT_LIMITS",
    "JSON_SERIALIZER",
    "MAX_ACK_ID",
    "PROTOCOL_VERSION",
    "RESERVED_EVENTS",
    "Decoder",
    "DecoderLimits",
    "JSONDecoder",
    "JSONSerializer",
    "Packet",
    "PacketType",
    "Serializer",
    "check_event_name",
    "encode_event",
    "payload_is_valid",
]

PROTOCOL_VERSION: Final = 5
"""The Socket.IO protocol revision spoken here (socket.io 3.x and 4.x)."""


class PacketType(IntEnum):
    """Socket.IO packet types, as sent on the wire."""

    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


RESERVED_EVENTS: Final[frozenset[str]] = frozenset(
    {
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
        "error",
    }
)
"""Event names a peer may not send: they would reach lifecycle handlers."""

MAX_ACK_ID: Final = 2**53 - 1
"""Largest ack id accepted from a peer: ``Number.MAX_SAFE_INTEGER``, the largest a JavaScript
client can count to exactly (Node's parser takes any number; larger ones lose precision)."""
MAX_ACK_ID_DIGITS: Final = len(str(MAX_ACK_ID))

_MAX_COUNT_DIGITS: Final = 6  # digits of an attachment count we bother reading


@dataclass(slots=True)
class Packet:
    """One Socket.IO packet.

    ``data`` by type: EVENT ``[name, *args]``; ACK ``[*args]``; CONNECT ``None`` or a dict (the
    client's auth, the server's ``{"sid": ...}``); DISCONNECT ``None``; CONNECT_ERROR
    ``{"message": ..., "data": ...}`` (or a string). ``id`` is the ack id, if any.
    """

    type: PacketType
    nsp: str = "/"
    data: Any = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class DecoderLimits:
    """Bounds on what a decoder buffers while it waits for binary attachments."""

    max_attachments: int = 10
    """Most attachments one packet may announce; checked before anything is buffered."""
    max_buffered_bytes: int = 1_000_000
    """Most bytes of attachments pending at once (the engine bounds each message already)."""
    reserved_events: frozenset[str] = RESERVED_EVENTS
    """Event names refused in EVENT packets. A server refuses all of :data:`RESERVED_EVENTS`;
    a client takes ``"error"`` (a Node server may emit it): :data:`CLIENT_RESERVED_EVENTS`."""


DEFAULT_LIMITS: Final = DecoderLimits()
CLIENT_RESERVED_EVENTS: Final[frozenset[str]] = RESERVED_EVENTS - {"error"}
"""What a client's decoder refuses: the lifecycle names, but not ``"error"``."""


def check_event_name(event: object, refused: frozenset[str] = CLIENT_RESERVED_EVENTS) -> None:
    """Refuse, before sending, an event name the receiving peer would refuse: not a string, or
    one of ``refused`` (what its decoder refuses: a server emitting to clients, the default,
    may send ``"error"``; a client emitting to a server passes :data:`RESERVED_EVENTS`).

    Raises :class:`TypeError` or :class:`ValueError`.
    """
    if event.__class__ is not str:
        raise TypeError(f"an event name is a str, not {type(event).__name__}")
    if event in refused:
        raise ValueError(f"{event!r} is a reserved event name")


class Decoder(Protocol):
    """Turns the Engine.IO messages of one connection into packets."""

    def feed(self, data: str | bytes) -> Packet | None:
        """Decode one message: a packet, or ``None`` while binary attachments are still due.

        Raises only :class:`~sockjet.errors.ProtocolError` (and subclasses).
        """
        ...


class Serializer(Protocol):
    """A Socket.IO parser: the JSON default or msgpack (both ends must use the same)."""

    name: str

    def encode(self, packet: Packet) -> list[str | bytes]:
        """Encode ``packet`` as Engine.IO message payloads (first the packet, then attachments)."""
        ...

    def decoder(self, limits: DecoderLimits = DEFAULT_LIMITS) -> Decoder:
        """A new decoder for one connection."""
        ...


_TYPES: Final = tuple(PacketType)
_EVENT_TYPE: Final = PacketType.EVENT
_FAST_HEADER: Final = MAX_ACK_ID_DIGITS + 2  # "2", the longest ack id, "["
_BINARY_TYPES: Final = (bytes, bytearray, memoryview)
_DIGITS: Final = "0123456789"


def payload_is_valid(
    packet_type: int, data: Any, reserved: frozenset[str] = RESERVED_EVENTS
) -> bool:
    """Whether ``data`` is an acceptable payload for a ``packet_type`` packet (``None`` = absent).

    CONNECT: absent or an object; DISCONNECT: absent; CONNECT_ERROR: a string or an object;
    EVENT: an array whose first item is a number or a non-reserved string; ACK: an array.
    """
    if packet_type in (2, 5):  # EVENT, BINARY_EVENT
        if data.__class__ is not list or not data:
            return False
        name = data[0]
        kind = name.__class__
        if kind is str:
            return name not in reserved
        return kind is int or kind is float  # bool is not a number here, as in JS
    if packet_type in (3, 6):  # ACK, BINARY_ACK
        return data.__class__ is list
    if packet_type == 0:  # CONNECT
        return data is None or data.__class__ is dict
    if packet_type == 1:  # DISCONNECT
        return data is None
    if packet_type == 4:  # CONNECT_ERROR
        return data.__class__ is str or data.__class__ is dict
    return False


class JSONDecoder:
    """Decoder of the default parser, for one connection.

    Refused with :class:`~sockjet.errors.InvalidPacket`: an unknown type; a payload
    :func:`payload_is_valid` refuses (a ``null`` payload included); an EVENT/ACK/CONNECT_ERROR
    without payload; an ack id over ``2**53 - 1`` (:data:`MAX_ACK_ID`); invalid, too deep or out-of-range JSON; a binary
    packet announcing no attachment; a placeholder that is not exactly
    ``{"_placeholder": true, "num": n}`` with ``0 <= n < count``; a text message while
    attachments are due; a binary message when none is. Refused with
    :class:`~sockjet.errors.PayloadTooLarge`: more attachments than ``limits.max_attachments``
    (before anything is buffered), more pending attachment bytes than
    ``limits.max_buffered_bytes``. After an error the decoder holds nothing.
    """

    __slots__ = ("_buffered", "_buffers", "_expected", "_limits", "_pending")

    def __init__(self, limits: DecoderLimits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._pending: Packet | None = None
        self._expected = 0
        self._buffers: list[bytes] = []
        self._buffered = 0

    @property
    def awaiting_attachments(self) -> bool:
        """Whether a binary packet is waiting for more attachments."""
        return self._pending is not None

    def reset(self) -> None:
        """Drop a partially received binary packet and its attachments."""
        self._pending = None
        self._expected = 0
        self._buffers = []
        self._buffered = 0

    def feed(self, data: str | bytes) -> Packet | None:
        """Decode one Engine.IO message (text: a packet; binary: an attachment)."""
        if data.__class__ is not str:
            return self._take_attachment(data)
        if self._pending is not None:
            self.reset()
            raise InvalidPacket("text packet while binary attachments are due")
        text: str = data
        kind = text[:1]
        if kind == "2" or kind == "3":
            # The hot path, an EVENT or ACK of the main namespace ("2[...", "2<id>[...",
            # "3<id>[..."): one find() reads the header. Anything else (another namespace, an
            # overlong id) falls through to the full parse below.
            bracket = text.find("[", 1, _FAST_HEADER)
            digits = text[1:bracket] if bracket > 1 else ""
            if bracket == 1 or (digits.isdigit() and digits.isascii()):
                ack_id = int(digits) if digits else None
                if ack_id is not None and ack_id > MAX_ACK_ID:
                    raise InvalidPacket("ack id over 2**53 - 1")
                payload = loads(text[bracket:])
                if kind == "2":
                    name = payload[0] if payload.__class__ is list and payload else None
                    if name.__class__ is str and name not in self._limits.reserved_events:
                        return Packet(_EVENT_TYPE, "/", payload, ack_id)
                code = ord(kind) - 48
                if payload_is_valid(code, payload, self._limits.reserved_events):
                    return Packet(_TYPES[code], "/", payload, ack_id)
                raise InvalidPacket(f"invalid payload for packet type {code}")
        size = len(text)
        code = ord(text[0]) - 48 if size else -1
        if code < 0 or code > 6:
            raise InvalidPacket("unknown packet type")
        pos = 1
        attachments = 0
        if code >= 5:  # BINARY_EVENT, BINARY_ACK: an attachment count follows
            dash = text.find("-", 1, 2 + _MAX_COUNT_DIGITS)
            count = text[1:dash] if dash > 0 else ""
            if not (count.isascii() and count.isdigit()):
                raise InvalidPacket("illegal attachment count")
            attachments = int(count)
            if attachments < 1:
                raise InvalidPacket("binary packet without attachments")
            if attachments > self._limits.max_attachments:
                raise PayloadTooLarge(
                    f"{attachments} attachments (max {self._limits.max_attachments})"
                )
            pos = dash + 1
        nsp = "/"
        if pos < size and text[pos] == "/":
            comma = text.find(",", pos)
            if comma < 0:
                nsp, pos = text[pos:], size
            else:
                nsp, pos = text[pos:comma], comma + 1
        ack_id = None
        if pos < size and "0" <= text[pos] <= "9":
            # One digit more than allowed shows an overlong id without scanning all of it.
            window = text[pos : pos + MAX_ACK_ID_DIGITS + 1]
            end = pos + len(window) - len(window.lstrip(_DIGITS))
            if end - pos > MAX_ACK_ID_DIGITS:
                raise InvalidPacket("ack id too long")
            ack_id = int(text[pos:end])
            if ack_id > MAX_ACK_ID:
                raise InvalidPacket("ack id over 2**53 - 1")
            pos = end
        if pos < size:
            payload = loads(text[pos:])
            if payload is None or not payload_is_valid(code, payload, self._limits.reserved_events):
                raise InvalidPacket(f"invalid payload for packet type {code}")
        elif payload_is_valid(code, None):
            payload = None
        else:
            raise InvalidPacket(f"packet type {code} needs a payload")
        packet = Packet(_TYPES[code], nsp, payload, ack_id)
        if attachments:
            self._pending = packet
            self._expected = attachments
            return None
        return packet

    def _take_attachment(self, data: Any) -> Packet | None:
        if self._pending is None:
            raise InvalidPacket("binary message while no binary packet is pending")
        if data.__class__ is not bytes:
            if not isinstance(data, _BINARY_TYPES):
                self.reset()
                raise InvalidPacket(f"unexpected message type {type(data).__name__}")
            data = bytes(data)
        self._buffered += len(data)
        if self._buffered > self._limits.max_buffered_bytes:
            self.reset()
            raise PayloadTooLarge(
                f"pending attachments over {self._limits.max_buffered_bytes} bytes"
            )
        self._buffers.append(data)
        if len(self._buffers) < self._expected:
            return None
        packet, buffers = self._pending, self._buffers
        self.reset()
        try:
            _fill_list(packet.data, buffers)
        except RecursionError:  # depth is bounded by loads(); only a nearly full stack gets here
            raise InvalidPacket("packet nested too deeply") from None
        return packet


def _attachment(placeholder: dict[str, Any], buffers: list[bytes]) -> bytes:
    num = placeholder.get("num")
    # ``num.__class__ is int`` refuses bools; the range check refuses -1 (no indexing from the end).
    if len(placeholder) != 2 or num.__class__ is not int or not 0 <= num < len(buffers):
        raise InvalidPacket("illegal attachment placeholder")
    return buffers[num]


def _fill_list(items: list[Any], buffers: list[bytes]) -> None:
    for index, value in enumerate(items):
        kind = value.__class__
        if kind is dict:
            if value.get("_placeholder") is True:
                items[index] = _attachment(value, buffers)
            else:
                _fill_dict(value, buffers)
        elif kind is list:
            _fill_list(value, buffers)


def _fill_dict(mapping: dict[str, Any], buffers: list[bytes]) -> None:
    for key, value in mapping.items():
        kind = value.__class__
        if kind is dict:
            if value.get("_placeholder") is True:
                mapping[key] = _attachment(value, buffers)  # same key: no resize mid-iteration
            else:
                _fill_dict(value, buffers)
        elif kind is list:
            _fill_list(value, buffers)


def _has_binary(value: Any) -> bool:
    kind = value.__class__
    if kind is list or kind is tuple:
        return any(map(_has_binary, value))
    if kind is dict:
        return any(map(_has_binary, value.values()))
    return isinstance(value, _BINARY_TYPES)


def _deconstruct(value: Any, buffers: list[bytes]) -> Any:
    """A copy of ``value`` with every bytes-like replaced by a placeholder, appended to buffers."""
    kind = value.__class__
    if kind is list or kind is tuple:
        return [_deconstruct(item, buffers) for item in value]
    if kind is dict:
        return {key: _deconstruct(item, buffers) for key, item in value.items()}
    if isinstance(value, _BINARY_TYPES):
        buffers.append(value if value.__class__ is bytes else bytes(value))
        return {"_placeholder": True, "num": len(buffers) - 1}
    return value


def _prefix(code: str, nsp: str, ack_id: int | None) -> str:
    """The text before the JSON payload (attachment count excluded)."""
    if nsp != "/":
        if nsp[:1] != "/" or "," in nsp:
            raise ValueError(f"invalid namespace {nsp!r}: must start with '/' and have no ','")
        code = code + nsp + ","
    if ack_id is not None:
        if ack_id.__class__ is not int or ack_id < 0:
            raise ValueError(f"invalid ack id {ack_id!r}")
        code += str(ack_id)
    return code


_DUMPS = orjson.dumps
_TEXT_TYPE: Final = "0123423"  # the type char of a packet without attachments (BINARY_ -> plain)


class JSONSerializer:
    """The default Socket.IO parser (npm ``socket.io-parser``): JSON text plus binary attachments.

    ``encode`` raises :class:`ValueError` for a namespace that does not start with ``"/"`` or
    contains ``","`` and for a negative ack id, and :class:`TypeError` for data JSON cannot carry.
    """

    name = "json"

    def encode(self, packet: Packet) -> list[str | bytes]:
        """Encode ``packet``: one text message, then one binary message per attachment."""
        code = packet.type
        data = packet.data
        head = _TEXT_TYPE[code]
        if data is None:
            return [_prefix(head, packet.nsp, packet.id)]
        if code < 2 or code == 4:  # CONNECT, DISCONNECT, CONNECT_ERROR: never binary
            return [_prefix(head, packet.nsp, packet.id) + dumps(data)]
        try:
            # Fast path: orjson refuses bytes, so most packets pay nothing for binary detection.
            payload = _DUMPS(data, option=DUMPS_OPTIONS).decode()
        except orjson.JSONEncodeError:
            if not _holds_binary(data):
                raise
            return _encode_binary(head == "2", packet.nsp, data, packet.id)
        ack_id = packet.id
        if packet.nsp == "/" and (ack_id is None or (ack_id.__class__ is int and ack_id >= 0)):
            # _prefix() with nothing to check: an emit or ack in the main namespace
            return [head + payload if ack_id is None else head + str(ack_id) + payload]
        return [_prefix(head, packet.nsp, ack_id) + payload]

    def decoder(self, limits: DecoderLimits = DEFAULT_LIMITS) -> JSONDecoder:
        """A new decoder for one connection."""
        return JSONDecoder(limits)


def _holds_binary(data: Any) -> bool:
    try:
        return _has_binary(data)
    except RecursionError:  # cyclic or absurdly deep: the caller re-raises orjson's error
        return False


def _encode_binary(is_event: bool, nsp: str, data: Any, ack_id: int | None) -> list[str | bytes]:
    """Encode a payload holding bytes as a BINARY_ packet and its attachments."""
    buffers: list[bytes] = []
    try:
        placeholders = _deconstruct(data, buffers)
    except RecursionError:
        raise ValueError("cannot encode circular or too deeply nested data") from None
    head = _prefix(f"{5 if is_event else 6}{len(buffers)}-", nsp, ack_id)
    messages: list[str | bytes] = [head + dumps(placeholders)]
    messages.extend(buffers)
    return messages


JSON_SERIALIZER: Final = JSONSerializer()
"""The shared default serializer (stateless)."""

if TYPE_CHECKING:  # the default parser satisfies the protocol the runtime is written against
    _CHECK: Serializer = JSON_SERIALIZER


def encode_event(
    nsp: str, event: str, args: Sequence[Any], ack_id: int | None = None
) -> list[str | bytes]:
    """Encode an EVENT ``[event, *args]``: the server's emit fast path.

    Same result as ``JSON_SERIALIZER.encode(Packet(PacketType.EVENT, nsp, [event, *args],
    ack_id))``: one ``orjson.dumps`` and a concatenation for the usual non-binary event.
    """
    data = [event, *args]
    try:
        payload = _DUMPS(data, option=DUMPS_OPTIONS).decode()
    except orjson.JSONEncodeError:
        if not _holds_binary(data):
            raise
        return _encode_binary(True, nsp, data, ack_id)
    if nsp == "/" and ack_id is None:
        return ["2" + payload]
    return [_prefix("2", nsp, ack_id) + payload]
