"""The Socket.IO server: :class:`Server`.

``Server`` owns an Engine.IO server (:attr:`Server.engine`), the namespaces and the handler
tasks. It knows nothing of sockets and HTTP: a serving layer feeds its engine
(``sockjet.serving.native`` via :meth:`Server.serve`/:meth:`Server.run`, or
``sockjet.ASGIApp(io)``).

Layering: ``server/`` may not import ``adapters/``, ``serving/`` or ``observe/`` (they sit below
it). The default adapter (:class:`sockjet.adapters.memory.MemoryAdapter`), the native server,
the Admin UI and the metrics are therefore looked up by name, with
:func:`importlib.import_module`, when first needed: the deliberate late-bound references from
this layer to the ones built on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from inspect import isawaitable
from itertools import count
from types import TracebackType
from typing import Any, Final, Protocol, Self, TypeVar, overload

from sockjet.engine.cookie import SessionCookie
from sockjet.engine.cors import CorsOptions
from sockjet.engine.flow import DEFAULT_MAX_BUFFERED, DEFAULT_SLOW_CONSUMER_TIMEOUT
from sockjet.engine.hooks import call_hooks
from sockjet.engine.io import EngineSocket, HTTPRequest, HTTPResponse
from sockjet.engine.server import EngineServer
from sockjet.protocol.serializers import SerializerOption, resolve_serializer
from sockjet.protocol.socketio import (
    JSON_SERIALIZER,
    DecoderLimits,
    Packet,
    PacketType,
    Serializer,
    encode_event,
)
from sockjet.server.adapter import Adapter, AdapterFactory
from sockjet.server.broadcast import BroadcastOperator, RemoteSocket
from sockjet.server.client import Client
from sockjet.server.namespace import Namespace, NamespaceMatcher, ParentNamespace
from sockjet.server.recovery import ConnectionStateRecovery
from sockjet.server.socket import Socket
from sockjet.server.targets import Room

__all__ = ["RunningServer", "Server", "ServerHooks"]

logger = logging.getLogger("sockjet.server")

H = TypeVar("H", bound=Callable[..., Any])

_DEFAULT_ADAPTER: Final = ("sockjet.adapters.memory", "MemoryAdapter")
_NATIVE_SERVING: Final = "sockjet.serving.native"
_ADMIN: Final = "sockjet.observe.admin"
_METRICS: Final = "sockjet.observe.metrics"
_WORKERS: Final = "sockjet.serving.workers"

Endpoint = Callable[[HTTPRequest], Awaitable[HTTPResponse]]
"""An extra HTTP endpoint of the server: ``async fn(request) -> response``."""


def _default_adapter_factory() -> AdapterFactory:
    module = importlib.import_module(_DEFAULT_ADAPTER[0])
    factory: AdapterFactory = getattr(module, _DEFAULT_ADAPTER[1])
    return factory


class RunningServer(Protocol):
    """What :meth:`Server.serve` returns: the native server, running
    (``sockjet.serving.native.NativeServer``, which is checked against this protocol)."""

    @property
    def port(self) -> int:
        """The bound port (the one the OS chose for ``port=0``)."""
        ...

    @property
    def connections(self) -> int:
        """Open HTTP and WebSocket connections."""
        ...

    async def close(self) -> None:
        """Stop accepting and close every connection (WebSockets with 1001). Idempotent."""
        ...

    async def serve_forever(self) -> None:
        """Run until :meth:`close` is called."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Instrumented(Protocol):
    """What :meth:`Server.instrument` returns (``sockjet.observe.admin.Instrumentation``)."""

    @property
    def closed(self) -> bool: ...

    def close(self) -> None:
        """Remove the Admin UI's hooks and disconnect the admins."""


