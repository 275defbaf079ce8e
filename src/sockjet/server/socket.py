"""One client's presence in one namespace: :class:`Socket`.

A socket is what handlers receive: it emits to its client, joins rooms, waits for acks and runs
the handlers registered on it. It costs little while idle: its handler tables, pending acks,
``data`` dict and handshake are created on first use, and it owns no task and no timer.

Handlers may be plain functions or coroutine functions. A plain handler runs inline, while the
packet is dispatched; a coroutine handler gets one task (bounded per connection, see
``Server(max_concurrent_handlers=...)``). Exceptions are logged, never fatal to the connection.

Packet middleware (:meth:`Socket.use`): ``mw(event: str, args: list) -> None`` (or a coroutine),
run in order before the handlers of every incoming event. It may change ``args`` in place; raising
any exception stops the event, and the exception goes to the socket's ``"error"`` handlers (or is
logged when there are none), as ``next(err)`` does in Node.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from inspect import isawaitable
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

from sockjet.engine.hooks import call_hooks, timed
from sockjet.engine.io import EngineSocket, HTTPRequest, Outgoing
from sockjet.errors import AckTimeout
from sockjet.protocol.socketio import RESERVED_EVENTS, Packet, PacketType, check_event_name
from sockjet.server.acks import ACK_REQUESTED, AckWaiter, SingleAck
from sockjet.server.adapter import Adapter
from sockjet.server.broadcast import BroadcastOperator
from sockjet.server.client import RUNNING_HANDLER
from sockjet.server.handshake import Handshake
from sockjet.server.recovery import RECOVERABLE_REASONS, PersistedSession, RestoredSession
from sockjet.server.targets import DEFAULT_FLAGS, BroadcastFlags, BroadcastOptions, Room

if TYPE_CHECKING:
    from sockjet.server.client import Client
    from sockjet.server.namespace import Namespace
    from sockjet.server.server import Server

__all__ = ["Handshake", "Socket", "SocketEmitter"]

logger = logging.getLogger("sockjet.server")

_UNCOMPRESSED: Final = BroadcastFlags(compress=False)

H = TypeVar("H", bound=Callable[..., Any])

# Socket states, ordered so that "may still send" is ``state <= _CLOSING``.
_CONNECTED: Final = 1
_CLOSING: Final = 2  # "disconnecting" handlers are running; still in its rooms
_CONNECTING: Final = 3  # connection middleware running
_DISCONNECTED: Final = 4

_LIFECYCLE: Final = frozenset({"disconnect", "disconnecting", "error"})
_EVENT, _BINARY_EVENT = PacketType.EVENT, PacketType.BINARY_EVENT
_ACK: Final = PacketType.ACK


def event_name(value: Any) -> str:
    """An event name as handlers are keyed: numbers become strings as in JavaScript."""
    if value.__class__ is str:
        return value
    if value.__class__ is float and value.is_integer():
        return str(int(value))
    return str(value)


class Socket:
    """A client connected to one namespace."""

    __slots__ = (
        "_acks",
        "_any",
        "_any_out",
        "_auth",
        "_data",
        "_final_rooms",
        "_handlers",
        "_handshake",
        "_issued",
        "_lifecycle",
        "_middlewares",
        "_pid",
        "_restored",
        "_since",
        "_state",
        "client",
        "conn",
        "id",
        "nsp",
        "recovered",
    )

    def __init__(
        self,
        nsp: Namespace,
        client: Client,
        auth: dict[str, Any],
        restored: RestoredSession | None = None,
    ) -> None:
        self.id: str
        """The Socket.IO id (not the Engine.IO session id); also the name of its own room."""
        self.recovered = restored is not None
        """Whether this socket recovered the session of an earlier connection (connection state
        recovery): same id, rooms and ``data``, and the packets it missed were sent again."""
        self._restored = restored
        self._since = 0
        if restored is not None:
            self.id = restored.sid
            self._pid: str | None = restored.pid
        else:
            self.id = secrets.token_urlsafe(15)
            self._pid = None if nsp._recovery is None else secrets.token_urlsafe(15)
        self.nsp = nsp
        self.client = client
        self.conn: EngineSocket = client.conn
        self._state = _CONNECTING
        self._auth = auth
        self._issued = int(time.time() * 1000)
        self._data: dict[str, Any] | None = None if restored is None else restored.data
        self._handshake: Handshake | None = None
        self._handlers: dict[str, list[Callable[..., Any]]] | None = None
        self._lifecycle: dict[str, list[Callable[..., Any]]] | None = None
        self._any: list[Callable[..., Any]] | None = None
        self._any_out: list[Callable[..., Any]] | None = None
        self._middlewares: list[Callable[..., Any]] | None = None
        self._acks: dict[int, AckWaiter] | None = None
        self._final_rooms: set[Room] | None = None

    # -- properties ---------------------------------------------------------------------------

    @property
    def server(self) -> Server:
        return self.nsp.server

    @property
    def adapter(self) -> Adapter:
        return self.nsp.adapter

    @property
    def connected(self) -> bool:
        """True from the CONNECT reply until the disconnection (``"disconnecting"`` included)."""
        return self._state <= _CLOSING

    @property
    def disconnected(self) -> bool:
        return not self._state <= _CLOSING

    @property
    def data(self) -> dict[str, Any]:
        """Free-form per-socket data (shared with ``fetch_sockets()`` results)."""
        data = self._data
        if data is None:
            data = self._data = {}
        return data

    @data.setter
    def data(self, value: dict[str, Any]) -> None:
        self._data = value

    @property
    def handshake(self) -> Handshake:
        handshake = self._handshake
        if handshake is None:
            handshake = self._handshake = Handshake.from_request(
                self.conn.request, self._auth, self._issued
            )
        return handshake

    @property
    def request(self) -> HTTPRequest:
        """The Engine.IO handshake request."""
        return self.conn.request

    @property
    def transport(self) -> str:
        """The engine transport in use: ``"polling"`` or ``"websocket"``."""
        return self.conn.transport

    @property
    def rooms(self) -> set[Room]:
        """The rooms the socket is in (a copy; includes its own id).

        After the disconnection: the rooms it was in at that moment, so that asynchronous
        ``"disconnecting"``/``"disconnect"`` handlers can still read them.
        """
        if self._state == _DISCONNECTED:
            return set(self._final_rooms or ())
        return set(self.nsp.adapter.socket_rooms(self.id) or ())

    # -- handler registration -----------------------------------------------------------------

    @overload
    def on(self, event: str) -> Callable[[H], H]: ...
    @overload
    def on(self, event: str, handler: H) -> H: ...
    def on(self, event: str, handler: H | None = None) -> H | Callable[[H], H]:
        """Register a handler for a client event (``@socket.on("chat")`` works too).

        Client events call ``handler(*args)``; its return value answers the client's ack.
        Lifecycle events: ``"disconnecting"`` and ``"disconnect"`` call ``handler(reason)``;
        ``"error"`` calls ``handler(exc)`` with what a packet middleware raised. Clients cannot
        send those names (nor the other reserved ones, refused here).
        """
        if handler is None:
            return partial(self.on, event)  # type: ignore[return-value]
        if event in _LIFECYCLE:
            table = self._lifecycle
            if table is None:
                table = self._lifecycle = {}
        elif event in RESERVED_EVENTS:
            raise ValueError(f"{event!r} is a reserved event name")
        else:
            table = self._handlers
            if table is None:
                table = self._handlers = {}
        table.setdefault(event, []).append(handler)
        return handler

    def off(self, event: str, handler: Callable[..., Any] | None = None) -> None:
        """Remove one handler of ``event``, or all of them."""
        table = self._lifecycle if event in _LIFECYCLE else self._handlers
        if not table or event not in table:
            return
        handlers = table[event]
        if handler is None:
            handlers.clear()
        elif handler in handlers:
            handlers.remove(handler)
        if not handlers:
            del table[event]

    def listeners(self, event: str) -> list[Callable[..., Any]]:
        """The handlers of ``event`` on this socket."""
        table = self._lifecycle if event in _LIFECYCLE else self._handlers
        return list(table.get(event, ())) if table else []

    def on_any(self, handler: H) -> H:
        """Call ``handler(event, *args)`` for every incoming event, before the middlewares."""
        if self._any is None:
            self._any = []
        self._any.append(handler)
        return handler

    def off_any(self, handler: Callable[..., Any] | None = None) -> None:
        if self._any is not None:
            if handler is None:
                self._any = None
            elif handler in self._any:
                self._any.remove(handler)

    def on_any_outgoing(self, handler: H) -> H:
        """Call ``handler(event, *args)`` for every event this socket emits (not broadcasts)."""
        if self._any_out is None:
            self._any_out = []
        self._any_out.append(handler)
        return handler

    def off_any_outgoing(self, handler: Callable[..., Any] | None = None) -> None:
        if self._any_out is not None:
            if handler is None:
                self._any_out = None
            elif handler in self._any_out:
                self._any_out.remove(handler)

    def use(self, middleware: H) -> H:
        """Add a packet middleware ``mw(event, args)`` (see the module docstring)."""
        if self._middlewares is None:
            self._middlewares = []
        self._middlewares.append(middleware)
        return middleware

    # -- emitting -----------------------------------------------------------------------------

    def emit(self, event: str, *args: Any) -> bool:
        """Send an event to this client (queued; returns at once).

        Returns False when the packet was not queued (disconnected, or a dropped volatile
        packet). Raises :class:`ValueError` for a reserved event name.
        """
        return self._emit(event, args, None, False)

    def send(self, *args: Any) -> bool:
        """Emit a ``"message"`` event."""
        return self._emit("message", args, None, False)

    async def emit_with_ack(self, event: str, *args: Any) -> Any:
        """Emit and wait for the client's acknowledgement, without a time limit (see
        :meth:`timeout`: ``await socket.timeout(5).emit_with_ack(...)``).

        Returns the ack's arguments: none -> ``None``, one -> that value, several -> a tuple.
        Raises :class:`~sockjet.errors.AckTimeout` when the time limit passes first, when the
        socket disconnects before answering, or at once when it is not connected.
        """
        return await self._emit_with_ack(event, args, None, False)

    async def _emit_with_ack(
        self,
        event: str,
        args: tuple[Any, ...],
        limit: float | None,
        volatile: bool,
        compress: bool = True,
    ) -> Any:
        check_event_name(event)
        if self._state > _CLOSING:
            raise AckTimeout("the socket is not connected")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        ack_id = self.nsp.next_ack_id()
        self._add_ack(ack_id, SingleAck(future))
        # A handler of this very client waiting for its answer gives its place back meanwhile
        # (the answer may be queued behind events the client sent first: see server.client).
        slot = RUNNING_HANDLER.get()
        client = self.client
        if slot is not None and slot.client is client:
            client.lend_slot(slot)
        else:
            slot = None
        try:
            if not self._emit(event, args, ack_id, volatile, compress):
                raise AckTimeout("the packet was dropped")
            if limit is None:
                return await future
            async with asyncio.timeout(limit):
                return await future
        except AckTimeout:
            raise
        except TimeoutError:
            raise AckTimeout(f"no acknowledgement within {limit}s") from None
        finally:
            self._drop_ack(ack_id)
            if slot is not None:
                client.reclaim_slot(slot)

    def _emit(
        self,
        event: str,
        args: tuple[Any, ...],
        ack_id: int | None,
        volatile: bool,
        compress: bool = True,
    ) -> bool:
        check_event_name(event)
        if self._any_out:
            run = self.client._run
            for listener in tuple(self._any_out):
                run(listener, (event, *args))
        nsp = self.nsp
        if nsp._recovery is not None and ack_id is None and not volatile:
            # As Node does: through the adapter, so the packet is recorded (with its offset)
            # and sent again if the client recovers, even when emitted while it is away.
            flags = DEFAULT_FLAGS if compress else _UNCOMPRESSED
            nsp.adapter.broadcast(
                Packet(PacketType.EVENT, nsp.name, [event, *args]),
                BroadcastOptions(frozenset((self.id,)), frozenset(), flags),
            )
            return self._state <= _CLOSING
        if self._state > _CLOSING:
            return False
        server = nsp.server
        payloads = server._encode_event(nsp.name, event, args, ack_id)
        size = self._write_payloads(payloads, volatile, compress)
        if not size:
            return False
        stats = nsp.stats
        stats.packets_sent += 1
        stats.events_sent += 1
        stats.bytes_sent += size
        sent = server.hooks.packet_sent
        if sent:
            call_hooks(
                sent, nsp, Packet(PacketType.EVENT, nsp.name, [event, *args], ack_id), 1, size
            )
        return True

    def _write_payloads(
        self, payloads: list[str | bytes], volatile: bool = False, compress: bool = True
    ) -> int:
        """Queue an encoded packet; its bytes, or 0 when it was dropped."""
        send = self.conn.send
        head = payloads[0]
        # Outgoing.message(), inline for the text packet every emit and ack starts with
        first = (
            Outgoing("4" + head, compress) if head.__class__ is str else Outgoing(head, compress)
        )
        if not send(first, volatile=volatile):
            return 0
        # the packet's bytes, without the Engine.IO type its text form was given
        size = first.size - 1 if head.__class__ is str else first.size
        if len(payloads) > 1:
            # The attachments of a packet the engine accepted are never dropped: a partial
            # binary packet would break the client's decoder.
            message = Outgoing.message
            for payload in payloads[1:]:
                attachment = message(payload, compress)
                send(attachment)
                size += attachment.size
        return size

    def _send_packet(self, packet: Packet) -> None:
        nsp = self.nsp
        server = nsp.server
        size = self._write_payloads(server.serializer.encode(packet))
        if size:
            stats = nsp.stats
            stats.packets_sent += 1
            stats.bytes_sent += size
            if packet.type is _EVENT:
                stats.events_sent += 1
            sent = server.hooks.packet_sent
            if sent:
                call_hooks(sent, nsp, packet, 1, size)

    # -- backpressure -------------------------------------------------------------------------

    @property
    def buffered_amount(self) -> int:
        """Bytes queued for this client and not yet handed to the kernel (all namespaces of
        its connection share them)."""
        return self.conn.buffered_amount

    async def drain(self) -> None:
        """Wait until what is queued for this client is under the low-water mark.

        For producers that stream more than a client may take at once (``await
        socket.drain()`` between chunks): without it a client that does not keep up is closed
        as a slow consumer (see ``Server(slow_consumer_timeout=...)``). Returns at once when
        nothing is waiting, and when the client has gone (``emit`` then returns False).
        """
        await self.conn.drain()

    @property
    def volatile(self) -> SocketEmitter:
        """Emit without queueing when the transport is not ready (the packet may be lost)."""
        return SocketEmitter(self, DEFAULT_FLAGS).volatile

    def compress(self, compress: bool) -> SocketEmitter:
        """Emit with (or without) compression."""
        return SocketEmitter(self, DEFAULT_FLAGS).compress(compress)

    def timeout(self, seconds: float) -> SocketEmitter:
        """``socket.timeout(5).emit_with_ack(...)``: wait at most ``seconds`` for the ack."""
        return SocketEmitter(self, DEFAULT_FLAGS).timeout(seconds)

    # -- broadcasting from this socket (excludes itself) --------------------------------------

    def _operator(self, flags: BroadcastFlags = DEFAULT_FLAGS) -> BroadcastOperator:
        return BroadcastOperator(self.nsp.adapter, frozenset(), frozenset((self.id,)), flags)

    def to(self, room: Room | Iterable[Room]) -> BroadcastOperator:
        """Broadcast to ``room`` (or rooms), this socket excepted."""
        return self._operator().to(room)

    def in_(self, room: Room | Iterable[Room]) -> BroadcastOperator:
        """Same as :meth:`to`."""
        return self._operator().to(room)

    def except_(self, room: Room | Iterable[Room]) -> BroadcastOperator:
        """Broadcast to every socket but those in ``room`` (and this one)."""
        return self._operator().except_(room)

    @property
    def broadcast(self) -> BroadcastOperator:
        """Broadcast to every other socket of the namespace."""
        return self._operator()

    @property
    def local(self) -> BroadcastOperator:
        """Broadcast to every other socket of the namespace on this server only."""
        return self._operator().local

    # -- rooms --------------------------------------------------------------------------------

    def join(self, rooms: Room | Iterable[Room]) -> None:
        """Join a room (or rooms). Does nothing once the socket is disconnected."""
        if self._state != _DISCONNECTED:
            self.nsp.adapter.add_all(self.id, (rooms,) if isinstance(rooms, str) else rooms)

    def leave(self, room: Room) -> None:
        """Leave a room. Does nothing once the socket is disconnected."""
        if self._state != _DISCONNECTED:
            self.nsp.adapter.del_(self.id, room)

    # -- disconnection ------------------------------------------------------------------------

    def disconnect(self, close: bool = False) -> None:
        """Disconnect from this namespace ("server namespace disconnect"); the client does not
        reconnect. ``close=True`` disconnects every namespace of the client and closes the
        underlying connection."""
        if self._state != _CONNECTED:
            return
        if close:
            self.client._disconnect_all()
            return
        self._send_packet(Packet(PacketType.DISCONNECT, self.nsp.name))
        self._on_close("server namespace disconnect")

    # -- called by the client and the namespace -----------------------------------------------

    def _on_connect(self) -> None:
        nsp = self.nsp
        pid = self._pid
        if pid is None:
            self._state = _CONNECTED
            nsp.adapter.add_all(self.id, (self.id,))
            self._send_packet(Packet(PacketType.CONNECT, nsp.name, {"sid": self.id}))
            return
        # Everything this socket is sent on connecting is encoded before it joins any room:
        # a packet that cannot be encoded is left out, never half-connecting the socket.
        serializer = nsp.server.serializer
        payloads = serializer.encode(
            Packet(PacketType.CONNECT, nsp.name, {"sid": self.id, "pid": pid})
        )
        restored, self._restored = self._restored, None
        if restored is not None:
            for data in restored.missed:  # in order, after the CONNECT (Node sends them before)
                try:
                    payloads.extend(serializer.encode(Packet(PacketType.EVENT, nsp.name, data)))
                except Exception:
                    logger.exception("socket %s: a missed packet cannot be encoded", self.id)
        recovery = nsp._recovery
        if recovery is not None:
            self._since = recovery.position  # recovering without offset starts here
        self._state = _CONNECTED
        nsp.adapter.add_all(self.id, (self.id,))
        if restored is not None:
            nsp.adapter.add_all(self.id, restored.rooms)
        self._write_payloads(payloads)

    def _on_close(self, reason: str) -> None:
        if self._state != _CONNECTED:
            return
        self._state = _CLOSING
        self._fire("disconnecting", reason)
        self._final_rooms = self.nsp.adapter.socket_rooms(self.id)
        recovery = self.nsp._recovery
        if recovery is not None and self._pid is not None and reason in RECOVERABLE_REASONS:
            rooms = list(self._final_rooms or ())
            recovery.persist(PersistedSession(self.id, self._pid, rooms, self._data, self._since))
        self._cleanup()
        self.client._remove(self)
        acks, self._acks = self._acks, None
        if acks:
            for waiter in list(acks.values()):
                waiter.on_close(self)
        disconnected = self.nsp.server.hooks.socket_disconnected
        if disconnected:
            call_hooks(disconnected, self, reason)
        self._fire("disconnect", reason)

    def _cleanup(self) -> None:
        self._state = _DISCONNECTED
        self.nsp.adapter.del_all(self.id)
        self.nsp._remove(self)

    def _fire(self, event: str, *args: Any) -> None:
        run = self.client._run
        lifecycle = self._lifecycle
        if lifecycle:
            for handler in tuple(lifecycle.get(event, ())):
                run(handler, args)
        flat = self.nsp._lifecycle.get(event)
        if flat:
            for handler in tuple(flat):
                run(handler, (self, *args))

    def _on_event(self, packet: Packet) -> None:
        data = packet.data
        name = data[0]
        event = name if name.__class__ is str else event_name(name)
        args = data[1:]
        if self._any:
            run = self.client._run
            for listener in tuple(self._any):
                run(listener, (event, *args))
        if self._middlewares:
            self._run_middlewares(event, args, packet.id)
        else:
            self._dispatch(event, args, packet.id)

    def _run_middlewares(self, event: str, args: list[Any], ack_id: int | None) -> None:
        middlewares = tuple(self._middlewares or ())
        for index, middleware in enumerate(middlewares):
            try:
                result = middleware(event, args)
            except Exception as exc:
                self._on_error(exc)
                return
            if result is not None and isawaitable(result):
                self.client._spawn(
                    self._finish_middlewares(result, middlewares[index + 1 :], event, args, ack_id)
                )
                return
        self._dispatch(event, args, ack_id)

    async def _finish_middlewares(
        self,
        pending: Any,
        rest: tuple[Callable[..., Any], ...],
        event: str,
        args: list[Any],
        ack_id: int | None,
    ) -> None:
        try:
            await pending
            for middleware in rest:
                result = middleware(event, args)
                if result is not None and isawaitable(result):
                    await result
        except Exception as exc:
            self._on_error(exc)
            return
        self._dispatch(event, args, ack_id)

    def _on_error(self, exc: Exception) -> None:
        handlers = self._lifecycle.get("error") if self._lifecycle else None
        if not handlers:
            logger.warning("packet middleware refused an event of socket %s: %r", self.id, exc)
            return
        run = self.client._run
        for handler in tuple(handlers):
            run(handler, (exc,))

    def _dispatch(self, event: str, args: list[Any], ack_id: int | None) -> None:
        """Run ``event``'s handlers; the first one answers the ack: the socket's own handlers,
        then the namespace's."""
        if self._state > _CLOSING:
            return
        on_result: Callable[[Any], None] | None = None
        token = None
        if ack_id is not None:
            on_result = partial(self._send_ack, ack_id)
            token = ACK_REQUESTED.set(True)  # ack_requested(); copied into a coroutine's task
        try:
            if self.nsp.server.hooks.event_handled:
                self._call_handlers_timed(event, args, on_result)
                return
            run = self.client._run
            handlers = self._handlers.get(event) if self._handlers else None
            if handlers:
                for handler in tuple(handlers):
                    run(handler, args, on_result)
                    on_result = None
            flat = self.nsp._event_handlers.get(event)
            if flat:
                for handler in tuple(flat):
                    run(handler, (self, *args), on_result)
                    on_result = None
        finally:
            if token is not None:
                ACK_REQUESTED.reset(token)

    def _call_handlers_timed(
        self, event: str, args: list[Any], on_result: Callable[[Any], None] | None
    ) -> None:
        """:meth:`_dispatch`'s handler calls while someone listens to ``event_handled``."""
        hooks = self.nsp.server.hooks.event_handled
        run = self.client._run

        def done(seconds: float) -> None:
            call_hooks(hooks, self, event, seconds)

        handlers = self._handlers.get(event) if self._handlers else None
        if handlers:
            for handler in tuple(handlers):
                run(timed(handler, done), args, on_result)
                on_result = None
        flat = self.nsp._event_handlers.get(event)
        if flat:
            for handler in tuple(flat):
                run(timed(handler, done), (self, *args), on_result)
                on_result = None

    def _send_ack(self, ack_id: int, value: Any) -> None:
        if self._state <= _CLOSING:
            # reply_args(), inline: this runs once per acknowledged event
            args = [] if value is None else list(value) if value.__class__ is tuple else [value]
            self._send_packet(Packet(_ACK, self.nsp.name, args, ack_id))

    def _on_ack(self, packet: Packet) -> None:
        acks = self._acks
        if acks is None:
            return  # an ack nobody waits for (any more) is ignored
        waiter = acks.pop(packet.id, None)  # type: ignore[arg-type]  # ACK packets carry an id
        if not acks:
            self._acks = None
        if waiter is not None:
            waiter.on_ack(self, packet.data)

    def _add_ack(self, ack_id: int, waiter: AckWaiter) -> None:
        acks = self._acks
        if acks is None:
            acks = self._acks = {}
        acks[ack_id] = waiter

    def _drop_ack(self, ack_id: int) -> None:
        acks = self._acks
        if acks is not None:
            acks.pop(ack_id, None)
            if not acks:
                self._acks = None

    @property
    def pending_acks(self) -> int:
        """How many acknowledgements this socket is waiting for."""
        return len(self._acks) if self._acks else 0

    def __repr__(self) -> str:
        return f"Socket(id={self.id!r}, nsp={self.nsp.name!r}, connected={self.connected})"


