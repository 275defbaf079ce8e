"""One chat across a mixed cluster on a private redis-server: the Node chat that `sockjet chat`
replaces (socket.io 4.8, @socket.io/redis-adapter) beside two `sockjet chat --redis` processes,
with official socket.io-client peers on every server, WebSocket-only, polling-only and
upgrading, all in one room.

Each client must see every other client's joins, messages, typing and leaving exactly once, and
each sender's in the order it sent them (its join and first messages go out in one batch, without
waiting for the join's answer); @socket.io/redis-emitter reaches the room by its name on every
server; a second room hears nothing of the first; a room named like a socket anywhere in the
cluster is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from chat_peers import ChatProcess, NodeChat, PrivateRedis, free_port
from peers import NodeClient, NodePuppet
from redis_peers import NodeRedisNode

pytestmark = [
    pytest.mark.node,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server"),
]

ROOM = "lobby"
OTHER = "elsewhere"
TRANSPORTS: dict[str, dict[str, Any]] = {
    "ws": {"transports": ["websocket"]},
    "poll": {"transports": ["polling"]},
    "up": {},  # polling first, then the upgrade to WebSocket
}
CHAT_EVENTS = ("userJoined", "receiveMessage", "userTyping", "userLeft")
Seen = tuple[str, str, str | None]
"""(event, who caused it, the message's text for receiveMessage)."""


@dataclass
class Cluster:
    urls: dict[str, str]  # server name -> URL
    emitter: NodeRedisNode
    processes: list[ChatProcess]


@pytest_asyncio.fixture(loop_scope="module")
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with contextlib.AsyncExitStack() as stack:
        redis = await stack.enter_async_context(PrivateRedis())
        db = f"sqlite:///{tmp_path}/chat.db"
        heartbeat = ("--ping-interval", "5", "--ping-timeout", "10")
        one = ChatProcess(free_port(), db, "--redis", redis.url, *heartbeat)
        two = ChatProcess(free_port(), db, "--redis", redis.url, *heartbeat)
        node = NodeChat(redis.url, ping_interval=5, ping_timeout=10)
        emitter = NodeRedisNode(redis.url, name="emitter", server=False)
        stack.push_async_callback(one.stop)
        stack.push_async_callback(two.stop)
        await asyncio.gather(
            one.start(),
            two.start(),
            stack.enter_async_context(node),
            stack.enter_async_context(emitter),
        )
        yield Cluster({"node": node.url, "py1": one.url, "py2": two.url}, emitter, [one, two])
        codes = await asyncio.gather(one.stop(), two.stop())
        assert codes == [0, 0], one.log() + two.log()


@dataclass
class Member:
    """One official client in the chat, and what it sent, in order."""

    client: NodeClient
    name: str
    server: str
    transport: str
    room: str
    sent: list[Seen]

    @property
    def user(self) -> dict[str, str]:
        return {"userId": self.name.lower(), "username": self.name}

    def join_payload(self) -> dict[str, str]:
        return {"roomId": self.room, **self.user}

    def say(self, text: str) -> tuple[str, list[Any]]:
        self.sent.append(("receiveMessage", self.name, text))
        return ("sendMessage", [{"roomId": self.room, "message": text}])

    def type(self) -> tuple[str, list[Any]]:
        self.sent.append(("userTyping", self.name, None))
        return ("typing", [{"roomId": self.room}])


def seen(client: NodeClient) -> list[Seen]:
    """Every chat event the client received, in arrival order."""
    out: list[Seen] = []
    for key, item in client.history:
        if key.startswith("event:") and item.event in CHAT_EVENTS:
            (payload,) = item.args
            text = payload["message"] if item.event == "receiveMessage" else None
            out.append((item.event, payload["username"], text))
    return out


def from_sender(events: Sequence[Seen], name: str) -> list[Seen]:
    return [e for e in events if e[1] == name]


async def expect(member: Member, event: str, sender: str, count: int = 1) -> None:
    """Wait for ``count`` more ``event`` from ``sender`` (each one checked as it comes)."""
    for _ in range(count):
        (payload,) = await member.client.next_event(event)
        assert payload["username"] == sender, (member.name, event, payload)


async def count(member: Member, event: str, n: int) -> None:
    for _ in range(n):
        await member.client.next_event(event)


async def test_one_chat_across_node_and_sockjet_servers(
    puppet: NodePuppet, cluster: Cluster
) -> None:
    # Joining order: the first three join one per server, Node's first (it joins without
    # asking the cluster: nothing may still be on its way to it), so that from then on every
    # server has a member to prove it has delivered everything sent before the next join.
    members: list[Member] = []
    for transport in TRANSPORTS:
        for server in ("node", "py1", "py2"):
            client = await puppet.connect(cluster.urls[server], **TRANSPORTS[transport])
            name = f"{server.capitalize()}{transport.capitalize()}"
            members.append(Member(client, name, server, transport, ROOM, []))
    outsiders = [
        Member(await puppet.connect(cluster.urls[s]), f"Out{s.capitalize()}", s, "up", OTHER, [])
        for s in ("node", "py1", "py2")
    ]
    for outsider in outsiders:
        (reply,) = await outsider.client.emit_with_ack("joinRoom", outsider.join_payload())
        assert reply["ok"], reply
        outsider.sent.append(("userJoined", outsider.name, None))
        for earlier in outsiders[: outsiders.index(outsider)]:
            await expect(earlier, "userJoined", outsider.name)

    # Phase 1, one member after the other: the join and three events in one go.
    joined: list[Member] = []
    for member in members:
        member.sent.append(("userJoined", member.name, None))
        join = asyncio.ensure_future(
            member.client.emit_with_ack("joinRoom", member.join_payload(), wait=10)
        )
        await asyncio.sleep(0)  # one turn of the loop: the join goes to the puppet first
        await member.client.emit_many([member.say(f"{member.name} 1"), member.type()])
        await member.client.emit_many([member.say(f"{member.name} 2")])
        (reply,) = await join
        assert reply["ok"], reply
        joined.append(member)
        # Who is online is the same on every server, the newcomer included.
        names = sorted((m.name for m in joined), key=str.casefold)
        assert [u["username"] for u in reply["online"]] == names, (member.name, reply)
        for earlier in joined[:-1]:
            await expect(earlier, "userJoined", member.name)
            await expect(earlier, "receiveMessage", member.name, 2)
            await expect(earlier, "userTyping", member.name)
        await expect(member, "receiveMessage", member.name, 2)

    # Phase 2, everyone at once; the polling-only members leave at the end of their batch.
    leavers = [m for m in members if m.transport == "poll"]
    stayers = [m for m in members if m not in leavers]
    batches = []
    for member in members:
        batch = [member.type(), member.say(f"{member.name} 3"), member.say(f"{member.name} 4")]
        if member in leavers:
            member.sent.append(("userLeft", member.name, None))
            batch.append(("leaveRoom", [{"roomId": ROOM}]))
        batches.append(member.client.emit_many(batch))
    batches.extend(o.client.emit_many([o.type(), o.say(f"{o.name} x")]) for o in outsiders)
    await asyncio.gather(*batches)
    # All of it arrives (who sent what, and in which order, is checked below).
    for member in stayers:
        await count(member, "userTyping", len(members) - 1)
        await count(member, "receiveMessage", 2 * len(members))
        await count(member, "userLeft", len(leavers))
    for outsider in outsiders:
        await count(outsider, "userTyping", len(outsiders) - 1)
        await count(outsider, "receiveMessage", len(outsiders))

    # The Node emitter reaches the room by its name, on every server.
    await cluster.emitter.call("emitter_emit", event="announcement", rooms=[ROOM], args=["hi"])
    await cluster.emitter.call("emitter_emit", event="sentinel")  # to everyone, after it
    everyone = members + outsiders
    for member in everyone:
        await member.client.next_event("sentinel")
    for member in everyone:
        assert member.client.pending("announcement") == (1 if member in stayers else 0), member

    # Exactly once and in order: per sender, what each client saw is what it sent.
    for receiver in everyone:
        events = seen(receiver.client)
        for sender in everyone:
            got = from_sender(events, sender.name)
            if sender.room != receiver.room:
                assert got == [], (receiver.name, sender.name, got)  # rooms are isolated
                continue
            sent = sender.sent
            if sender is receiver:
                expected = [e for e in sent if e[0] == "receiveMessage"]  # its own messages
            elif sender in members and members.index(sender) < members.index(receiver):
                expected = sent[4:]  # it joined before the receiver: its phase 2 only
            elif sender in outsiders and outsiders.index(sender) < outsiders.index(receiver):
                expected = sent[1:]
            else:
                expected = sent
            if receiver in leavers and sender is not receiver:
                # A leaver saw the others' phase 2 until it left: a prefix of it.
                assert got == expected[: len(got)], (receiver.name, sender.name, got, expected)
                assert len(got) >= len(expected) - len(sent[4:])
            else:
                assert got == expected, (receiver.name, sender.name, got, expected)

    # A room named like a socket, anywhere in the cluster, is refused.
    asker = next(m for m in stayers if m.server == "py1")
    for target in ("node", "py2"):
        other = next(m for m in stayers if m.server == target)
        (reply,) = await asker.client.emit_with_ack(
            "joinRoom", {"roomId": other.client.id, **asker.user}
        )
        assert reply == {"ok": False, "error": "this room name is taken: choose another"}

    # The transports were what they were meant to be, the upgrade included.
    for member in everyone:
        if member.transport == "up":
            assert await member.client.wait_upgrade() == "websocket"
        want = {"ws": "websocket", "poll": "polling", "up": "websocket"}[member.transport]
        assert await member.client.transport() == want
    for process in cluster.processes:
        assert "Traceback" not in process.log(), process.log()
