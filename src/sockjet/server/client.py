"""One Engine.IO session seen from Socket.IO: :class:`Client`.

The client decodes the session's messages into packets and routes them to the socket of each
namespace. It is where protocol violations are contained: an undecodable packet, a packet for a
namespace the client has not joined, a second CONNECT to the same namespace - each closes this
one connection (reason ``"parse error"``) and nothing else.

It also bounds the work a client can cause, by backpressure rather than by disconnecting it: at
most ``max_concurrent_handlers`` handler tasks run at once for one connection; events arriving
meanwhile wait, in order, in a backlog. Once the backlog holds as many events as that, or
``max_buffered_bytes`` bytes, the client is no longer read (the engine pauses the connection:
TCP flow control slows the client; a polling POST waits for its answer) until the backlog is
down to half of both. Nothing is dropped and per-socket order is kept. Acks and disconnections
are never held in the backlog.

A handler that awaits an acknowledgement from its own client (``await
socket.timeout(5).emit_with_ack(...)``) gives its place back while it waits, up to as many
such waits as the handler limit: the answer may be behind events the client sent first, which
could otherwise never be read.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextvars import ContextVar
from functools import partial
from inspect import isawaitable
from typing import TYPE_CHECKING, Any, Final

from sockjet.engine.hooks import call_hooks
from sockjet.engine.io import EngineSocket, HTTPRequest, Outgoing
from sockjet.errors import ProtocolError
from sockjet.protocol.socketio import Decoder, Packet, PacketType

if TYPE_CHECKING:
    from sockjet.server.namespace import Namespace
    from sockjet.server.server import Server
    from sockjet.server.socket import Socket

__all__ = ["Client"]

logger = logging.getLogger("sockjet.server")

_CONNECT: Final = PacketType.CONNECT
_EVENT: Final = PacketType.EVENT
_CONNECT_ERROR: Final = PacketType.CONNECT_ERROR
_DISCONNECT: Final = PacketType.DISCONNECT
_EVENTS: Final = frozenset({PacketType.EVENT, PacketType.BINARY_EVENT})
_ACKS: Final = frozenset({PacketType.ACK, PacketType.BINARY_ACK})
_INVALID_NAMESPACE: Final = {"message": "Invalid namespace"}
_PLAIN_RESULTS: Final = frozenset({str, int, float, bool, list, dict, tuple, bytes})


class HandlerSlot:
    """The place one handler task holds in its client's limit (see the module docstring)."""

    __slots__ = ("client", "lent")

    def __init__(self, client: Client) -> None:
        self.client = client
        self.lent = False


RUNNING_HANDLER: Final[ContextVar[HandlerSlot | None]] = ContextVar(
    "sockjet_running_handler", default=None
)
"""The slot of the handler task running now (None outside handler tasks)."""


