"""Flow control with real peers: a client that is merely fast is slowed down, never dropped; a
client that stops reading is closed as a slow consumer, and memory stays bounded meanwhile.

Peers: the official socket.io-client (Node, through the puppet) and python-socketio's client,
against sockjet under both serving layers; for the memory test, sockjet in its own process
(``flood_server.py``) so that its RSS is its own.
"""

# Every wait here takes its own `timeout`: bounding each wait is the point of this harness.

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import socketio  # type: ignore[import-untyped]  # no stubs
from orphans import die_with_parent
from peers import NodePuppet, Recorder, Serve
from psio_peers import psio_client

import sockjet

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]

FLOOD_SERVER = Path(__file__).with_name("flood_server.py")
BURST = [("websocket", 2000), ("polling", 1000)]  # acked emits in one go, per transport
MB = 1_000_000


def working_server(seen: Recorder, **options: Any) -> sockjet.Server:
    """An ``async def`` handler that yields once and answers: faster than any client, yet
    each event costs a task, so a burst outruns the handler limit (64 at a time)."""
    io = sockjet.Server(**options)
    started: list[int] = []

    @io.on("work")
    async def work(socket: sockjet.Socket, i: int) -> int:
        started.append(i)
        await asyncio.sleep(0)
        return i

    @io.on("disconnect")
    def gone(socket: sockjet.Socket, reason: str) -> None:
        seen.put("disconnect", reason)

    @io.on("started")
    def report(socket: sockjet.Socket) -> list[int]:
        return started

    return io


@pytest.mark.parametrize(("transport", "count"), BURST)
async def test_official_client_burst_of_acked_emits_is_answered_in_full(
    puppet: NodePuppet, serve: Serve, transport: str, count: int
) -> None:
    seen = Recorder()
    url = await serve(working_server(seen))
    client = await puppet.connect(url, transports=[transport])
    acks = await client.emit_burst("work", count, wait=60)
    assert acks == list(range(count))
    [started] = await client.emit_with_ack("started")
    assert started == list(range(count))  # handled in the order sent
    assert (await client.state())["connected"]
    assert seen.pending("disconnect") == 0
    await client.disconnect()


@pytest.mark.parametrize(("transport", "count"), BURST)
async def test_python_socketio_burst_of_acked_emits_is_answered_in_full(
    serve: Serve, transport: str, count: int
) -> None:
    seen = Recorder()
    # python-engineio's client refuses a polling answer of more than 16 packets (its
    # Payload.max_decode_packets): a burst of acks needs answers cut to its size.
    url = await serve(working_server(seen, max_packets_per_poll=16))
    async with psio_client(url, transport) as client:
        acks = await asyncio.wait_for(
            asyncio.gather(*(client.call("work", i, timeout=60) for i in range(count))), 60
        )
        assert acks == list(range(count))
        assert client.connected and seen.pending("disconnect") == 0


def bursting_server(seen: Recorder, count: int, size: int) -> sockjet.Server:
    """``burst`` makes the server emit ``count`` events of ``size`` characters to the sender
    in one go; ``room_burst`` does it to everyone in ``"room"``."""
    io = sockjet.Server()
    payload = "y" * size

    @io.on("connection")
    def joined(socket: sockjet.Socket) -> None:
        socket.join("room")

    @io.on("burst")
    def burst(socket: sockjet.Socket) -> None:
        for i in range(count):
            socket.emit("chunk", i, payload)

    @io.on("room_burst")
    def room_burst(socket: sockjet.Socket) -> None:
        room = io.to("room")
        for i in range(count):
            room.emit("chunk", i, payload)

    @io.on("disconnect")
    def gone(socket: sockjet.Socket, reason: str) -> None:
        seen.put("disconnect", reason)

    return io


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_10_mb_emit_burst_reaches_the_official_client_in_full(
    puppet: NodePuppet, serve: Serve, transport: str
) -> None:
    seen = Recorder()
    url = await serve(bursting_server(seen, 100, 100_000))  # 10 MB in one go
    client = await puppet.connect(url, transports=[transport])
    await client.count_events("chunk")
    await client.emit("burst")
    count, size = await client.wait_count("chunk", 100, timeout=30)
    assert count == 100 and size >= 10 * MB
    assert (await client.state())["connected"] and seen.pending("disconnect") == 0
    await client.disconnect()


async def test_a_10_mb_emit_burst_reaches_python_socketio_in_full(serve: Serve) -> None:
    seen = Recorder()
    url = await serve(bursting_server(seen, 100, 100_000))
    got: list[int] = []
    done = asyncio.Event()

    def setup(client: socketio.AsyncClient) -> None:
        @client.on("chunk")
        def chunk(i: int, data: str) -> None:
            got.append(len(data))
            if len(got) == 100:
                done.set()

    async with psio_client(url, "websocket", setup=setup) as client:
        await client.emit("burst")
        await asyncio.wait_for(done.wait(), 30)
        assert got == [100_000] * 100 and seen.pending("disconnect") == 0


