"""The values that travel between the servers of a Redis cluster, and how they are encoded.

Shared by both wire protocols of ``@socket.io/redis-adapter`` 8.x (classic and sharded, see
:mod:`sockjet.adapters.redis_protocols`) and by :class:`sockjet.adapters.emitter.Emitter`.
In short:

- Encodings are msgpack (as npm ``notepack.io`` writes it: Python's ``msgpack.packb`` gives the
  same bytes) and compact JSON. A receiver tells them apart by the first byte: ``{`` is JSON.
- Binary values are msgpack ``bin`` and never go into JSON: a JSON message that cannot carry its
  values (``bytes``) falls back to msgpack, which every receiver (Node included) also accepts.
- Everything decoded here comes from the broker and is untrusted: it is checked as strictly as
  a client's packet (types, event names, nesting depth) and refused with
  :class:`~sockjet.errors.InvalidPacket`, never executed. There is no pickle anywhere.

Received messages become :class:`ClusterRequest` and :class:`ClusterResponse` values, whatever
the protocol, so the adapter's logic is written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

import msgpack  # type: ignore[import-untyped]  # no stubs or py.typed upstream
import orjson

from sockjet.errors import InvalidPacket
from sockjet.protocol.json import DUMPS_OPTIONS, MAX_DEPTH, depth_within, loads
from sockjet.protocol.socketio import payload_is_valid
from sockjet.server.adapter import SocketDetails
from sockjet.server.socket import Handshake, Socket
from sockjet.server.targets import BroadcastFlags, BroadcastOptions, Room

__all__ = [
    "DEFAULT_OPTIONS",
    "EMITTER_UID",
    "ClusterRequest",
    "ClusterResponse",
    "RequestType",
    "decode",
    "describe_socket",
    "details_from_wire",
    "dumps_or_pack",
    "event_data",
    "flags_from_wire",
    "flags_to_wire",
    "options_from_wire",
    "pack",
    "rooms_from_wire",
    "unpack",
]

EMITTER_UID: Final = "emitter"
"""The ``uid`` of messages from ``@socket.io/redis-emitter`` (and :class:`Emitter`)."""

DEFAULT_OPTIONS: Final = BroadcastOptions()

_JSON_START: Final = 0x7B  # "{"
_UNDEFINED_EXT: Final = 0  # notepack's ext type for undefined (1 byte) and ArrayBuffer


class RequestType(IntEnum):
    """What a cluster message asks of its receivers: the classic protocol's ``RequestType``,
    which the adapter also uses as its vocabulary for the sharded protocol."""

    SOCKETS = 0
    ALL_ROOMS = 1
    REMOTE_JOIN = 2
    REMOTE_LEAVE = 3
    REMOTE_DISCONNECT = 4
    REMOTE_FETCH = 5
    SERVER_SIDE_EMIT = 6
    BROADCAST = 7
    BROADCAST_CLIENT_COUNT = 8
    BROADCAST_ACK = 9


@dataclass(slots=True)
class ClusterRequest:
    """A message from another server (or an emitter) that this server acts on."""

    type: RequestType
    uid: Any
    """The sender's node id (``None`` in the emitter's requests)."""
    request_id: str | None = None
    """Set when the sender waits for answers."""
    opts: BroadcastOptions = DEFAULT_OPTIONS
    """Which sockets: BROADCAST, REMOTE_JOIN/LEAVE/DISCONNECT, REMOTE_FETCH."""
    data: list[Any] | None = None
    """``[event, *args]``: BROADCAST and SERVER_SIDE_EMIT."""
    rooms: tuple[Room, ...] = ()
    """The rooms to join/leave (REMOTE_JOIN/LEAVE) or to list (SOCKETS)."""
    close: bool = False
    """REMOTE_DISCONNECT: close the whole connection."""
    sid: str | None = None
    """The legacy one-socket forms of REMOTE_JOIN/LEAVE/DISCONNECT (with ``room``)."""
    room: Room | None = None


@dataclass(slots=True)
class ClusterResponse:
    """An answer to a request of this server, in the classic protocol's spelling.

    ``type`` is set for SERVER_SIDE_EMIT (``body["data"]``), BROADCAST_CLIENT_COUNT
    (``body["clientCount"]``) and BROADCAST_ACK (``body["packet"]``) answers, ``None`` for the
    untyped ones (``body["sockets"]`` or ``body["rooms"]``).
    """

    request_id: str
    type: RequestType | None
    body: dict[str, Any]


# -- encoding ----------------------------------------------------------------------------------


def pack(value: Any) -> bytes:
    """msgpack, byte for byte as notepack.io encodes the same value.

    Raises :class:`TypeError` (or ``ValueError``/``OverflowError``) for what msgpack cannot
    carry: unsupported objects, naive datetimes, integers beyond 64 bits.
    """
    data: bytes = msgpack.packb(value, datetime=True)
    return data


def dumps_or_pack(value: Any) -> bytes:
    """Compact JSON, as Node writes its requests; msgpack when JSON cannot carry the value
    (binary data): receivers look at the first byte, so both are understood."""
    try:
        return orjson.dumps(value, option=DUMPS_OPTIONS)
    except TypeError:
        return pack(value)


def flags_to_wire(flags: BroadcastFlags) -> dict[str, Any]:
    """Node's ``flags`` object: only what was set (``timeout`` in milliseconds)."""
    out: dict[str, Any] = {}
    if flags.volatile:
        out["volatile"] = True
    if flags.compress is not None:
        out["compress"] = flags.compress
    if flags.timeout is not None:
        out["timeout"] = round(flags.timeout * 1000)
    return out


