"""The Redis adapter: sockjet servers share rooms and broadcasts over Redis, in one cluster
with Node.js socket.io servers that use ``@socket.io/redis-adapter`` 8.x.

::

    from sockjet.adapters.redis import redis_adapter

    io = sockjet.Server(adapter=redis_adapter("redis://127.0.0.1:6379/0"))

Everything the socket.io docs say works across nodes works across nodes: ``io.emit``,
``to``/``except_``, ``fetch_sockets()`` (remote sockets with ``id``, ``handshake``, ``rooms``,
``data``, ``emit``, ``join``, ``leave``, ``disconnect``), ``server_side_emit`` and
``server_side_emit_with_ack``, ``sockets_join``/``sockets_leave``/``disconnect_sockets``,
broadcast acks (``io.timeout(5).emit_with_ack(...)``) and ``server_count()``. Messages from
``@socket.io/redis-emitter`` (and :class:`sockjet.Emitter`) are accepted.

Two wire protocols, as in Node (the choice must match the Node servers'): the classic one
(default, ``createAdapter()``, the emitter's) and ``sharded=True`` (``createShardedAdapter()``,
Redis 7 sharded pub/sub). See :mod:`sockjet.adapters.redis_protocols`.

How it works: each namespace's :class:`RedisAdapter` is a
:class:`~sockjet.adapters.memory.MemoryAdapter` that also publishes what must reach the other
servers and acts on what they publish. A broadcast from Redis is decoded once, then delivered by
the memory adapter exactly like a local one (encoded once, the same ``Outgoing`` objects for
every recipient). All namespaces of one server share one subscriber connection
(:class:`~sockjet.adapters.redis_bus.RedisBus`). Operations apply to local sockets at once, even
while Redis is unreachable; requests to other servers time out after ``request_timeout``.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from sockjet.adapters.bus import Bus, SubscriptionKey
from sockjet.adapters.memory import MemoryAdapter
from sockjet.adapters.redis_codec import (
    ClusterRequest,
    ClusterResponse,
    RequestType,
    describe_socket,
    details_from_wire,
    dumps_or_pack,
)
from sockjet.adapters.redis_protocols import (
    ClassicProtocol,
    Outbound,
    RedisProtocol,
    Role,
    ShardedProtocol,
    SubscriptionKind,
    SubscriptionMode,
)
from sockjet.adapters.redis_requests import (
    AckRequest,
    Gather,
    MalformedLog,
    RequestTimeout,
    new_id,
    once,
)
from sockjet.engine.hooks import call_hooks
from sockjet.errors import InvalidPacket
from sockjet.protocol.socketio import Packet, PacketType
from sockjet.server.acks import NO_REPLY, BroadcastAckTimeout
from sockjet.server.adapter import SocketDetails
from sockjet.server.namespace import Namespace
from sockjet.server.socket import Socket
from sockjet.server.targets import BroadcastOptions, Room, SocketId

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from sockjet.server.server import Server

__all__ = [
    "RedisAdapter",
    "RedisAdapterFactory",
    "RequestTimeout",
    "ShardedRedisAdapter",
    "redis_adapter",
]

logger = logging.getLogger("sockjet.adapters.redis")

_ENCODE_ERRORS: Final = (TypeError, ValueError, OverflowError)


_malformed = MalformedLog()


class RedisAdapter(MemoryAdapter):
    """The adapter of one namespace in a Redis cluster (classic protocol)."""

    cluster = True

    def __init__(self, nsp: Namespace, factory: RedisAdapterFactory) -> None:
        super().__init__(nsp)
        self.uid = factory._new_uid()
        """This namespace's node id in the cluster."""
        self.request_timeout = factory.request_timeout
        self.protocol: RedisProtocol = factory._protocol(nsp.name, self.uid)
        self._factory = factory
        self._max_message_size = factory.max_message_size
        self._bus: Bus | None = None
        self._closed = False
        self._subscriptions = self.protocol.subscriptions()
        self._requests: dict[str, Gather] = {}
        self._ack_requests: dict[str, tuple[AckRequest, asyncio.TimerHandle]] = {}
        self._servers = 1
        self._setup_recovery()

    def _setup_recovery(self) -> None:
        if self.recovery is not None:
            # Like Node's @socket.io/redis-adapter: a session kept here would be looked for on
            # whichever node the client reconnects to, and offsets would reach Node peers.
            self.recovery = None
            logger.warning(
                "%s does not support connection state recovery: namespace %s will not recover "
                "sockets (across servers or workers, the Redis Streams adapter does)",
                type(self).__name__,
                self.nsp.name,
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.nsp.name!r}, uid={self.uid!r})"

    # -- lifecycle ------------------------------------------------------------------------------

    def init(self) -> None:
        if self._bus is not None or self._closed:
            return
        bus = self._bus = self._factory._attach(self)
        for key, role in self._subscriptions.items():
            bus.subscribe(key, partial(self._on_message, role))

    def _live(self) -> Bus | None:
        """The bus, started now if the server has not started its adapters yet (e.g. an ASGI
        app emitting before its first client): every emit from a running loop is published."""
        bus = self._bus
        if bus is None and not self._closed:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return None
            self.init()
            bus = self._bus
        return bus

    async def close(self) -> None:
        self._closed = True
        bus, self._bus = self._bus, None
        if bus is None:
            return
        for key in self._subscriptions:
            bus.unsubscribe(key)
        for gather in self._requests.values():
            if not gather.future.done():
                gather.future.set_exception(RequestTimeout("the adapter was closed"))
        self._requests.clear()
        acks, self._ack_requests = self._ack_requests, {}
        for request, timer in acks.values():
            timer.cancel()
            request.give_up()  # whoever waits for these gets the answers so far
        await self._factory._detach(self, bus)

    async def wait_ready(self) -> None:
        """Wait until Redis confirmed this namespace's subscriptions: from then on this server
        receives the cluster's messages and counts in :meth:`server_count`. (It waits as long
        as Redis is unreachable: bound it with ``asyncio.timeout``.)"""
        bus = self._bus
        if bus is None:
            raise RuntimeError("the adapter is not started (serve the server first)")
        await bus.wait_subscribed(self._subscriptions)

    async def server_count(self) -> int:
        """The servers of the cluster that have this namespace (this one included); 1 when
        Redis cannot be reached (this server then acts alone)."""
        bus = self._live()
        if bus is None:
            return 1
        key = self.protocol.server_count_channel()
        count = await bus.count_subscribers(key)
        if count is None:
            count = 1
        elif not bus.is_subscribed(key):
            count += 1  # not counted yet, but here
        self._servers = count = max(count, 1)
        return count

    # -- what this server sends -----------------------------------------------------------------

    def _publish(self, outbound: Outbound | None) -> None:
        bus = self._live()
        if bus is not None and outbound is not None:
            bus.publish(*outbound)

    def broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        # Published first, as Node does; a value msgpack cannot carry raises before any send.
        if not opts.flags.local:
            bus = self._bus or self._live()
            if bus is not None:
                bus.publish(*self.protocol.broadcast(packet.data, opts))
        super().broadcast(packet, opts)

    def broadcast_with_ack(
        self,
        packet: Packet,
        opts: BroadcastOptions,
        on_client_count: Callable[[int], None],
        on_reply: Callable[[Any], None],
    ) -> None:
        if not opts.flags.local and self._live() is not None:
            rid = self._factory._new_request_id()
            outbound = self.protocol.broadcast_with_ack(rid, packet.data, opts)
            request = AckRequest(on_client_count, on_reply, self._servers)
            timeout = opts.flags.timeout
            # Node drops the request after the broadcast's timeout. Without one (allowed
            # here, not in Node), other servers are waited for at most request_timeout.
            delay = self.request_timeout if timeout is None else timeout
            timer = asyncio.get_running_loop().call_later(
                delay, self._expire_ack, rid, timeout is None
            )
            self._ack_requests[rid] = (request, timer)
            self._publish(outbound)
        super().broadcast_with_ack(packet, opts, on_client_count, on_reply)

    def _expire_ack(self, rid: str, give_up: bool) -> None:
        entry = self._ack_requests.pop(rid, None)
        if entry is not None and give_up:
            entry[0].give_up()

    async def _ask(self, outbound: Outbound, rid: str, gather: Gather, kind: str) -> list[Any]:
        self._requests[rid] = gather
        started = time.perf_counter()
        try:
            self._publish(outbound)
            async with asyncio.timeout(self.request_timeout):
                answers = await gather.future
        finally:
            self._requests.pop(rid, None)
        timed = self.nsp.server.hooks.broker_round_trip
        if timed:
            call_hooks(timed, self.nsp, kind, time.perf_counter() - started)
        return answers

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Socket | SocketDetails]:
        found = await super().fetch_sockets(opts)
        if opts.flags.local or self._live() is None:
            return found
        expected = await self.server_count() - 1
        if expected <= 0:
            return found
        rid = self._factory._new_request_id()
        gather = Gather(expected)
        try:
            answers = await self._ask(
                self.protocol.fetch_sockets(rid, opts), rid, gather, "fetch_sockets"
            )
        except RequestTimeout:
            raise  # the adapter closed
        except TimeoutError:
            raise RequestTimeout(
                f"timeout reached while waiting for fetch_sockets response "
                f"(only {gather.received} of {expected} servers answered)"
            ) from None
        for body in answers:
            sockets = body.get("sockets")
            if sockets.__class__ is not list:
                continue
            for item in sockets:
                try:
                    found.append(details_from_wire(item))
                except InvalidPacket as exc:
                    _malformed.warn(self.nsp.name, exc)
        return found

    async def all_rooms(self) -> set[Room]:
        """Every room of this namespace across the cluster (with the sharded protocol, which
        has no such request, this server's rooms only)."""
        rooms = set(self.rooms)
        rid = self._factory._new_request_id()
        outbound = self.protocol.all_rooms(rid)
        if outbound is None or self._live() is None:
            return rooms
        expected = await self.server_count() - 1
        if expected <= 0:
            return rooms
        gather = Gather(expected)
        try:
            answers = await self._ask(outbound, rid, gather, "all_rooms")
        except RequestTimeout:
            raise  # the adapter closed
        except TimeoutError:
            raise RequestTimeout("timeout reached while waiting for all_rooms response") from None
        for body in answers:
            listed = body.get("rooms")
            if listed.__class__ is list:
                rooms.update(r for r in listed if r.__class__ is str)
        return rooms

    def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        rooms = tuple(rooms)
        if not opts.flags.local:
            self._publish(self.protocol.sockets_join(opts, rooms))
        super().add_sockets(opts, rooms)

    def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        rooms = tuple(rooms)
        if not opts.flags.local:
            self._publish(self.protocol.sockets_leave(opts, rooms))
        super().del_sockets(opts, rooms)

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        if not opts.flags.local:
            self._publish(self.protocol.disconnect_sockets(opts, close))
        super().disconnect_sockets(opts, close)

    def server_side_emit(self, packet: list[Any]) -> None:
        self._publish(self.protocol.server_side_emit(packet, None))

    async def server_side_emit_with_ack(self, packet: list[Any]) -> list[Any]:
        """Send ``[event, *args]`` to the other servers; one answer per server. Raises
        :class:`~sockjet.server.acks.BroadcastAckTimeout` (with the answers received) when
        some do not answer within ``request_timeout``."""
        if self._live() is None:
            return []
        expected = await self.server_count() - 1
        if expected <= 0:
            return []
        rid = self._factory._new_request_id()
        gather = Gather(expected, typed=RequestType.SERVER_SIDE_EMIT)
        try:
            return await self._ask(
                self.protocol.server_side_emit(packet, rid), rid, gather, "server_side_emit"
            )
        except RequestTimeout:
            raise  # the adapter closed
        except TimeoutError:
            raise BroadcastAckTimeout(
                f"timeout reached: only {len(gather.values)} responses received out of {expected}",
                list(gather.values),
            ) from None

    # -- what this server receives ----------------------------------------------------------------

    def _on_message(self, role: Role, channel: bytes, payload: bytes) -> None:
        if len(payload) > self._max_message_size:
            _malformed.warn(self.nsp.name, InvalidPacket(f"{len(payload)} bytes: too large"))
            return
        if role is Role.BROADCAST:
            # Cheap filter first, as Node does: a one-room broadcast for a room we lack.
            room = self.protocol.broadcast_room(channel)
            if room and room.decode("utf-8", "replace") not in self.rooms:
                return
        try:
            message = self.protocol.decode(role, channel, payload)
        except InvalidPacket as exc:
            _malformed.warn(self.nsp.name, exc)
            return
        if message is None:
            return
        if isinstance(message, ClusterResponse):
            self._on_response(message)
        else:
            self._on_request(message)

    def _on_request(self, req: ClusterRequest) -> None:
        if req.uid is not None and req.uid == self.uid:
            return  # our own request: applied locally when sent
        rid = req.request_id
        if rid is not None and (rid in self._requests or rid in self._ack_requests):
            return
        kind = req.type
        if kind is RequestType.BROADCAST:
            assert req.data is not None
            packet = Packet(PacketType.EVENT, self.nsp.name, req.data)
            if rid is None:
                super().broadcast(packet, req.opts)
            else:
                self._answer_broadcast(req, packet)
        elif kind is RequestType.REMOTE_JOIN:
            if req.sid is None:
                super().add_sockets(req.opts, req.rooms)
            else:
                self._legacy(req, lambda socket: socket.join(req.room or ""))
        elif kind is RequestType.REMOTE_LEAVE:
            if req.sid is None:
                super().del_sockets(req.opts, req.rooms)
            else:
                self._legacy(req, lambda socket: socket.leave(req.room or ""))
        elif kind is RequestType.REMOTE_DISCONNECT:
            if req.sid is None:
                super().disconnect_sockets(req.opts, req.close)
            else:
                self._legacy(req, lambda socket: socket.disconnect(req.close))
        elif kind is RequestType.REMOTE_FETCH:
            self._answer_fetch(req)
        elif kind is RequestType.SERVER_SIDE_EMIT:
            assert req.data is not None
            reply = None if rid is None else once(partial(self._answer_server_side_emit, req))
            self.nsp.receive_server_side_emit(req.data, reply)
        elif kind is RequestType.SOCKETS:
            sids = [s.id for s in self._select(BroadcastOptions(frozenset(req.rooms)))]
            self._publish(self.protocol.respond_sockets(req, sids))
        elif kind is RequestType.ALL_ROOMS:
            self._publish(self.protocol.respond_rooms(req, list(self.rooms)))

    def _legacy(self, req: ClusterRequest, action: Callable[[Socket], None]) -> None:
        socket = self.nsp.sockets.get(req.sid or "")
        if socket is not None:
            action(socket)
            self._publish(self.protocol.respond_done(req))

    def _answer_broadcast(self, req: ClusterRequest, packet: Packet) -> None:
        opts = req.opts
        if opts.flags.timeout is None:  # bound how long our sockets keep the ack id
            opts = replace(opts, flags=replace(opts.flags, timeout=self.request_timeout))

        def count(clients: int) -> None:
            self._publish(self.protocol.respond_client_count(req, clients))

        def reply(value: Any) -> None:
            if value is NO_REPLY:
                return  # as in Node: nothing is sent for a client that left
            if value.__class__ is tuple:  # several ack arguments: the first one travels
                value = value[0] if value else None
            try:
                self._publish(self.protocol.respond_ack(req, value))
            except _ENCODE_ERRORS as exc:
                logger.warning("cannot forward an ack to another server: %s", exc)

        super().broadcast_with_ack(packet, opts, count, reply)

    def _answer_fetch(self, req: ClusterRequest) -> None:
        described = [describe_socket(s) for s in self._select(req.opts)]
        try:
            outbound = self.protocol.respond_fetch(req, described)
        except _ENCODE_ERRORS:
            # Every server must answer, or the requester waits for nothing: send the sockets,
            # without the data that cannot travel.
            for item in described:
                try:
                    dumps_or_pack(item)
                except _ENCODE_ERRORS as exc:
                    logger.warning(
                        "socket %s: data cannot be sent to other servers (%s)", item["id"], exc
                    )
                    item["data"] = None
            outbound = self.protocol.respond_fetch(req, described)
        self._publish(outbound)

    def _answer_server_side_emit(self, req: ClusterRequest, value: Any) -> None:
        try:
            self._publish(self.protocol.respond_server_side_emit(req, value))
        except _ENCODE_ERRORS as exc:
            logger.warning("cannot answer a server-side emit: %s", exc)

    def _on_response(self, response: ClusterResponse) -> None:
        rid = response.request_id
        entry = self._ack_requests.get(rid)
        if entry is not None:
            request = entry[0]
            if response.type is RequestType.BROADCAST_CLIENT_COUNT:
                count = response.body.get("clientCount")
                if count.__class__ is int and count >= 0:
                    request.client_count(count)
            elif response.type is RequestType.BROADCAST_ACK:
                request.reply(response.body.get("packet"))
            return
        gather = self._requests.get(rid)
        if gather is not None:
            gather.feed(response)


