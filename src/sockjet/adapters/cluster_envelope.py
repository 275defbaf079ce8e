"""The messages of Node's ``ClusterAdapter`` (socket.io-adapter 2.5), written once.

Node's newer cluster adapters all speak it: ``createShardedAdapter()`` of
``@socket.io/redis-adapter`` (:class:`~sockjet.adapters.redis_protocols.ShardedProtocol`),
``@socket.io/redis-streams-adapter`` (:mod:`sockjet.adapters.redis_streams`), the postgres and
cluster adapters. What differs between them is only the transport (which channel, which stream)
and the encoding of the bytes; the messages themselves are built and read here.

A message is an *envelope*::

    {"type": MessageType, "data": {...}, "uid": <sender's node id>, "nsp": <namespace>}

(``uid`` and ``nsp`` come last, as Node writes them). ``data`` by type:

====  =========================  =============================================================
code  type                       ``data``
====  =========================  =============================================================
3     BROADCAST                  ``{packet: {type: 2, data}, opts}``; with ack: ``{packet,
                                 requestId, opts}``
4     SOCKETS_JOIN               ``{opts, rooms}``
5     SOCKETS_LEAVE              ``{opts, rooms}``
6     DISCONNECT_SOCKETS         ``{opts, close}``
7     FETCH_SOCKETS              ``{opts, requestId}``
8     FETCH_SOCKETS_RESPONSE     ``{requestId, sockets}``
9     SERVER_SIDE_EMIT           ``{packet: [event, ...args]}`` (``{requestId, packet}`` for an
                                 ack)
10    SERVER_SIDE_EMIT_RESPONSE  ``{requestId, packet}``
11    BROADCAST_CLIENT_COUNT     ``{requestId, clientCount}``
12    BROADCAST_ACK              ``{requestId, packet}``
====  =========================  =============================================================

(1, 2 and 13 are the heartbeats and the goodbye of ``ClusterAdapterWithHeartbeat``, which none
of sockjet's adapters speak: they are ignored.) 8, 10, 11 and 12 are *responses*, sent to the
requester only. ``opts`` is ``{rooms, except, flags}``.

Rules Node follows and the adapter built on this follows too: a receiver ignores messages from
its own ``uid`` and for another namespace; the sender applies an operation to its own sockets
itself; every server answers a request it receives exactly once (an empty answer counts), and a
request completes when ``server_count() - 1`` answers came.

Received messages become :class:`~sockjet.adapters.redis_codec.ClusterRequest` and
:class:`~sockjet.adapters.redis_codec.ClusterResponse` values, the vocabulary of
:class:`~sockjet.adapters.redis.RedisAdapter`'s request and response logic (written once too).
Nothing here does I/O or chooses an encoding.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import Any, Final

from sockjet.adapters.redis_codec import (
    ClusterRequest,
    ClusterResponse,
    RequestType,
    event_data,
    options_from_wire,
    options_to_wire,
    request_id,
    rooms_from_wire,
)
from sockjet.errors import InvalidPacket
from sockjet.server.targets import BroadcastOptions, Room

__all__ = [
    "RESPONSE_TYPES",
    "Body",
    "MessageType",
    "Received",
    "broadcast",
    "broadcast_with_ack",
    "decode",
    "decode_body",
    "disconnect_sockets",
    "envelope",
    "fetch_sockets",
    "optional_request_id",
    "packet_data",
    "respond_ack",
    "respond_client_count",
    "respond_fetch",
    "respond_server_side_emit",
    "rooms_list",
    "server_side_emit",
    "sockets_join",
    "sockets_leave",
]


class MessageType(IntEnum):
    """``MessageType`` of socket.io-adapter's ``ClusterAdapter``."""

    INITIAL_HEARTBEAT = 1
    HEARTBEAT = 2
    BROADCAST = 3
    SOCKETS_JOIN = 4
    SOCKETS_LEAVE = 5
    DISCONNECT_SOCKETS = 6
    FETCH_SOCKETS = 7
    FETCH_SOCKETS_RESPONSE = 8
    SERVER_SIDE_EMIT = 9
    SERVER_SIDE_EMIT_RESPONSE = 10
    BROADCAST_CLIENT_COUNT = 11
    BROADCAST_ACK = 12
    ADAPTER_CLOSE = 13


RESPONSE_TYPES: Final = frozenset(
    {
        MessageType.FETCH_SOCKETS_RESPONSE,
        MessageType.SERVER_SIDE_EMIT_RESPONSE,
        MessageType.BROADCAST_CLIENT_COUNT,
        MessageType.BROADCAST_ACK,
    }
)
"""The types sent to the requester only (Node's ``doPublishResponse``)."""

Body = tuple[MessageType, dict[str, Any]]
"""A message before its envelope: ``(type, data)``."""

Received = ClusterRequest | ClusterResponse | None


def envelope(body: Body, uid: str, nsp: str) -> dict[str, Any]:
    """The whole message, keys in Node's order."""
    return {"type": body[0].value, "data": body[1], "uid": uid, "nsp": nsp}


def _event(data: list[Any]) -> dict[str, Any]:
    return {"type": 2, "data": data}


# -- requests ----------------------------------------------------------------------------------


def broadcast(data: list[Any], opts: BroadcastOptions) -> Body:
    return MessageType.BROADCAST, {"packet": _event(data), "opts": options_to_wire(opts)}


def broadcast_with_ack(rid: str, data: list[Any], opts: BroadcastOptions) -> Body:
    body = {"packet": _event(data), "requestId": rid, "opts": options_to_wire(opts)}
    return MessageType.BROADCAST, body


