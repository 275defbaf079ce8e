"""One Engine.IO session at run time: the :class:`~sockjet.engine.io.EngineSocket` the Socket.IO
layer talks to.

The rules live in the sans-I/O :class:`~sockjet.protocol.session.SessionMachine`; this class
carries out its actions on the transports. Timing costs one ``loop.call_at`` handle per session,
armed for the machine's next deadline. A deadline that moves later (a PONG postpones the next
PING) leaves the handle alone: it fires early, finds nothing due and re-arms, which is cheaper
than cancelling a handle on every PONG.

Flow control (see :mod:`sockjet.engine.flow`): inbound, the handler pauses and resumes reading
(a WebSocket stops reading its socket; a polling POST is answered only once reading resumes);
outbound, a transport over the high-water mark asks :meth:`Session.admit` whether to queue a
packet, which also starts the slow-consumer clock. What a session owns (a held POST, a body
still arriving) is released when it ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final, TypeVar

from sockjet.engine.deadlines import MAX_RESOLUTION, DeadlineSlots
from sockjet.engine.flow import SLOW_CONSUMER, FlowLimits, FlowStats
from sockjet.engine.hooks import EngineHooks, call_hooks
from sockjet.engine.io import HTTPRequest, Outgoing, SessionHandler
from sockjet.engine.transports.polling import PollingTransport
from sockjet.engine.transports.websocket import WebSocketTransport
from sockjet.errors import ProtocolError
from sockjet.protocol.engineio import Packet, PacketType, decode_packet
from sockjet.protocol.session import Action, Phase, SessionMachine, Upgrade

if TYPE_CHECKING:
    from sockjet.engine.io import WebSocketConnection
    from sockjet.engine.transports.owner import TransportOwner

__all__ = ["Session", "SessionContext"]

T = TypeVar("T")

logger = logging.getLogger("sockjet.engine")

PING: Final = Outgoing("2")
"""The server's heartbeat PING, shared by every session (transports cache its frame once)."""
PROBE_PONG: Final = Outgoing("3probe")
NOOP: Final = Outgoing("6")

_OPEN: Final = Phase.OPEN
_CLOSED: Final = Phase.CLOSED
_MESSAGE: Final = PacketType.MESSAGE
_NEVER: Final = float("inf")

Transport = PollingTransport | WebSocketTransport


class SessionContext:
    """What every session of one engine shares: one object per engine, not per session."""

    __slots__ = (
        "deadlines",
        "flow",
        "hooks",
        "http_compression",
        "loop",
        "max_packets_per_poll",
        "max_payload",
        "on_closed",
        "stats",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        max_payload: int,
        http_compression: bool,
        flow: FlowLimits,
        stats: FlowStats,
        on_closed: Callable[[Session], None],
        max_packets_per_poll: int | None = None,
        hooks: EngineHooks | None = None,
        deadline_resolution: float = MAX_RESOLUTION,
    ) -> None:
        self.loop = loop
        self.deadlines = DeadlineSlots(loop, deadline_resolution)
        self.hooks = hooks if hooks is not None else EngineHooks()
        self.max_payload = max_payload
        self.http_compression = http_compression
        self.max_packets_per_poll = max_packets_per_poll
        self.flow = flow
        self.stats = stats
        self.on_closed = on_closed