async def test_a_10_mb_burst_to_a_room_reaches_every_official_client(
    puppet: NodePuppet, serve_native: Serve
) -> None:
    # The frames are built once and shared: each connection holds references, not copies.
    seen = Recorder()
    url = await serve_native(bursting_server(seen, 100, 100_000))
    clients = [await puppet.connect(url, transports=["websocket"]) for _ in range(50)]
    for client in clients:
        await client.count_events("chunk")
    await clients[0].emit("room_burst")
    results = await asyncio.gather(*(c.wait_count("chunk", 100, timeout=60) for c in clients))
    assert all(count == 100 and size >= 10 * MB for count, size in results)
    assert seen.pending("disconnect") == 0
    for client in clients:
        await client.forget()


# -- slow consumers and memory -----------------------------------------------------------------


class FloodServer:
    """``flood_server.py`` in its own process: its disconnections and its memory."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.disconnects: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FloodServer:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(FLOOD_SERVER),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=die_with_parent,
        )
        assert self.proc.stdout is not None
        ready = await asyncio.wait_for(self.proc.stdout.readline(), 15)
        assert ready.startswith(b"ready "), ready
        self.port = int(ready.split()[1])
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.disconnects.append(json.loads(line)["disconnect"])

    def rss(self) -> int:
        assert self.proc is not None
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader


@contextlib.asynccontextmanager
async def sampling(server: FloodServer, every: float = 0.05) -> AsyncIterator[list[int]]:
    """The server's RSS, sampled until the block ends."""
    samples = [server.rss()]

    async def sample() -> None:
        while True:
            await asyncio.sleep(every)
            samples.append(server.rss())

    task = asyncio.create_task(sample())
    try:
        yield samples
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        samples.append(server.rss())


STALLED = 10
LIVE = 5
TICKS = 6_000
TICK_SIZE = 4_000
RATE = 3_000  # ticks per second: 12 MB/s to each client, what the Node puppet keeps up with
MAX_GROWTH = 48 * 1024 * 1024
"""What the server may grow by while 10 readers stall under 24 MB of broadcast per client
(measured: about 17 MiB). Each stalled queue is capped at 16 MiB, but it holds the broadcast's
shared frames: together they cost about one cap, not ten."""


async def test_stalled_readers_are_closed_as_slow_consumers_and_memory_stays_bounded(
    puppet: NodePuppet,
) -> None:
    async with FloodServer() as server:
        stalled = [
            await puppet.connect(server.url, transports=["websocket"]) for _ in range(STALLED)
        ]
        live = [await puppet.connect(server.url, transports=["websocket"]) for _ in range(LIVE)]
        for client in stalled:
            await client.count_events("tick")
            await client.stall()
        for client in live:
            await client.count_events("tick")
        await live[0].emit_with_ack("echo", "warm")  # everyone is set up
        baseline = server.rss()
        async with sampling(server) as samples:
            flood = live[0].emit_with_ack("flood", TICKS, TICK_SIZE, RATE, wait=60)
            assert await flood == [TICKS]
            results = await asyncio.gather(
                *(client.wait_count("tick", TICKS, timeout=30) for client in live)
            )
        assert [count for count, _ in results] == [TICKS] * LIVE  # the live ones got it all
        # (a stalled client reads nothing, so it does not see its connection dropped)
        [stats] = await live[0].emit_with_ack("stats")
        assert stats["slow_consumers"] == STALLED
        assert server.disconnects.count("slow consumer") == STALLED
        growth = max(samples) - baseline
        print(f"RSS: baseline {baseline / 2**20:.1f} MiB, peak growth {growth / 2**20:.1f} MiB")
        assert growth < MAX_GROWTH, f"the server grew by {growth / 2**20:.1f} MiB"
        for client in live:
            assert (await client.state())["connected"]
            await client.forget()
        for client in stalled:
            await client.forget()


async def test_socket_drain_paces_a_producer_to_its_client(
    puppet: NodePuppet, serve: Serve
) -> None:
    # 20 MB streamed to one client, beyond the 16 MiB cap, paced by drain(): never a slow
    # consumer, and the queue never grows past the high-water mark plus one chunk.
    io = sockjet.Server()
    highest: list[int] = []

    @io.on("stream")
    async def stream(socket: sockjet.Socket, chunks: int) -> int:
        payload = "z" * 100_000
        for i in range(chunks):
            socket.emit("part", i, payload)
            highest.append(socket.buffered_amount)
            await socket.drain()
        return chunks

    url = await serve(io)
    client = await puppet.connect(url, transports=["websocket"])
    await client.count_events("part")
    assert await client.emit_with_ack("stream", 200, wait=60) == [200]
    count, _ = await client.wait_count("part", 200, timeout=60)
    assert count == 200
    assert max(highest) <= 1_000_000 + 200_000
    await client.disconnect()
