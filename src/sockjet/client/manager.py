"""The manager: one Engine.IO connection, its reconnections, the namespaces multiplexed on it.

It follows socket.io-client's ``Manager``:

* :meth:`Manager.open` starts an :class:`~sockjet.client.engine.EngineClient`; the attempt fails
  with ``"timeout"`` if the handshake takes longer than ``timeout``.
* Incoming messages are decoded (one decoder per connection) and handed to the namespace socket
  they name; a decoding failure closes the connection with ``"parse error"``.
* When the connection closes for any reason but the client's own, it reconnects after the
  :class:`~sockjet.client.backoff.Backoff` delay (1 s, 2 s, 4 s, then 5 s, each ±50 % by
  default), for ``reconnection_attempts`` attempts (None: forever), emitting
  ``reconnect_attempt`` (attempt number), then ``reconnect`` (attempts it took) or
  ``reconnect_error`` (the error) and, once out of attempts, ``reconnect_failed``. A failed first
  connection is retried the same way unless :meth:`open` was given a callback.
* Once no namespace socket is active any more (each disconnected or refused), it closes for good.
"""

from __future__ import annotations

import asyncio
import enum
import random as _random
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from sockjet.client.backoff import Backoff
from sockjet.client.clock import Clock, Timer
from sockjet.client.engine import TRANSPORT_ERROR, EngineClient
from sockjet.client.errors import ConnectError
from sockjet.client.transports import TransportFactory
from sockjet.errors import ProtocolError
from sockjet.protocol.socketio import DEFAULT_LIMITS, Decoder, DecoderLimits, Packet, Serializer

__all__ = ["ManagedSocket", "Manager", "ManagerHooks", "ManagerState"]

PARSE_ERROR = "parse error"
FORCED_CLOSE = "forced close"

OpenCallback = Callable[[ConnectError | None], None]


class ManagerState(enum.Enum):
    """The manager's connection state."""

    CLOSED = "closed"
    OPENING = "opening"
    OPEN = "open"


_CLOSED, _OPENING, _OPEN = ManagerState


class ManagerHooks(Protocol):
    """What the manager tells its owner (the :class:`~sockjet.client.client.AsyncClient`)."""

    def manager_event(self, event: str, args: tuple[Any, ...]) -> None:
        """``reconnect_attempt``, ``reconnect``, ``reconnect_error`` or ``reconnect_failed``."""
        ...

    def manager_finished(self, manager: Manager, reason: str) -> None:
        """Closed, and nothing will reopen it (``reason``: the last close or failure)."""
        ...


class ManagedSocket(Protocol):
    """What the manager needs from each namespace socket it multiplexes
    (:class:`~sockjet.client.socket.ClientSocket`): the manager never imports it."""

    @property
    def active(self) -> bool:
        """Whether it wants to be connected (it reconnects with the manager)."""
        ...

    @property
    def connected(self) -> bool:
        """Whether its namespace is connected now."""
        ...

    def disconnect(self) -> None:
        """Leave its namespace (the client disconnects)."""

    def manager_opened(self) -> None:
        """The connection is open: send this namespace's CONNECT."""

    def manager_failed(self, error: ConnectError) -> None:
        """The connection could not be made."""

    def manager_closed(self, reason: str) -> None:
        """The connection closed."""

    def receive(self, packet: Packet) -> None:
        """A packet for this namespace."""


