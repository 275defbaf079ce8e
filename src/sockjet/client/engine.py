"""The Engine.IO v4 client: handshake, heartbeat watchdog, write buffer, upgrade, close.

It follows engine.io-client 6.x:

* **Handshake**: the first transport (``transports[0]``) connects without a sid; the server's
  OPEN packet gives the sid, the upgrades, ``pingInterval``, ``pingTimeout`` and ``maxPayload``.
* **Heartbeat watchdog**: the server pings, the client answers PONG. If no PING arrives within
  ``pingInterval + pingTimeout`` of the last one (or of the OPEN), the connection is closed with
  ``"ping timeout"``: the server is gone or the network is dead, even if TCP did not notice.
* **Writes**: packets queue in a write buffer; whatever queued while a write was in flight goes
  out in the next one (over polling, in POSTs of at most ``maxPayload`` bytes).
* **Upgrade** (polling first, then WebSocket): a WebSocket with the sid sends ``2probe``; on
  ``3probe`` the polling transport pauses (its pending GET is released by the server's NOOP and
  its POST finishes), the client sends UPGRADE ``5`` on the WebSocket and switches; what was
  queued meanwhile follows on the WebSocket, in order. If the probe fails the session stays on
  polling.
* **Close reasons**: ``"transport close"`` (the server closed it), ``"transport error"`` (a
  request or the WebSocket failed), ``"ping timeout"``, ``"forced close"`` (:meth:`close`).

Everything happens in synchronous callbacks from the transports and the clock; the only task is
the upgrade, which must wait for the polling transport to pause.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Iterable
from typing import Any, Final, Protocol

from sockjet.client.clock import Clock, Timer
from sockjet.client.errors import TransportError
from sockjet.client.transports import Transport, TransportFactory
from sockjet.errors import ProtocolError
from sockjet.protocol.engineio import Packet, PacketType
from sockjet.protocol.json import loads

__all__ = ["EngineClient", "EngineListener", "EngineState"]

logger = logging.getLogger("sockjet.client")

PING_TIMEOUT: Final = "ping timeout"
TRANSPORT_CLOSE: Final = "transport close"
TRANSPORT_ERROR: Final = "transport error"
FORCED_CLOSE: Final = "forced close"

_MESSAGE: Final = PacketType.MESSAGE
_PONG: Final = Packet(PacketType.PONG)
_PROBE: Final = Packet(PacketType.PING, "probe")
_UPGRADE: Final = Packet(PacketType.UPGRADE)
_EXPIRED: Final = float("-inf")


class EngineState(enum.Enum):
    """Where an Engine.IO connection is in its life."""

    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"
    """:meth:`EngineClient.close` was called; waiting for the write buffer to drain."""
    CLOSED = "closed"


_OPENING, _OPEN, _CLOSING, _CLOSED = EngineState


class EngineListener(Protocol):
    """What the engine client reports to (the manager)."""

    def engine_open(self, engine: EngineClient) -> None:
        """The handshake is done: messages can be sent."""
        ...

    def engine_message(self, engine: EngineClient, data: str | bytes) -> None:
        """A MESSAGE arrived (a Socket.IO packet or attachment)."""
        ...

    def engine_close(self, engine: EngineClient, reason: str, error: BaseException | None) -> None:
        """The connection ended (once); before the handshake, this is a failure to open."""
        ...


class _ProbeFailed(Exception):
    pass


class EngineClient:
    """One Engine.IO connection (the JS ``Socket`` of engine.io-client).

    ``factory(name, sid)`` builds transports; ``transports`` are the names allowed, the first
    one opens the connection; ``upgrade`` allows the polling -> WebSocket upgrade.
    """

    __slots__ = (
        "_buffer",
        "_clock",
        "_closed_waiter",
        "_drainers",
        "_factory",
        "_listener",
        "_ping_deadline",
        "_ping_timer",
        "_probe",
        "_probe_waiter",
        "_transports",
        "_upgrade",
        "_upgrade_task",
        "_upgrading",
        "_used",
        "max_payload",
        "ping_interval",
        "ping_timeout",
        "sid",
        "state",
        "transport",
        "upgrades",
    )

    def __init__(
        self,
        listener: EngineListener,
        factory: TransportFactory,
        *,
        clock: Clock,
        transports: Iterable[str] = ("polling", "websocket"),
        upgrade: bool = True,
    ) -> None:
        self._listener = listener
        self._factory = factory
        self._clock = clock
        self._transports = tuple(transports)
        if not self._transports:
            raise ValueError("at least one transport is needed")
        self._upgrade = upgrade
        self.state = _CLOSED
        self.sid: str | None = None
        self.transport: Transport | None = None
        """The transport in use."""
        self.upgrades: list[str] = []
        self.ping_interval = 0.0
        self.ping_timeout = 0.0
        self.max_payload = 0
        self._buffer: list[Packet] = []
        self._used: list[Transport] = []  # every transport created, to wait for at the end
        self._ping_timer: Timer | None = None
        self._ping_deadline = 0.0
        self._probe: Transport | None = None
        self._probe_waiter: asyncio.Future[Packet | None] | None = None
        self._upgrade_task: asyncio.Task[None] | None = None
        self._upgrading = False
        self._closed_waiter: asyncio.Future[None] | None = None
        self._drainers: list[tuple[int, asyncio.Future[None]]] = []

    def __repr__(self) -> str:
        name = self.transport.name if self.transport is not None else None
        return f"<EngineClient {self.state.value} sid={self.sid} transport={name}>"

    # -- public API ---------------------------------------------------------------------------

    def open(self) -> None:
        """Start the handshake on the first transport; the listener hears the outcome."""
        if self.state is not _CLOSED or self._used:
            raise RuntimeError("an EngineClient opens once")
        self.state = _OPENING
        self._use(self._factory(self._transports[0], None))

    def send(self, messages: Iterable[str | bytes]) -> None:
        """Queue MESSAGE packets (dropped once closing, as in the JS client)."""
        if self.state is _CLOSING or self.state is _CLOSED:
            return
        self._buffer.extend([Packet(_MESSAGE, data) for data in messages])
        self._flush()

    @property
    def buffered_amount(self) -> int:
        """Bytes queued for the server and not yet written (this buffer and the transport's)."""
        transport = self.transport
        queued = sum(len(p.data) for p in self._buffer if isinstance(p.data, str | bytes))
        return queued + (transport.buffered_amount if transport is not None else 0)

    async def drain(self, level: int = 0) -> None:
        """Return once at most ``level`` bytes are queued for the server (checked as writes
        complete), or the connection is closing or closed."""
        if self.state is not _OPEN and self.state is not _OPENING:
            return
        if self.buffered_amount <= level:
            return
        future = asyncio.get_running_loop().create_future()
        self._drainers.append((level, future))
        await future

    def _wake_drainers(self, everyone: bool = False) -> None:
        if not self._drainers:
            return
        amount = 0 if everyone else self.buffered_amount
        waiting = []
        for level, future in self._drainers:
            if everyone or amount <= level:
                if not future.done():
                    future.set_result(None)
            else:
                waiting.append((level, future))
        self._drainers = waiting

    @property
    def writable(self) -> bool:
        """Whether a message sent now goes out at once (volatile packets are dropped otherwise)."""
        transport = self.transport
        return self.state is _OPEN and transport is not None and transport.writable

    def ping_expired(self) -> bool:
        """Whether the watchdog's deadline passed without its timer firing yet (a loop that was
        blocked): the connection is then as good as closed, and closes right after."""
        if self.state is not _OPEN:
            return True
        if self._ping_deadline == _EXPIRED:
            return True
        if self._clock.time() <= self._ping_deadline:
            return False
        # Close on the next turn, as engine.io-client does, so the caller finishes first.
        self._ping_deadline = _EXPIRED
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        self._ping_timer = self._clock.call_later(0, self._on_ping_timeout)
        return True

    def close(self) -> None:
        """Close after what is queued is written (and any upgrade under way is finished)."""
        if self.state is _OPENING:
            self._on_close(FORCED_CLOSE, None)
        elif self.state is _OPEN:
            self.state = _CLOSING
            self._maybe_finish_close()

    async def wait_upgrade(self) -> str | None:
        """Wait for the transport upgrade under way (if any) to end; return the transport
        then in use (None once closed)."""
        task = self._upgrade_task
        if task is not None:
            await asyncio.gather(asyncio.shield(task), return_exceptions=True)
        transport = self.transport
        return transport.name if transport is not None and self.state is not _CLOSED else None

    async def wait_closed(self) -> None:
        """After :meth:`close`: return once the connection is closed (what was queued is
        written first) and every transport and task of it has finished."""
        if self.state is not _CLOSED:
            self._closed_waiter = waiter = asyncio.get_running_loop().create_future()
            await waiter
        await asyncio.gather(
            *(transport.wait_closed() for transport in self._used),
            *([self._upgrade_task] if self._upgrade_task is not None else []),
            return_exceptions=True,
        )

    # -- transport callbacks ------------------------------------------------------------------

    def transport_open(self, transport: Transport) -> None:
        if transport is self._probe:
            self._resolve_probe(None)

    def transport_packets(self, transport: Transport, packets: list[Packet]) -> None:
        if transport is not self.transport:
            if transport is self._probe:
                self._resolve_probe(packets[0])
            return
        for packet in packets:
            if self.state is _CLOSED:
                return
            kind = packet.type
            if self.state is _OPENING:
                if kind is PacketType.OPEN:
                    self._on_handshake(packet.data)
            elif kind is _MESSAGE:
                self._listener.engine_message(self, packet.data)
            elif kind is PacketType.PING:
                self._send_packet(_PONG)
                self._reset_ping_timer()
            # OPEN again, NOOP, PONG, UPGRADE: nothing to do (engine.io-client ignores them too)

    def transport_drain(self, transport: Transport) -> None:
        if transport is self.transport:
            if self._buffer:
                self._flush()
            else:
                self._maybe_finish_close()
            self._wake_drainers()

    def transport_closed(self, transport: Transport, error: TransportError | None) -> None:
        if transport is self._probe:
            self._fail_probe(error or TransportError("probe error", description="closed"))
        elif transport is self.transport:
            if error is None:
                self._on_close(TRANSPORT_CLOSE, None)
            else:
                self._on_close(TRANSPORT_ERROR, error)

    # -- internals ----------------------------------------------------------------------------

    def _use(self, transport: Transport) -> None:
        self._used.append(transport)
        self.transport = transport
        transport.open(self)

    def _on_handshake(self, data: str | bytes) -> None:
        try:
            info = _parse_open(data)
        except ProtocolError as exc:
            error = TransportError("parse error", description=str(exc))
            error.__cause__ = exc
            self._on_close(TRANSPORT_ERROR, error)
            return
        self.sid = info["sid"]
        self.upgrades = [name for name in info["upgrades"] if name in self._transports]
        self.ping_interval = info["pingInterval"] / 1000
        self.ping_timeout = info["pingTimeout"] / 1000
        self.max_payload = info["maxPayload"]
        transport = self.transport
        assert transport is not None
        transport.set_sid(info["sid"])
        self.state = _OPEN
        self._listener.engine_open(self)
        self._flush()
        if (
            self.state is _OPEN
            and self._upgrade
            and transport.name == "polling"
            and "websocket" in self.upgrades
        ):
            self._upgrade_task = asyncio.create_task(
                self._run_upgrade("websocket"), name="sockjet-client-upgrade"
            )
        if self.state is not _CLOSED:
            self._reset_ping_timer()

    def _reset_ping_timer(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        delay = self.ping_interval + self.ping_timeout
        self._ping_deadline = self._clock.time() + delay
        self._ping_timer = self._clock.call_later(delay, self._on_ping_timeout)

    def _on_ping_timeout(self) -> None:
        self._ping_timer = None
        self._on_close(PING_TIMEOUT, None)

    def _send_packet(self, packet: Packet) -> None:
        if self.state is _OPEN or self.state is _CLOSING:
            self._buffer.append(packet)
            self._flush()

    def _flush(self) -> None:
        transport = self.transport
        if (
            (self.state is _OPEN or self.state is _CLOSING)
            and not self._upgrading
            and self._buffer
            and transport is not None
            and transport.writable
        ):
            packets = self._take_writable(transport.name == "polling")
            transport.send(packets)

    def _take_writable(self, polling: bool) -> list[Packet]:
        """The packets for one write: everything, or over polling as many as fit in one body of
        ``maxPayload`` bytes (at least one), counted as engine.io-client counts them."""
        buffer = self._buffer
        if polling and self.max_payload and len(buffer) > 1:
            size = 1  # the first packet's type
            for index, packet in enumerate(buffer):
                data = packet.data
                if data:
                    size += len(data.encode()) if isinstance(data, str) else len(data)
                if index > 0 and size > self.max_payload:
                    packets = buffer[:index]
                    del buffer[:index]
                    return packets
                size += 2  # separator and the next packet's type
        self._buffer = []
        return buffer

    def _maybe_finish_close(self) -> None:
        transport = self.transport
        if (
            self.state is _CLOSING
            and not self._upgrading
            and not self._buffer
            and (transport is None or transport.writable)
        ):
            self._on_close(FORCED_CLOSE, None)

    def _on_close(self, reason: str, error: BaseException | None) -> None:
        if self.state is _CLOSED:
            return
        self.state = _CLOSED
        self._wake_drainers(everyone=True)
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        self._buffer = []
        # Tell the server only when it is presumably still listening.
        notify = reason == FORCED_CLOSE
        if self.transport is not None:
            self.transport.close(notify=notify)
        self._fail_probe(TransportError("probe error", description="socket closed"))
        task = self._upgrade_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        waiter = self._closed_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._listener.engine_close(self, reason, error)

    # -- upgrade ------------------------------------------------------------------------------

    def _resolve_probe(self, packet: Packet | None) -> None:
        waiter = self._probe_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(packet)

    def _fail_probe(self, error: TransportError) -> None:
        probe = self._probe
        if probe is None:
            return
        self._probe = None
        probe.close(notify=False)
        waiter = self._probe_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(_ProbeFailed(error.message))

    def _expect_probe(self) -> asyncio.Future[Packet | None]:
        # Made before the action that triggers the report: a transport may report at once.
        self._probe_waiter = waiter = asyncio.get_running_loop().create_future()
        return waiter

    async def _run_upgrade(self, name: str) -> None:
        probe = self._factory(name, self.sid)
        self._probe = probe
        self._used.append(probe)
        opened = self._expect_probe()
        probe.open(self)
        try:
            await opened
            replied = self._expect_probe()
            probe.send([_PROBE])
            reply = await replied
            if reply is None or reply.type is not PacketType.PONG or reply.data != "probe":
                raise _ProbeFailed("probe error")
            self._upgrading = True
            old = self.transport
            assert old is not None
            await old.pause()
            if self.state is _CLOSED:
                return
            if self._probe is not probe:  # the probe died while polling paused
                old.resume()
                raise _ProbeFailed("probe error")
            self._probe = None
            self.transport = probe
            probe.send([_UPGRADE])
            old.close(notify=False)
            logger.debug("engine %s upgraded to %s", self.sid, name)
        except _ProbeFailed as exc:
            logger.debug("engine %s: upgrade to %s failed (%s)", self.sid, name, exc)
            self._fail_probe(TransportError("probe error"))
        finally:
            self._upgrading = False
            self._probe_waiter = None
        self._flush()
        self._maybe_finish_close()


def _parse_open(data: str | bytes) -> dict[str, Any]:
    """The OPEN packet's handshake data, checked (raises only ProtocolError)."""
    info = loads(data)
    if not isinstance(info, dict):
        raise ProtocolError("invalid OPEN packet")
    sid = info.get("sid")
    upgrades = info.setdefault("upgrades", [])
    info.setdefault("maxPayload", 0)
    if (
        not isinstance(sid, str)
        or not sid
        or not isinstance(upgrades, list)
        or not all(
            _is_count(info.get(key)) for key in ("pingInterval", "pingTimeout", "maxPayload")
        )
    ):
        raise ProtocolError("invalid OPEN packet")
    return info


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
