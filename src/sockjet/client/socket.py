"""The client's namespace socket (socket.io-client's ``Socket``), one per namespace.

It joins its namespace with a CONNECT packet carrying ``auth`` each time the connection opens,
and keeps the application's view of that namespace steady across reconnections:

* **Send buffer**: an event emitted while not connected waits, encoded, and goes out in order
  as soon as the namespace is connected again. A ``volatile`` event is dropped instead whenever
  it cannot be written at once.
* **Receive buffer**: events that arrive before the namespace is connected are held until it is.
* **Acknowledgements** both ways: ``emit_with_ack`` waits for the server's answer (with an
  optional timeout); a handler's return value answers an event the server sent with an ack id.
  Answers still awaited when the connection drops fail with
  :class:`~sockjet.errors.AckTimeout` ("socket has been disconnected"), unless their packet never
  left the send buffer (it is sent after the reconnection and can still be answered).
* **Retries** (``retries > 0``): every emit waits for an acknowledgement, one at a time and in
  order; an emit that gets none (ack timeout, or the connection dropped) is sent again, up to
  ``retries`` more times: at-least-once delivery.
* **Connection state recovery** (when the server enables it): the server's CONNECT answer
  carries a private session id (``pid``) and each event it broadcasts ends with an offset; every
  later CONNECT sends both back, so that after a temporary disconnection the server can restore
  the session (same id, rooms) and replay the events missed meanwhile (``recovered``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar, overload

from sockjet.client.clock import Clock, Timer
from sockjet.client.errors import ConnectError
from sockjet.client.handlers import Handler, HandlerRunner, ack_args, ack_value
from sockjet.client.manager import ManagerState
from sockjet.errors import AckTimeout
from sockjet.protocol.socketio import (
    JSON_SERIALIZER,
    RESERVED_EVENTS,
    Packet,
    PacketType,
    Serializer,
    check_event_name,
    encode_event,
)

if TYPE_CHECKING:
    from sockjet.client.engine import EngineClient
    from sockjet.client.manager import ManagedSocket, Manager

__all__ = ["Auth", "ClientSocket", "SocketHooks"]

logger = logging.getLogger("sockjet.client")

H = TypeVar("H", bound=Handler)

Auth = dict[str, Any] | Callable[[], "dict[str, Any] | Awaitable[dict[str, Any] | None] | None"]
"""The CONNECT payload: a dict, or a function (plain or async) called at each (re)connection."""

AckCallback = Callable[[BaseException | None, list[Any]], None]

V2_SERVER: Final = (
    "It seems you are trying to reach a Socket.IO server in v2.x with a v3.x client, "
    "but they are not compatible (more information here: "
    "https://socket.io/docs/v3/migrating-from-2-x-to-3-0/)"
)
MAX_RECEIVE_BUFFER: Final = 1000
"""Most events held for a namespace that is not connected yet; later ones are dropped."""

_EVENT, _BINARY_EVENT = PacketType.EVENT, PacketType.BINARY_EVENT
_ACK, _BINARY_ACK = PacketType.ACK, PacketType.BINARY_ACK


class SocketHooks(Protocol):
    """What a namespace socket tells its owner (the client) about connecting."""

    def socket_connected(self, socket: ClientSocket) -> None:
        """The namespace is connected (again)."""
        ...

    def socket_failed(self, socket: ClientSocket, error: ConnectError) -> None:
        """The server refused or disconnected the namespace: the socket gave up (it does not
        reconnect)."""
        ...


class _Ack:
    __slots__ = ("callback", "timer")

    def __init__(self, callback: AckCallback, timer: Timer | None) -> None:
        self.callback = callback
        self.timer = timer


class _Queued:
    """One emit of the retry queue."""

    __slots__ = ("args", "callback", "event", "pending", "timeout", "tries")

    def __init__(
        self, event: str, args: tuple[Any, ...], callback: AckCallback | None, timeout: float | None
    ) -> None:
        self.event = event
        self.args = args
        self.callback = callback
        self.timeout = timeout
        self.pending = False
        self.tries = 0


def _event_name(name: Any) -> str:
    # JS coerces a numeric event name to a string key.
    if isinstance(name, float) and name.is_integer():
        return str(int(name))
    return name if isinstance(name, str) else str(name)


class ClientSocket:
    """The client's side of one namespace (JS ``socket``); get it with
    :meth:`AsyncClient.socket() <sockjet.client.client.AsyncClient.socket>`.

    Lifecycle handlers: ``connect()`` on each (re)connection of the namespace,
    ``disconnect(reason)``, ``connect_error(error)`` with a
    :class:`~sockjet.client.errors.ConnectError`.
    """

    __slots__ = (
        "_ack_timeout",
        "_acks",
        "_active",
        "_any",
        "_clock",
        "_handlers",
        "_hooks",
        "_last_offset",
        "_manager",
        "_next_ack_id",
        "_pid",
        "_queue",
        "_receive_buffer",
        "_recovered",
        "_retries",
        "_runner",
        "_send_buffer",
        "_serializer",
        "auth",
        "connected",
        "id",
        "nsp",
    )

    def __init__(
        self,
        nsp: str,
        *,
        runner: HandlerRunner,
        clock: Clock,
        hooks: SocketHooks,
        serializer: Serializer = JSON_SERIALIZER,
        retries: int = 0,
        ack_timeout: float | None = None,
    ) -> None:
        if not nsp.startswith("/") or "," in nsp:
            raise ValueError(f"invalid namespace {nsp!r}: must start with '/' and have no ','")
        self.nsp = nsp
        self.id: str | None = None
        """The socket id the server gave this namespace (None while not connected)."""
        self.connected = False
        self.auth: Auth | None = None
        """The CONNECT payload sent at each (re)connection."""
        self._runner = runner
        self._clock = clock
        self._hooks = hooks
        self._serializer = serializer
        self._retries = retries
        self._ack_timeout = ack_timeout
        self._manager: Manager | None = None
        self._active = False
        self._handlers: dict[str, list[Handler]] = {}
        self._any: list[Handler] = []
        self._acks: dict[int, _Ack] = {}
        self._next_ack_id = 0
        self._send_buffer: list[tuple[int | None, list[str | bytes]]] = []
        self._receive_buffer: list[tuple[list[Any], int | None]] = []
        self._queue: deque[_Queued] = deque()
        # Connection state recovery: both stay across disconnections, as in the JS client;
        # whether a session can be restored is the server's call.
        self._pid: str | None = None
        self._last_offset: str | None = None
        self._recovered = False

    def __repr__(self) -> str:
        state = "connected" if self.connected else "active" if self._active else "inactive"
        return f"<ClientSocket {self.nsp} {state} id={self.id}>"

    # -- handlers -----------------------------------------------------------------------------

    @overload
    def on(self, event: str) -> Callable[[H], H]: ...
    @overload
    def on(self, event: str, handler: H) -> H: ...
    def on(self, event: str, handler: H | None = None) -> H | Callable[[H], H]:
        """Register ``handler(*args)`` for ``event`` (also as a decorator). Its return value
        answers the server's acknowledgement, if it asked for one (first handler only)."""
        if handler is None:
            return functools.partial(self.on, event)  # type: ignore[return-value]
        self._handlers.setdefault(event, []).append(handler)
        return handler

    def off(self, event: str, handler: Handler | None = None) -> None:
        """Remove one handler of ``event`` (every one without ``handler``)."""
        if handler is None:
            self._handlers.pop(event, None)
            return
        handlers = self._handlers.get(event)
        if handlers and handler in handlers:
            handlers.remove(handler)
            if not handlers:
                del self._handlers[event]

    def listeners(self, event: str) -> list[Handler]:
        """The handlers registered for ``event``."""
        return list(self._handlers.get(event, ()))

    def on_any(self, handler: H) -> H:
        """Register ``handler(event, *args)`` for every event received (its return value is
        ignored), called before the event's own handlers."""
        self._any.append(handler)
        return handler

    def off_any(self, handler: Handler | None = None) -> None:
        """Remove one catch-all handler (every one without ``handler``)."""
        if handler is None:
            self._any.clear()
        elif handler in self._any:
            self._any.remove(handler)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether this socket wants to be connected (it reconnects with the manager)."""
        return self._active

    @property
    def recovered(self) -> bool:
        """Whether the last (re)connection of this namespace recovered the previous session
        (connection state recovery, enabled on the server): the socket kept its id and rooms,
        and the events broadcast while it was away were delivered before its ``connect``
        handlers ran. False until such a reconnection, and after any connection the server did
        not recover (the first one, a session too old, a ``disconnect()``, no support)."""
        return self._recovered

    @property
    def manager(self) -> Manager | None:
        """The connection this socket is multiplexed on, once the client connected."""
        return self._manager

    def _bind(self, manager: Manager | None) -> None:
        if manager is self._manager:
            return
        if self._manager is not None:
            self._manager.sockets.pop(self.nsp, None)
        self._manager = manager
        self._active = False
        if manager is not None:
            manager.sockets[self.nsp] = self

    def connect(self) -> None:
        """Join the namespace on the client's connection (opening it if need be); does not
        wait: listen to ``connect`` / ``connect_error``."""
        manager = self._manager
        if manager is None or manager.finished:
            raise RuntimeError("no connection: use AsyncClient.connect() first")
        if self.connected:
            return
        self._active = True
        if not manager.reconnecting:
            manager.open()
        if manager.state is ManagerState.OPEN:
            self.manager_opened()

    def disconnect(self) -> None:
        """Leave the namespace (the server sees ``"client namespace disconnect"``); the handlers
        get ``disconnect("io client disconnect")``. The connection closes once no namespace
        is left on it."""
        manager = self._manager
        if self.connected and manager is not None:
            manager.send(self._encode(Packet(PacketType.DISCONNECT, self.nsp)))
        self._destroy()
        if self.connected:
            self._on_close("io client disconnect")

    def _destroy(self) -> None:
        if self._active:
            self._active = False
            if self._manager is not None:
                self._manager.destroy_socket(self)

    def _drop_pending(self, error: BaseException) -> None:
        """Fail every awaited answer and forget what is buffered (the client disconnects)."""
        self._send_buffer = []
        self._receive_buffer = []
        queue, self._queue = self._queue, deque()
        acks, self._acks = self._acks, {}
        for ack in acks.values():
            if ack.timer is not None:
                ack.timer.cancel()
            ack.callback(error, [])
        for item in queue:
            if item.callback is not None:
                item.callback(error, [])

    # -- emitting -----------------------------------------------------------------------------

    def emit(self, event: str, *args: Any, volatile: bool = False) -> None:
        """Send ``event`` with ``args`` (JSON values, bytes anywhere for binary).

        Not awaited: while the namespace is not connected the event waits in the send buffer,
        or is dropped when ``volatile``. With ``retries`` set, non-volatile events go through
        the retry queue. Raises ``ValueError`` for a reserved name, ``TypeError`` for data
        that cannot be encoded.
        """
        check_event_name(event, RESERVED_EVENTS)
        if self._retries and not volatile:
            self._enqueue(event, args, None, self._ack_timeout)
            return
        self._send_event(event, args, None, None, volatile)

    def send(self, *args: Any) -> None:
        """``emit("message", *args)``."""
        self.emit("message", *args)

    # The timeout is the ack's own timer, not a bound on this call: it also takes the event out
    # of the send buffer, fails a retry, and runs on the client's clock.
    async def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Send ``event`` and wait for the server's acknowledgement; return its arguments (none
        -> ``None``, one -> that value, several -> a tuple).

        ``timeout`` (seconds; default: the client's ``ack_timeout``, else none) raises
        :class:`~sockjet.errors.AckTimeout`, as does losing the connection after the event went
        out (with ``retries`` set, it is sent again instead, until the retries run out).
        """
        check_event_name(event, RESERVED_EVENTS)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def settle(error: BaseException | None, values: list[Any]) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(ack_value(values))

        limit = self._ack_timeout if timeout is None else timeout
        if self._retries:
            item = self._enqueue(event, args, settle, limit)
            try:
                return await future
            finally:
                # Cancelling the caller cancels ``future`` too: forget an emit not sent yet.
                if future.cancelled() and not item.pending and item in self._queue:
                    self._queue.remove(item)
        ack_id = self._send_event(event, args, settle, limit, False)
        try:
            return await future
        finally:
            if future.cancelled():  # the caller was cancelled: forget the emit
                self._forget_ack(ack_id)

    def _encode(self, packet: Packet) -> list[str | bytes]:
        return self._serializer.encode(packet)

    def _send_event(
        self,
        event: str,
        args: tuple[Any, ...],
        callback: AckCallback | None,
        timeout: float | None,
        volatile: bool,
    ) -> int | None:
        ack_id = None
        if callback is not None:
            ack_id = self._next_ack_id
            self._next_ack_id += 1
        if self._serializer is JSON_SERIALIZER:
            messages = encode_event(self.nsp, event, args, ack_id)
        else:
            messages = self._encode(Packet(_EVENT, self.nsp, [event, *args], ack_id))
        if ack_id is not None:
            assert callback is not None
            timer = None
            if timeout is not None:
                timer = self._clock.call_later(
                    timeout, functools.partial(self._ack_timed_out, ack_id)
                )
            self._acks[ack_id] = _Ack(callback, timer)
        manager = self._manager
        if volatile and (manager is None or not manager.writable):
            return ack_id  # dropped: volatile events do not wait
        if self.connected and manager is not None and not manager.ping_expired():
            manager.send(messages)
        else:
            self._send_buffer.append((ack_id, messages))
        return ack_id

    def _ack_timed_out(self, ack_id: int) -> None:
        ack = self._forget_ack(ack_id)
        if ack is not None:
            ack.callback(AckTimeout("operation has timed out"), [])

    def _forget_ack(self, ack_id: int | None) -> _Ack | None:
        ack = self._acks.pop(ack_id, None) if ack_id is not None else None
        if ack is not None:
            if ack.timer is not None:
                ack.timer.cancel()
            if any(buffered_id == ack_id for buffered_id, _ in self._send_buffer):
                self._send_buffer = [item for item in self._send_buffer if item[0] != ack_id]
        return ack

    # -- retry queue --------------------------------------------------------------------------

    def _enqueue(
        self,
        event: str,
        args: tuple[Any, ...],
        callback: AckCallback | None,
        timeout: float | None,
    ) -> _Queued:
        if self._serializer is JSON_SERIALIZER:
            encode_event(self.nsp, event, args)  # raise TypeError now, not when it is sent
        else:
            self._encode(Packet(_EVENT, self.nsp, [event, *args]))
        item = _Queued(event, args, callback, timeout)
        self._queue.append(item)
        self._drain_queue()
        return item

    def _drain_queue(self, force: bool = False) -> None:
        if not self.connected or not self._queue:
            return
        item = self._queue[0]
        if item.pending and not force:
            return
        item.pending = True
        item.tries += 1
        self._send_event(
            item.event, item.args, functools.partial(self._queued_ack, item), item.timeout, False
        )

    def _queued_ack(self, item: _Queued, error: BaseException | None, values: list[Any]) -> None:
        if not self._queue or self._queue[0] is not item:
            return  # answered already (a late answer to an earlier try)
        if error is None:
            self._queue.popleft()
            if item.callback is not None:
                item.callback(None, values)
        elif item.tries > self._retries:
            self._queue.popleft()
            if item.callback is not None:
                item.callback(error, [])
        item.pending = False
        self._drain_queue()

    # -- manager callbacks --------------------------------------------------------------------

    def manager_opened(self) -> None:
        """The manager's connection is open: (re)connect this namespace."""
        auth = self.auth
        manager = self._manager
        engine = manager.engine if manager is not None else None
        if callable(auth):
            self._runner.run(
                auth,
                (),
                functools.partial(self._send_connect, engine),
                functools.partial(self._auth_failed, engine),
            )
        else:
            self._send_connect(engine, auth)

    def _auth_failed(self, engine: EngineClient | None, exc: BaseException) -> None:
        error = ConnectError("auth failed", description=f"{type(exc).__name__}: {exc}")
        error.__cause__ = exc
        self._refused(error)

    def _send_connect(self, engine: EngineClient | None, data: Any) -> None:
        manager = self._manager
        # An async auth may answer after the connection it was asked for is gone.
        if manager is None or manager.engine is not engine or engine is None or not self._active:
            return
        if data is not None and not isinstance(data, dict):
            self._refused(ConnectError("auth failed", description="auth must be a dict or None"))
            return
        if self._pid is not None:
            # Ask the server to restore the session; the application's auth keys win, as with
            # the JS client's Object.assign({pid, offset}, auth). No offset yet: no key (JSON
            # has no undefined; Node's server then starts a new session).
            session: dict[str, Any] = {"pid": self._pid}
            if self._last_offset is not None:
                session["offset"] = self._last_offset
            data = {**session, **(data or {})}
        try:
            messages = self._encode(Packet(PacketType.CONNECT, self.nsp, data))
        except (TypeError, ValueError) as exc:
            error = ConnectError("auth failed", description=str(exc))
            error.__cause__ = exc
            self._refused(error)
            return
        manager.send(messages)

    def _refused(self, error: ConnectError) -> None:
        # The owner hears first: destroying the last socket closes the connection for good,
        # and a client waiting in connect() must fail with this error, not with that close.
        self._hooks.socket_failed(self, error)
        self._destroy()
        self._emit_reserved("connect_error", error)

    def manager_failed(self, error: ConnectError) -> None:
        """The manager could not connect."""
        if not self.connected:
            self._emit_reserved("connect_error", error)

    def manager_closed(self, reason: str) -> None:
        """The manager's connection closed."""
        self._on_close(reason)

    def _on_close(self, reason: str) -> None:
        was_connected = self.connected
        self.connected = False
        self.id = None
        if was_connected:
            self._emit_reserved("disconnect", reason)
        # Answers to events already sent will not come any more; buffered ones still may.
        buffered = {ack_id for ack_id, _ in self._send_buffer}
        for ack_id in [ack_id for ack_id in self._acks if ack_id not in buffered]:
            ack = self._forget_ack(ack_id)
            if ack is not None:
                ack.callback(AckTimeout("socket has been disconnected"), [])

    def receive(self, packet: Packet) -> None:
        """A packet for this namespace."""
        kind = packet.type
        if kind is _EVENT or kind is _BINARY_EVENT:
            if self.connected:
                self._track_offset(packet.data, packet.id)
                self._dispatch(packet.data, packet.id)
            elif len(self._receive_buffer) < MAX_RECEIVE_BUFFER:
                self._track_offset(packet.data, packet.id)
                self._receive_buffer.append((packet.data, packet.id))
        elif kind is _ACK or kind is _BINARY_ACK:
            ack = self._acks.pop(packet.id, None) if packet.id is not None else None
            if ack is not None:
                if ack.timer is not None:
                    ack.timer.cancel()
                ack.callback(None, packet.data)
        elif kind is PacketType.CONNECT:
            self._on_connect(packet.data)
        elif kind is PacketType.DISCONNECT:
            self._hooks.socket_failed(self, ConnectError("io server disconnect"))
            self._destroy()
            self._on_close("io server disconnect")
        elif kind is PacketType.CONNECT_ERROR:
            data = packet.data
            if isinstance(data, dict):
                self._refused(ConnectError(str(data.get("message")), data.get("data")))
            else:
                self._refused(ConnectError(str(data)))

    def _track_offset(self, data: list[Any], ack_id: int | None) -> None:
        """Remember the offset a recovery-enabled server appended to an event (its last
        argument), while a session id is known.

        Events asking for an acknowledgement carry none (the server does not store them; the JS
        client sees its ack callback last and skips them too). An event without arguments has
        none either: unlike the JS client, its name is not taken for an offset.
        """
        if self._pid is not None and ack_id is None and len(data) > 1:
            last = data[-1]
            if isinstance(last, str):
                self._last_offset = last

    def _on_connect(self, data: Any) -> None:
        sid = data.get("sid") if isinstance(data, dict) else None
        if not isinstance(sid, str):
            self._emit_reserved("connect_error", ConnectError(V2_SERVER))
            return
        manager = self._manager
        assert manager is not None
        pid = data.get("pid")
        pid = pid if isinstance(pid, str) and pid else None  # only with recovery enabled
        self._recovered = pid is not None and pid == self._pid
        self._pid = pid
        self.id = sid
        self.connected = True
        received, self._receive_buffer = self._receive_buffer, []
        for args, ack_id in received:
            self._dispatch(args, ack_id)
        buffered, self._send_buffer = self._send_buffer, []
        for _, messages in buffered:
            manager.send(messages)
        self._drain_queue(force=True)
        self._emit_reserved("connect")
        self._hooks.socket_connected(self)

    # -- dispatching --------------------------------------------------------------------------

    def _emit_reserved(self, event: str, *args: Any) -> None:
        for handler in self._handlers.get(event, ()):
            self._runner.run(handler, args)

    def _dispatch(self, data: list[Any], ack_id: int | None) -> None:
        event = _event_name(data[0])
        args = data[1:]
        run = self._runner.run
        for handler in tuple(self._any):
            run(handler, (event, *args))
        handlers = self._handlers.get(event)
        if not handlers:
            return
        reply = None
        if ack_id is not None:
            manager = self._manager
            engine = manager.engine if manager is not None else None
            reply = functools.partial(self._send_ack, engine, ack_id)
        for handler in tuple(handlers):
            run(handler, args, reply)
            reply = None  # the first handler answers

    def _send_ack(self, engine: EngineClient | None, ack_id: int, result: Any) -> None:
        manager = self._manager
        # The answer belongs to the connection the event came on.
        if manager is None or manager.engine is not engine or not self.connected:
            return
        try:
            messages = self._encode(Packet(_ACK, self.nsp, ack_args(result), ack_id))
        except (TypeError, ValueError):
            logger.exception("cannot encode the acknowledgement for %r", self)
            return
        manager.send(messages)


if TYPE_CHECKING:  # what the manager is written against
    _MANAGED: type[ManagedSocket] = ClientSocket
