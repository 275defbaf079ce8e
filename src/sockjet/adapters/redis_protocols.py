"""The two wire protocols of ``@socket.io/redis-adapter`` 8.x, for one namespace.

* :class:`ClassicProtocol`: ``createAdapter()``, plain PUBLISH and (P)SUBSCRIBE, the protocol
  ``@socket.io/redis-emitter`` speaks too. Channels (``P`` = key, ``N`` = namespace)::

      P#N#            broadcasts to every socket, or to 2+ rooms   (PSUBSCRIBE P#N#*)
      P#N#<room>#     broadcasts to exactly one room
      P-request#N#    requests (every node, the sender included; NUMSUB counts the servers)
      P-response#N#   answers (and P-response#N#<uid>#, see publish_on_specific_response_channel)

  A broadcast is msgpack ``[uid, {type: 2, data, nsp}, {rooms, except, flags}]``. Requests are
  JSON ``{uid, requestId?, type: 0-7, ...}`` (a broadcast with ack, type 7, is msgpack);
  answers are JSON ``{requestId, ...}`` (acks of a broadcast, type 9, are msgpack).
* :class:`ShardedProtocol`: ``createShardedAdapter()``, SPUBLISH and SSUBSCRIBE (Redis 7), the
  ``ClusterAdapter`` envelope ``{type: 3-12, data, uid, nsp}`` in JSON (msgpack when it holds
  binary) on ``P#N#`` (and ``P#N#<room>#`` for one-room broadcasts), answers on the requester's
  ``P#N#<uid>#``; SHARDNUMSUB counts the servers.

Each class turns the adapter's operations into ``(channel, payload)`` pairs and what it receives
into :class:`~sockjet.adapters.redis_codec.ClusterRequest` /
:class:`~sockjet.adapters.redis_codec.ClusterResponse` values. Nothing here does I/O.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from enum import Enum
from typing import Any, Final, Literal

from sockjet.adapters import cluster_envelope as envelope
from sockjet.adapters.cluster_envelope import optional_request_id, packet_data, rooms_list
from sockjet.adapters.redis_codec import (
    ClusterRequest,
    ClusterResponse,
    RequestType,
    decode,
    dumps_or_pack,
    event_data,
    event_packet,
    options_from_wire,
    options_to_wire,
    pack,
    request_id,
    rooms_from_wire,
    unpack,
)
from sockjet.errors import InvalidPacket
from sockjet.server.targets import BroadcastOptions, Room

__all__ = [
    "ClassicProtocol",
    "Outbound",
    "RedisProtocol",
    "Role",
    "ShardedProtocol",
    "SubscriptionKind",
    "SubscriptionMode",
    "glob_escape",
]

Outbound = tuple[bytes, bytes]
"""What to publish: ``(channel, payload)``."""

Received = ClusterRequest | ClusterResponse | None

SubscriptionMode = Literal["dynamic", "dynamic-private", "static"]


class SubscriptionKind(Enum):
    """How a subscription is made (and which PUBSUB command counts its subscribers)."""

    CHANNEL = "SUBSCRIBE"
    PATTERN = "PSUBSCRIBE"
    SHARD = "SSUBSCRIBE"


class Role(Enum):
    """What arrives on a subscription."""

    BROADCAST = "broadcast"  # classic broadcast channels (the pattern)
    REQUEST = "request"  # requests (and, sharded, broadcasts)
    RESPONSE = "response"  # answers to this server's requests


def glob_escape(name: bytes) -> bytes:
    """``name`` as a PSUBSCRIBE pattern matching only itself (``*?[]\\`` escaped)."""
    for char in (b"\\", b"*", b"?", b"[", b"]"):
        name = name.replace(char, b"\\" + char)
    return name


class RedisProtocol(ABC):
    """One namespace's view of a wire protocol (channels, message layouts)."""

    sharded: bool
    """Publish with SPUBLISH and subscribe with SSUBSCRIBE."""

    def __init__(self, key: str, nsp: str, uid: str) -> None:
        self.nsp = nsp
        self.uid = uid
        self.channel = f"{key}#{nsp}#".encode()
        """The namespace's base channel ``P#N#``."""

    @abstractmethod
    def subscriptions(self) -> dict[tuple[SubscriptionKind, bytes], Role]:
        """What this namespace subscribes to, and what arrives there."""

    @abstractmethod
    def server_count_channel(self) -> tuple[SubscriptionKind, bytes]:
        """The channel whose subscribers are the servers of this namespace."""

    # -- what this server sends -----------------------------------------------------------------

    @abstractmethod
    def broadcast(self, data: list[Any], opts: BroadcastOptions) -> Outbound: ...

    @abstractmethod
    def broadcast_with_ack(self, rid: str, data: list[Any], opts: BroadcastOptions) -> Outbound: ...

    @abstractmethod
    def sockets_join(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> Outbound: ...

    @abstractmethod
    def sockets_leave(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> Outbound: ...

    @abstractmethod
    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> Outbound: ...

    @abstractmethod
    def fetch_sockets(self, rid: str, opts: BroadcastOptions) -> Outbound: ...

    @abstractmethod
    def server_side_emit(self, data: list[Any], rid: str | None) -> Outbound: ...

    def broadcast_room(self, channel: bytes) -> bytes:
        """The room of a classic broadcast channel (``b""``: the base channel)."""
        return b""

    def all_rooms(self, rid: str) -> Outbound | None:
        """The ALL_ROOMS request, where the protocol has one."""
        return None

    # -- answers to a request received ------------------------------------------------------------

    @abstractmethod
    def respond_fetch(self, req: ClusterRequest, sockets: list[dict[str, Any]]) -> Outbound | None:
        """Answer REMOTE_FETCH with socket descriptions."""

    @abstractmethod
    def respond_server_side_emit(self, req: ClusterRequest, value: Any) -> Outbound | None: ...

    @abstractmethod
    def respond_client_count(self, req: ClusterRequest, count: int) -> Outbound | None: ...

    @abstractmethod
    def respond_ack(self, req: ClusterRequest, value: Any) -> Outbound | None: ...

    def respond_sockets(self, req: ClusterRequest, sids: list[str]) -> Outbound | None:
        return None

    def respond_rooms(self, req: ClusterRequest, rooms: list[Room]) -> Outbound | None:
        return None

    def respond_done(self, req: ClusterRequest) -> Outbound | None:
        """Answer a legacy one-socket join/leave/disconnect."""
        return None

    # -- what this server receives ----------------------------------------------------------------

    @abstractmethod
    def decode(self, role: Role, channel: bytes, payload: bytes) -> Received:
        """A message from the broker, or ``None`` when it is not for this namespace; raises
        only :class:`~sockjet.errors.InvalidPacket`."""


class ClassicProtocol(RedisProtocol):
    """``@socket.io/redis-adapter``'s ``createAdapter()`` protocol (and the emitter's)."""

    sharded = False

    def __init__(
        self, key: str, nsp: str, uid: str, *, specific_response_channel: bool = False
    ) -> None:
        super().__init__(key, nsp, uid)
        self.request_channel = f"{key}-request#{nsp}#".encode()
        self.response_channel = f"{key}-response#{nsp}#".encode()
        self.own_response_channel = self.response_channel + uid.encode() + b"#"
        self._specific = specific_response_channel

    def subscriptions(self) -> dict[tuple[SubscriptionKind, bytes], Role]:
        return {
            (SubscriptionKind.PATTERN, glob_escape(self.channel) + b"*"): Role.BROADCAST,
            (SubscriptionKind.CHANNEL, self.request_channel): Role.REQUEST,
            (SubscriptionKind.CHANNEL, self.response_channel): Role.RESPONSE,
            (SubscriptionKind.CHANNEL, self.own_response_channel): Role.RESPONSE,
        }

    def server_count_channel(self) -> tuple[SubscriptionKind, bytes]:
        return SubscriptionKind.CHANNEL, self.request_channel

    def broadcast_room(self, channel: bytes) -> bytes:
        return channel[len(self.channel) : -1]

    # -- requests -------------------------------------------------------------------------------

    def broadcast(self, data: list[Any], opts: BroadcastOptions) -> Outbound:
        packet = {"type": 2, "data": data, "nsp": self.nsp}
        payload = pack([self.uid, packet, options_to_wire(opts)])
        channel = self.channel
        if len(opts.rooms) == 1:
            (room,) = opts.rooms
            channel += room.encode() + b"#"
        return channel, payload

    def broadcast_with_ack(self, rid: str, data: list[Any], opts: BroadcastOptions) -> Outbound:
        request = {
            "uid": self.uid,
            "requestId": rid,
            "type": RequestType.BROADCAST.value,
            "packet": {"type": 2, "data": data, "nsp": self.nsp},
            "opts": options_to_wire(opts),
        }
        return self.request_channel, pack(request)

    def _selection(self, kind: RequestType, opts: BroadcastOptions) -> dict[str, Any]:
        return {"uid": self.uid, "type": kind.value, "opts": options_to_wire(opts, flags=False)}

    def sockets_join(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> Outbound:
        request = self._selection(RequestType.REMOTE_JOIN, opts)
        request["rooms"] = list(rooms)
        return self.request_channel, dumps_or_pack(request)

    def sockets_leave(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> Outbound:
        request = self._selection(RequestType.REMOTE_LEAVE, opts)
        request["rooms"] = list(rooms)
        return self.request_channel, dumps_or_pack(request)

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> Outbound:
        request = self._selection(RequestType.REMOTE_DISCONNECT, opts)
        request["close"] = close
        return self.request_channel, dumps_or_pack(request)

    def fetch_sockets(self, rid: str, opts: BroadcastOptions) -> Outbound:
        request = {
            "uid": self.uid,
            "requestId": rid,
            "type": RequestType.REMOTE_FETCH.value,
            "opts": options_to_wire(opts, flags=False),
        }
        return self.request_channel, dumps_or_pack(request)

    def server_side_emit(self, data: list[Any], rid: str | None) -> Outbound:
        request: dict[str, Any] = {"uid": self.uid}
        if rid is not None:
            request["requestId"] = rid
        request["type"] = RequestType.SERVER_SIDE_EMIT.value
        request["data"] = data
        return self.request_channel, dumps_or_pack(request)

    def all_rooms(self, rid: str) -> Outbound:
        request = {"uid": self.uid, "requestId": rid, "type": RequestType.ALL_ROOMS.value}
        return self.request_channel, dumps_or_pack(request)

    # -- answers ----------------------------------------------------------------------------------

    def _answer_channel(self, req: ClusterRequest) -> bytes:
        if self._specific and req.uid.__class__ is str:
            return self.response_channel + str(req.uid).encode() + b"#"
        return self.response_channel

    def respond_fetch(self, req: ClusterRequest, sockets: list[dict[str, Any]]) -> Outbound:
        return self._answer_channel(req), dumps_or_pack(
            {"requestId": req.request_id, "sockets": sockets}
        )

    def respond_sockets(self, req: ClusterRequest, sids: list[str]) -> Outbound:
        return self._answer_channel(req), dumps_or_pack(
            {"requestId": req.request_id, "sockets": sids}
        )

    def respond_rooms(self, req: ClusterRequest, rooms: list[Room]) -> Outbound:
        return self._answer_channel(req), dumps_or_pack(
            {"requestId": req.request_id, "rooms": rooms}
        )

    def respond_done(self, req: ClusterRequest) -> Outbound | None:
        if req.request_id is None:
            return None
        return self._answer_channel(req), dumps_or_pack({"requestId": req.request_id})

    def respond_server_side_emit(self, req: ClusterRequest, value: Any) -> Outbound:
        # Node always answers these on the shared channel, even with specific channels on.
        answer = {
            "type": RequestType.SERVER_SIDE_EMIT.value,
            "requestId": req.request_id,
            "data": value,
        }
        return self.response_channel, dumps_or_pack(answer)

    def respond_client_count(self, req: ClusterRequest, count: int) -> Outbound:
        answer = {
            "type": RequestType.BROADCAST_CLIENT_COUNT.value,
            "requestId": req.request_id,
            "clientCount": count,
        }
        return self._answer_channel(req), dumps_or_pack(answer)

    def respond_ack(self, req: ClusterRequest, value: Any) -> Outbound:
        answer = {
            "type": RequestType.BROADCAST_ACK.value,
            "requestId": req.request_id,
            "packet": value,
        }
        return self._answer_channel(req), pack(answer)

    # -- receiving ------------------------------------------------------------------------------

    def decode(self, role: Role, channel: bytes, payload: bytes) -> Received:
        if role is Role.BROADCAST:
            return self._decode_broadcast(payload)
        obj = decode(payload)
        if obj.__class__ is not dict:
            raise InvalidPacket("a request must be an object")
        if role is Role.RESPONSE:
            rid = request_id(obj.get("requestId"))
            code = obj.get("type")
            kind = RequestType(code) if code.__class__ is int and code in _TYPED_ANSWERS else None
            return ClusterResponse(rid, kind, obj)
        return self._decode_request(obj)

    def _decode_broadcast(self, payload: bytes) -> Received:
        value = unpack(payload)
        if value.__class__ is not list or len(value) < 3:
            raise InvalidPacket("a broadcast must be [uid, packet, opts]")
        uid, packet, opts = value[0], value[1], value[2]
        if uid == self.uid:
            return None  # our own broadcast, delivered locally already
        data = event_packet(packet, self.nsp)
        if data is None:
            return None
        return ClusterRequest(RequestType.BROADCAST, uid, None, options_from_wire(opts), data)

    def _decode_request(self, obj: dict[str, Any]) -> Received:
        code = obj.get("type")
        uid = obj.get("uid")
        if code.__class__ is not int or not 0 <= code <= 7:
            return None  # unknown types are ignored, as Node does
        kind = RequestType(code)
        if kind is RequestType.SOCKETS:
            rooms = obj.get("rooms")
            return ClusterRequest(
                kind,
                uid,
                request_id(obj.get("requestId")),
                rooms=tuple(rooms_from_wire(rooms)),
            )
        if kind is RequestType.ALL_ROOMS:
            return ClusterRequest(kind, uid, request_id(obj.get("requestId")))
        if kind in _SELECTIONS:
            opts = obj.get("opts")
            if opts:
                request = ClusterRequest(kind, uid, opts=options_from_wire(opts))
                if kind is RequestType.REMOTE_DISCONNECT:
                    request.close = obj.get("close") is True
                else:
                    request.rooms = rooms_list(obj.get("rooms"))
                return request
            # The legacy form (socket.io-redis 5.x remoteJoin...): one socket by id.
            sid = obj.get("sid")
            if sid.__class__ is not str:
                raise InvalidPacket("a remote join/leave/disconnect needs opts or a sid")
            request = ClusterRequest(kind, uid, optional_request_id(obj), sid=sid)
            if kind is RequestType.REMOTE_DISCONNECT:
                request.close = obj.get("close") is True
            else:
                room = obj.get("room")
                if room.__class__ is not str:
                    raise InvalidPacket("a remote join/leave needs a room")
                request.room = room
            return request
        if kind is RequestType.REMOTE_FETCH:
            return ClusterRequest(
                kind, uid, request_id(obj.get("requestId")), options_from_wire(obj.get("opts"))
            )
        if kind is RequestType.SERVER_SIDE_EMIT:
            return ClusterRequest(
                kind, uid, optional_request_id(obj), data=event_data(obj.get("data"))
            )
        # BROADCAST with ack
        return ClusterRequest(
            kind,
            uid,
            request_id(obj.get("requestId")),
            options_from_wire(obj.get("opts")),
            packet_data(obj.get("packet")),
        )


_SELECTIONS: Final = frozenset(
    {RequestType.REMOTE_JOIN, RequestType.REMOTE_LEAVE, RequestType.REMOTE_DISCONNECT}
)
_TYPED_ANSWERS: Final = frozenset(
    {
        RequestType.SERVER_SIDE_EMIT.value,
        RequestType.BROADCAST_CLIENT_COUNT.value,
        RequestType.BROADCAST_ACK.value,
    }
)


_SOCKET_ID_LENGTH: Final = 20  # what the sharded adapter takes for a socket id


class ShardedProtocol(RedisProtocol):
    """``@socket.io/redis-adapter``'s ``createShardedAdapter()`` protocol (Redis 7+): the
    :mod:`~sockjet.adapters.cluster_envelope` messages, JSON (msgpack when they hold binary)."""

    sharded = True

    def __init__(
        self, key: str, nsp: str, uid: str, *, subscription_mode: SubscriptionMode = "dynamic"
    ) -> None:
        super().__init__(key, nsp, uid)
        if subscription_mode not in ("dynamic", "dynamic-private", "static"):
            raise ValueError(f"unknown subscription mode {subscription_mode!r}")
        self.mode = subscription_mode
        self.own_response_channel = self.channel + uid.encode() + b"#"

    def subscriptions(self) -> dict[tuple[SubscriptionKind, bytes], Role]:
        return {
            (SubscriptionKind.SHARD, self.channel): Role.REQUEST,
            (SubscriptionKind.SHARD, self.own_response_channel): Role.RESPONSE,
        }

    def server_count_channel(self) -> tuple[SubscriptionKind, bytes]:
        return SubscriptionKind.SHARD, self.channel

    def room_channel(self, room: Room) -> bytes:
        """The channel of one-room broadcasts to ``room``."""
        return self.channel + room.encode() + b"#"

    def subscribes_to_room(self, room: Room, is_socket_id: bool) -> bool:
        """Whether a node with a socket in ``room`` subscribes to its channel."""
        if self.mode == "dynamic":
            return not is_socket_id
        return self.mode == "dynamic-private"

    def _encode(self, body: envelope.Body) -> bytes:
        return dumps_or_pack(envelope.envelope(body, self.uid, self.nsp))

    # -- requests -------------------------------------------------------------------------------

    def broadcast(self, data: list[Any], opts: BroadcastOptions) -> Outbound:
        payload = self._encode(envelope.broadcast(data, opts))
        channel = self.channel
        if len(opts.rooms) == 1:
            (room,) = opts.rooms
            dynamic = self.mode == "dynamic" and len(room) != _SOCKET_ID_LENGTH
            if dynamic or self.mode == "dynamic-private":
                channel = self.room_channel(room)
        return channel, payload

    def broadcast_with_ack(self, rid: str, data: list[Any], opts: BroadcastOptions) -> Outbound:
        return self.channel, self._encode(envelope.broadcast_with_ack(rid, data, opts))

    def sockets_join(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> Outbound:
        return self.channel, self._encode(envelope.sockets_join(opts, rooms))

    def sockets_leave(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> Outbound:
        return self.channel, self._encode(envelope.sockets_leave(opts, rooms))

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> Outbound:
        return self.channel, self._encode(envelope.disconnect_sockets(opts, close))

    def fetch_sockets(self, rid: str, opts: BroadcastOptions) -> Outbound:
        return self.channel, self._encode(envelope.fetch_sockets(rid, opts))

    def server_side_emit(self, data: list[Any], rid: str | None) -> Outbound:
        return self.channel, self._encode(envelope.server_side_emit(data, rid))

    # -- answers (to the requester's own channel) -------------------------------------------------

    def _answer(self, req: ClusterRequest, body: envelope.Body) -> Outbound | None:
        if req.uid.__class__ is not str:
            return None  # nowhere to answer
        return self.channel + str(req.uid).encode() + b"#", self._encode(body)

    def respond_fetch(self, req: ClusterRequest, sockets: list[dict[str, Any]]) -> Outbound | None:
        return self._answer(req, envelope.respond_fetch(req, sockets))

    def respond_server_side_emit(self, req: ClusterRequest, value: Any) -> Outbound | None:
        return self._answer(req, envelope.respond_server_side_emit(req, value))

    def respond_client_count(self, req: ClusterRequest, count: int) -> Outbound | None:
        return self._answer(req, envelope.respond_client_count(req, count))

    def respond_ack(self, req: ClusterRequest, value: Any) -> Outbound | None:
        return self._answer(req, envelope.respond_ack(req, value))

    # -- receiving ------------------------------------------------------------------------------

    def decode(self, role: Role, channel: bytes, payload: bytes) -> Received:
        return envelope.decode(decode(payload), self.uid, self.nsp)