class Session:
    """An Engine.IO session; implements :class:`~sockjet.engine.io.EngineSocket`."""

    __slots__ = (
        "_drainers",
        "_ended",
        "_handler",
        "_paused",
        "_resumed",
        "_slow_timer",
        "_timer",
        "_timer_at",
        "active",
        "ctx",
        "machine",
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
        ctx: SessionContext,
        machine: SessionMachine,
        websocket: WebSocketConnection | None = None,
    ) -> None:
        self.sid = sid
        """The Engine.IO session id."""
        self.request = request
        """The handshake request."""
        self.ctx = ctx
        self.machine = machine
        self._handler: SessionHandler | None = None
        self._timer: int | None = None  # the slot of the pending deadline (ctx.deadlines)
        self._timer_at = 0.0
        self._paused = False
        self._resumed: asyncio.Future[None] | None = None  # waited on while paused
        self._ended: asyncio.Future[None] | None = None  # resolved when the session closes
        self._slow_timer: asyncio.TimerHandle | None = None  # running while over high water
        self._drainers: list[asyncio.Future[None]] | None = None  # drain() callers
        self.probe: WebSocketTransport | None = None
        """The WebSocket being probed for an upgrade, if any."""
        self.polling: PollingTransport | None = None
        self.active: Transport
        """The transport packets travel on."""
        high_water = ctx.flow.high_water
        if websocket is None:
            self.polling = self.active = PollingTransport(self, high_water=high_water)
        else:
            self.active = WebSocketTransport(self, websocket, high_water=high_water)
        self._arm()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.ctx.loop

    @property
    def max_payload(self) -> int:
        return self.ctx.max_payload

    @property
    def http_compression(self) -> bool:
        return self.ctx.http_compression

    @property
    def max_packets_per_poll(self) -> int | None:
        return self.ctx.max_packets_per_poll

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
        writable, anything once closing or past the outbound cap). Never blocks, never raises."""
        if self.machine.phase is not _OPEN:
            return False
        return self.active.send(message, volatile)

    @property
    def buffered_amount(self) -> int:
        """Outbound bytes queued and not yet handed to the kernel."""
        return self.active.buffered_amount

    async def drain(self) -> None:
        """Return once :attr:`buffered_amount` is at most the low-water mark, or the session
        has ended (a producer then learns it from ``send`` returning False)."""
        if self.machine.phase is _CLOSED or self.active.buffered_amount <= self.ctx.flow.low_water:
            return
        future = self.loop.create_future()
        if self._drainers is None:
            self._drainers = []
        self._drainers.append(future)
        self._watch()
        await future

    def pause_reading(self) -> None:
        """The handler is behind: deliver nothing more until :meth:`resume_reading`."""
        if self._paused or self.machine.phase is _CLOSED:
            return
        self._paused = True
        self.machine.pause_reads()
        self.active.pause_reading()

    def resume_reading(self) -> None:
        """The handler caught up: deliver and read again (a held POST is answered)."""
        if not self._paused:
            return
        self._paused = False
        if self.machine.phase is not _CLOSED:
            self.machine.resume_reads(self.loop.time())
            self._arm()
        resumed, self._resumed = self._resumed, None
        if resumed is not None and not resumed.done():
            resumed.set_result(None)
        self.active.resume_reading()  # may deliver held messages (and so pause again)

    @property
    def paused(self) -> bool:
        """Whether reading is paused (the handler is behind)."""
        return self._paused

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

    def begin_upgrade(self, conn: WebSocketConnection) -> WebSocketTransport | None:
        """A WebSocket for this session arrived: it becomes the probe, or None if refused."""
        if self.active is not self.polling or not self.machine.start_upgrade(self.loop.time()):
            return None
        probe = self.probe = WebSocketTransport(self, conn, high_water=self.ctx.flow.high_water)
        self._arm()
        return probe

    # -- outbound flow control -------------------------------------------------------------------

    def admit(self, buffered: int, size: int, volatile: bool) -> bool:
        """May a packet of ``size`` bytes join a transport holding ``buffered`` bytes, when it
        would take the queue over the high-water mark? A volatile packet may not. Others may,
        and the slow-consumer clock starts; one that would take a non-empty queue past the
        hard cap closes the session instead (a single packet larger than the cap still goes
        to an empty queue: the application chose to send it)."""
        ctx = self.ctx
        if volatile:
            self.dropped_volatile()
            return False
        flow = ctx.flow
        if buffered and buffered + size > flow.max_buffered:
            self._slow_consumer(f"{buffered + size} bytes queued, over the {flow.max_buffered} cap")
            return False
        if self._slow_timer is None:
            self._slow_timer = self.loop.call_later(flow.slow_consumer_timeout, self._on_slow_timer)
            self._watch()
        return True

    def dropped_volatile(self) -> None:
        """A volatile packet was not queued (not writable, or over the high-water mark)."""
        ctx = self.ctx
        ctx.stats.volatile_dropped += 1
        hooks = ctx.hooks.volatile_dropped
        if hooks:
            call_hooks(hooks, self)

    def drained(self, transport: object) -> None:
        """``transport``'s queue fell to the level last watched: stop the slow-consumer clock
        under the high-water mark, release ``drain()`` callers under the low-water mark."""
        if transport is not self.active:
            return
        buffered = transport.buffered_amount
        flow = self.ctx.flow
        timer = self._slow_timer
        if timer is not None and buffered <= flow.high_water:
            timer.cancel()
            self._slow_timer = None
        drainers = self._drainers
        if drainers is not None and buffered <= flow.low_water:
            self._drainers = None
            for future in drainers:
                if not future.done():
                    future.set_result(None)
        self._watch()

    def _watch(self) -> None:
        """Ask the active transport to report the next level that matters."""
        flow = self.ctx.flow
        if self._slow_timer is not None:
            self.active.watch_drain(flow.high_water)
        elif self._drainers:
            self.active.watch_drain(flow.low_water)

    def _on_slow_timer(self) -> None:
        self._slow_timer = None
        flow = self.ctx.flow
        buffered = self.active.buffered_amount
        if buffered > flow.high_water:
            self._slow_consumer(f"{buffered} bytes queued for over {flow.slow_consumer_timeout:g}s")

    def _slow_consumer(self, detail: str) -> None:
        if self.machine.phase is _CLOSED:
            return
        ctx = self.ctx
        ctx.stats.slow_consumers += 1
        logger.warning("session %s is a slow consumer (%s): closing it", self.sid, detail)
        hooks = ctx.hooks.slow_consumer
        if hooks:
            call_hooks(hooks, self, self.active.buffered_amount)
        self.fail(SLOW_CONSUMER)

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

    async def receive_posted(self, packets: list[Packet]) -> bool:
        """Packets from a polling POST, in order, waiting while reading is paused; returns
        once they were all taken and reading runs (the POST may be answered), or False when
        the session ended while they waited. Stops at a close."""
        for packet in packets:
            if self._paused and not await self._wait_resumed():
                return False
            if packet.type is _MESSAGE:
                if self.machine.phase is not _OPEN:
                    return True
                self.deliver(packet.data)
            elif not self._receive(packet.type):
                return True
        return not self._paused or await self._wait_resumed()

    async def _wait_resumed(self) -> bool:
        """Wait until reading resumes (True) or the session ends (False)."""
        while self._paused:
            if self.machine.phase is _CLOSED:
                return False
            resumed = self._resumed
            if resumed is None:
                resumed = self._resumed = self.loop.create_future()
            await resumed
        return self.machine.phase is not _CLOSED

    async def until_ended(self, pending: Awaitable[T]) -> T | None:
        """Await ``pending`` unless the session ends first (then cancel it, return None)."""
        if self.machine.phase is _CLOSED:
            if isinstance(pending, asyncio.Future):
                pending.cancel()
            elif asyncio.iscoroutine(pending):
                pending.close()
            return None
        ended = self._ended
        if ended is None:
            ended = self._ended = self.loop.create_future()
        task = asyncio.ensure_future(pending)
        try:
            await asyncio.wait((task, ended), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
        if task.cancelled() or not task.done():
            return None
        return task.result()

    def _receive(self, packet_type: PacketType) -> bool:
        """A control packet on the active transport; False once the session is closed."""
        action = self.machine.receive(packet_type, self.loop.time())
        if action is Action.CLOSE:
            self._finalize()
            return False
        self._arm()
        return True

    def websocket_message(self, transport: object, data: str | bytes) -> None:
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
        probe = self.probe
        if transport is not probe or probe is None:
            if isinstance(transport, WebSocketTransport):
                transport.close()  # a stale probe still talking after it was dropped
            return
        if packet is None:
            self.machine.abort_upgrade()
            action = Action.ABORT_UPGRADE
        else:
            action = self.machine.receive_probe(packet.type, packet.data)
        if action is Action.SEND_PROBE_PONG:
            probe.send(PROBE_PONG, False)
            # the client now pauses polling: release its pending GET with a NOOP
            polling = self.polling
            assert polling is not None  # only polling sessions have probes
            polling.wake()
        elif action is Action.UPGRADE:
            self._switch_to(probe)
        else:
            self._drop_probe()
        self._arm()

    def websocket_closed(self, transport: object, error: bool = False) -> None:
        """A WebSocket of this session went away; ``error``: over a protocol violation (then
        the reason is ``"transport error"``, as Node's engine reports a ``ws`` error)."""
        if transport is self.active:
            self.fail("transport error" if error else "transport close")
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
        if self._paused:
            transport.pause_reading()
        upgraded = self.ctx.hooks.session_upgraded
        if upgraded:
            call_hooks(upgraded, self, transport.name)
        # closed while upgrading: the queue just went out, so the close is complete
        if self.machine.drained() is Action.CLOSE:
            self._finalize()
            return
        self._watch()  # the queue moved: report its levels from the new transport

    def _drop_probe(self, reason: str = "") -> None:
        probe = self.probe
        if probe is not None:
            self.probe = None
            probe.close(reason)

    # -- time -----------------------------------------------------------------------------------

    def _arm(self) -> None:
        """Make sure the timer fires no later than the machine's next deadline."""
        deadline = self.machine.deadline
        if deadline is None or deadline == _NEVER:
            return  # closed (_finalize cancelled the timer), or nothing due while paused
        timer = self._timer
        deadlines = self.ctx.deadlines
        if timer is not None:
            if self._timer_at <= deadline:
                return  # fires early, finds nothing due and re-arms
            deadlines.discard(self, timer)
        self._timer, self._timer_at = deadlines.add(self, deadline)

    def on_deadline(self) -> None:
        """The deadline armed last is due (:class:`~sockjet.engine.deadlines.DeadlineSlots`)."""
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
        slot = self._timer
        if slot is not None:
            self.ctx.deadlines.discard(self, slot)
            self._timer = None
        timer = self._slow_timer
        if timer is not None:
            timer.cancel()
            self._slow_timer = None
        # whatever waits on this session (a held POST, a body read, drain()) is released
        for future in (self._resumed, self._ended, *(self._drainers or ())):
            if future is not None and not future.done():
                future.set_result(None)
        self._resumed = self._ended = self._drainers = None
        reason = self.machine.close_reason
        self.ctx.on_closed(self)
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


if TYPE_CHECKING:  # the session is what its transports are written against
    _OWNER: type[TransportOwner] = Session