class ServerHooks:
    """Observation hooks of the Socket.IO server (``io.hooks``): namespaces, sockets, rooms,
    packets and handlers, for monitoring (the Admin UI, metrics, logs) without reaching into the
    server. The engine's own (sessions, upgrades, slow consumers...) are ``io.engine.hooks``
    (:class:`~sockjet.engine.hooks.EngineHooks`).

    Register with the ``on_*`` methods (usable as decorators), remove with :meth:`remove`. A
    hook list nobody listens to costs one truth test where it would fire; packets are reported
    once per packet with the number of recipients, never once per recipient. Hooks run inline
    and must not block; one that raises is logged and skipped. What each receives:

    * ``namespace_created(nsp)``: a namespace now exists (Node's ``io.on("new_namespace")``);
    * ``namespace_removed(nsp)``: an emptied child of a dynamic namespace was removed;
    * ``socket_connected(socket)``: a socket joined its namespace (after its CONNECT reply);
    * ``socket_disconnected(socket, reason)``: it left (the ``disconnect`` handlers' reason);
    * ``room_created(nsp, room)`` / ``room_deleted(nsp, room)``: a room got its first local
      socket / lost its last (socket.io-adapter's ``create-room`` / ``delete-room``);
    * ``room_joined(nsp, room, sid)`` / ``room_left(nsp, room, sid)``: a local socket joined or
      left a room (``join-room`` / ``leave-room``);
    * ``packet_received(client, packet, size)``: a Socket.IO packet from a client (``size``:
      its bytes on the wire, attachments included);
    * ``packet_sent(nsp, packet, recipients, size)``: a packet queued for ``recipients`` local
      clients (``size``: its bytes, counted once);
    * ``event_handled(socket, event, seconds)``: an event's handler returned (a coroutine
      handler: finished); handlers are timed only while someone listens;
    * ``broker_round_trip(nsp, request, seconds)``: a cluster adapter's request to the other
      servers (``"fetch_sockets"``, ``"server_side_emit"``...) was answered in ``seconds``;
    * ``server_started(server)``: the server started (:meth:`Server.start`, :meth:`Server.serve`,
      the ASGI lifespan, or its first connection), once;
    * ``server_closing(server)``: :meth:`Server.close` began (monitoring stops its timers).

    ``nsp`` is a :class:`~sockjet.server.namespace.Namespace`, ``client`` a
    :class:`~sockjet.server.client.Client`, ``packet`` a
    :class:`~sockjet.protocol.socketio.Packet` (read it, never change it).
    """

    __slots__ = (
        "broker_round_trip",
        "event_handled",
        "namespace_created",
        "namespace_removed",
        "packet_received",
        "packet_sent",
        "room_created",
        "room_deleted",
        "room_joined",
        "room_left",
        "server_closing",
        "server_started",
        "socket_connected",
        "socket_disconnected",
    )

    def __init__(self) -> None:
        self.namespace_created: list[Callable[[Namespace], None]] = []
        self.namespace_removed: list[Callable[[Namespace], None]] = []
        self.socket_connected: list[Callable[[Socket], None]] = []
        self.socket_disconnected: list[Callable[[Socket, str], None]] = []
        self.room_created: list[Callable[[Namespace, str], None]] = []
        self.room_deleted: list[Callable[[Namespace, str], None]] = []
        self.room_joined: list[Callable[[Namespace, str, str], None]] = []
        self.room_left: list[Callable[[Namespace, str, str], None]] = []
        self.packet_received: list[Callable[[Client, Packet, int], None]] = []
        self.packet_sent: list[Callable[[Namespace, Packet, int, int], None]] = []
        self.event_handled: list[Callable[[Socket, str, float], None]] = []
        self.server_closing: list[Callable[[Server], None]] = []
        self.server_started: list[Callable[[Server], None]] = []
        self.broker_round_trip: list[Callable[[Namespace, str, float], None]] = []

    @property
    def watching_rooms(self) -> bool:
        """Whether any room hook has a listener (adapters check this once per change)."""
        return bool(self.room_created or self.room_deleted or self.room_joined or self.room_left)

    def on_namespace_created(self, hook: H) -> H:
        self.namespace_created.append(hook)
        return hook

    def on_namespace_removed(self, hook: H) -> H:
        self.namespace_removed.append(hook)
        return hook

    def on_socket_connected(self, hook: H) -> H:
        self.socket_connected.append(hook)
        return hook

    def on_socket_disconnected(self, hook: H) -> H:
        self.socket_disconnected.append(hook)
        return hook

    def on_room_created(self, hook: H) -> H:
        self.room_created.append(hook)
        return hook

    def on_room_deleted(self, hook: H) -> H:
        self.room_deleted.append(hook)
        return hook

    def on_room_joined(self, hook: H) -> H:
        self.room_joined.append(hook)
        return hook

    def on_room_left(self, hook: H) -> H:
        self.room_left.append(hook)
        return hook

    def on_packet_received(self, hook: H) -> H:
        self.packet_received.append(hook)
        return hook

    def on_packet_sent(self, hook: H) -> H:
        self.packet_sent.append(hook)
        return hook

    def on_event_handled(self, hook: H) -> H:
        self.event_handled.append(hook)
        return hook

    def on_server_closing(self, hook: H) -> H:
        self.server_closing.append(hook)
        return hook

    def on_server_started(self, hook: H) -> H:
        self.server_started.append(hook)
        return hook

    def on_broker_round_trip(self, hook: H) -> H:
        self.broker_round_trip.append(hook)
        return hook

    def remove(self, hook: Callable[..., Any]) -> None:
        """Remove ``hook`` from every list it was registered in."""
        for name in self.__slots__:
            hooks: list[Callable[..., Any]] = getattr(self, name)
            while hook in hooks:
                hooks.remove(hook)


