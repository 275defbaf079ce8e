"""Emit into a socket.io cluster from any asyncio Python process: :class:`Emitter`.

The Python twin of Node's ``@socket.io/redis-emitter`` 5.x, speaking its exact bytes, so it
reaches sockjet servers and Node servers alike, as long as they use the Redis adapter's
classic protocol (``redis_adapter(...)``/``createAdapter()``) with the same ``key``::

    emitter = sockjet.Emitter("redis://127.0.0.1:6379/0")
    emitter.emit("news", {"title": "..."})                  # every client of "/"
    emitter.to("room-1").except_("banned").emit("ev", 1)
    emitter.of("/chat").sockets_join("lobby")
    emitter.server_side_emit("reload")                      # the servers' on_server_side
    await emitter.aclose()                                  # sends what is queued, closes

Each call returns at once (messages go out in order, pipelined); its return value is a future
that resolves once Redis took the message, to ``await`` when that matters (a cron job before
it exits). There are no acknowledgements, as in Node: an emitter is not a server.

``streams=True`` emits into a cluster on the Redis Streams adapter
(:mod:`sockjet.adapters.redis_streams`, sockjet's or Node's ``@socket.io/redis-streams-adapter``
0.3): broadcasts, joins, leaves and disconnects become stream entries (recorded, so a client
that recovers its session gets them too), server-side emits a pub/sub message. ``stream_name``,
``stream_count``, ``max_len`` and ``sharded_pubsub`` must match the servers' (``key`` is their
``channel_prefix``). Node has no such emitter: ``@socket.io/redis-streams-emitter`` was never
published.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Self

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from sockjet.adapters import cluster_envelope as envelope
from sockjet.adapters.redis_bus import Publisher
from sockjet.adapters.redis_codec import EMITTER_UID, RequestType, dumps_or_pack, pack
from sockjet.protocol.socketio import check_event_name
from sockjet.server.targets import BroadcastFlags, BroadcastOptions, Room

if TYPE_CHECKING:
    from sockjet.adapters.redis_streams import StreamsProtocol
    from sockjet.adapters.redis_streams_io import CommandWriter

__all__ = ["Emitter", "EmitterOperator"]

_NO_FLAGS = BroadcastFlags()


def _rooms(room: Room | Iterable[Room]) -> tuple[Room, ...]:
    return (room,) if isinstance(room, str) else tuple(room)


class _Connection:
    """What the emitters made by one :class:`Emitter` (and its ``of()``) share."""

    def __init__(
        self, redis: str | Redis, max_queued: int, streams: dict[str, Any] | None = None
    ) -> None:
        if isinstance(redis, str):
            self.client: Redis = Redis.from_url(
                redis, retry=Retry(NoBackoff(), 0), socket_connect_timeout=5.0, socket_timeout=5.0
            )
            self.owned = True
        else:
            self.client = redis
            self.owned = False
        self.streams = streams
        """The stream options (streams protocol), or None (classic)."""
        sharded = streams is not None and streams["sharded_pubsub"]
        self.publisher = Publisher(self.client, sharded=sharded, max_queued=max_queued)
        self.writer: CommandWriter | None = None
        if streams is not None:
            from sockjet.adapters.redis_streams_io import CommandWriter

            self.writer = CommandWriter(self.client, max_queued=max_queued)
        self.closed = False


class Emitter:
    """Sends to the clients of a socket.io cluster through Redis (see the module docs).

    ``redis`` is a URL or a ``redis.asyncio.Redis`` client (then not closed by
    :meth:`aclose`); ``key`` must match the servers' adapter key (the streams adapter's
    ``channel_prefix``). ``streams=True`` (and the stream options) for a cluster on the Redis
    Streams adapter.
    """

    def __init__(
        self,
        redis: str | Redis = "redis://127.0.0.1:6379/0",
        *,
        key: str = "socket.io",
        nsp: str = "/",
        max_queued: int = 100_000,
        streams: bool = False,
        stream_name: str = "socket.io",
        stream_count: int = 1,
        max_len: int = 10_000,
        sharded_pubsub: bool = False,
    ) -> None:
        options = None
        if streams:
            if stream_count < 1 or max_len < 1:
                raise ValueError("stream_count and max_len must be positive")
            options = {
                "stream_name": stream_name,
                "stream_count": stream_count,
                "max_len": max_len,
                "sharded_pubsub": sharded_pubsub,
            }
        self._setup(key, nsp, _Connection(redis, max_queued, options))

    def _setup(self, key: str, nsp: str, connection: _Connection) -> None:
        if not nsp.startswith("/"):
            nsp = "/" + nsp
        self.key = key
        self.nsp = nsp
        self._connection = connection
        self._broadcast_channel = f"{key}#{nsp}#".encode()
        self._request_channel = f"{key}-request#{nsp}#".encode()
        self._stream: StreamsProtocol | None = None
        streams = connection.streams
        if streams is not None:
            from sockjet.adapters.redis_streams import StreamsProtocol, stream_of

            self._stream = StreamsProtocol(
                key,
                nsp,
                EMITTER_UID,
                stream=stream_of(streams["stream_name"], nsp, streams["stream_count"]),
                max_len=streams["max_len"],
                sharded_pubsub=streams["sharded_pubsub"],
            )

    def of(self, nsp: str) -> Emitter:
        """The same emitter (one connection) for namespace ``nsp`` (``"chat"``: ``"/chat"``)."""
        other = Emitter.__new__(Emitter)
        other._setup(self.key, nsp, self._connection)
        return other

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def flush(self, grace: float = 5.0) -> bool:
        """Wait until everything emitted so far went to Redis (False after ``grace`` s)."""
        connection = self._connection
        done = await connection.publisher.flush(grace)
        if connection.writer is not None:
            done = await connection.writer.flush(grace) and done
        return done

    async def aclose(self, grace: float = 5.0) -> None:
        """Send what is queued (waiting at most ``grace`` seconds) and close the connection
        (a client passed in stays open)."""
        connection = self._connection
        if connection.closed:
            return
        connection.closed = True
        await connection.publisher.close(grace)
        if connection.writer is not None:
            await connection.writer.close(grace)
        if connection.owned:
            await connection.client.aclose()

    # -- targeting ------------------------------------------------------------------------------

    def _operator(self) -> EmitterOperator:
        return EmitterOperator(self, (), (), _NO_FLAGS)

    def to(self, room: Room | Iterable[Room]) -> EmitterOperator:
        """Target the clients in ``room`` (or rooms)."""
        return self._operator().to(room)

    def in_(self, room: Room | Iterable[Room]) -> EmitterOperator:
        """Same as :meth:`to`."""
        return self._operator().to(room)

    def except_(self, room: Room | Iterable[Room]) -> EmitterOperator:
        """Leave out the clients in ``room`` (or rooms)."""
        return self._operator().except_(room)

    @property
    def volatile(self) -> EmitterOperator:
        return self._operator().volatile

    def compress(self, compress: bool) -> EmitterOperator:
        return self._operator().compress(compress)

    def emit(self, event: str, *args: Any) -> asyncio.Future[None]:
        """Send an event to every client of the namespace."""
        return self._operator().emit(event, *args)

    def sockets_join(self, room: Room | Iterable[Room]) -> asyncio.Future[None]:
        """Make every socket of the namespace join ``room`` (or rooms)."""
        return self._operator().sockets_join(room)

    def sockets_leave(self, room: Room | Iterable[Room]) -> asyncio.Future[None]:
        return self._operator().sockets_leave(room)

    def disconnect_sockets(self, close: bool = False) -> asyncio.Future[None]:
        return self._operator().disconnect_sockets(close)

    def server_side_emit(self, event: str, *args: Any) -> asyncio.Future[None]:
        """Send an event to the servers' ``on_server_side`` handlers (no acknowledgement)."""
        check_event_name(event)
        if self._stream is not None:
            return self._publish(*self._stream.server_side_emit([event, *args], None))
        request = {"uid": EMITTER_UID, "type": RequestType.SERVER_SIDE_EMIT.value}
        request["data"] = [event, *args]
        return self._publish(self._request_channel, dumps_or_pack(request))

    def _publish(self, channel: bytes, payload: bytes) -> asyncio.Future[None]:
        if self._connection.closed:
            raise RuntimeError("the emitter is closed")
        return self._connection.publisher.publish_waiting(channel, payload)

    def _record(self, body: envelope.Body, kind: str) -> asyncio.Future[Any]:
        """XADD one message to the namespace's stream (streams protocol)."""
        connection = self._connection
        if connection.closed:
            raise RuntimeError("the emitter is closed")
        assert self._stream is not None and connection.writer is not None
        return connection.writer.send_waiting(self._stream.entry(body), kind)

    def __repr__(self) -> str:
        return f"Emitter(key={self.key!r}, nsp={self.nsp!r})"


