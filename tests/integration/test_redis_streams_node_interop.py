"""A mixed cluster on the Redis Streams protocol, on one redis-server: Node socket.io 4.8 with
@socket.io/redis-streams-adapter 0.3 beside sockjet nodes with the streams adapter, connection
state recovery on everywhere. The checks of the classic mixed cluster
(test_redis_node_interop.py) pass here too, in both directions; every client sees the same stream
offset for a broadcast, whichever server sent it or delivered it; sockjet's Emitter reaches Node's
clients and sockjet's; the official client that left a Node server recovers on a sockjet server
and the other way round (WebSocket and polling); and the entries and messages on Redis are Node's,
byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from peers import NodePuppet, PuppetError
from redis_peers import (
    NodeRedisNode,
    PyClient,
    RedisServer,
    redis_available,
    sockjet_streams_node,
)

import sockjet
from sockjet import RemoteSocket, Server, Socket
from sockjet.adapters.redis_codec import unpack
from sockjet.adapters.redis_streams import SessionRecord, StreamsAdapter
from sockjet.server.recovery import ConnectionStateRecovery

pytestmark = [
    pytest.mark.node,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not redis_available(), reason="redis-server is not installed"),
]

OFFSET = re.compile(r"[0-9]+-[0-9]+")
RECOVERY = ConnectionStateRecovery(max_disconnection_duration=30)
RECONNECT_FAST = {"reconnection": True, "reconnectionDelay": 50, "reconnectionDelayMax": 100}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def redis_server() -> AsyncIterator[RedisServer]:
    async with RedisServer() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node(redis_server: RedisServer) -> AsyncIterator[NodeRedisNode]:
    """A Node server with the streams adapter and connection state recovery."""
    async with NodeRedisNode(redis_server.url, name="n1", streams=True, recovery_ms=30_000) as peer:
        yield peer


@pytest_asyncio.fixture(loop_scope="module")
async def stack() -> AsyncIterator[contextlib.AsyncExitStack]:
    async with contextlib.AsyncExitStack() as stack:
        yield stack


def app(io: Server) -> None:
    for nsp in (io.sockets, io.of("/chat")):

        @nsp.on("connection")
        def on_connection(socket: Socket) -> None:
            if socket.recovered:
                return
            auth = socket.handshake.auth
            socket.data = {"server": "s1", "user": auth.get("user")}
            socket.join(auth.get("rooms", []))

    @io.on("join")
    def join(socket: Socket, room: str) -> str:
        socket.join(room)
        return room

    @io.on("whoami")
    def whoami(socket: Socket) -> dict[str, Any]:
        return {"id": socket.id, "rooms": sorted(socket.rooms), "data": socket.data, "server": "s1"}

    @io.sockets.on_server_side("ping")
    def ping(value: Any) -> dict[str, Any]:
        return {"from": "s1", "echo": value}


async def sockjet_server(
    stack: contextlib.AsyncExitStack, redis: RedisServer, **options: Any
) -> tuple[Server, str]:
    return await sockjet_streams_node(stack, redis.url, app, recovery=RECOVERY, **options)


async def client(
    stack: contextlib.AsyncExitStack, url: str, replies: dict[str, Any] | None = None, **auth: Any
) -> PyClient:
    c = PyClient(replies)
    await c.connect(url, namespaces=("/", "/chat"), auth=auth)
    stack.push_async_callback(c.close)
    return c


async def recorded(c: PyClient, event: str, namespace: str = "/") -> tuple[list[Any], str]:
    """The next ``event``: its arguments, and the stream offset appended to them."""
    args = await c.next(event, namespace)
    assert args and isinstance(args[-1], str) and OFFSET.fullmatch(args[-1]), (event, args)
    return args[:-1], args[-1]


async def settle(io: Server, node: NodeRedisNode, clients: list[PyClient], tag: str) -> None:
    """A sentinel from the sockjet node and one from the Node node, to every client."""
    io.emit("sentinel", f"{tag}-py")
    await node.call("emit", event="sentinel", args=[f"{tag}-node"])
    for c in clients:
        got = sorted([(await recorded(c, "sentinel"))[0][0], (await recorded(c, "sentinel"))[0][0]])
        assert got == [f"{tag}-node", f"{tag}-py"]


async def test_server_count_and_broadcasts_both_ways(
    redis_server: RedisServer, node: NodeRedisNode, stack: contextlib.AsyncExitStack
) -> None:
    io, url = await sockjet_server(stack, redis_server)
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
    # Volatile packets (sent once the connections are idle: they may be dropped otherwise)
    # carry no offset: they are not replayed on recovery.
    io.volatile.emit("py-volatile")
    await node.call("emit", event="node-volatile", volatile=True)
    await settle(io, node, everyone, "v")
    offsets: dict[str, set[str]] = {"from-py": set(), "from-node": set()}
    for c in everyone:
        args, offset = await recorded(c, "from-py")
        assert args == [1, {"x": "y"}, b"\x01\x02"]
        offsets["from-py"].add(offset)
        args, offset = await recorded(c, "from-node")
        assert args == [2, b"\x03"]
        offsets["from-node"].add(offset)
        assert (await recorded(c, "py-chat", "/chat"))[0] == []
        assert (await recorded(c, "node-chat", "/chat"))[0] == []
        assert c.pending("py-two-rooms") == 1
        assert await c.next("py-volatile") == [] and await c.next("node-volatile") == []
    # One offset per broadcast, the same for every client, from whichever server.
    assert all(len(found) == 1 for found in offsets.values()), offsets
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
    io, url = await sockjet_server(stack, redis_server)
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
    remote.emit("hi-node", 1)
    assert (await recorded(n, "hi-node"))[0] == [1]
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
    assert (await recorded(p, "hi-py"))[0] == [2]
    assert await node.call("remote", sid=p.sid, action="ask", event="ask", ms=3000) == "py-answer"
    await node.call("remote", sid=p.sid, action="join", room="from-node")
    await settle(io, node, [p, n], "j2")
    assert "from-node" in io.sockets.sockets[p.sid].rooms
    await node.call("remote", sid=p.sid, action="disconnect")
    assert await p.next("$disconnect")
    await node.call("remote", sid=n.sid, action="disconnect")
    assert await n.next("$disconnect")


async def test_server_side_emit_both_ways(
    redis_server: RedisServer, node: NodeRedisNode, stack: contextlib.AsyncExitStack
) -> None:
    io, _ = await sockjet_server(stack, redis_server, request_timeout=0.5)
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
        # msgpack on this protocol's pub/sub: a Buffer stays bytes.
        assert await heard.get() == ("from-node", b"\x05")
    with pytest.raises(sockjet.BroadcastAckTimeout):
        await io.server_side_emit_with_ack("notify")
    await node.next_report("server_side")
    with pytest.raises(PuppetError, match="timeout reached"):
        await node.call("sse_ack", event="unanswered", timeout=8)


async def test_broadcast_acks_both_ways(
    redis_server: RedisServer, node: NodeRedisNode, stack: contextlib.AsyncExitStack
) -> None:
    io, url = await sockjet_server(stack, redis_server)
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
    io, url = await sockjet_server(stack, redis_server)
    p = await client(stack, url, user="p")
    n = await client(stack, node.url, user="n", rooms=["vip"])
    io.in_("vip").sockets_join("lounge")
    await node.call("join", target=["hall"])
    await settle(io, node, [p, n], "1")
    assert {s.id for s in await io.in_("lounge").fetch_sockets()} == {n.sid}
    assert {s.id for s in await io.in_("hall").fetch_sockets()} == {p.sid, n.sid}
    await node.call("leave", **{"except": ["vip"]}, target=["hall"])
    io.in_(n.sid).sockets_leave("lounge")
    await settle(io, node, [p, n], "2")
    assert {s["id"] for s in await node.call("fetch", rooms=["hall"])} == {n.sid}
    assert await io.in_("lounge").fetch_sockets() == []
    io.in_("vip").disconnect_sockets()
    assert await n.next("$disconnect")
    await node.call("disconnect", close=True)
    assert await p.next("$disconnect")


async def test_sockjet_emitter_reaches_node_and_sockjet_clients(
    redis_server: RedisServer, node: NodeRedisNode, stack: contextlib.AsyncExitStack
) -> None:
    """Node's @socket.io/redis-streams-emitter was never published: sockjet's Emitter speaks
    the protocol (stream entries, a pub/sub server-side emit)."""
    io, url = await sockjet_server(stack, redis_server)
    emitter = sockjet.Emitter(redis_server.url, streams=True)
    stack.push_async_callback(emitter.aclose)
    a = await client(stack, url, rooms=["room-a"])
    b = await client(stack, node.url)
    heard: asyncio.Queue[Any] = asyncio.Queue()
    io.on_server_side("emitter-ping", lambda *args: heard.put_nowait(args))
    await emitter.emit("from-emitter", 1, {"a": "b"}, b"\x09")
    await emitter.to("room-a").emit("emitter-room-a")
    await emitter.except_("room-a").emit("emitter-except")
    await emitter.volatile.emit("emitter-vol")
    await emitter.of("/chat").emit("emitter-chat")
    await emitter.in_(b.sid).sockets_join("room-e")
    await emitter.server_side_emit("emitter-ping", "from-emitter")
    offsets = set()
    for c in (a, b):
        args, offset = await recorded(c, "from-emitter")
        assert args == [1, {"a": "b"}, b"\x09"]
        offsets.add(offset)
        assert await c.next("emitter-vol") == []
        assert (await recorded(c, "emitter-chat", "/chat"))[0] == []
    assert len(offsets) == 1
    assert (await recorded(a, "emitter-room-a"))[0] == []
    assert (await recorded(b, "emitter-except"))[0] == []
    async with asyncio.timeout(5):
        assert await heard.get() == ("from-emitter",)
    await settle(io, node, [a, b], "e")
    assert [a.pending("emitter-except"), b.pending("emitter-room-a")] == [0, 0]
    assert {s.id for s in await io.in_("room-e").fetch_sockets()} == {b.sid}
    await emitter.in_(b.sid).sockets_leave("room-e")
    await emitter.in_("room-a").disconnect_sockets(close=True)
    assert await a.next("$disconnect")
    await settle(io, node, [b], "e2")
    assert await io.in_("room-e").fetch_sockets() == []


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_recovery_from_node_to_sockjet_and_back(
    puppet: NodePuppet,
    redis_server: RedisServer,
    node: NodeRedisNode,
    stack: contextlib.AsyncExitStack,
    transport: str,
) -> None:
    """The official client leaves the Node server and recovers on sockjet's (Node's session
    record, Node's offsets), then leaves sockjet's and recovers on Node's (sockjet's record)."""
    io, url = await sockjet_server(stack, redis_server)
    c = await puppet.connect(
        node.url,
        transports=[transport],
        urls=[node.url, url],
        auth={"user": "ada"},
        **RECONNECT_FAST,
    )
    sid = c.id
    assert await c.emit_with_ack("join", "r1") == ["r1"]
    io.to("r1").emit("live", 1)
    assert (await c.next_event("live"))[0] == 1

    async def away_and_back(missed_from: list[str]) -> None:
        if transport == "websocket":
            await c.drop()
        else:
            await c.close_engine()
        assert (await c.wait_disconnect()) in ("transport close", "forced close")
        # While it is away (its old server notices at once): one packet from each server.
        io.to("r1").emit("missed", "s1")
        await node.call("emit", event="missed", rooms=["r1"], args=["n1"])
        io.emit("missed-by-all", "s1")
        await c.wait_connect()
        assert c.recovered and c.id == sid
        assert sorted([(await c.next_event("missed"))[0] for _ in missed_from]) == missed_from
        assert (await c.next_event("missed-by-all"))[0] == "s1"

    await away_and_back(["n1", "s1"])
    # On sockjet's server now: rooms and the data Node gave it came along.
    [me] = await c.emit_with_ack("whoami")
    assert me == {
        "id": sid,
        "rooms": sorted([sid, "r1"]),
        "data": {"server": "n1", "user": "ada"},
        "server": "s1",
    }
    await away_and_back(["n1", "s1"])
    [me] = await c.emit_with_ack("whoami")
    assert me["server"] == "n1" and me["rooms"] == sorted([sid, "r1"])
    assert me["data"] == {"server": "n1", "user": "ada"}
    assert c.pending("missed") == c.pending("missed-by-all") == 0
    await c.disconnect()


async def test_node_recovers_what_a_sockjet_server_recorded_while_connected(
    puppet: NodePuppet,
    redis_server: RedisServer,
    node: NodeRedisNode,
    stack: contextlib.AsyncExitStack,
) -> None:
    """sockjet keeps a connected socket's record in Redis: a Node server recovers the session
    from it even though the sockjet server never saw the client leave (here it hops away without
    a word; a killed server is the same for Redis)."""
    io, url = await sockjet_server(stack, redis_server, handover_timeout=0.5)
    c = await puppet.connect(url, transports=["websocket"], urls=[url, node.url], **RECONNECT_FAST)
    sid = c.id
    assert await c.emit_with_ack("join", "r2") == ["r2"]
    io.to("r2").emit("live")
    await c.next_event("live")
    raw = aioredis.Redis.from_url(redis_server.url)
    stack.push_async_callback(raw.aclose)
    adapter = io.sockets.adapter
    assert isinstance(adapter, StreamsAdapter)
    pid = io.sockets.sockets[sid]._pid
    async with asyncio.timeout(5):
        while True:  # the live record, once it has the room
            value = await raw.get(f"sio:session:{pid}")
            if value is not None and "r2" in SessionRecord.decode(value).rooms:
                break
            await asyncio.sleep(0.01)
    await c.hop()
    await node.call("emit", event="missed", rooms=["r2"])
    await c.wait_connect()
    assert c.recovered and c.id == sid
    [me] = await c.emit_with_ack("whoami")
    assert me["server"] == "n1" and me["rooms"] == sorted([sid, "r2"])
    await c.disconnect()


async def captured_pubsub(redis_url: str, count: int, actions: Any) -> list[tuple[str, Any]]:
    """The first ``count`` messages published on ``socket.io*`` while ``actions()`` runs,
    decoded (msgpack)."""
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


async def test_wire_bytes_are_nodes(
    redis_server: RedisServer, node: NodeRedisNode, stack: contextlib.AsyncExitStack
) -> None:
    """Node and sockjet write the same stream entries and publish the same bytes for the same
    operations (but for the node ids and request ids, random on both sides)."""
    io, _ = await sockjet_server(stack, redis_server)
    raw = aioredis.Redis.from_url(redis_server.url)
    stack.push_async_callback(raw.aclose)
    sid = "pbM0rnSpDOcskq7KAAAB"
    args = [1, {"a": "b"}, b"\x01\x02", [True, None, 1.5], "é"]

    async def stream_entries(actions: Any) -> list[list[tuple[bytes, bytes]]]:
        [(last, _)] = await raw.xrevrange("socket.io", count=1) or [(b"0-0", {})]
        await actions()
        async with asyncio.timeout(5):
            while True:
                entries = await raw.xrange("socket.io", min=b"(" + last)
                if len(entries) >= 4:
                    break
                await asyncio.sleep(0.01)
        return [
            [(k, b"-" if k == b"uid" else v) for k, v in fields.items()] for _, fields in entries
        ]

    async def node_stream() -> None:
        await node.call("emit", event="a", args=args)
        await node.call("emit", event="b", rooms=["room-a"], **{"except": ["x"]})
        await node.call("join", rooms=[sid], target=["room-x"])
        await node.call("disconnect", rooms=["room-kick"], close=True)

    async def python_stream() -> None:
        io.emit("a", *args)
        io.to("room-a").except_("x").emit("b")
        io.in_(sid).sockets_join("room-x")
        io.in_("room-kick").disconnect_sockets(close=True)

    from_node = await stream_entries(node_stream)
    from_python = await stream_entries(python_stream)
    assert from_node == from_python
    assert from_python[0][:3] == [
        (b"uid", b"-"),
        (b"nsp", b"/"),
        (b"type", b"3"),
    ]
    assert not from_python[0][3][1].startswith(b"{")  # binary: base64 of msgpack

    async def node_pubsub() -> None:
        await node.call("sse", event="s", args=["x", 2, b"\x03"])

    async def python_pubsub() -> None:
        io.server_side_emit("s", "x", 2, b"\x03")

    [(channel_n, payload_n)] = await captured_pubsub(redis_server.url, 1, node_pubsub)
    [(channel_p, payload_p)] = await captured_pubsub(redis_server.url, 1, python_pubsub)
    assert channel_n == channel_p == "socket.io#/#"
    node_uid = unpack(payload_n)["uid"]
    assert payload_p == payload_n.replace(node_uid.encode(), io.sockets.adapter.uid.encode())  # type: ignore[attr-defined]
