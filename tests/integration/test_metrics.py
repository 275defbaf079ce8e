"""Prometheus metrics (``Server(metrics=True)``) scraped after real traffic from official clients,
under both serving layers: every number moves as the traffic says it must."""

# Every wait here takes its own `timeout`: bounding each wait is the point of this harness.

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from chat_peers import ChatProcess, free_port
from peers import NodePuppet, Recorder, Serve
from prometheus_client.parser import text_string_to_metric_families

import sockjet
from sockjet.observe.metrics import MetricsOptions

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def app(seen: Recorder) -> sockjet.Server:
    io = sockjet.Server(metrics=MetricsOptions(handler_seconds=True), max_buffered_bytes=20_000)

    @io.on("join")
    def join(socket: sockjet.Socket, room: str) -> bool:
        socket.join(room)
        return True

    @io.on("shout")
    def shout(socket: sockjet.Socket, room: str, text: str) -> None:
        io.to(room).emit("shouted", text)

    @io.on("work")
    async def work(socket: sockjet.Socket, n: int) -> int:
        await asyncio.sleep(0)
        return n

    @io.on("disconnect")
    def gone(socket: sockjet.Socket, reason: str) -> None:
        seen.put("disconnect", reason)

    return io


async def test_metrics_follow_the_traffic(puppet: NodePuppet, serve: Serve) -> None:
    seen = Recorder()
    io = app(seen)
    url = await serve(io)
    before = await scrape(url)
    assert value(before, "sockjet_connected_clients", transport="websocket") == 0
    assert value(before, "sockjet_events_received_total", namespace="/") == 0

    ws = [await puppet.connect(url, transports=["websocket"]) for _ in range(2)]
    poll = await puppet.connect(url, transports=["polling"])
    for client in (*ws, poll):
        assert await client.emit_with_ack("join", "lobby") == [True]
    assert await ws[0].emit_with_ack("work", 7) == [7]
    await ws[1].emit("shout", "lobby", "hi")
    for client in (*ws, poll):
        assert await client.next_event("shouted") == ["hi"]

    during = await scrape(url)
    assert value(during, "sockjet_connected_clients", transport="websocket") == 2
    assert value(during, "sockjet_connected_clients", transport="polling") == 1
    assert value(during, "sockjet_namespace_sockets", namespace="/") == 3
    assert value(during, "sockjet_rooms") == 1  # "lobby" (the sockets' own rooms not counted)
    # 3 joins, 1 work, 1 shout
    assert value(during, "sockjet_events_received_total", namespace="/") == 5
    # the shout reached 3 clients: one event per recipient
    assert value(during, "sockjet_events_sent_total", namespace="/") == 3
    assert value(during, "sockjet_bytes_received_total") > 0
    assert value(during, "sockjet_bytes_sent_total") >= 3 * len('2["shouted","hi"]')
    assert value(during, "sockjet_handler_seconds_count", event="work") == 1
    assert value(during, "sockjet_handler_seconds_count", event="join") == 3
    assert value(during, "process_resident_memory_bytes") > 0

    await ws[0].disconnect()
    assert await seen.get("disconnect") == "client namespace disconnect"
    after = await scrape(url)
    assert value(after, "sockjet_disconnects_total", reason="client namespace disconnect") == 1
    assert value(after, "sockjet_connected_clients", transport="websocket") == 1
    for client in (ws[1], poll):
        await client.disconnect()


async def test_slow_consumers_and_dropped_volatile_packets_are_counted(
    puppet: NodePuppet, serve_native: Serve
) -> None:
    seen = Recorder()
    io = sockjet.Server(metrics=True, max_buffered_bytes=100_000, max_outbound_bytes=1_000_000)

    @io.on("disconnect")
    def gone(socket: sockjet.Socket, reason: str) -> None:
        seen.put("disconnect", reason)

    url = await serve_native(io)
    stalled = await puppet.connect(url, transports=["websocket"])
    await stalled.stall()
    (socket,) = io.of("/").sockets.values()
    socket.emit("filler", "f" * 200_000)  # over the mark: from now on volatile packets drop
    assert not socket.volatile.emit("dropped")
    for i in range(50):  # 2.5 MB to a client that reads nothing: past the 1 MB cap
        if not socket.emit("big", i, "b" * 50_000):
            break
    assert await seen.get("disconnect", timeout=10) == "slow consumer"
    samples = await scrape(url)
    assert value(samples, "sockjet_slow_consumer_disconnects_total") == 1
    assert value(samples, "sockjet_volatile_dropped_total") >= 1
    assert value(samples, "sockjet_disconnects_total", reason="slow consumer") == 1
    assert value(samples, "sockjet_connections_closed_total", reason="slow consumer") == 1
    await stalled.forget()


async def test_the_chat_command_serves_metrics(puppet: NodePuppet, tmp_path: Path) -> None:
    async with ChatProcess(free_port(), f"sqlite:///{tmp_path / 'chat.db'}", "--metrics") as chat:
        client = await puppet.connect(chat.url, transports=["websocket"])
        joined = await client.emit_with_ack(
            "joinRoom", {"roomId": "general", "userId": "u1", "username": "Ann"}
        )
        assert joined[0]["ok"] is True
        samples = await scrape(chat.url)
        assert value(samples, "sockjet_connected_clients", transport="websocket") == 1
        assert value(samples, "sockjet_events_received_total", namespace="/") == 1
        assert value(samples, "sockjet_rooms") == 1
        await client.disconnect()
