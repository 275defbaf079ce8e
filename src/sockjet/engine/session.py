"""One Engine.IO session at run time: the :class:`~sockjet.engine.io.EngineSocket` the Socket.IO
layer talks to.

The rules live in the sans-I/O :class:`~sockjet.protocol.session.SessionMachine`; this class
carries out its actions on the transports. Timing costs one ``loop.call_at`` handle per session,
armed for the machine's next deadline. A deadline that moves later (a PONG postpones the next
PING) leaves the handle alone: it fires early, finds nothing due and re-arms, which is cheaper
than cancelling a handle on every PONG.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from sockjet.engine.io import HTTPRequest, Outgoing, SessionHandler
from sockjet.engine.transports.polling import PollingTransport
from sockjet.engine.transports.websocket import WebSocketTransport
from sockjet.errors import ProtocolError
from sockjet.protocol.engineio import Packet, PacketType, decode_packet
from sockjet.protocol.session import Action, Phase, SessionMachine, Upgrade

if TYPE_CHECKING:
    from sockjet.engine.io import WebSocketConnection

__all__ = ["Session"]

logger = logging.getLogger("sockjet.engine")

PING: Final = Outgoing("2")
"""The server's heartbeat PING, shared by every session (transports cache its frame once)."""
PROBE_PONG: Final = Outgoing("3probe")
NOOP: Final = Outgoing("6")

_OPEN: Final = Phase.OPEN
_MESSAGE: Final = PacketType.MESSAGE

Transport = PollingTransport | WebSocketTransport