def sockets_join(opts: BroadcastOptions, rooms: Iterable[Room]) -> Body:
    return MessageType.SOCKETS_JOIN, {"opts": options_to_wire(opts), "rooms": list(rooms)}


def sockets_leave(opts: BroadcastOptions, rooms: Iterable[Room]) -> Body:
    return MessageType.SOCKETS_LEAVE, {"opts": options_to_wire(opts), "rooms": list(rooms)}


def disconnect_sockets(opts: BroadcastOptions, close: bool) -> Body:
    return MessageType.DISCONNECT_SOCKETS, {"opts": options_to_wire(opts), "close": close}


def fetch_sockets(rid: str, opts: BroadcastOptions) -> Body:
    return MessageType.FETCH_SOCKETS, {"opts": options_to_wire(opts), "requestId": rid}


def server_side_emit(data: list[Any], rid: str | None) -> Body:
    body: dict[str, Any] = {"packet": data} if rid is None else {"requestId": rid, "packet": data}
    return MessageType.SERVER_SIDE_EMIT, body


# -- responses (to the requester) --------------------------------------------------------------


def respond_fetch(req: ClusterRequest, sockets: list[dict[str, Any]]) -> Body:
    return MessageType.FETCH_SOCKETS_RESPONSE, {"requestId": req.request_id, "sockets": sockets}


def respond_server_side_emit(req: ClusterRequest, value: Any) -> Body:
    return MessageType.SERVER_SIDE_EMIT_RESPONSE, {"requestId": req.request_id, "packet": value}


def respond_client_count(req: ClusterRequest, count: int) -> Body:
    body = {"requestId": req.request_id, "clientCount": count}
    return MessageType.BROADCAST_CLIENT_COUNT, body


def respond_ack(req: ClusterRequest, value: Any) -> Body:
    return MessageType.BROADCAST_ACK, {"requestId": req.request_id, "packet": value}


# -- receiving ---------------------------------------------------------------------------------


def packet_data(value: Any) -> list[Any]:
    """The ``data`` of a ``{type: 2, data}`` packet (whatever its ``nsp``): ``[event, *args]``."""
    if value.__class__ is not dict or value.get("type") not in (2, 5):
        raise InvalidPacket("a broadcast packet must be an EVENT")
    return event_data(value.get("data"))


def optional_request_id(obj: dict[str, Any]) -> str | None:
    """``obj["requestId"]``, checked, or None when absent."""
    value = obj.get("requestId")
    return None if value is None else request_id(value)


def rooms_list(value: Any) -> tuple[Room, ...]:
    """The rooms to join or leave (a list is required)."""
    if value.__class__ is not list:
        raise InvalidPacket("rooms must be a list")
    return tuple(rooms_from_wire(value))


def decode(obj: Any, own_uid: str, nsp: str) -> Received:
    """A decoded envelope: None when it is this server's own, for another namespace or of a
    type it does not act on; raises only :class:`~sockjet.errors.InvalidPacket`."""
    if obj.__class__ is not dict:
        raise InvalidPacket("a cluster message must be an object")
    uid = obj.get("uid")
    if uid == own_uid or obj.get("nsp") != nsp:
        return None
    return decode_body(obj.get("type"), uid, obj.get("data"))


def decode_body(kind: Any, uid: Any, data: Any) -> Received:
    """The message of type ``kind`` from ``uid`` with ``data`` (None: a type not acted on)."""
    if kind.__class__ is not int or not MessageType.BROADCAST <= kind <= MessageType.BROADCAST_ACK:
        return None  # heartbeats, ADAPTER_CLOSE, unknown types: ignored, as Node does
    if data.__class__ is not dict:
        raise InvalidPacket("a cluster message needs data")
    if kind == MessageType.BROADCAST:
        return ClusterRequest(
            RequestType.BROADCAST,
            uid,
            optional_request_id(data),
            options_from_wire(data.get("opts")),
            packet_data(data.get("packet")),
        )
    if kind in (MessageType.SOCKETS_JOIN, MessageType.SOCKETS_LEAVE):
        request_type = (
            RequestType.REMOTE_JOIN
            if kind == MessageType.SOCKETS_JOIN
            else RequestType.REMOTE_LEAVE
        )
        return ClusterRequest(
            request_type,
            uid,
            opts=options_from_wire(data.get("opts")),
            rooms=rooms_list(data.get("rooms")),
        )
    if kind == MessageType.DISCONNECT_SOCKETS:
        return ClusterRequest(
            RequestType.REMOTE_DISCONNECT,
            uid,
            opts=options_from_wire(data.get("opts")),
            close=data.get("close") is True,
        )
    if kind == MessageType.FETCH_SOCKETS:
        return ClusterRequest(
            RequestType.REMOTE_FETCH,
            uid,
            request_id(data.get("requestId")),
            options_from_wire(data.get("opts")),
        )
    if kind == MessageType.SERVER_SIDE_EMIT:
        return ClusterRequest(
            RequestType.SERVER_SIDE_EMIT,
            uid,
            optional_request_id(data),
            data=event_data(data.get("packet")),
        )
    rid = request_id(data.get("requestId"))
    if kind == MessageType.FETCH_SOCKETS_RESPONSE:
        return ClusterResponse(rid, None, {"sockets": data.get("sockets")})
    if kind == MessageType.SERVER_SIDE_EMIT_RESPONSE:
        return ClusterResponse(rid, RequestType.SERVER_SIDE_EMIT, {"data": data.get("packet")})
    if kind == MessageType.BROADCAST_CLIENT_COUNT:
        return ClusterResponse(
            rid, RequestType.BROADCAST_CLIENT_COUNT, {"clientCount": data.get("clientCount")}
        )
    return ClusterResponse(rid, RequestType.BROADCAST_ACK, {"packet": data.get("packet")})