class ShardedRedisAdapter(RedisAdapter):
    """The adapter of one namespace with the sharded protocol (``sharded=True``): it also
    subscribes to the channel of each room it has sockets in (``subscription_mode``)."""

    protocol: ShardedProtocol

    def __init__(self, nsp: Namespace, factory: RedisAdapterFactory) -> None:
        super().__init__(nsp, factory)
        self._room_keys: dict[Room, SubscriptionKey] = {}

    def init(self) -> None:
        started = self._bus is None
        super().init()
        if started:  # rooms that exist already (the adapter started late)
            for room in list(self.rooms):
                self._room_created(room)

    async def close(self) -> None:
        bus = self._bus
        if bus is not None:
            for key in self._room_keys.values():
                bus.unsubscribe(key)
        self._room_keys.clear()
        await super().close()

    def add_all(self, sid: SocketId, rooms: Iterable[Room]) -> None:
        rooms = tuple(rooms)
        index = self.rooms
        created = [room for room in rooms if room not in index]
        super().add_all(sid, rooms)
        for room in created:
            self._room_created(room)

    def del_(self, sid: SocketId, room: Room) -> None:
        super().del_(sid, room)
        if room not in self.rooms:
            self._room_deleted(room)

    def del_all(self, sid: SocketId) -> None:
        own = tuple(self.sids.get(sid, ()))
        super().del_all(sid)
        index = self.rooms
        for room in own:
            if room not in index:
                self._room_deleted(room)

    def _room_created(self, room: Room) -> None:
        bus = self._bus
        if bus is None or not self.protocol.subscribes_to_room(room, room in self.sids):
            return
        key = (SubscriptionKind.SHARD, self.protocol.room_channel(room))
        self._room_keys[room] = key
        bus.subscribe(key, partial(self._on_message, Role.REQUEST))

    def _room_deleted(self, room: Room) -> None:
        key = self._room_keys.pop(room, None)
        if key is not None and self._bus is not None:
            self._bus.unsubscribe(key)