class Client:
    """The Socket.IO side of one Engine.IO session (the engine's ``SessionHandler``)."""

    __slots__ = (
        "_backlog",
        "_backlog_bytes",
        "_closed",
        "_connect_timer",
        "_connecting",
        "_decoder",
        "_lent",
        "_partial_bytes",
        "_paused",
        "_running",
        "conn",
        "server",
        "sockets",
    )

    def __init__(self, server: Server, conn: EngineSocket) -> None:
        self.server = server
        self.conn = conn
        self.sockets: dict[str, Socket] = {}
        """The connected sockets, by namespace name."""
        self._connecting: set[str] | None = None  # namespaces whose CONNECT is being handled
        # Decoding uses the server's shared decoder; a client only gets its own while a binary
        # packet waits for attachments (see on_message).
        self._decoder: Decoder | None = None
        self._partial_bytes = 0
        self._closed = False
        self._running = 0
        self._lent = 0  # handler places lent by tasks awaiting this client's acks
        self._paused = False  # we asked the engine to stop reading
        self._backlog: deque[tuple[Socket, Packet, int]] | None = None
        self._backlog_bytes = 0
        timeout = server._connect_timeout
        self._connect_timer: asyncio.TimerHandle | None = (
            asyncio.get_running_loop().call_later(timeout, self._on_connect_timeout)
            if timeout
            else None
        )

    @property
    def id(self) -> str:
        """The Engine.IO session id."""
        return self.conn.sid

    @property
    def request(self) -> HTTPRequest:
        return self.conn.request

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"Client(sid={self.conn.sid!r}, namespaces={sorted(self.sockets)})"

    # -- SessionHandler -----------------------------------------------------------------------

    def on_message(self, data: str | bytes) -> None:
        """An Engine.IO message: a Socket.IO packet or one of its binary attachments."""
        if self._closed:
            return
        server = self.server
        decoder = self._decoder
        shared = decoder is None
        if decoder is None:
            decoder = server._decoder
        try:
            packet = decoder.feed(data)
        except Exception as exc:
            if shared:
                server._decoder = server._new_decoder()
            self._decoder = None
            if isinstance(exc, ProtocolError):
                logger.debug("client %s sent an invalid packet: %s", self.conn.sid, exc)
            else:  # a decoder bug must still only cost this connection
                logger.exception("decoder failed on a message of client %s", self.conn.sid)
            self._close("parse error")
            return
        # bytes, as on the wire: str.isascii() is constant-time, so exact costs nothing for ASCII
        size = self._partial_bytes + (
            len(data) if data.__class__ is bytes or data.isascii() else len(data.encode())  # type: ignore[union-attr]
        )
        if packet is None:  # a binary packet waits for attachments: keep this decoder
            if shared:
                self._decoder = decoder
                server._decoder = server._new_decoder()
            self._partial_bytes = size
            return
        if not shared:  # the attachments of a binary packet are complete
            self._decoder = None
            self._partial_bytes = 0
        received = server.hooks.packet_received
        if received:
            call_hooks(received, self, packet, size)
        self._on_packet(packet, size)

    def on_close(self, reason: str) -> None:
        """The session closed: every socket disconnects with ``reason``."""
        if self._closed:
            return
        self._closed = True
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None
        self._decoder = None
        self._backlog = None
        self._backlog_bytes = 0
        for socket in list(self.sockets.values()):
            socket._on_close(reason)
        self.sockets.clear()

    # -- routing ------------------------------------------------------------------------------

    def _on_packet(self, packet: Packet, size: int) -> None:
        kind = packet.type
        socket = self.sockets.get(packet.nsp)
        if kind is _EVENT and socket is not None:  # the hot path: an event, counted and run
            stats = socket.nsp.stats
            stats.packets_received += 1
            stats.bytes_received += size
            stats.events_received += 1
            if self._backlog is not None or self._running >= self.server._max_handlers:
                self._enqueue(socket, packet, size)
            else:
                socket._on_event(packet)
            return
        name = packet.nsp
        nsp = socket.nsp if socket is not None else self.server._nsps.get(name)
        if nsp is not None:  # (a CONNECT to a namespace that does not exist counts nowhere)
            stats = nsp.stats
            stats.packets_received += 1
            stats.bytes_received += size
            if kind in _EVENTS:
                stats.events_received += 1
        if kind == _CONNECT:
            connecting = self._connecting
            if socket is not None or (connecting is not None and name in connecting):
                self._violation("CONNECT to a namespace already joined")
            else:
                self._connect(name, packet.data if packet.data is not None else {})
        elif socket is None or kind == _CONNECT_ERROR:
            self._violation(f"packet type {int(kind)} for namespace {name!r} not joined")
        elif kind in _EVENTS:
            if self._backlog is not None or self._running >= self.server._max_handlers:
                self._enqueue(socket, packet, size)
            else:
                socket._on_event(packet)
        elif kind in _ACKS:
            socket._on_ack(packet)
        elif kind == _DISCONNECT:
            socket._on_close("client namespace disconnect")

    def _violation(self, what: str) -> None:
        logger.debug("client %s: %s", self.conn.sid, what)
        self._close("parse error")

    def _enqueue(self, socket: Socket, packet: Packet, size: int) -> None:
        backlog = self._backlog
        if backlog is None:
            backlog = self._backlog = deque()
        backlog.append((socket, packet, size))
        self._backlog_bytes += size
        server = self.server
        if not self._paused and (
            len(backlog) >= server._max_handlers or self._backlog_bytes >= server._max_backlog_bytes
        ):
            # behind: stop reading this client until the backlog is down to half
            self._paused = True
            self.conn.pause_reading()

    def _drain(self) -> None:
        backlog = self._backlog
        limit = self.server._max_handlers
        while backlog and self._running < limit and not self._closed:
            socket, packet, size = backlog.popleft()
            self._backlog_bytes -= size
            socket._on_event(packet)  # a socket gone meanwhile ignores it
        if not backlog:
            self._backlog = None
            self._backlog_bytes = 0
        if (
            self._paused
            and not self._closed
            and (backlog is None or 2 * len(backlog) <= limit)
            and 2 * self._backlog_bytes <= self.server._max_backlog_bytes
        ):
            self._paused = False
            self.conn.resume_reading()  # may deliver held messages at once

    # -- acks awaited by handlers -------------------------------------------------------------

    def lend_slot(self, slot: HandlerSlot) -> None:
        """A handler task of this client waits for this client's ack: let another event run
        meanwhile (its answer may be behind them), up to ``max_concurrent_handlers`` loans."""
        if slot.lent or self._closed or self._lent >= self.server._max_handlers:
            return
        slot.lent = True
        self._lent += 1
        self._running -= 1
        if self._backlog:
            self._drain()

    def reclaim_slot(self, slot: HandlerSlot) -> None:
        """The ack came (or not): the task runs on and holds its place again."""
        if slot.lent:
            slot.lent = False
            self._lent -= 1
            self._running += 1

    # -- connecting to namespaces -------------------------------------------------------------

    def _connect(self, name: str, auth: dict[str, Any]) -> None:
        connecting = self._connecting
        if connecting is None:
            connecting = self._connecting = set()
        connecting.add(name)
        server = self.server
        nsp = server._nsps.get(name)
        if nsp is not None:
            nsp._add(self, auth)
            return
        found = server._match_dynamic(name, auth)
        if isawaitable(found):
            self._spawn(self._connect_later(name, auth, found))
        else:
            self._connect_to(name, auth, found)

    async def _connect_later(
        self, name: str, auth: dict[str, Any], pending: Awaitable[Namespace | None]
    ) -> None:
        try:
            async with asyncio.timeout(self.server._hook_timeout):
                nsp = await pending
        except asyncio.CancelledError:
            self._connect_failed(name)
            raise
        except TimeoutError:
            logger.error("the namespace matchers took too long for %r: refusing it", name)
            nsp = None
        self._connect_to(name, auth, nsp)

    def _connect_to(self, name: str, auth: dict[str, Any], nsp: Namespace | None) -> None:
        if nsp is None:
            self._connect_failed(name)
            if not self._closed:
                self._send_packet(Packet(_CONNECT_ERROR, name, dict(_INVALID_NAMESPACE)))
        elif self._closed:
            self._connect_failed(name)
            nsp._remove_if_unused()
        else:
            nsp._add(self, auth)

    def _connect_failed(self, name: str) -> None:
        connecting = self._connecting
        if connecting is not None:
            connecting.discard(name)
            if not connecting:
                self._connecting = None

    def _socket_connected(self, socket: Socket) -> None:
        name = socket.nsp.name
        self._connect_failed(name)
        self.sockets[name] = socket
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None

    def _on_connect_timeout(self) -> None:
        self._connect_timer = None
        if not self.sockets:
            logger.debug("client %s joined no namespace in time: closing", self.conn.sid)
            self._close("forced server close")

    def _remove(self, socket: Socket) -> None:
        name = socket.nsp.name
        if self.sockets.get(name) is socket:
            del self.sockets[name]

    # -- writing and closing ------------------------------------------------------------------

    def _send_packet(self, packet: Packet) -> None:
        for payload in self.server.serializer.encode(packet):
            self.conn.send(Outgoing.message(payload))

    def _close(self, reason: str) -> None:
        """Close the connection now (server side): sockets see ``reason``."""
        if self._closed:
            return
        self.conn.close(reason)
        self.on_close(reason)

    def _disconnect_all(self) -> None:
        """``socket.disconnect(close=True)``: leave every namespace, then close."""
        for socket in list(self.sockets.values()):
            socket.disconnect()
        self._close("forced server close")

    # -- running handlers ---------------------------------------------------------------------

    def _run(
        self,
        handler: Callable[..., Any],
        args: Sequence[Any],
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[Exception], bool] | None = None,
    ) -> None:
        """Call a user handler: inline when it is a plain function, in a task when it returns
        an awaitable. ``on_result`` gets its return value; exceptions go to ``on_error`` (which
        returns True when it dealt with them) or to the log."""
        try:
            result = handler(*args)
        except Exception as exc:
            _failed(handler, exc, on_error)
            return
        # inspect.isawaitable runs an ABC check: plain JSON values skip it (the echo hot path)
        if result is not None and result.__class__ not in _PLAIN_RESULTS and isawaitable(result):
            self._spawn(_finish(handler, result, on_result, on_error))
        elif on_result is not None:
            try:
                on_result(result)
            except Exception:
                logger.exception("could not send the ack of handler %s", _name(handler))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task counted against this connection's handler limit."""
        self._running += 1
        slot = HandlerSlot(self)
        self.server._spawn(_holding(slot, coro), partial(self._task_done, slot))

    def _task_done(self, slot: HandlerSlot, task: asyncio.Task[None]) -> None:
        if slot.lent:  # ended while waiting for an ack (cancelled): the loan ends too
            slot.lent = False
            self._lent -= 1
        else:
            self._running -= 1
        if self._backlog or self._paused:
            self._drain()


async def _holding(slot: HandlerSlot, coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` with its slot known to ``emit_with_ack`` (a task's context is its own)."""
    RUNNING_HANDLER.set(slot)
    await coro


async def _finish(
    handler: Callable[..., Any],
    pending: Awaitable[Any],
    on_result: Callable[[Any], None] | None,
    on_error: Callable[[Exception], bool] | None,
) -> None:
    try:
        result = await pending
    except Exception as exc:
        _failed(handler, exc, on_error)
        return
    if on_result is not None:
        _deliver(handler, on_result, result)


def _failed(
    handler: Callable[..., Any], exc: Exception, on_error: Callable[[Exception], bool] | None
) -> None:
    if on_error is not None and on_error(exc):
        return
    logger.error("handler %s raised", _name(handler), exc_info=exc)


def _deliver(handler: Callable[..., Any], on_result: Callable[[Any], None], result: Any) -> None:
    try:
        on_result(result)
    except Exception:
        logger.exception("could not send the ack of handler %s", _name(handler))


def _name(handler: Callable[..., Any]) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)
