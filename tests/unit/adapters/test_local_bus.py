"""The workers' local bus (``sockjet.adapters.local_bus``): three buses in one process, linked
over real Unix sockets as three workers are, and the Redis adapter's logic running over them
(broadcasts, rooms, fetch_sockets, acks, server-side emits, server counts).

Messages cross sockets, so a test waits for them with a request that travels the same links
after them (a ``fetch_sockets`` or a server-side emit with ack, answered in order), never by
sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from server_fakes import FakeConn, socket_of

from sockjet.adapters.local_bus import LocalBus, bus_path, listen_bus, local_bus_adapter
from sockjet.adapters.redis_protocols import SubscriptionKind
from sockjet.server.broadcast import RemoteSocket
from sockjet.server.server import Server

KEY = (SubscriptionKind.SHARD, b"chan")


@contextlib.asynccontextmanager
async def buses(run_dir: Path, *wids: str) -> AsyncIterator[list[LocalBus]]:
    """One bus per worker id, each linking to those before it (as the supervisor starts them);
    ``start`` them, then :func:`linked` waits until everyone knows everyone."""
    made: list[LocalBus] = []
    try:
        for wid in wids:
            sock = listen_bus(bus_path(run_dir, wid))
            made.append(LocalBus(wid, sock, [bus_path(run_dir, b.wid) for b in made]))
        yield made
    finally:
        for bus in made:
            await bus.stop()


async def linked(started: list[LocalBus]) -> None:
    for bus in started:
        await bus.start()
    async with asyncio.timeout(5):
        for bus in started:
            await bus.wait_subscribed([])
            await bus.wait_peers(len(started) - 1)


async def test_messages_reach_the_subscribed_workers_only(tmp_path: Path) -> None:
    async with buses(tmp_path, "AA", "BB", "CC") as (a, b, c):
        await linked([a, b, c])
        got: dict[str, list[tuple[bytes, bytes]]] = {"a": [], "c": []}
        arrived = asyncio.Event()

        def on(name: str) -> Any:
            def handler(channel: bytes, payload: bytes) -> None:
                got[name].append((channel, payload))
                if len(got["a"]) == 2 and len(got["c"]) == 2:
                    arrived.set()

            return handler

        a.subscribe(KEY, on("a"))
        c.subscribe(KEY, on("c"))
        b.publish(b"chan", b"one")
        b.publish(b"other", b"nobody")
        b.publish(b"chan", b"two")
        async with asyncio.timeout(5):
            await arrived.wait()
        assert got["a"] == got["c"] == [(b"chan", b"one"), (b"chan", b"two")]
        assert a.is_subscribed(KEY) and not b.is_subscribed(KEY)
        # counted by every worker once the subscriptions travelled (they went before "two")
        assert await b.count_subscribers(KEY) == 2
        assert await a.count_subscribers(KEY) == 2
        assert sorted(b.peers) == ["AA", "CC"]


async def test_a_worker_gone_no_longer_counts(tmp_path: Path) -> None:
    async with buses(tmp_path, "AA", "BB", "CC") as (a, b, c):
        for bus in (a, b, c):  # subscribed before linking: the links carry them from the start
            bus.subscribe(KEY, lambda channel, payload: None)
        await linked([a, b, c])
        assert await a.count_subscribers(KEY) == 3
        await c.stop()
        async with asyncio.timeout(5):
            await a.wait_peers(1)
            await b.wait_peers(1)
        assert await a.count_subscribers(KEY) == 2
        b.unsubscribe(KEY)
        b.publish(b"chan", b"still fine")


@contextlib.asynccontextmanager
async def cluster(run_dir: Path, count: int = 3) -> AsyncIterator[list[Server]]:
    """``count`` servers, each on its own bus, as the workers of ``--workers`` start: the
    adapters subscribe first, then the bus links to the other workers."""
    async with buses(run_dir, *(f"W{n}" for n in range(count))) as made:
        servers = [Server(adapter=local_bus_adapter(bus, request_timeout=2)) for bus in made]
        for io in servers:
            io.start()
        await linked(made)
        try:
            yield servers
        finally:
            for io in servers:
                await io.close()


def events(conn: FakeConn) -> list[Any]:
    return [json.loads(t[t.index("[") :]) for t in conn.take() if isinstance(t, str)]


async def test_the_adapter_over_the_bus(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (one, two, three):
        ann, bob, cy = FakeConn(one), FakeConn(two), FakeConn(three)
        sid_ann, sid_bob, sid_cy = ann.connect("/"), bob.connect("/"), cy.connect("/")
        socket_of(one, sid_ann).join("room")
        socket_of(three, sid_cy).join("room")
        assert await two.sockets.adapter.server_count() == 3
        # a broadcast from a worker with nobody in the room reaches the two that have
        two.to("room").emit("hello", 1)
        found = await two.in_("room").fetch_sockets()  # after the broadcast, on the same links
        assert sorted(s.id for s in found) == sorted([sid_ann, sid_cy])
        assert all(isinstance(s, RemoteSocket) for s in found)
        assert events(ann) == events(cy) == [["hello", 1]]
        assert events(bob) == []
        # remote room operations, then a broadcast to the room joined remotely
        one.in_(sid_bob).sockets_join("late")
        await one.fetch_sockets()
        assert "late" in socket_of(two, sid_bob).rooms
        three.to("late").emit("for bob")
        await three.fetch_sockets()
        assert events(bob) == [["for bob"]]
        # broadcast acks from every worker's clients
        pending = asyncio.ensure_future(one.timeout(2).emit_with_ack("ask"))
        await asyncio.sleep(0)  # it publishes in its first step
        await one.fetch_sockets()  # then it has reached the other workers
        for conn in (ann, bob, cy):
            sent = conn.take()[0]
            assert isinstance(sent, str)
            conn.feed(f'3{sent[1 : sent.index("[")]}["{conn.sid}"]')
        assert sorted(await pending) == sorted(c.sid for c in (ann, bob, cy))

        # server-side emits, one answer per other worker
        for n, io in enumerate((one, two, three)):
            io.sockets.on_server_side("who", lambda n=n: f"worker {n}")
        assert sorted(await two.server_side_emit_with_ack("who")) == ["worker 0", "worker 2"]