class RedisAdapterFactory:
    """What :func:`redis_adapter` returns: ``Server(adapter=...)`` calls it with each
    namespace. It keeps one :class:`~sockjet.adapters.redis_bus.RedisBus` (one subscriber
    connection) per server it serves."""

    def __init__(
        self,
        redis: str | Redis = "redis://127.0.0.1:6379/0",
        *,
        key: str = "socket.io",
        request_timeout: float = 5.0,
        sharded: bool = False,
        subscription_mode: SubscriptionMode = "dynamic",
        publish_on_specific_response_channel: bool = False,
        max_queued_messages: int = 100_000,
        max_message_size: int = 64 * 1024 * 1024,
        reconnect_max_delay: float = 5.0,
        health_interval: float = 15.0,
        cluster: bool = False,
    ) -> None:
        if request_timeout <= 0:
            raise ValueError("request_timeout must be positive")
        if subscription_mode not in ("dynamic", "dynamic-private", "static"):
            raise ValueError(f"unknown subscription mode {subscription_mode!r}")
        self.redis = redis
        self.key = key
        self.request_timeout = request_timeout
        self.sharded = sharded
        self.subscription_mode: SubscriptionMode = subscription_mode
        self.specific_response_channel = publish_on_specific_response_channel
        self.max_queued_messages = max_queued_messages
        self.max_message_size = max_message_size
        self.reconnect_max_delay = reconnect_max_delay
        self.health_interval = health_interval
        self.cluster = cluster
        """``redis`` is a URL of a Redis Cluster node (see :mod:`sockjet.adapters.redis_cluster`)."""
        self._buses: weakref.WeakKeyDictionary[Server, Bus] = weakref.WeakKeyDictionary()
        self._members: dict[Bus, set[RedisAdapter]] = {}

    def __call__(self, nsp: Namespace) -> RedisAdapter:
        if self.sharded:
            return ShardedRedisAdapter(nsp, self)
        return RedisAdapter(nsp, self)

    def _new_uid(self) -> str:
        """A namespace's node id (six characters, as Node's classic adapter makes them)."""
        return new_id()

    def _new_request_id(self) -> str:
        """A request's id (six characters, as Node's classic adapter makes them)."""
        return new_id()

    def _protocol(self, nsp: str, uid: str) -> RedisProtocol:
        if self.sharded:
            return ShardedProtocol(self.key, nsp, uid, subscription_mode=self.subscription_mode)
        return ClassicProtocol(
            self.key, nsp, uid, specific_response_channel=self.specific_response_channel
        )

    def _client(self) -> tuple[Redis, bool]:
        # redis-py is imported here, not with the module: the adapter also runs over the
        # workers' local bus (sockjet.adapters.local_bus), which needs no redis package.
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        if not isinstance(self.redis, str):
            return self.redis, False
        timeout = self.request_timeout
        if self.cluster:
            from redis.asyncio import RedisCluster

            cluster: Any = RedisCluster.from_url(
                self.redis, socket_timeout=timeout, socket_connect_timeout=min(timeout, 5.0)
            )
            return cluster, True
        client = Redis.from_url(
            self.redis,
            # The bus reconnects and resubscribes itself, with backoff: no hidden retries.
            retry=Retry(NoBackoff(), 0),
            socket_timeout=timeout,
            socket_connect_timeout=min(timeout, 5.0),
        )
        return client, True

    def _open_bus(self) -> Bus:
        """The bus of a server that has none yet: a RedisBus (one subscriber connection), or
        a ClusterBus on a Redis Cluster."""
        client, owned = self._client()
        bus_class = self._bus_class(client)
        return bus_class(
            client,
            owns_client=owned,
            sharded=self.sharded,
            request_timeout=self.request_timeout,
            max_queued=self.max_queued_messages,
            max_delay=self.reconnect_max_delay,
            health_interval=self.health_interval,
            max_message_size=self.max_message_size,
        )

    def _attach(self, adapter: RedisAdapter) -> Bus:
        server = adapter.nsp.server
        bus = self._buses.get(server)
        if bus is None:
            bus = self._open_bus()
            self._buses[server] = bus
            self._members[bus] = set()
        self._members[bus].add(adapter)
        return bus

    @staticmethod
    def _bus_class(client: Any) -> Callable[..., Bus]:
        """:class:`RedisBus`, or on a Redis Cluster its twin
        :class:`~sockjet.adapters.redis_cluster.ClusterBus` (same interface)."""
        from sockjet.adapters.redis_bus import RedisBus
        from sockjet.adapters.redis_cluster import ClusterBus, is_cluster

        bus_class: Callable[..., Bus] = ClusterBus if is_cluster(client) else RedisBus
        return bus_class

    async def _detach(self, adapter: RedisAdapter, bus: Bus) -> None:
        members = self._members.get(bus)
        if members is None:
            return
        members.discard(adapter)
        if not members:
            del self._members[bus]
            server = adapter.nsp.server
            if self._buses.get(server) is bus:
                del self._buses[server]
            await bus.close()


