"""A mixed cluster on one redis-server: Node socket.io 4.8 with @socket.io/redis-adapter 8.x
beside sockjet nodes, everything working in both directions; Node's @socket.io/redis-emitter
reaching sockjet clients; and the bytes on Redis compared with Node's, message for message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from peers import PuppetError
from redis_peers import NodeRedisNode, PyClient, RedisServer, redis_available, sockjet_node

import sockjet
from sockjet import RemoteSocket, Server, Socket
from sockjet.adapters.redis_codec import unpack
from sockjet.adapters.redis_protocols import SubscriptionKind

pytestmark = [
    pytest.mark.node,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not redis_available(), reason="redis-server is not installed"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def redis_server() -> AsyncIterator[RedisServer]:
    async with RedisServer() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node(redis_server: RedisServer) -> AsyncIterator[NodeRedisNode]:
    """A Node server with the classic adapter (and the emitter)."""
    async with NodeRedisNode(redis_server.url, name="n1", requests_timeout_ms=1000) as peer:
        yield peer


@pytest_asyncio.fixture(loop_scope="module")
async def stack() -> AsyncIterator[contextlib.AsyncExitStack]:
    async with contextlib.AsyncExitStack() as stack:
        yield stack


def app(io: Server) -> None:
    for nsp in (io.sockets, io.of("/chat")):

        @nsp.on("connection")
        def on_connection(socket: Socket) -> None:
            auth = socket.handshake.auth
            socket.data = {"server": "s1", "user": auth.get("user")}
            socket.join(auth.get("rooms", []))

    @io.sockets.on_server_side("ping")
    def ping(value: Any) -> dict[str, Any]:
        return {"from": "s1", "echo": value}


async def client(
    stack: contextlib.AsyncExitStack, url: str, replies: dict[str, Any] | None = None, **auth: Any
) -> PyClient:
    c = PyClient(replies)
    await c.connect(url, namespaces=("/", "/chat"), auth=auth)
    stack.push_async_callback(c.close)
    return c


async def settle(io: Server, node: NodeRedisNode, clients: list[PyClient], tag: str) -> None:
    """A sentinel from the sockjet node and one from the Node node, to every client."""
    io.emit("sentinel", f"{tag}-py")
    await node.call("emit", event="sentinel", args=[f"{tag}-node"])
    for c in clients:
        got = sorted([(await c.next("sentinel"))[0], (await c.next("sentinel"))[0]])
        assert got == [f"{tag}-node", f"{tag}-py"]


async def test_server_count_and_broadcasts_both_ways(
    redis_server: RedisServer, node: NodeRedisNode, stack: contextlib.AsyncExitStack
) -> None:
    io, url = await sockjet_node(stack, redis_server.url, app)
    assert await io.sockets.adapter.server_count() == 2
    assert await node.call("server_count") == 2
    p = await client(stack, url, user="p", rooms=["room-a"])
    na = await client(stack, node.url, user="na", rooms=["room-a"])
    nb = await client(stack, node.url, user="nb", rooms=["room-b"])
    everyone = [p, na, nb]
    # sockjet -> Node clients
    io.emit("from-py", 1, {"x": "y"}, b"\x01\x02")
    io.to("room-a").emit("py-room-a")
    io.except_("room-a").emit("py-not-a")
    io.to(nb.sid).emit("py-direct")
    io.to(["room-a", "room-b"]).emit("py-two-rooms")
    io.of("/chat").emit("py-chat")
    # Node -> sockjet clients
    await node.call("emit", event="from-node", args=[2, b"\x03"])
    await node.call("emit", event="node-room-a", rooms=["room-a"])
    await node.call("emit", event="node-not-a", **{"except": ["room-a"]})
    await node.call("emit", event="node-direct", rooms=[p.sid])
    await node.call("emit", event="node-chat", nsp="/chat")
    await node.call("emit", event="node-local", local=True)
    await settle(io, node, everyone, "t")
    for c in everyone:
        assert await c.next("from-py") == [1, {"x": "y"}, b"\x01\x02"]
        assert await c.next("from-node") == [2, b"\x03"]
        assert await c.next("py-chat", "/chat") == [] and await c.next("node-chat", "/chat") == []
        assert c.pending("py-two-rooms") == 1
    assert [c.pending("py-room-a") for c in everyone] == [1, 1, 0]
    assert [c.pending("py-not-a") for c in everyone] == [0, 0, 1]
    assert [c.pending("py-direct") for c in everyone] == [0, 0, 1]
    assert [c.pending("node-room-a") for c in everyone] == [1, 1, 0]
    assert [c.pending("node-not-a") for c in everyone] == [0, 0, 1]
    assert [c.pending("node-direct") for c in everyone] == [1, 0, 0]
    assert [c.pending("node-local") for c in everyone] == [0, 1, 1]


async def test_fetch_sockets_and_remote_sockets_both_ways(
    redis_server: RedisServer, node: NodeRedisNode, stack: contextlib.AsyncExitStack
) -> None:
    io, url = await sockjet_node(stack, redis_server.url, app)
    p = await client(stack, url, {"ask": "py-answer"}, user="p", rooms=["room-a"])
    n = await client(stack, node.url, {"ask": "node-answer"}, user="n", rooms=["room-a"])
    # sockjet fetches Node's sockets.
    found = {s.id: s for s in await io.in_("room-a").fetch_sockets()}
    assert set(found) == {p.sid, n.sid}
    remote = found[n.sid]
    assert isinstance(remote, RemoteSocket)
    assert remote.data == {"server": "n1", "user": "n"}
    assert remote.rooms == {n.sid, "room-a"}
    assert remote.handshake.auth == {"user": "n", "rooms": ["room-a"]}
    assert remote.handshake.url.startswith("/socket.io/")
    remote.emit("hi-node", 1)
    assert await n.next("hi-node") == [1]
    assert await remote.timeout(3).emit_with_ack("ask") == "node-answer"
    remote.join("from-py")
    await settle(io, node, [p, n], "j")
    assert "from-py" in await node.call("local_rooms", sid=n.sid)
    remote.leave("from-py")
    await settle(io, node, [p, n], "l")
    assert "from-py" not in await node.call("local_rooms", sid=n.sid)
    # Node fetches sockjet's sockets.
    described = {s["id"]: s for s in await node.call("fetch", rooms=["room-a"])}
    assert described[p.sid]["data"] == {"server": "s1", "user": "p"}
    assert sorted(described[p.sid]["rooms"]) == sorted([p.sid, "room-a"])
    assert described[p.sid]["auth"] == {"user": "p", "rooms": ["room-a"]}
    await node.call("remote", sid=p.sid, action="emit", event="hi-py", args=[2])
    assert await p.next("hi-py") == [2]
    assert await node.call("remote", sid=p.sid, action="ask", event="ask", ms=3000) == "py-answer"
    await node.call("remote", sid=p.sid, action="join", room="from-node")
    await settle(io, node, [p, n], "j2")
    assert "from-node" in io.sockets.sockets[p.sid].rooms
    await node.call("remote", sid=p.sid, action="disconnect")
    assert await p.next("$disconnect")
    await node.call("remote", sid=n.sid, action="disconnect")  # Node's own, for symmetry
    assert await n.next("$disconnect")


async def test_server_side_emit_both_ways(
    redis_server: RedisServer, node: NodeRedisNode, stack: contextlib.AsyncExitStack
) -> None:
    io, _ = await sockjet_node(stack, redis_server.url, app, request_timeout=0.5)
    assert await io.server_side_emit_with_ack("ping", {"n": 1}) == [
        {"from": "n1", "echo": {"n": 1}}
    ]
    assert await node.call("sse_ack", event="ping", args=[7]) == [{"from": "s1", "echo": 7}]
    io.server_side_emit("notify", "fire-and-forget", 2)
    report = await node.next_report("server_side")
    assert report["args"] == ["fire-and-forget", 2] and report["ack"] is False
    heard: asyncio.Queue[Any] = asyncio.Queue()
    io.on_server_side("notice", lambda *args: heard.put_nowait(args))
    await node.call("sse", event="notice", args=["from-node", b"\x05"])
    async with asyncio.timeout(5):
        # Node's requests are JSON: a Buffer arrives as its toJSON() form (sockjet's own
        # requests fall back to msgpack and keep bytes).
        assert await heard.get() == ("from-node", {"type": "Buffer", "data": [5]})
    # A Node server that does not answer makes a sockjet request time out, and vice versa.
    with pytest.raises(sockjet.BroadcastAckTimeout):
        await io.server_side_emit_with_ack("notify")
    await node.next_report("server_side")
    with pytest.raises(PuppetError, match="timeout reached"):
        await node.call("sse_ack", event="unanswered", timeout=8)


async def test_broadcast_acks_both_ways(
    redis_server: RedisServer, node: NodeRedisNode, stack: contextlib.AsyncExitStack
) -> None:
    io, url = await sockjet_node(stack, redis_server.url, app)
    await client(stack, url, {"poll": "p"}, rooms=["room-a"])
    await client(stack, node.url, {"poll": "n"}, rooms=["room-b"])
    assert sorted(await io.timeout(3).emit_with_ack("poll")) == ["n", "p"]
    assert await io.to("room-b").timeout(3).emit_with_ack("poll") == ["n"]
    assert sorted(await node.call("broadcast_ack", event="poll", ms=3000)) == ["n", "p"]
    assert await node.call("broadcast_ack", event="poll", rooms=["room-a"], ms=3000) == ["p"]
    assert await node.call("broadcast_ack", event="poll", rooms=["nobody"], ms=3000) == []


async def test_room_operations_both_ways(
    redis_server: RedisServer, node: NodeRedisNode, stack: contextlib.AsyncExitStack
) -> None:
    io, url = await sockjet_node(stack, redis_server.url, app)
    p = await client(stack, url, user="p")
    n = await client(stack, node.url, user="n", rooms=["vip"])
    io.in_("vip").sockets_join("lounge")
    await node.call("join", target=["hall"])
    await settle(io, node, [p, n], "1")
    assert {s.id for s in await io.in_("lounge").fetch_sockets()} == {n.sid}
    assert {s.id for s in await io.in_("hall").fetch_sockets()} == {p.sid, n.sid}
    assert set(await node.call("all_rooms")) >= {"lounge", "hall", p.sid, n.sid}
    rooms = await io.sockets.adapter.all_rooms()  # type: ignore[attr-defined]
    assert rooms >= {"lounge", "hall", "vip"}
    await node.call("leave", **{"except": ["vip"]}, target=["hall"])
    io.in_(n.sid).sockets_leave("lounge")
    await settle(io, node, [p, n], "2")
    assert {s["id"] for s in await node.call("fetch", rooms=["hall"])} == {n.sid}
    assert await io.in_("lounge").fetch_sockets() == []
    io.in_("vip").disconnect_sockets()
    assert await n.next("$disconnect")
    await node.call("disconnect", close=True)
    assert await p.next("$disconnect")


async def test_node_emitter_reaches_sockjet_clients(
    redis_server: RedisServer, node: NodeRedisNode, stack: contextlib.AsyncExitStack
) -> None:
    io, url = await sockjet_node(stack, redis_server.url, app)
    a = await client(stack, url, rooms=["room-a"])
    b = await client(stack, url)
    heard: asyncio.Queue[Any] = asyncio.Queue()
    io.on_server_side("emitter-ping", lambda *args: heard.put_nowait(args))
    await node.call("emitter_emit", event="from-emitter", args=[1, {"a": "b"}, b"\x09"])
    await node.call("emitter_emit", event="emitter-room-a", rooms=["room-a"])
    await node.call("emitter_emit", event="emitter-except", **{"except": ["room-a"]})
    await node.call("emitter_emit", event="emitter-vol", volatile=True)
    await node.call("emitter_emit", event="emitter-chat", nsp="/chat")
    await node.call("emitter_join", rooms=[b.sid], target=["room-e"])
    await node.call("emitter_sse", event="emitter-ping", args=["from-emitter"])
    for c in (a, b):
        assert await c.next("from-emitter") == [1, {"a": "b"}, b"\x09"]
        assert await c.next("emitter-vol") == []
        assert await c.next("emitter-chat", "/chat") == []
    assert await a.next("emitter-room-a") == [] and await b.next("emitter-except") == []
    async with asyncio.timeout(5):
        assert await heard.get() == ("from-emitter",)
    await settle(io, node, [a, b], "e")
    assert [a.pending("emitter-except"), b.pending("emitter-room-a")] == [0, 0]
    assert {s.id for s in await io.in_("room-e").fetch_sockets()} == {b.sid}
    await node.call("emitter_leave", rooms=[b.sid], target=["room-e"])
    await node.call("emitter_disconnect", rooms=["room-a"], close=True)
    assert await a.next("$disconnect")
    await settle(io, node, [b], "e2")
    assert await io.in_("room-e").fetch_sockets() == []


async def room_subscribed(io: Server, room: str, key: str = "sharded") -> None:
    """Wait until a sharded sockjet node's subscription to ``room``'s channel is confirmed."""
    bus = io.sockets.adapter._bus  # type: ignore[attr-defined]
    channel = f"{key}#/#{room}#".encode()
    async with asyncio.timeout(5):
        await bus.wait_subscribed([(SubscriptionKind.SHARD, channel)])


async def captured(redis_url: str, count: int, actions: Any) -> list[tuple[str, bytes]]:
    """The first ``count`` messages published on ``socket.io*`` while ``actions()`` runs."""
    raw = aioredis.Redis.from_url(redis_url)
    pubsub = raw.pubsub()
    try:
        await pubsub.psubscribe("socket.io*")
        assert (await pubsub.get_message(timeout=2))["type"] == "psubscribe"
        await actions()
        out = []
        async with asyncio.timeout(5):
            while len(out) < count:
                message = await pubsub.get_message(timeout=1)
                if message is not None and message["type"] == "pmessage":
                    out.append((message["channel"].decode(), message["data"]))
        return out
    finally:
        await pubsub.aclose()
        await raw.aclose()


def without_uid(channel: str, payload: bytes) -> tuple[str, bytes]:
    """A message with its 6-character node id blanked (msgpack array or JSON)."""
    if payload[:1] == b"{":
        return channel, re.sub(rb'"uid":"[^"]{6}"', b'"uid":"------"', payload)
    assert payload[:2] == b"\x93\xa6"
    return channel, payload[:2] + b"------" + payload[8:]


async def test_wire_bytes_are_nodes(
    redis_server: RedisServer, node: NodeRedisNode, stack: contextlib.AsyncExitStack
) -> None:
    """Node and sockjet publish the same bytes for the same operation."""
    io, _ = await sockjet_node(stack, redis_server.url, app)
    emitter = sockjet.Emitter(redis_server.url)
    stack.push_async_callback(emitter.aclose)
    sid = "pbM0rnSpDOcskq7KAAAB"
    args = [1, {"a": "b"}, b"\x01\x02", [True, None, 1.5]]

    async def node_side() -> None:
        await node.call("emitter_emit", event="e", args=args)
        await node.call("emitter_emit", event="r", rooms=["room-a"], volatile=True)
        await node.call("emitter_join", rooms=[sid], target=["room-e"])
        await node.call("emitter_disconnect", rooms=[sid], close=True)
        await node.call("emitter_sse", event="s", args=[1])
        await node.call("emit", event="a", args=args)
        await node.call("emit", event="b", rooms=["room-a"], **{"except": ["x"]})
        await node.call("join", rooms=[sid], target=["room-x"])
        await node.call("disconnect", rooms=["room-kick"], close=True)
        await node.call("sse", event="s", args=["x", 2])

    async def python_side() -> None:
        emitter.emit("e", *args)
        emitter.to("room-a").volatile.emit("r")
        emitter.in_(sid).sockets_join("room-e")
        emitter.in_(sid).disconnect_sockets(True)
        await emitter.server_side_emit("s", 1)
        io.emit("a", *args)
        io.to("room-a").except_("x").emit("b")
        io.in_(sid).sockets_join("room-x")
        io.in_("room-kick").disconnect_sockets(close=True)
        io.server_side_emit("s", "x", 2)

    from_node = await captured(redis_server.url, 10, node_side)
    from_python = await captured(redis_server.url, 10, python_side)
    assert from_node[:5] == from_python[:5]  # the emitters: identical, byte for byte
    assert [without_uid(*m) for m in from_node[5:]] == [without_uid(*m) for m in from_python[5:]]
    assert json.loads(from_python[7][1])["uid"] == io.sockets.adapter.uid  # type: ignore[attr-defined]
    assert unpack(from_python[5][1])[1]["data"] == ["a", *args]


async def test_sharded_mixed_cluster(
    redis_server: RedisServer, stack: contextlib.AsyncExitStack
) -> None:
    node = await stack.enter_async_context(
        NodeRedisNode(redis_server.url, name="n2", sharded=True, key="sharded")
    )
    io, url = await sockjet_node(stack, redis_server.url, app, sharded=True, key="sharded")
    assert await io.sockets.adapter.server_count() == 2
    assert await node.call("server_count") == 2
    p = await client(stack, url, {"poll": "p"}, user="p", rooms=["room-a"])
    n = await client(stack, node.url, {"poll": "n"}, user="n", rooms=["room-b"])
    # A node subscribes to a room's channel when the room appears there, without waiting
    # (in Node as in sockjet): wait for those subscriptions before using them.
    await node.call("sync_subscriptions")
    await room_subscribed(io, "room-a")
    io.emit("py-all", b"\x01")
    io.to("room-b").emit("py-room-b")
    await node.call("emit", event="node-all", args=[b"\x02"])
    await node.call("emit", event="node-room-a", rooms=["room-a"])
    await node.call("emit", event="node-direct", rooms=[p.sid])
    for c in (p, n):
        assert await c.next("py-all") == [b"\x01"] and await c.next("node-all") == [b"\x02"]
    assert await n.next("py-room-b") == [] and await p.next("node-room-a") == []
    assert await p.next("node-direct") == []
    found = {s.id: s for s in await io.fetch_sockets()}
    assert set(found) == {p.sid, n.sid} and found[n.sid].data == {"server": "n2", "user": "n"}
    described = {s["id"]: s for s in await node.call("fetch")}
    assert described[p.sid]["data"] == {"server": "s1", "user": "p"}
    assert await io.server_side_emit_with_ack("ping", 3) == [{"from": "n2", "echo": 3}]
    assert await node.call("sse_ack", event="ping", args=[4]) == [{"from": "s1", "echo": 4}]
    assert sorted(await io.timeout(3).emit_with_ack("poll")) == ["n", "p"]
    assert sorted(await node.call("broadcast_ack", event="poll", ms=3000)) == ["n", "p"]
    await node.call("join", rooms=[p.sid], target=["late"])
    await node.call("emit", event="sentinel", args=["s"])
    assert await p.next("sentinel") == ["s"]
    await room_subscribed(io, "late")
    await node.call("emit", event="node-late", rooms=["late"])
    assert await p.next("node-late") == []
    io.in_("room-b").disconnect_sockets()
    assert await n.next("$disconnect")
