"""Namespaces: :class:`Namespace` and the dynamic :class:`ParentNamespace`.

A namespace holds its connected sockets, its adapter (rooms, broadcasts), its connection
middlewares and its handlers. Handlers come in two styles, freely mixed:

* ``@nsp.on("connection")`` (alias ``"connect"``): ``handler(socket)`` for each new socket;
  register per-socket handlers inside it (the JS style).
* ``@nsp.on("chat")``: a flat handler for a client event, ``handler(socket, *args)``; its return
  value answers the ack. ``@nsp.on("disconnect")`` / ``"disconnecting"``: ``handler(socket,
  reason)``.

Lifecycle handlers and client-event handlers live in separate tables, so no client-sent name can
ever reach a lifecycle handler.

Connection middleware: ``nsp.use(mw)`` with ``mw(socket) -> None`` (or a coroutine), run in
order before the socket connects. Raising :class:`~sockjet.errors.ConnectionRefused` refuses the
client with a CONNECT_ERROR ``{"message": ..., "data": ...}``; any other exception is logged and
refused as ``{"message": "Internal server error"}`` (its text is not sent to the client).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from inspect import isawaitable
from itertools import count
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

from sockjet.engine.hooks import call_hooks
from sockjet.errors import ConnectionRefused
from sockjet.protocol.socketio import RESERVED_EVENTS, Packet, PacketType, check_event_name
from sockjet.server.adapter import Adapter, SessionRecovery, SocketDetails
from sockjet.server.broadcast import BroadcastOperator, RemoteSocket
from sockjet.server.socket import Socket
from sockjet.server.targets import BroadcastOptions, Room, SocketId

if TYPE_CHECKING:
    from sockjet.server.client import Client
    from sockjet.server.recovery import RestoredSession
    from sockjet.server.server import Server

__all__ = ["Namespace", "NamespaceMatcher", "NamespaceStats", "ParentNamespace"]

logger = logging.getLogger("sockjet.server")

H = TypeVar("H", bound=Callable[..., Any])

NamespaceMatcher = re.Pattern[str] | Callable[[str, dict[str, Any]], bool | Awaitable[bool]]
"""What ``io.of()`` takes for dynamic namespaces: a regex (``search``ed in the name, as JS
``RegExp.test``; anchor it) or ``fn(name, auth)`` returning (or awaiting to) whether to accept."""

_CONNECTION_EVENTS: Final = frozenset({"connection", "connect"})
_LIFECYCLE_EVENTS: Final = frozenset({"disconnect", "disconnecting"})


class NamespaceStats:
    """What one namespace carried, counted as it happens (plain integers: a few nanoseconds per
    packet, once per packet, a broadcast once with its number of recipients). Read them for
    monitoring; :mod:`sockjet.observe.metrics` exports them."""

    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "events_received",
        "events_sent",
        "packets_received",
        "packets_sent",
    )

    def __init__(self) -> None:
        self.packets_received = 0
        """Packets of every type received from clients (events, acks, connects...)."""
        self.packets_sent = 0
        """Packets of every type sent to clients, once per recipient."""
        self.events_received = 0
        """EVENT packets received from clients."""
        self.events_sent = 0
        """EVENT packets sent to clients, once per recipient."""
        self.bytes_received = 0
        """Bytes of every packet received from clients (UTF-8 text, attachments included)."""
        self.bytes_sent = 0
        """Bytes of every packet sent to clients, once per recipient."""


class Namespace:
    """A communication channel with its own sockets, rooms, middlewares and handlers."""

    def __init__(self, server: Server, name: str, parent: ParentNamespace | None = None) -> None:
        self.name = name
        self.server = server
        self.sockets: dict[SocketId, Socket] = {}
        """The connected sockets, by id."""
        self.parent = parent
        self.stats = NamespaceStats()
        """What this namespace carried (see :class:`NamespaceStats`)."""
        self._ids = count()
        self._connecting = 0  # sockets in the connection middleware
        if parent is None:
            self._middlewares: list[Callable[..., Any]] = []
            self._connection_handlers: list[Callable[..., Any]] = []
            self._event_handlers: dict[str, list[Callable[..., Any]]] = {}
            self._lifecycle: dict[str, list[Callable[..., Any]]] = {}
            self._server_side: dict[str, list[Callable[..., Any]]] = {}
        else:
            # A child of a dynamic namespace shares its parent's tables: what is registered on
            # the parent, even later, applies to every child.
            self._middlewares = parent._middlewares
            self._connection_handlers = parent._connection_handlers
            self._event_handlers = parent._event_handlers
            self._lifecycle = parent._lifecycle
            self._server_side = parent._server_side
        self.adapter: Adapter = self._make_adapter()
        server._init_adapter(self.adapter)
        self._recovery: SessionRecovery | None = self.adapter.recovery
        created = server.hooks.namespace_created
        if created:
            call_hooks(created, self)

    def _make_adapter(self) -> Adapter:
        return self.server._adapter_factory(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, sockets={len(self.sockets)})"

    def next_ack_id(self) -> int:
        """A new acknowledgement id (one counter per namespace, as in Node: a broadcast uses
        the same id for every recipient, never colliding with a socket's own)."""
        return next(self._ids)

    # -- registration -------------------------------------------------------------------------

    @overload
    def on(self, event: str) -> Callable[[H], H]: ...
    @overload
    def on(self, event: str, handler: H) -> H: ...
    def on(self, event: str, handler: H | None = None) -> H | Callable[[H], H]:
        """Register a handler (usable as a decorator); see the module docstring for the kinds.

        Raises :class:`ValueError` for the other reserved names (``"connect_error"``...).
        """
        if handler is None:
            return partial(self.on, event)  # type: ignore[return-value]
        if event in _CONNECTION_EVENTS:
            self._connection_handlers.append(handler)
        elif event in _LIFECYCLE_EVENTS:
            self._lifecycle.setdefault(event, []).append(handler)
        elif event in RESERVED_EVENTS:
            raise ValueError(f"{event!r} is a reserved event name")
        else:
            self._event_handlers.setdefault(event, []).append(handler)
        return handler

    def off(self, event: str, handler: Callable[..., Any] | None = None) -> None:
        """Remove one handler of ``event`` (or all of them)."""
        if event in _CONNECTION_EVENTS:
            handlers = self._connection_handlers
        else:
            table = self._lifecycle if event in _LIFECYCLE_EVENTS else self._event_handlers
            handlers = table.get(event, [])
        if handler is None:
            handlers.clear()
        elif handler in handlers:
            handlers.remove(handler)

    def use(self, middleware: H) -> H:
        """Add a connection middleware ``mw(socket)`` (usable as a decorator)."""
        self._middlewares.append(middleware)
        return middleware

    @overload
    def on_server_side(self, event: str) -> Callable[[H], H]: ...
    @overload
    def on_server_side(self, event: str, handler: H) -> H: ...
    def on_server_side(self, event: str, handler: H | None = None) -> H | Callable[[H], H]:
        """Register ``handler(*args)`` for events other servers send with
        :meth:`server_side_emit` (needs a cluster adapter)."""
        if handler is None:
            return partial(self.on_server_side, event)  # type: ignore[return-value]
        self._server_side.setdefault(event, []).append(handler)
        return handler

    # -- broadcasting -------------------------------------------------------------------------

    def _operator(self) -> BroadcastOperator:
        return BroadcastOperator(self.adapter)

    def to(self, room: Room | Iterable[Room]) -> BroadcastOperator:
        """Target the sockets in ``room`` (or rooms)."""
        return self._operator().to(room)

    def in_(self, room: Room | Iterable[Room]) -> BroadcastOperator:
        """Same as :meth:`to`."""
        return self._operator().to(room)

    def except_(self, room: Room | Iterable[Room]) -> BroadcastOperator:
        """Target every socket except those in ``room`` (or rooms)."""
        return self._operator().except_(room)

    @property
    def volatile(self) -> BroadcastOperator:
        return self._operator().volatile

    @property
    def local(self) -> BroadcastOperator:
        return self._operator().local

    def compress(self, compress: bool) -> BroadcastOperator:
        return self._operator().compress(compress)

    def timeout(self, seconds: float) -> BroadcastOperator:
        return self._operator().timeout(seconds)

    def emit(self, event: str, *args: Any) -> None:
        """Send an event to every socket of the namespace."""
        self._operator().emit(event, *args)

    def send(self, *args: Any) -> None:
        """Emit a ``"message"`` event to every socket."""
        self._operator().emit("message", *args)

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """Emit to every socket and gather the acks (see
        :meth:`BroadcastOperator.emit_with_ack`)."""
        return await self._operator().emit_with_ack(event, *args)

    async def fetch_sockets(self) -> list[Socket | RemoteSocket]:
        """Every socket of the namespace (local ``Socket`` and ``RemoteSocket`` objects)."""
        return await self._operator().fetch_sockets()

    def sockets_join(self, room: Room | Iterable[Room]) -> None:
        """Make every socket join ``room`` (or rooms)."""
        self._operator().sockets_join(room)

    def sockets_leave(self, room: Room | Iterable[Room]) -> None:
        """Make every socket leave ``room`` (or rooms)."""
        self._operator().sockets_leave(room)

    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every socket of the namespace."""
        self._operator().disconnect_sockets(close)

    def server_side_emit(self, event: str, *args: Any) -> None:
        """Send an event to the other servers of the cluster (their :meth:`on_server_side`
        handlers); does nothing without a cluster adapter."""
        check_event_name(event)
        if event in _CONNECTION_EVENTS:
            raise ValueError(f"{event!r} is a reserved event name")
        self.adapter.server_side_emit([event, *args])

    async def server_side_emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """Send an event to the other servers and wait for their answers: one value per server
        (what its first :meth:`on_server_side` handler for ``event`` returned).

        Raises :class:`~sockjet.server.acks.BroadcastAckTimeout` (its ``replies`` holds the
        answers received) when some server does not answer within the cluster adapter's request
        timeout. Without a cluster adapter there is no other server: returns ``[]``.
        """
        check_event_name(event)
        if event in _CONNECTION_EVENTS:
            raise ValueError(f"{event!r} is a reserved event name")
        return await self.adapter.server_side_emit_with_ack([event, *args])

    def receive_server_side_emit(
        self, packet: list[Any], reply: Callable[[Any], None] | None = None
    ) -> None:
        """Called by a cluster adapter with ``[event, *args]`` from another server; when the
        sender waits for an answer, ``reply`` gets the first handler's return value."""
        if not packet or not isinstance(packet[0], str):
            return
        handlers = self._server_side.get(packet[0])
        if handlers:
            for handler in tuple(handlers):
                try:
                    result = handler(*packet[1:])
                    if result is not None and isawaitable(result):
                        self.server._spawn(_log_errors(result, handler, reply))
                    elif reply is not None:
                        reply(result)
                except Exception:
                    logger.exception("server-side event handler %r failed", handler)
                reply = None  # only the first handler answers

    # -- connection flow ----------------------------------------------------------------------

    def _add(self, client: Client, auth: dict[str, Any]) -> None:
        """A client asked to connect: run the middlewares, then connect or refuse."""
        recovery = self._recovery
        if recovery is not None:
            # The official client sends these in its auth once it has a session to recover.
            pid, offset = auth.get("pid"), auth.get("offset")
            if isinstance(pid, str) and (offset is None or isinstance(offset, str)):
                found = recovery.restore(pid, offset)
                if isawaitable(found):  # a store elsewhere (a cluster adapter's)
                    client._spawn(self._add_restored(client, auth, found))
                    return
                self._add_socket(client, auth, found)
                return
        self._add_socket(client, auth, None)

    async def _add_restored(
        self, client: Client, auth: dict[str, Any], pending: Awaitable[RestoredSession | None]
    ) -> None:
        try:
            async with asyncio.timeout(self.server._hook_timeout):
                restored = await pending
        except asyncio.CancelledError:
            client._connect_failed(self.name)
            raise
        except Exception:
            logger.exception(
                "restoring a session of %s failed: the client starts afresh", self.name
            )
            restored = None
        if client.closed:
            client._connect_failed(self.name)
            return
        self._add_socket(client, auth, restored)

    def _add_socket(
        self, client: Client, auth: dict[str, Any], restored: RestoredSession | None
    ) -> None:
        recovery = self._recovery
        socket = Socket(self, client, auth, restored)
        self._connecting += 1
        if restored is not None and recovery is not None and recovery.options.skip_middlewares:
            self._connect(socket)
            return
        middlewares = tuple(self._middlewares)
        for index, middleware in enumerate(middlewares):
            try:
                result = middleware(socket)
            except Exception as exc:
                self._refuse(socket, exc)
                return
            if result is not None and isawaitable(result):
                client._spawn(self._add_later(socket, result, middlewares[index + 1 :]))
                return
        self._connect(socket)

    async def _add_later(
        self, socket: Socket, pending: Awaitable[Any], rest: tuple[Callable[..., Any], ...]
    ) -> None:
        try:
            # bounded: a middleware that hangs must not hold the client (and a handler slot)
            async with asyncio.timeout(self.server._hook_timeout):
                await pending
                for middleware in rest:
                    result = middleware(socket)
                    if result is not None and isawaitable(result):
                        await result
        except asyncio.CancelledError:
            self._abandon(socket)
            raise
        except Exception as exc:
            self._refuse(socket, exc)
            return
        self._connect(socket)

    def _abandon(self, socket: Socket) -> None:
        self._connecting -= 1
        socket._cleanup()
        socket.client._connect_failed(self.name)

    def _refuse(self, socket: Socket, exc: Exception) -> None:
        if isinstance(exc, ConnectionRefused):
            data: dict[str, Any] = {"message": exc.message}
            if exc.data is not None:
                data["data"] = exc.data
        else:
            logger.error("connection middleware of %s failed", self.name, exc_info=exc)
            data = {"message": "Internal server error"}
        client = socket.client
        self._abandon(socket)
        if not client.closed:
            client._send_packet(Packet(PacketType.CONNECT_ERROR, self.name, data))

    def _connect(self, socket: Socket) -> None:
        client = socket.client
        if client.closed:  # the client left while the middlewares ran
            self._abandon(socket)
            return
        self._connecting -= 1
        self.sockets[socket.id] = socket
        socket._on_connect()
        client._socket_connected(socket)
        connected = self.server.hooks.socket_connected
        if connected:
            call_hooks(connected, socket)
        for handler in tuple(self._connection_handlers):
            client._run(handler, (socket,), None, partial(_refused_late, socket))

    def _remove(self, socket: Socket) -> None:
        """A socket disconnected (or its connection was refused)."""
        self.sockets.pop(socket.id, None)
        self._remove_if_unused()

    def _remove_if_unused(self) -> None:
        """A child of a dynamic namespace goes away with its last socket."""
        if self.parent is not None and not self.sockets and not self._connecting:
            self.parent._child_emptied(self)


def _refused_late(socket: Socket, exc: Exception) -> bool:
    """A ``connection`` handler raised ConnectionRefused: disconnect the socket."""
    if isinstance(exc, ConnectionRefused):
        socket.disconnect()
        return True
    return False


async def _log_errors(
    pending: Awaitable[Any],
    handler: Callable[..., Any],
    reply: Callable[[Any], None] | None = None,
) -> None:
    try:
        result = await pending
    except Exception:
        logger.exception("handler %r failed", handler)
        return
    if reply is not None:
        reply(result)


class ParentNamespace(Namespace):
    """A dynamic namespace: creates a child :class:`Namespace` for each accepted name.

    Children share the parent's middlewares and handlers. A broadcast from the parent reaches
    every child. With ``Server(cleanup_empty_child_namespaces=True)`` (the default) a child is
    removed when its last socket leaves, so names clients make up cannot accumulate.
    """

    def __init__(self, server: Server, name: str, matcher: NamespaceMatcher) -> None:
        self.children: set[Namespace] = set()
        self.matcher = matcher
        super().__init__(server, name)

    def _make_adapter(self) -> Adapter:
        return _ParentAdapter(self)

    def _matches(self, name: str, auth: dict[str, Any]) -> bool | Awaitable[bool]:
        matcher = self.matcher
        if isinstance(matcher, re.Pattern):
            return matcher.search(name) is not None
        return matcher(name, auth)

    def _create_child(self, name: str) -> Namespace:
        child = Namespace(self.server, name, parent=self)
        self.children.add(child)
        self.server._nsps[name] = child
        return child

    def _child_emptied(self, child: Namespace) -> None:
        server = self.server
        if not server._cleanup_children or child not in self.children:
            return
        self.children.discard(child)
        if server._nsps.get(child.name) is child:
            del server._nsps[child.name]
        server._close_adapter(child.adapter)
        removed = server.hooks.namespace_removed
        if removed:
            call_hooks(removed, child)

    def _add(self, client: Client, auth: dict[str, Any]) -> None:  # pragma: no cover
        raise RuntimeError("clients connect to the children of a dynamic namespace")


class _ParentAdapter(Adapter):
    """Fans the parent's broadcasts out to its children's adapters."""

    def __init__(self, nsp: ParentNamespace) -> None:
        super().__init__(nsp)
        self._parent = nsp

    def _adapters(self) -> list[Adapter]:
        return [child.adapter for child in list(self._parent.children)]

    def init(self) -> None:
        return None

    def close(self) -> None:
        return None

    async def server_count(self) -> int:
        total = 0
        for adapter in self._adapters():
            total += await adapter.server_count()
        return total

    def add_all(self, sid: SocketId, rooms: Iterable[Room]) -> None:
        return None

    def del_(self, sid: SocketId, room: Room) -> None:
        return None

    def del_all(self, sid: SocketId) -> None:
        return None

    def socket_rooms(self, sid: SocketId) -> set[Room] | None:
        return None

    def room_count(self) -> int:
        return 0  # the children's rooms are their own adapters'

    def broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        # each child gets its own argument list: a child's recovery appends its own offset
        for adapter in self._adapters():
            adapter.broadcast(Packet(packet.type, packet.nsp, list(packet.data)), opts)

    def broadcast_with_ack(
        self,
        packet: Packet,
        opts: BroadcastOptions,
        on_client_count: Callable[[int], None],
        on_reply: Callable[[Any], None],
    ) -> None:
        for adapter in self._adapters():
            adapter.broadcast_with_ack(
                Packet(packet.type, packet.nsp, list(packet.data)), opts, on_client_count, on_reply
            )

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Socket | SocketDetails]:
        found: list[Socket | SocketDetails] = []
        for adapter in self._adapters():
            found.extend(await adapter.fetch_sockets(opts))
        return found

    def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        rooms = tuple(rooms)
        for adapter in self._adapters():
            adapter.add_sockets(opts, rooms)

    def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        rooms = tuple(rooms)
        for adapter in self._adapters():
            adapter.del_sockets(opts, rooms)

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        for adapter in self._adapters():
            adapter.disconnect_sockets(opts, close)

    def server_side_emit(self, packet: list[Any]) -> None:
        return None