class EmitterOperator:
    """An emitter with targets and flags; immutable, like the server's broadcast operator."""

    __slots__ = ("_emitter", "_except", "_flags", "_rooms")

    def __init__(
        self,
        emitter: Emitter,
        rooms: tuple[Room, ...],
        except_rooms: tuple[Room, ...],
        flags: BroadcastFlags,
    ) -> None:
        self._emitter = emitter
        self._rooms = rooms
        self._except = except_rooms
        self._flags = flags

    def to(self, room: Room | Iterable[Room]) -> EmitterOperator:
        rooms = tuple(dict.fromkeys((*self._rooms, *_rooms(room))))
        return EmitterOperator(self._emitter, rooms, self._except, self._flags)

    def in_(self, room: Room | Iterable[Room]) -> EmitterOperator:
        return self.to(room)

    def except_(self, room: Room | Iterable[Room]) -> EmitterOperator:
        rooms = tuple(dict.fromkeys((*self._except, *_rooms(room))))
        return EmitterOperator(self._emitter, self._rooms, rooms, self._flags)

    @property
    def volatile(self) -> EmitterOperator:
        flags = BroadcastFlags(volatile=True, compress=self._flags.compress)
        return EmitterOperator(self._emitter, self._rooms, self._except, flags)

    def compress(self, compress: bool) -> EmitterOperator:
        flags = BroadcastFlags(volatile=self._flags.volatile, compress=compress)
        return EmitterOperator(self._emitter, self._rooms, self._except, flags)

    def _flags_wire(self) -> dict[str, Any]:
        # The order of Node's emitter: the flags as they were set (volatile, then compress).
        out: dict[str, Any] = {}
        if self._flags.volatile:
            out["volatile"] = True
        if self._flags.compress is not None:
            out["compress"] = self._flags.compress
        return out

    def _options(self) -> BroadcastOptions:
        return BroadcastOptions(frozenset(self._rooms), frozenset(self._except), self._flags)

    def emit(self, event: str, *args: Any) -> asyncio.Future[Any]:
        """Send an event to the targeted clients."""
        check_event_name(event)
        emitter = self._emitter
        if emitter._stream is not None:
            return emitter._record(envelope.broadcast([event, *args], self._options()), "broadcast")
        packet = {"type": 2, "data": [event, *args], "nsp": emitter.nsp}
        # The emitter's key order (rooms, flags, except) differs from the adapter's.
        opts = {
            "rooms": list(self._rooms),
            "flags": self._flags_wire(),
            "except": list(self._except),
        }
        channel = emitter._broadcast_channel
        if len(self._rooms) == 1:
            channel += self._rooms[0].encode() + b"#"
        return emitter._publish(channel, pack([EMITTER_UID, packet, opts]))

    def _selection(self, kind: RequestType) -> dict[str, Any]:
        return {
            "type": kind.value,
            "opts": {"rooms": list(self._rooms), "except": list(self._except)},
        }

    def sockets_join(self, room: Room | Iterable[Room]) -> asyncio.Future[Any]:
        """Make the targeted sockets join ``room`` (or rooms)."""
        emitter = self._emitter
        if emitter._stream is not None:
            return emitter._record(
                envelope.sockets_join(self._options(), _rooms(room)), "operation"
            )
        request = self._selection(RequestType.REMOTE_JOIN)
        request["rooms"] = list(_rooms(room))
        emitter = self._emitter
        return emitter._publish(emitter._request_channel, dumps_or_pack(request))

    def sockets_leave(self, room: Room | Iterable[Room]) -> asyncio.Future[Any]:
        """Make the targeted sockets leave ``room`` (or rooms)."""
        emitter = self._emitter
        if emitter._stream is not None:
            return emitter._record(
                envelope.sockets_leave(self._options(), _rooms(room)), "operation"
            )
        request = self._selection(RequestType.REMOTE_LEAVE)
        request["rooms"] = list(_rooms(room))
        emitter = self._emitter
        return emitter._publish(emitter._request_channel, dumps_or_pack(request))

    def disconnect_sockets(self, close: bool = False) -> asyncio.Future[Any]:
        """Disconnect the targeted sockets (``close``: their whole connection)."""
        emitter = self._emitter
        if emitter._stream is not None:
            body = envelope.disconnect_sockets(self._options(), close)
            return emitter._record(body, "operation")
        request = self._selection(RequestType.REMOTE_DISCONNECT)
        request["close"] = close
        emitter = self._emitter
        return emitter._publish(emitter._request_channel, dumps_or_pack(request))

    def __repr__(self) -> str:
        return f"EmitterOperator(rooms={list(self._rooms)}, except={list(self._except)})"
