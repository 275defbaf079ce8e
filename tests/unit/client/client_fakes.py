"""Fakes for the client's unit tests: a clock moved by hand and in-process transports.

:class:`FakeClock` runs timers only when a test calls :meth:`FakeClock.advance`, so heartbeat,
backoff, connect and ack timeouts are tested without sleeping. :class:`FakeTransport` records
what the engine writes and lets the test play the server (``receive``, ``connect``, ``fail``,
``drain``). :class:`Harness` wires an :class:`~sockjet.client.AsyncClient` to both.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from sockjet.client import AsyncClient
from sockjet.client.errors import TransportError
from sockjet.client.transports import HTTPOptions, TransportFactory, TransportListener
from sockjet.protocol.engineio import Packet, PacketType
from sockjet.protocol.handshake import open_packet


class FakeTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Time stands still until :meth:`advance` moves it and runs the timers that fall due."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, FakeTimer]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], object]) -> FakeTimer:
        timer = FakeTimer(self.now + delay, callback)
        heapq.heappush(self._heap, (timer.when, next(self._seq), timer))
        return timer

    def advance(self, seconds: float = 0.0) -> None:
        target = self.now + seconds
        while self._heap and self._heap[0][0] <= target:
            when, _, timer = heapq.heappop(self._heap)
            self.now = max(self.now, when)
            if not timer.cancelled:
                timer.callback()
        self.now = target

    def pending(self) -> list[float]:
        """Delays (from now) of the timers still due, soonest first."""
        return sorted(t.when - self.now for _, _, t in self._heap if not t.cancelled)


def engine_open(
    sid: str = "e1",
    *,
    upgrades: Sequence[str] = (),
    ping_interval: int = 25_000,
    ping_timeout: int = 20_000,
    max_payload: int = 1_000_000,
) -> Packet:
    """The server's OPEN packet."""
    return open_packet(
        sid,
        upgrades=upgrades,
        ping_interval_ms=ping_interval,
        ping_timeout_ms=ping_timeout,
        max_payload=max_payload,
    )


def message(data: str | bytes) -> Packet:
    return Packet(PacketType.MESSAGE, data)


class FakeTransport:
    """An in-process transport. With ``manual_drain`` a write keeps it busy until
    :meth:`drain`; otherwise writes complete at once."""

    def __init__(self, name: str, sid: str | None, *, manual_drain: bool = False) -> None:
        self.name = name
        self.sid = sid
        self.manual_drain = manual_drain
        self.listener: TransportListener | None = None
        self.writes: list[list[Packet]] = []
        self.opened = False
        self.closed: bool | None = None  # None: open; else the ``notify`` it was closed with
        self.paused = False
        self.resumed = False
        self.pause_gate: asyncio.Future[None] | None = None
        self._busy = False

    def __repr__(self) -> str:
        return f"<FakeTransport {self.name} sid={self.sid}>"

    # -- the Transport protocol ---------------------------------------------------------------

    @property
    def writable(self) -> bool:
        return self.opened and self.closed is None and not self._busy

    def open(self, listener: TransportListener) -> None:
        self.listener = listener
        self.opened = True

    def set_sid(self, sid: str) -> None:
        self.sid = sid

    def send(self, packets: Sequence[Packet]) -> None:
        self.writes.append(list(packets))
        if self.manual_drain:
            self._busy = True

    async def pause(self) -> None:
        self.paused = True
        if self.pause_gate is not None:
            await self.pause_gate

    def resume(self) -> None:
        self.resumed = True
        self.paused = False

    def close(self, *, notify: bool = True) -> None:
        if self.closed is None:
            self.closed = notify

    async def wait_closed(self) -> None:
        return None

    # -- playing the server -------------------------------------------------------------------

    @property
    def sent(self) -> list[Packet]:
        return [packet for write in self.writes for packet in write]

    def sent_messages(self) -> list[str | bytes]:
        return [p.data for p in self.sent if p.type is PacketType.MESSAGE]

    def receive(self, *packets: Packet) -> None:
        assert self.listener is not None
        self.listener.transport_packets(self, list(packets))

    def receive_messages(self, *data: str | bytes) -> None:
        self.receive(*[message(d) for d in data])

    def connect(self) -> None:
        assert self.listener is not None
        self.listener.transport_open(self)

    def drain(self) -> None:
        assert self.listener is not None
        self._busy = False
        self.listener.transport_drain(self)

    def fail(self, error: TransportError | None = None) -> None:
        assert self.listener is not None
        self.closed = False
        self.listener.transport_closed(self, error)


class FakeFactory:
    """A :data:`TransportFactory` that records every transport it makes."""

    def __init__(self, *, manual_drain: bool = False) -> None:
        self.manual_drain = manual_drain
        self.created: list[FakeTransport] = []
        self.options: HTTPOptions | None = None

    def __call__(self, name: str, sid: str | None) -> FakeTransport:
        transport = FakeTransport(name, sid, manual_drain=self.manual_drain)
        self.created.append(transport)
        return transport

    def for_options(self, options: HTTPOptions) -> TransportFactory:
        self.options = options
        return self

    @property
    def last(self) -> FakeTransport:
        return self.created[-1]


class Harness:
    """An AsyncClient on fake transports and a fake clock, with the server's part scripted."""

    def __init__(self, **options: Any) -> None:
        self.clock = FakeClock()
        self.factory = FakeFactory()
        options.setdefault("random", lambda: 0.0)  # no jitter unless a test wants some
        self.client = AsyncClient(
            clock=self.clock, transport_factory=self.factory.for_options, **options
        )
        self.events: list[tuple[str, tuple[Any, ...]]] = []

    @property
    def transport(self) -> FakeTransport:
        return self.factory.last

    def record(self, *events: str, namespace: str = "/") -> None:
        """Record these events (lifecycle or server events) in :attr:`events`."""
        for event in events:

            def handler(*args: Any, _event: str = event) -> None:
                self.events.append((_event, args))

            self.client.on(event, handler, namespace=namespace)

    def handshake(self, sid: str = "e1", **options: Any) -> FakeTransport:
        transport = self.transport
        transport.receive(engine_open(sid, **options))
        return transport

    def accept(self, namespace: str = "/", sid: str = "s1") -> None:
        prefix = "" if namespace == "/" else namespace + ","
        self.transport.receive_messages(f'0{prefix}{{"sid":"{sid}"}}')

    async def connect(
        self, *namespaces: str, url: str = "http://server", **options: Any
    ) -> FakeTransport:
        """Connect without waiting, play the handshake and accept every namespace."""
        names = list(namespaces) or ["/"]
        await self.client.connect(url, namespaces=names, wait=False, **options)
        transport = self.handshake()
        for index, name in enumerate(names):
            self.accept(name, sid=f"s{index + 1}")
        return transport


async def settle(rounds: int = 5) -> None:
    """Let the tasks started so far (async handlers) run to their next await."""
    for _ in range(rounds):
        await asyncio.sleep(0)