class Session:
    """An Engine.IO session; implements :class:`~sockjet.engine.io.EngineSocket`."""

    __slots__ = (
        "_handler",
        "_on_closed",
        "_timer",
        "_timer_at",
        "active",
        "http_compression",
        "loop",
        "machine",
        "max_payload",
        "polling",
        "probe",
        "request",
        "sid",
    )

    def __init__(
        self,
        sid: str,
        request: HTTPRequest,
        *,
        loop: asyncio.AbstractEventLoop,
        machine: SessionMachine,
        max_payload: int,
        high_water: int,
        http_compression: bool,
        on_closed: Callable[[Session], None],
        websocket: WebSocketConnection | None = None,
    ) -> None:
        self.sid = sid
        """The Engine.IO session id."""
        self.request = request
        """The handshake request."""
        self.loop = loop
        self.machine = machine
        self.max_payload = max_payload
        self.http_compression = http_compression
        self._on_closed = on_closed
        self._handler: SessionHandler | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.probe: WebSocketTransport | None = None
        """The WebSocket being probed for an upgrade, if any."""
        self.polling: PollingTransport | None = None
        self.active: Transport
        """The transport packets travel on."""
        if websocket is None:
            self.polling = self.active = PollingTransport(self, high_water=high_water)
        else:
            self.active = WebSocketTransport(self, websocket, high_water=high_water)
        self._arm()

    def __repr__(self) -> str:
        return f"<Session {self.sid} {self.transport} {self.machine.phase.value}>"

    # -- EngineSocket ---------------------------------------------------------------------------

    @property
    def transport(self) -> str:
        """The current transport: ``"polling"`` or ``"websocket"``."""
        return self.active.name

    @property
    def is_open(self) -> bool:
        """Neither closing nor closed."""
        return self.machine.phase is _OPEN

    def send(self, message: Outgoing, *, volatile: bool = False) -> bool:
        """Queue one packet; False when dropped (volatile over the high-water mark or while not
        writable, anything once closing). Never blocks, never raises."""
        if self.machine.phase is not _OPEN:
            return False
        return self.active.send(message, volatile)

    def close(self, reason: str = "forced close") -> None:
        """Flush what is queued, then close; the handler's ``on_close(reason)`` follows.

        Over polling with no GET pending, the close waits for the client's next GET (which
        receives what is queued and a CLOSE packet), at most ``close_timeout`` seconds.
        """
        if self.machine.phase is not _OPEN:
            return
        polling = self.polling
        drain = self.active is polling and polling is not None and not polling.waiting
        if self.machine.close(reason, self.loop.time(), drain=drain) is Action.CLOSE:
            self._finalize()
        else:
            self._arm()

    # -- wiring from the server ----------------------------------------------------------------

    def attach(self, handler: SessionHandler) -> None:
        """Give the session its handler (what ``on_connection`` returned).

        If the session already closed meanwhile (``on_connection`` closed it), the handler's
        ``on_close`` is called right away, so it is told exactly once either way.
        """
        self._handler = handler
        if self.machine.phase is Phase.CLOSED:
            self._notify_closed(handler)

    def begin_upgrade(
        self, conn: WebSocketConnection, high_water: int
    ) -> WebSocketTransport | None:
        """A WebSocket for this session arrived: it becomes the probe, or None if refused."""
        if self.active is not self.polling or not self.machine.start_upgrade(self.loop.time()):
            return None
        probe = self.probe = WebSocketTransport(self, conn, high_water=high_water)
        self._arm()
        return probe

    # -- inbound --------------------------------------------------------------------------------

    def deliver(self, data: str | bytes) -> None:
        """Hand a MESSAGE payload to the handler; a handler bug is logged, not fatal."""
        handler = self._handler
        if handler is None:  # pragma: no cover - on_connection runs before any I/O
            return
        try:
            handler.on_message(data)
        except Exception:
            logger.exception("session %s: message handler failed", self.sid)

    def receive_packets(self, packets: list[Packet]) -> None:
        """Packets from a polling POST, in order; stops at a close."""
        for packet in packets:
            if packet.type is _MESSAGE:
                if self.machine.phase is not _OPEN:
                    return
                self.deliver(packet.data)
            elif not self._receive(packet.type):
                return

    def _receive(self, packet_type: PacketType) -> bool:
        """A control packet on the active transport; False once the session is closed."""
        action = self.machine.receive(packet_type, self.loop.time())
        if action is Action.CLOSE:
            self._finalize()
            return False
        self._arm()
        return True

    def websocket_message(self, transport: WebSocketTransport, data: str | bytes) -> None:
        """The slow path of a WebSocket message: control packets, probes, closed sessions."""
        try:
            packet = decode_packet(data)
        except ProtocolError:
            packet = None
        if transport is self.active:
            if packet is None:
                self.fail("parse error")
            elif packet.type is _MESSAGE:
                if self.machine.phase is _OPEN:
                    self.deliver(packet.data)
            else:
                self._receive(packet.type)
            return
        if transport is not self.probe:
            transport.close()  # a stale probe still talking after it was dropped
            return
        if packet is None:
            self.machine.abort_upgrade()
            action = Action.ABORT_UPGRADE
        else:
            action = self.machine.receive_probe(packet.type, packet.data)
        if action is Action.SEND_PROBE_PONG:
            transport.send(PROBE_PONG, False)
            # the client now pauses polling: release its pending GET with a NOOP
            polling = self.polling
            assert polling is not None  # only polling sessions have probes
            polling.wake()
        elif action is Action.UPGRADE:
            self._switch_to(transport)
        else:
            self._drop_probe()
        self._arm()

    def websocket_closed(self, transport: WebSocketTransport) -> None:
        """A WebSocket of this session went away."""
        if transport is self.active:
            self.fail("transport close")
        elif transport is self.probe:
            self.machine.abort_upgrade()
            self.probe = None
            self._arm()

    # -- upgrade --------------------------------------------------------------------------------

    def poll_should_wait(self) -> bool:
        """Whether a GET with nothing to answer should wait (not when it must release the client
        for an upgrade, nor when it must carry the CLOSE packet)."""
        machine = self.machine
        return machine.phase is _OPEN and machine.upgrade is not Upgrade.PROBED

    def _switch_to(self, transport: WebSocketTransport) -> None:
        polling = self.polling
        assert polling is not None  # only polling sessions have probes
        self.probe = None
        self.active = transport
        self.polling = None
        polling.discarded = True
        # what was queued during the upgrade goes out first, in order, on the new transport
        send = transport.conn.send
        for message in polling.take():
            send(message)
        polling.wake()  # a GET still pending (a misbehaving client) gets a NOOP
        # closed while upgrading: the queue just went out, so the close is complete
        if self.machine.drained() is Action.CLOSE:
            self._finalize()

    def _drop_probe(self, reason: str = "") -> None:
        probe = self.probe
        if probe is not None:
            self.probe = None
            probe.close(reason)

    # -- time -----------------------------------------------------------------------------------

    def _arm(self) -> None:
        """Make sure the timer fires no later than the machine's next deadline."""
        deadline = self.machine.deadline
        if deadline is None:
            return  # closed: _finalize already cancelled the timer
        timer = self._timer
        if timer is not None:
            if self._timer_at <= deadline:
                return  # fires early, finds nothing due and re-arms
            timer.cancel()
        self._timer_at = deadline
        self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        # the handle fired for _timer_at: never let clock granularity make it look early
        now = max(self.loop.time(), self._timer_at)
        machine = self.machine
        while True:
            action = machine.on_timer(now)
            if action is Action.NONE:
                break
            if action is Action.SEND_PING:
                self.active.send(PING, False)
            elif action is Action.ABORT_UPGRADE:
                self._drop_probe()
            else:  # Action.CLOSE: ping timeout, or a drain that never completed
                self._finalize()
                return
        self._arm()

    # -- closing ------------------------------------------------------------------------------

    def fail(self, reason: str) -> None:
        """Close now, without waiting for anything queued to get out: the transport failed, the
        client broke the protocol, or the server shuts down. A session already closing finishes
        with the reason it was closed with."""
        if self.machine.fail(reason) is Action.CLOSE:
            self._finalize()

    def close_delivered(self) -> None:
        """A GET carried the CLOSE packet: a draining close is complete."""
        if self.machine.drained() is Action.CLOSE:
            self._finalize()

    def _finalize(self) -> None:
        """Release everything; the machine is CLOSED."""
        timer = self._timer
        if timer is not None:
            timer.cancel()
            self._timer = None
        reason = self.machine.close_reason
        self._on_closed(self)
        self._drop_probe(reason)
        active = self.active
        if isinstance(active, WebSocketTransport):
            active.close(reason)
        else:
            active.release()
        handler = self._handler
        if handler is not None:
            self._notify_closed(handler)

    def _notify_closed(self, handler: SessionHandler) -> None:
        try:
            handler.on_close(self.machine.close_reason)
        except Exception:
            logger.exception("session %s: close handler failed", self.sid)