def options_to_wire(opts: BroadcastOptions, *, flags: bool = True) -> dict[str, Any]:
    """``{rooms, except, flags}`` (without ``flags`` for the classic join/leave/fetch)."""
    out: dict[str, Any] = {"rooms": list(opts.rooms), "except": list(opts.except_)}
    if flags:
        out["flags"] = flags_to_wire(opts.flags)
    return out


def describe_socket(socket: Socket) -> dict[str, Any]:
    """A local socket as ``fetchSockets`` answers describe it (``{id, handshake, rooms,
    data}``; Node builds its ``RemoteSocket`` from this)."""
    return {
        "id": socket.id,
        "handshake": socket.handshake.to_dict(),
        "rooms": list(socket.rooms),
        "data": socket.data,
    }


# -- decoding ----------------------------------------------------------------------------------


def _ext_hook(code: int, data: bytes) -> Any:
    if code != _UNDEFINED_EXT:
        raise InvalidPacket(f"msgpack ext type {code} refused")
    return None if len(data) == 1 else data


def unpack(payload: bytes) -> Any:
    """Decode msgpack from the broker; raises only :class:`InvalidPacket`."""
    try:
        value = msgpack.unpackb(payload, raw=False, ext_hook=_ext_hook, timestamp=3)
    except InvalidPacket:
        raise
    except Exception as exc:  # msgpack raises ValueError/TypeError/...: all mean garbage
        raise InvalidPacket(f"invalid msgpack: {exc.__class__.__name__}") from None
    if len(payload) > MAX_DEPTH and not _depth_ok(value):
        raise InvalidPacket(f"msgpack nested deeper than {MAX_DEPTH} levels")
    return value


def _depth_ok(value: Any) -> bool:
    try:
        return depth_within(value)
    except RecursionError:  # only when the caller's own stack is already nearly exhausted
        return False


def decode(payload: bytes) -> Any:
    """JSON if the payload starts with ``{``, msgpack otherwise (how Node's adapters read
    requests and responses); raises only :class:`InvalidPacket`."""
    if payload[:1] == b"{":
        return loads(payload)
    return unpack(payload)


def _room(value: Any) -> Room:
    kind = value.__class__
    if kind is str:
        return str(value)
    # Node rooms may be numbers: they arrive as such and are strings here.
    if kind is int:
        return str(value)
    if kind is float:
        return str(int(value)) if value.is_integer() else repr(value)
    raise InvalidPacket("a room must be a string or a number")