class Server:
    """A Socket.IO server (Node's ``new Server(opts)``).

    CORS is closed unless ``cors_origins`` is given: ``"*"``, an origin, a list of origins or
    ``fn(origin) -> bool`` (or awaitable). Times are in seconds.

    Limits (docs/guide.md, "Limits" and "Flow control and slow consumers"): ``max_payload``
    bytes per message/polling body; ``max_attachments`` per binary packet.
    ``max_concurrent_handlers`` handler tasks per connection, with a backlog of as many events
    or ``max_buffered_bytes`` bytes after which the client is no longer read until it shrinks
    (see :mod:`sockjet.server.client`). Outbound, per connection: over ``max_buffered_bytes``
    volatile packets are dropped; a client whose queue stays over it for
    ``slow_consumer_timeout`` seconds, or would pass ``max_outbound_bytes``, is closed as a slow
    consumer (see :mod:`sockjet.engine.flow`). A client that joins no namespace within
    ``connect_timeout`` is closed, and user hooks (``allow_request``, a CORS predicate,
    connection middlewares, dynamic namespace matchers) get that long at most.
    ``max_packets_per_poll`` caps the packets of one polling answer (set 16 for python-socketio
    clients that poll: see :class:`~sockjet.engine.server.EngineServer`). ``connection_state_recovery`` (True, or a
    :class:`~sockjet.server.recovery.ConnectionStateRecovery` with its limits) lets a client back
    within minutes recover its id, rooms, data and missed packets (Node's option of that name;
    the memory adapter supports it, the Redis adapter does not, like Node's). ``cookie`` (True,
    or a :class:`~sockjet.engine.cookie.SessionCookie`) sets a cookie holding the session id on
    polling handshakes, for load balancers that stick by cookie. ``metrics`` (True, or a
    :class:`sockjet.observe.metrics.MetricsOptions`) serves Prometheus metrics at ``/metrics``
    (needs ``pip install "sockjet[metrics]"``; see docs/observability.md).
    """

    def __init__(
        self,
        *,
        cors_origins: str | Sequence[str] | Callable[[str], bool | Awaitable[bool]] | None = None,
        cors_credentials: bool = False,
        cors_methods: Sequence[str] = ("GET", "POST"),
        cors_allowed_headers: Sequence[str] | None = None,
        cors_exposed_headers: Sequence[str] | None = None,
        cors_max_age: int | None = None,
        ping_interval: float = 25.0,
        ping_timeout: float = 20.0,
        max_payload: int = 1_000_000,
        path: str = "/socket.io/",
        transports: Sequence[str] = ("polling", "websocket"),
        allow_upgrades: bool = True,
        upgrade_timeout: float = 10.0,
        connect_timeout: float = 45.0,
        serializer: SerializerOption = "json",
        adapter: AdapterFactory | None = None,
        allow_request: Callable[[HTTPRequest], Awaitable[bool]] | None = None,
        http_compression: bool = True,
        per_message_deflate: bool = False,
        max_attachments: int = 10,
        max_buffered_bytes: int = 1_000_000,
        max_outbound_bytes: int = DEFAULT_MAX_BUFFERED,
        slow_consumer_timeout: float = DEFAULT_SLOW_CONSUMER_TIMEOUT,
        max_concurrent_handlers: int = 64,
        max_packets_per_poll: int | None = None,
        cleanup_empty_child_namespaces: bool = True,
        connection_state_recovery: ConnectionStateRecovery | bool = False,
        cookie: SessionCookie | bool = False,
        metrics: Any = False,
    ) -> None:
        if max_concurrent_handlers < 1:
            raise ValueError("max_concurrent_handlers must be at least 1")
        cors = (
            None
            if cors_origins is None
            else CorsOptions(
                origins=cors_origins,
                methods=tuple(cors_methods),
                credentials=cors_credentials,
                allowed_headers=cors_allowed_headers,
                exposed_headers=cors_exposed_headers,
                max_age=cors_max_age,
            )
        )
        self.engine = EngineServer(
            self.on_engine_connection,
            path=path,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_payload=max_payload,
            transports=transports,
            allow_upgrades=allow_upgrades,
            upgrade_timeout=upgrade_timeout,
            cors=cors,
            allow_request=allow_request,
            http_compression=http_compression,
            per_message_deflate=per_message_deflate,
            max_buffered_bytes=max_buffered_bytes,
            max_outbound_bytes=max_outbound_bytes,
            slow_consumer_timeout=slow_consumer_timeout,
            hook_timeout=connect_timeout or 45.0,
            max_packets_per_poll=max_packets_per_poll,
            cookie=SessionCookie() if cookie is True else cookie or None,
        )
        """The Engine.IO server the serving layer feeds."""
        self.serializer: Serializer = resolve_serializer(serializer)
        # Each attachment is one message, capped by max_payload: what a packet may have pending
        # is bounded by its attachment count, and counted in the backlog once complete.
        self._limits = DecoderLimits(max_attachments, max_attachments * max_payload)
        self._decoder = self._new_decoder()  # shared by clients between packets
        self._encode_event: Callable[[str, str, Sequence[Any], int | None], list[str | bytes]]
        if self.serializer is JSON_SERIALIZER:
            self._encode_event = encode_event
        else:
            self._encode_event = self._encode_event_generic
        self._connect_timeout = connect_timeout
        self._hook_timeout: float = connect_timeout or 45.0
        self._max_handlers = max_concurrent_handlers
        self._max_backlog_bytes = max_buffered_bytes
        self._cleanup_children = cleanup_empty_child_namespaces
        if connection_state_recovery is True:
            connection_state_recovery = ConnectionStateRecovery()
        self.connection_state_recovery: ConnectionStateRecovery | None = (
            connection_state_recovery or None
        )
        """Recovery options when enabled (see :mod:`sockjet.server.recovery`), else None."""
        self._adapter_factory: AdapterFactory = adapter or _default_adapter_factory()
        self._adapters_waiting: list[Adapter] | None = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: asyncio.Task[None] | None = None
        self._close_callers: set[asyncio.Task[Any]] = set()
        self.hooks = ServerHooks()
        """Observation hooks: namespaces, sockets, rooms, packets, handlers (see
        :class:`ServerHooks`; the engine's are ``io.engine.hooks``)."""
        self._nsps: dict[str, Namespace] = {}
        self._parents: dict[NamespaceMatcher, ParentNamespace] = {}
        self._parent_ids = count()
        self.sockets: Namespace = self.of("/")
        """The main namespace ``"/"``: what ``io.emit``, ``io.on``... act on."""
        self.endpoints: dict[str, Endpoint] = {}
        """Extra HTTP endpoints served on the server's own port, by path (the native server
        and the ASGI app both route them): ``/metrics`` when metrics are on."""
        self.metrics: Any = None
        """The :class:`sockjet.observe.metrics.Metrics` when ``metrics`` is on, else None."""
        if metrics:
            self.enable_metrics(None if metrics is True else metrics)

    def _new_decoder(self) -> Any:
        return self.serializer.decoder(self._limits)

    def _encode_event_generic(
        self, nsp: str, event: str, args: Sequence[Any], ack_id: int | None
    ) -> list[str | bytes]:
        return self.serializer.encode(Packet(PacketType.EVENT, nsp, [event, *args], ack_id))

    # -- namespaces ---------------------------------------------------------------------------

    def of(self, name: str | NamespaceMatcher) -> Namespace:
        """The namespace ``name`` (created on first use; ``"chat"`` means ``"/chat"``).

        A compiled regex or a callable ``fn(name, auth) -> bool`` (or awaitable) makes a
        dynamic namespace: a client connecting to an unknown name that it accepts gets a child
        namespace sharing the dynamic namespace's middlewares and handlers.
        """
        if isinstance(name, str):
            if not name.startswith("/"):
                name = "/" + name
            nsp = self._nsps.get(name)
            if nsp is None:
                nsp = self._nsps[name] = Namespace(self, name)
            return nsp
        if not isinstance(name, re.Pattern) and not callable(name):
            raise TypeError(f"a namespace is a str, a compiled regex or a callable, not {name!r}")
        parent = self._parents.get(name)
        if parent is None:
            parent = ParentNamespace(self, f"/_{next(self._parent_ids)}", name)
            self._parents[name] = parent
        return parent

    @property
    def namespaces(self) -> dict[str, Namespace]:
        """The namespaces clients can connect to now, by name (a copy)."""
        return dict(self._nsps)

    def _match_dynamic(
        self, name: str, auth: dict[str, Any]
    ) -> Namespace | Awaitable[Namespace | None] | None:
        parents = list(self._parents.values())
        for index, parent in enumerate(parents):
            try:
                accepted = parent._matches(name, auth)
            except Exception:
                logger.exception("namespace matcher of %r failed", parent.matcher)
                continue
            if isawaitable(accepted):
                return self._match_dynamic_later(name, auth, parents, index, accepted)
            if accepted:
                return self._child(parent, name)
        return None

    async def _match_dynamic_later(
        self,
        name: str,
        auth: dict[str, Any],
        parents: list[ParentNamespace],
        index: int,
        pending: Awaitable[bool],
    ) -> Namespace | None:
        for position in range(index, len(parents)):
            parent = parents[position]
            try:
                if position > index:
                    result = parent._matches(name, auth)
                    accepted = await result if isawaitable(result) else result
                else:
                    accepted = await pending
            except Exception:
                logger.exception("namespace matcher of %r failed", parent.matcher)
                continue
            if accepted:
                return self._child(parent, name)
        return None

    def _child(self, parent: ParentNamespace, name: str) -> Namespace:
        # Another client may have created it (or a static one) while a matcher was awaited.
        return self._nsps.get(name) or parent._create_child(name)

    # -- adapters -----------------------------------------------------------------------------

    def _init_adapter(self, adapter: Adapter) -> None:
        waiting = self._adapters_waiting
        if waiting is not None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                waiting.append(adapter)  # started when the loop runs (first connection/serve)
                return
        self._start_adapter(adapter)

    def _use_adapter_if_default(self, factory: AdapterFactory) -> bool:
        """Give every namespace ``factory``'s adapter instead of the default memory adapter,
        before the adapters start (a worker of ``--workers`` joins its local bus). False, and
        nothing changes, when the server has an adapter of its own or has started."""
        if (
            self._adapter_factory is not _default_adapter_factory()
            or self._adapters_waiting is None
        ):
            return False
        self._adapter_factory = factory
        replaced: dict[int, Adapter] = {}
        for nsp in self._nsps.values():
            old = nsp.adapter
            nsp.adapter = factory(nsp)
            nsp._recovery = nsp.adapter.recovery
            replaced[id(old)] = nsp.adapter
        self._adapters_waiting = [replaced.get(id(a), a) for a in self._adapters_waiting]
        return True

    def start(self) -> None:
        """Start the adapters (e.g. the Redis adapter subscribes). :meth:`serve` calls it, and
        so does :class:`~sockjet.ASGIApp` at lifespan startup; otherwise they start with the
        first connection. Idempotent; needs a running event loop."""
        self._start_adapters()

    def _start_adapters(self) -> None:
        waiting, self._adapters_waiting = self._adapters_waiting, None
        if waiting is None:
            return  # started already
        for adapter in waiting:
            self._start_adapter(adapter)
        started = self.hooks.server_started
        if started:
            call_hooks(started, self)

    def _start_adapter(self, adapter: Adapter) -> None:
        try:
            result = adapter.init()
        except Exception:
            logger.exception("adapter %r failed to start", adapter)
            return
        if result is not None and isawaitable(result):
            self._spawn(_log_failure(result, "adapter start"))

    def _close_adapter(self, adapter: Adapter) -> None:
        try:
            result = adapter.close()
        except Exception:
            logger.exception("adapter %r failed to close", adapter)
            return
        if result is not None and isawaitable(result):
            self._spawn(_log_failure(result, "adapter close"))

    # -- engine sessions and tasks ------------------------------------------------------------

    def on_engine_connection(self, conn: EngineSocket) -> Client:
        """The engine's callback for each new session: returns its :class:`Client`."""
        if self._adapters_waiting is not None:
            self._start_adapters()
        return Client(self, conn)

    def _spawn(
        self,
        coro: Coroutine[Any, Any, None],
        done: Callable[[asyncio.Task[None]], None] | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        if sys.version_info >= (3, 12):  # a handler's synchronous start runs now, like a plain one
            task = asyncio.Task(coro, loop=loop, eager_start=True)
        else:
            task = loop.create_task(coro)
        # Done callbacks always run from the loop (also for an eager task that already
        # finished): a handler's completion never re-enters the dispatch that started it.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if done is not None:
            task.add_done_callback(done)

    @property
    def running_tasks(self) -> int:
        """Handler tasks currently running."""
        return len(self._tasks)

    # -- the main namespace's API -------------------------------------------------------------

    @overload
    def on(self, event: str) -> Callable[[H], H]: ...
    @overload
    def on(self, event: str, handler: H) -> H: ...
    def on(self, event: str, handler: H | None = None) -> H | Callable[[H], H]:
        """Register a handler on the main namespace (see :meth:`Namespace.on`)."""
        if handler is None:
            return self.sockets.on(event)
        return self.sockets.on(event, handler)

    def off(self, event: str, handler: Callable[..., Any] | None = None) -> None:
        self.sockets.off(event, handler)

    def use(self, middleware: H) -> H:
        """Add a connection middleware to the main namespace."""
        return self.sockets.use(middleware)

    def to(self, room: Room | Iterable[Room]) -> BroadcastOperator:
        return self.sockets.to(room)

    def in_(self, room: Room | Iterable[Room]) -> BroadcastOperator:
        return self.sockets.to(room)

    def except_(self, room: Room | Iterable[Room]) -> BroadcastOperator:
        return self.sockets.except_(room)

    @property
    def volatile(self) -> BroadcastOperator:
        return self.sockets.volatile

    @property
    def local(self) -> BroadcastOperator:
        return self.sockets.local

    def compress(self, compress: bool) -> BroadcastOperator:
        return self.sockets.compress(compress)

    def timeout(self, seconds: float) -> BroadcastOperator:
        return self.sockets.timeout(seconds)

    def emit(self, event: str, *args: Any) -> None:
        """Send an event to every socket of the main namespace."""
        self.sockets.emit(event, *args)

    def send(self, *args: Any) -> None:
        self.sockets.send(*args)

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        return await self.sockets.emit_with_ack(event, *args)

    async def fetch_sockets(self) -> list[Socket | RemoteSocket]:
        return await self.sockets.fetch_sockets()

    def sockets_join(self, room: Room | Iterable[Room]) -> None:
        self.sockets.sockets_join(room)

    def sockets_leave(self, room: Room | Iterable[Room]) -> None:
        self.sockets.sockets_leave(room)

    def disconnect_sockets(self, close: bool = False) -> None:
        self.sockets.disconnect_sockets(close)

    def server_side_emit(self, event: str, *args: Any) -> None:
        self.sockets.server_side_emit(event, *args)

    async def server_side_emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """See :meth:`Namespace.server_side_emit_with_ack`."""
        return await self.sockets.server_side_emit_with_ack(event, *args)

    def on_server_side(self, event: str, handler: H) -> H:
        return self.sockets.on_server_side(event, handler)

    # -- lifecycle ----------------------------------------------------------------------------

    async def close(self, grace: float = 5.0) -> None:
        """Shut down: every socket disconnects ("server shutting down"), adapters close, the
        engine refuses new sessions and closes the open ones, then handler tasks get ``grace``
        seconds to finish before they are cancelled. Idempotent."""
        caller = asyncio.current_task()
        if caller is not None:
            # A handler may close the server: do not wait for the task that waits for us.
            self._close_callers.add(caller)
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close(grace))
        try:
            await asyncio.shield(self._closing)
        finally:
            if caller is not None:
                self._close_callers.discard(caller)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing is not None

    async def _close(self, grace: float) -> None:
        closing = self.hooks.server_closing
        if closing:
            call_hooks(closing, self)
        namespaces: list[Namespace] = [*self._nsps.values(), *self._parents.values()]
        for nsp in namespaces:
            for socket in list(nsp.sockets.values()):
                socket._on_close("server shutting down")
        for nsp in namespaces:
            try:
                result = nsp.adapter.close()
                if result is not None and isawaitable(result):
                    await result
            except Exception:
                logger.exception("adapter of %s failed to close", nsp.name)
        await self.engine.close()
        callers = self._close_callers
        tasks = [task for task in self._tasks if task not in callers]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    def enable_metrics(self, options: Any = None) -> Any:
        """Count and serve Prometheus metrics (what ``Server(metrics=...)`` does; ``options``: a
        :class:`sockjet.observe.metrics.MetricsOptions`). Returns the
        :class:`~sockjet.observe.metrics.Metrics`; idempotent. Serve the server (or build its
        ASGI app) afterwards for the endpoint to be routed."""
        if self.metrics is None:
            # looked up by name: server/ does not import what watches it (nor prometheus_client)
            module = importlib.import_module(_METRICS)
            self.metrics = module.Metrics(self, options)
            self.endpoints[self.metrics.path] = self.metrics.handle
        return self.metrics

    def instrument(self, *, auth: Any, **options: Any) -> Instrumented:
        """Let the Socket.IO Admin UI (https://admin.socket.io) connect: the same as
        ``sockjet.observe.admin.instrument(io, auth=..., **options)``, which documents
        ``auth`` and the options."""
        # looked up by name, like the default adapter: server/ does not import what watches it
        admin = importlib.import_module(_ADMIN)
        instrumented: Instrumented = admin.instrument(self, auth=auth, **options)
        return instrumented

    async def serve(
        self, host: str = "127.0.0.1", port: int = 5000, **options: Any
    ) -> RunningServer:
        """Serve this server with the native HTTP/WebSocket server; returns it running
        (:class:`RunningServer`: ``.port``, ``await .close()``). ``options`` go to
        ``sockjet.serving.native.serve`` (``static_dir``, ``ssl``...)."""
        self._start_adapters()
        native = importlib.import_module(_NATIVE_SERVING)
        if self.endpoints:
            options.setdefault("endpoints", self.endpoints)
        running: RunningServer = await native.serve(self.engine, host, port, **options)
        return running

    def run(
        self,
        host: str = "127.0.0.1",
        port: int = 5000,
        *,
        workers: int | str = 1,
        **options: Any,
    ) -> None:
        """Serve until SIGINT (Ctrl-C) or SIGTERM, then shut down gracefully: every socket
        disconnects with "server shutting down" before the listener closes. Uses uvloop when
        installed. ``options`` are those of :meth:`serve`.

        ``workers`` (a number, or ``"auto"`` for one per core): serve from that many processes
        forked from this one, on one port, with no sticky sessions needed (Linux; see
        :mod:`sockjet.serving.workers` and docs/deployment.md). Without a cluster adapter of
        its own, the server's workers share rooms and broadcasts over a local bus. TLS must
        then be terminated in front: ``ssl`` is refused. Raises SystemExit(1) when the workers
        could not start or were forced to stop."""
        if workers != 1:
            module = importlib.import_module(_WORKERS)
            count: int = module.parse_workers(str(workers))
            if count > 1:
                if options.get("ssl") is not None:
                    raise ValueError(
                        "TLS cannot be handed over between workers: terminate it in front "
                        "(nginx...) or run one worker"
                    )
                module.check_platform()
                code: int = module.serve_forked(self, host, port, count, options)
                if code:
                    raise SystemExit(code)
                return

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
                    loop.add_signal_handler(signum, stop.set)
            server = await self.serve(host, port, **options)
            try:
                await stop.wait()
            finally:
                try:
                    await self.close()
                finally:
                    await server.close()

        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is optional
            runner: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
        else:
            runner = uvloop.run
        with contextlib.suppress(KeyboardInterrupt):
            runner(main())


async def _log_failure(pending: Awaitable[Any], what: str) -> None:
    try:
        await pending
    except Exception:
        logger.exception("%s failed", what)