class SocketEmitter:
    """Emits on one socket with flags: ``socket.volatile``, ``socket.timeout(5)``..."""

    __slots__ = ("_flags", "_socket")

    def __init__(self, socket: Socket, flags: BroadcastFlags) -> None:
        self._socket = socket
        self._flags = flags

    @property
    def volatile(self) -> SocketEmitter:
        return SocketEmitter(self._socket, replace(self._flags, volatile=True))

    def compress(self, compress: bool) -> SocketEmitter:
        return SocketEmitter(self._socket, replace(self._flags, compress=compress))

    def timeout(self, seconds: float) -> SocketEmitter:
        return SocketEmitter(self._socket, replace(self._flags, timeout=seconds))

    def emit(self, event: str, *args: Any) -> bool:
        """Like :meth:`Socket.emit`, with these flags."""
        flags = self._flags
        return self._socket._emit(event, args, None, flags.volatile, flags.compress is not False)

    async def emit_with_ack(self, event: str, *args: Any) -> Any:
        """Like :meth:`Socket.emit_with_ack`, waiting at most the ``timeout`` given."""
        flags = self._flags
        return await self._socket._emit_with_ack(
            event, args, flags.timeout, flags.volatile, flags.compress is not False
        )

    def to(self, room: Room | Iterable[Room]) -> BroadcastOperator:
        """Broadcast with these flags to ``room``, the socket excepted."""
        return self._socket._operator(self._flags).to(room)

    def except_(self, room: Room | Iterable[Room]) -> BroadcastOperator:
        return self._socket._operator(self._flags).except_(room)

    @property
    def broadcast(self) -> BroadcastOperator:
        return self._socket._operator(self._flags)