def redis_adapter(
    redis: str | Redis = "redis://127.0.0.1:6379/0",
    *,
    key: str = "socket.io",
    request_timeout: float = 5.0,
    sharded: bool = False,
    subscription_mode: SubscriptionMode = "dynamic",
    publish_on_specific_response_channel: bool = False,
    max_queued_messages: int = 100_000,
    max_message_size: int = 64 * 1024 * 1024,
    reconnect_max_delay: float = 5.0,
    health_interval: float = 15.0,
    cluster: bool = False,
) -> RedisAdapterFactory:
    """The Redis adapter for ``sockjet.Server(adapter=...)``.

    ``redis`` is a URL (``redis://host:port/db``, ``rediss://...``, ``unix://...``: each
    server then opens its own connections) or a ``redis.asyncio.Redis`` client (shared, and not
    closed by sockjet). ``key`` is the channel prefix: it must match the Node servers' ``key``
    (classic) or ``channelPrefix`` (sharded). ``request_timeout`` (seconds, Node's
    ``requestsTimeout``) bounds every request to the other servers.

    ``sharded=True`` speaks ``createShardedAdapter()``'s protocol (Redis 7+) with its
    ``subscription_mode`` (``"dynamic"``, ``"dynamic-private"`` or ``"static"``); the emitter
    cannot reach such a cluster. ``publish_on_specific_response_channel`` as in Node (classic).

    Faults: ``max_queued_messages`` bounds what waits for Redis while it is unreachable (the
    oldest go first); messages over ``max_message_size`` bytes from Redis are skipped; the
    subscriber reconnects with exponential backoff up to ``reconnect_max_delay`` seconds and
    PINGs a connection silent for ``health_interval`` seconds.

    ``cluster=True``: ``redis`` is the URL of a node of a Redis Cluster (or pass a
    ``redis.asyncio.RedisCluster``); use the sharded protocol there, whose channels spread over
    the masters (see :mod:`sockjet.adapters.redis_cluster`).
    """
    if isinstance(redis, str):
        importlib.import_module("redis.asyncio")  # without redis-py, fail now, not when serving
    return RedisAdapterFactory(
        redis,
        key=key,
        request_timeout=request_timeout,
        sharded=sharded,
        subscription_mode=subscription_mode,
        publish_on_specific_response_channel=publish_on_specific_response_channel,
        max_queued_messages=max_queued_messages,
        max_message_size=max_message_size,
        reconnect_max_delay=reconnect_max_delay,
        health_interval=health_interval,
        cluster=cluster,
    )