def rooms_from_wire(value: Any) -> frozenset[Room]:
    """A list of rooms (``None``/absent: none), as JavaScript's ``new Set(value)`` reads it."""
    if value is None:
        return frozenset()
    if value.__class__ is not list:
        raise InvalidPacket("rooms must be a list")
    return frozenset(_room(r) for r in value)


def flags_from_wire(value: Any) -> BroadcastFlags:
    """The flags a receiver uses (``volatile``, ``compress``; ``timeout`` for acks)."""
    if not value:
        return DEFAULT_OPTIONS.flags
    if value.__class__ is not dict:
        raise InvalidPacket("flags must be an object")
    compress = value.get("compress")
    timeout = value.get("timeout")
    seconds: float | None = None
    if (timeout.__class__ is int or timeout.__class__ is float) and timeout > 0:
        seconds = timeout / 1000
    return BroadcastFlags(
        volatile=value.get("volatile") is True,
        compress=compress if compress.__class__ is bool else None,
        timeout=seconds,
    )


def options_from_wire(value: Any) -> BroadcastOptions:
    """``{rooms, except, flags}`` from the broker (missing parts are empty)."""
    if value.__class__ is not dict:
        raise InvalidPacket("opts must be an object")
    rooms = value.get("rooms")
    except_ = value.get("except")
    flags = value.get("flags")
    if not rooms and not except_ and not flags:
        return DEFAULT_OPTIONS
    return BroadcastOptions(
        rooms_from_wire(rooms), rooms_from_wire(except_), flags_from_wire(flags)
    )


def event_data(value: Any) -> list[Any]:
    """``[event, *args]`` of a broadcast or server-side emit: a list whose first item is a
    number or a non-reserved event name (a broker cannot make us emit ``"connect"``)."""
    if not payload_is_valid(2, value):
        raise InvalidPacket("invalid event data")
    data: list[Any] = value
    return data


def event_packet(value: Any, nsp: str) -> list[Any] | None:
    """The ``data`` of a broadcast's ``{type: 2, data, nsp?}`` packet, or ``None`` when the
    packet belongs to another namespace (a missing ``nsp`` means ``"/"``)."""
    if value.__class__ is not dict:
        raise InvalidPacket("packet must be an object")
    if value.get("nsp", "/") != nsp:
        return None
    # EVENT; a BINARY_EVENT code is accepted too, the local encoder decides either way.
    if value.get("type") not in (2, 5):
        raise InvalidPacket("a broadcast packet must be an EVENT")
    return event_data(value.get("data"))


def request_id(value: Any) -> str:
    """A request id: a non-empty string (receivers only echo it back)."""
    if value.__class__ is not str or not value:
        raise InvalidPacket("invalid requestId")
    return str(value)


def _dict(value: Any) -> dict[str, Any]:
    return value if value.__class__ is dict else {}


def _str(value: Any) -> str:
    return value if value.__class__ is str else ""


def details_from_wire(value: Any) -> SocketDetails:
    """A remote socket from a ``fetchSockets`` answer (missing handshake parts are empty)."""
    if value.__class__ is not dict or value.get("id").__class__ is not str:
        raise InvalidPacket("a socket description needs an id")
    shake = _dict(value.get("handshake"))
    issued = shake.get("issued")
    handshake = Handshake(
        headers=_dict(shake.get("headers")),
        query=_dict(shake.get("query")),
        auth=_dict(shake.get("auth")),
        address=_str(shake.get("address")),
        url=_str(shake.get("url")),
        secure=shake.get("secure") is True,
        xdomain=shake.get("xdomain") is True,
        issued=issued if issued.__class__ is int else 0,
        time=_str(shake.get("time")),
    )
    rooms = value.get("rooms")
    return SocketDetails(
        id=value["id"],
        handshake=handshake,
        rooms=set(rooms_from_wire(rooms)) if rooms.__class__ is list else set(),
        data=value.get("data"),
    )