class Manager:
    """One Engine.IO connection shared by the namespace sockets of one client."""

    __slots__ = (
        "_backoff",
        "_clock",
        "_closing",
        "_decoder",
        "_factory",
        "_finished",
        "_hooks",
        "_limits",
        "_open_callback",
        "_open_timer",
        "_reconnect_timer",
        "_reconnecting",
        "_serializer",
        "_skip_reconnect",
        "engine",
        "reconnection",
        "reconnection_attempts",
        "sockets",
        "state",
        "timeout",
        "transports",
        "upgrade",
    )

    def __init__(
        self,
        factory: TransportFactory,
        *,
        hooks: ManagerHooks,
        clock: Clock,
        serializer: Serializer,
        limits: DecoderLimits = DEFAULT_LIMITS,
        transports: Iterable[str] = ("polling", "websocket"),
        upgrade: bool = True,
        reconnection: bool = True,
        reconnection_attempts: int | None = None,
        reconnection_delay: float = 1.0,
        reconnection_delay_max: float = 5.0,
        randomization_factor: float = 0.5,
        timeout: float | None = 20.0,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._factory = factory
        self._hooks = hooks
        self._clock = clock
        self._serializer = serializer
        self._limits = limits
        self.transports = tuple(transports)
        self.upgrade = upgrade
        self.reconnection = reconnection
        self.reconnection_attempts = reconnection_attempts
        self.timeout = timeout
        self._backoff = Backoff(
            reconnection_delay,
            reconnection_delay_max,
            jitter=randomization_factor,
            random=random,
        )
        self.state = _CLOSED
        self.engine: EngineClient | None = None
        self.sockets: dict[str, ManagedSocket] = {}
        """Every namespace socket bound to this manager, active or not, by namespace."""
        self._decoder: Decoder | None = None
        self._open_callback: OpenCallback | None = None
        self._open_timer: Timer | None = None
        self._reconnect_timer: Timer | None = None
        self._reconnecting = False
        self._skip_reconnect = False
        self._finished = False
        self._closing: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<Manager {self.state.value} engine={self.engine!r}>"

    # -- for the sockets ----------------------------------------------------------------------

    @property
    def reconnecting(self) -> bool:
        """Whether a reconnection is scheduled or under way."""
        return self._reconnecting

    @property
    def finished(self) -> bool:
        """Closed for good: a new manager is needed to connect again."""
        return self._finished

    @property
    def writable(self) -> bool:
        """Whether a message sent now goes out at once."""
        engine = self.engine
        return engine is not None and engine.writable

    def ping_expired(self) -> bool:
        """Whether the connection is to be considered lost (see :meth:`EngineClient.ping_expired`)."""
        engine = self.engine
        return engine is None or engine.ping_expired()

    def send(self, messages: list[str | bytes]) -> None:
        """Write encoded Socket.IO messages on the connection (dropped when there is none)."""
        engine = self.engine
        if engine is not None:
            engine.send(messages)

    def destroy_socket(self, socket: ManagedSocket) -> None:
        """A socket stopped being active; close the connection when none is left."""
        if not any(other.active for other in self.sockets.values()):
            self._close()

    def open(self, callback: OpenCallback | None = None) -> None:
        """Open the connection unless it is open or opening. ``callback(error)`` hears how this
        attempt ends (``None``: open); without one a failure starts the reconnection loop."""
        if self.state is not _CLOSED:
            return
        if self._finished:
            raise RuntimeError("this connection was closed for good; call connect() again")
        engine = EngineClient(
            self, self._factory, clock=self._clock, transports=self.transports, upgrade=self.upgrade
        )
        self.engine = engine
        self.state = _OPENING
        self._skip_reconnect = False
        self._open_callback = callback
        if self.timeout is not None:
            self._open_timer = self._clock.call_later(self.timeout, self._on_open_timeout)
        engine.open()

    def close(self) -> None:
        """Close the connection and stop reconnecting (the client's own disconnect)."""
        self._close()

    async def wait_closed(self) -> None:
        """Return once every connection this manager opened is closed and its tasks are done."""
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    # -- engine callbacks ---------------------------------------------------------------------

    def engine_open(self, engine: EngineClient) -> None:
        if engine is not self.engine:
            return
        self._cancel_open_timer()
        self.state = _OPEN
        self._decoder = self._serializer.decoder(self._limits)
        callback, self._open_callback = self._open_callback, None
        for socket in self._active_sockets():
            socket.manager_opened()
        if callback is not None:
            callback(None)

    def engine_message(self, engine: EngineClient, data: str | bytes) -> None:
        decoder = self._decoder
        if engine is not self.engine or decoder is None:
            return
        try:
            packet = decoder.feed(data)
        except ProtocolError as exc:
            self._on_close(PARSE_ERROR, exc)
            return
        if packet is None:
            return  # binary attachments still due
        socket = self.sockets.get(packet.nsp)
        if socket is not None and socket.active:
            socket.receive(packet)

    def engine_close(self, engine: EngineClient, reason: str, error: BaseException | None) -> None:
        if engine is not self.engine:
            return
        if self.state is _OPENING:
            if isinstance(error, ConnectError):
                self._on_open_error(error)
            else:
                failure = ConnectError(reason)
                failure.__cause__ = error
                self._on_open_error(failure)
        else:
            self._on_close(reason, error)

    # -- internals ----------------------------------------------------------------------------

    def _active_sockets(self) -> list[ManagedSocket]:
        return [socket for socket in self.sockets.values() if socket.active]

    def _cancel_open_timer(self) -> None:
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None

    def _retire_engine(self) -> None:
        engine, self.engine = self.engine, None
        self._decoder = None
        if engine is not None:
            engine.close()
            task = asyncio.ensure_future(engine.wait_closed())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _on_open_timeout(self) -> None:
        self._open_timer = None
        self._on_open_error(ConnectError("timeout"))

    def _on_open_error(self, error: ConnectError) -> None:
        self._cancel_open_timer()
        callback, self._open_callback = self._open_callback, None
        self._retire_engine()
        self.state = _CLOSED
        for socket in self._active_sockets():
            socket.manager_failed(error)
        if callback is not None:
            callback(error)
        elif not self._reconnecting and self.reconnection and self._backoff.attempts == 0:
            self._reconnect()  # the first connection failed: retry it like a lost one
        self._check_finished(error.message)

    def _on_close(self, reason: str, error: BaseException | None = None) -> None:
        self._cancel_open_timer()
        self._open_callback = None
        self._retire_engine()
        self._backoff.reset()
        self.state = _CLOSED
        if reason == TRANSPORT_ERROR and error is not None:
            failure = error if isinstance(error, ConnectError) else ConnectError(reason)
            for socket in self._active_sockets():
                socket.manager_failed(failure)
        for socket in self._active_sockets():
            socket.manager_closed(reason)
        if self.reconnection and not self._skip_reconnect:
            self._reconnect()
        self._check_finished(reason)

    def _close(self) -> None:
        self._skip_reconnect = True
        self._reconnecting = False
        if self._reconnect_timer is not None:
            self._reconnect_timer.cancel()
            self._reconnect_timer = None
        self._on_close(FORCED_CLOSE)

    def _check_finished(self, reason: str) -> None:
        if self.state is _CLOSED and not self._reconnecting and not self._finished:
            self._finished = True
            self._hooks.manager_finished(self, reason)

    def _reconnect(self) -> None:
        if self._reconnecting or self._skip_reconnect:
            return
        attempts = self.reconnection_attempts
        if attempts is not None and self._backoff.attempts >= attempts:
            self._backoff.reset()
            self._reconnecting = False
            self._hooks.manager_event("reconnect_failed", ())
            return
        delay = self._backoff.duration()
        self._reconnecting = True
        self._reconnect_timer = self._clock.call_later(delay, self._on_reconnect_timer)

    def _on_reconnect_timer(self) -> None:
        self._reconnect_timer = None
        if self._skip_reconnect:
            return
        self._hooks.manager_event("reconnect_attempt", (self._backoff.attempts,))
        if self._skip_reconnect:  # a handler closed the client
            return
        self.open(self._on_reconnect_result)

    def _on_reconnect_result(self, error: ConnectError | None) -> None:
        if error is not None:
            self._reconnecting = False
            self._reconnect()
            self._hooks.manager_event("reconnect_error", (error,))
        else:
            attempts = self._backoff.attempts
            self._reconnecting = False
            self._backoff.reset()
            self._hooks.manager_event("reconnect", (attempts,))
