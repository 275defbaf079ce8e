"""Faults in a cluster of ``sockjet chat --redis URL --redis-adapter streams --recovery``
processes, with official socket.io clients (WebSocket and polling, reconnecting, failing over to
the next server) in one room:

* one of three servers is killed (SIGKILL) under traffic: its clients come back on the others
  and recover; no message is lost or received twice, and each sender's arrive in order;
* Redis is killed and started again under traffic: the clients stay connected, traffic resumes,
  and every message is received once, in order, unless its server reported it may be lost (it
  was on its way to Redis when Redis died). That is with an append-only file; without, Redis
  comes back empty: what it had recorded and some servers had not read yet is gone (each server
  says so), everything sent after is received once, in order;
* every server is restarted, one after the other, under a steady broadcast: every client
  receives every broadcast exactly once, in order.

What each client received is checked per sender from its own record of events.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from chat_peers import ChatProcess, free_port
from peers import AckTimeoutError, NodeClient, NodePuppet
from redis_peers import RedisServer

import sockjet

pytestmark = [
    pytest.mark.node,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server"),
]

ROOM = "lobby"
RECONNECT = {"reconnection": True, "reconnectionDelay": 100, "reconnectionDelayMax": 300}
HEARTBEAT = ("--ping-interval", "5", "--ping-timeout", "5")
LOST = re.compile(r": ([^:]*) may be lost$")


@dataclass
class Cluster:
    redis: RedisServer
    servers: list[ChatProcess]

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def reported_lost(self) -> int:
        """Broadcasts the servers logged as possibly lost (on their way when Redis failed, or
        recorded by a Redis that then lost its data)."""
        total = 0
        for server in self.servers:
            for line in server.output:
                match = LOST.search(line)
                if match is not None:
                    for part in match.group(1).split(", "):
                        count, kind = part.split(" ", 1)
                        total += int(count) if kind == "broadcast" else 0
        return total


@pytest_asyncio.fixture(loop_scope="module")
async def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Cluster]:
    """Three chat servers on one Redis (``persistent`` when the test's parameter says so)."""
    persistent = getattr(request, "param", False)
    async with RedisServer(persistent=persistent) as redis, contextlib.AsyncExitStack() as stack:
        db = f"sqlite:///{tmp_path}/chat.db"
        servers = [
            ChatProcess(
                free_port(),
                db,
                "--redis",
                redis.url,
                "--redis-adapter",
                "streams",
                "--recovery",
                *HEARTBEAT,
            )
            for _ in range(3)
        ]
        for server in servers:
            stack.push_async_callback(server.stop)
        await asyncio.gather(*(s.start() for s in servers))
        yield Cluster(redis, servers)
        for server in servers:
            assert "Traceback" not in server.log(), server.log()


@dataclass
class Member:
    """One official client in the room: what it sent, and which of those the server acked."""

    client: NodeClient
    name: str
    sent: list[int] = field(default_factory=list)
    acked: set[int] = field(default_factory=set)

    async def join(self) -> None:
        payload = {"roomId": ROOM, "userId": self.name.lower(), "username": self.name}
        (reply,) = await self.client.emit_with_ack("joinRoom", payload, wait=10)
        assert reply["ok"], reply

    async def say(self, n: int) -> None:
        self.sent.append(n)
        payload = {"roomId": ROOM, "message": f"{self.name} {n}"}
        try:
            (reply,) = await self.client.emit_with_ack("sendMessage", payload, timeout=3)
        except AckTimeoutError:
            return  # written to a connection that died: it may or may not have gone out
        assert reply["ok"], reply
        self.acked.add(n)


def received(client: NodeClient, event: str = "receiveMessage") -> dict[str, list[int]]:
    """Per sender, the numbers of the messages ``client`` received, in arrival order."""
    out: dict[str, list[int]] = {}
    for key, item in client.history:
        if key == f"event:{event}":
            payload = item.args[0]
            name, _, n = payload["message"].rpartition(" ")
            out.setdefault(name, []).append(int(n))
    return out


async def members(puppet: NodePuppet, urls: Sequence[str], per_server: int = 2) -> list[Member]:
    """``per_server`` clients on each server (WebSocket and polling, by turns), each failing
    over to the next servers of the list, all in the room."""
    out = []
    transports = itertools.cycle((["websocket"], ["polling"]))
    for i, url in enumerate(urls):
        order = [*urls[i:], *urls[:i]]
        for j in range(per_server):
            client = await puppet.connect(url, transports=next(transports), urls=order, **RECONNECT)
            out.append(Member(client, f"M{i}{j}"))
    for member in out:
        await member.join()
    return out


async def converse(everyone: list[Member], rounds: int, during: Any = None) -> None:
    """Every member says ``rounds`` numbered messages (a few ms apart); ``during`` runs once a
    third of them are out."""
    third = asyncio.Event()

    async def talk(member: Member) -> None:
        for n in range(rounds):
            await member.say(n)
            if n == rounds // 3:
                third.set()
            await asyncio.sleep(0.02)

    async def fault() -> None:
        if during is not None:
            await third.wait()
            await during()

    await asyncio.gather(*(talk(m) for m in everyone), fault())


async def all_arrived(everyone: list[Member]) -> None:
    """A last message from each member, received by every member: everything before it has
    arrived too (per sender, in order)."""
    for member in everyone:
        await member.say(10_000)
        assert 10_000 in member.acked, member.name
    async with asyncio.timeout(10):
        while True:
            got = [received(m.client) for m in everyone]
            if all(10_000 in r.get(s.name, ()) for r in got for s in everyone):
                return
            await asyncio.sleep(0.02)


def check_exactly_once(
    everyone: list[Member], may_be_lost: int = 0, since: dict[str, int] | None = None
) -> None:
    """Per sender, each receiver got its messages in order, none twice, every acked one (but
    for ``may_be_lost`` messages the servers reported, and those numbered below
    ``since[sender]`` when given)."""
    missing = set()
    for receiver in everyone:
        got = received(receiver.client)
        for sender in everyone:
            numbers = got.get(sender.name, [])
            assert numbers == sorted(set(numbers)), (receiver.name, sender.name, numbers)
            assert set(numbers) <= set(sender.sent), (receiver.name, sender.name)
            first = 0 if since is None else since[sender.name]
            wanted = {n for n in sender.acked if n >= first}
            missing.update((sender.name, n) for n in wanted - set(numbers))
    assert len(missing) <= may_be_lost, (missing, may_be_lost)


async def test_kill_one_of_three_servers_under_traffic(
    puppet: NodePuppet, cluster: Cluster
) -> None:
    everyone = await members(puppet, cluster.urls)
    victim = cluster.servers[0]
    moved = [m for m in everyone if m.name.startswith("M0")]
    ids = {m.name: m.client.id for m in moved}

    async def kill() -> None:
        assert await victim.kill() == -9

    await converse(everyone, 30, kill)
    await all_arrived(everyone)
    for member in moved:  # back on another server, the same socket
        assert member.client.recovered and member.client.id == ids[member.name], member.name
    check_exactly_once(everyone)


@pytest.mark.parametrize("cluster", [True, False], ids=["aof", "no-aof"], indirect=True)
async def test_redis_restart_under_traffic(puppet: NodePuppet, cluster: Cluster) -> None:
    everyone = await members(puppet, cluster.urls, per_server=1)
    ids = [m.client.id for m in everyone]
    back: dict[str, int] = {}

    async def restart_redis() -> None:
        await cluster.redis.kill()
        await asyncio.sleep(0.5)
        await cluster.redis.start()
        back.update((m.name, len(m.sent)) for m in everyone)

    await converse(everyone, 30, restart_redis)
    await all_arrived(everyone)
    assert [m.client.id for m in everyone] == ids  # nobody had to reconnect
    if cluster.redis.persistent:
        check_exactly_once(everyone, may_be_lost=cluster.reported_lost())
    else:
        # Redis came back empty: each server says its position is gone; what was sent once
        # Redis was back is there, once each, in order.
        for server in cluster.servers:
            assert "no longer holds" in server.log(), server.log()
        check_exactly_once(everyone, since=back, may_be_lost=cluster.reported_lost())


async def test_rolling_restart_under_a_steady_broadcast(
    puppet: NodePuppet, cluster: Cluster
) -> None:
    everyone = await members(puppet, cluster.urls)
    ids = {m.name: m.client.id for m in everyone}
    emitter = sockjet.Emitter(cluster.redis.url, streams=True)
    stop = asyncio.Event()
    sent = 0

    async def broadcast() -> None:
        nonlocal sent
        while not stop.is_set():
            emitter.to(ROOM).emit("tick", {"message": f"tick {sent}"})
            sent += 1
            await asyncio.sleep(0.01)
        await emitter.flush()

    async def restart_all() -> None:
        try:
            for server in cluster.servers:
                await asyncio.sleep(0.5)
                assert await server.stop() == 0, server.log()
                await server.start()
            await asyncio.sleep(0.5)
        finally:
            stop.set()

    try:
        await asyncio.gather(broadcast(), restart_all())
    finally:
        await emitter.aclose()
    async with asyncio.timeout(10):
        while True:
            if all(len(received(m.client, "tick").get("tick", ())) >= sent for m in everyone):
                break
            await asyncio.sleep(0.05)
    for member in everyone:
        ticks = received(member.client, "tick")["tick"]
        assert ticks == list(range(sent)), (member.name, len(ticks), sent)
        assert member.client.recovered and member.client.id == ids[member.name], member.name
