"""sockjet servers in one cluster over a real redis-server: what the socket.io docs say works
across nodes, working across two and three sockjet nodes (classic and sharded protocols), with
python-socketio clients connected to different nodes.

"Did not receive" is asserted without sleeping: a sentinel broadcast follows the emits under
test, and per-connection ordering means anything sent before it has arrived by then.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis_peers import PyClient, RedisServer, adapter_of, redis_available, sockjet_node

import sockjet
from sockjet import RemoteSocket, Server, Socket
from sockjet.adapters.redis import RequestTimeout
from sockjet.adapters.redis_protocols import SubscriptionKind
from sockjet.server.acks import BroadcastAckTimeout

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not redis_available(), reason="redis-server is not installed"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def redis_server() -> AsyncIterator[RedisServer]:
    async with RedisServer() as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def stack() -> AsyncIterator[contextlib.AsyncExitStack]:
    async with contextlib.AsyncExitStack() as stack:
        yield stack


def app(name: str) -> Any:
    """Handlers every sockjet node of these tests has."""

    def setup(io: Server) -> None:
        for nsp in (io.sockets, io.of("/chat")):

            @nsp.on("connection")
            def on_connection(socket: Socket) -> None:
                auth = socket.handshake.auth
                socket.data = {"server": name, "user": auth.get("user")}
                socket.join(auth.get("rooms", []))

            @nsp.on("shout")
            def shout(socket: Socket, text: str) -> None:
                socket.broadcast.emit("shouted", text)

        @io.sockets.on_server_side("ping")
        def ping(value: Any) -> dict[str, Any]:
            return {"from": name, "echo": value}

    return setup


async def nodes(
    stack: contextlib.AsyncExitStack, url: str, count: int, **options: Any
) -> list[tuple[Server, str]]:
    return [await sockjet_node(stack, url, app(f"s{i + 1}"), **options) for i in range(count)]


async def client(
    stack: contextlib.AsyncExitStack, url: str, replies: dict[str, Any] | None = None, **auth: Any
) -> PyClient:
    c = PyClient(replies)
    await c.connect(url, namespaces=("/", "/chat"), auth=auth)
    stack.push_async_callback(c.close)
    return c


async def settle(ios: Server | list[Server], clients: list[PyClient], tag: str) -> None:
    """A sentinel from every node in ``ios`` to every client: each node's messages arrive in
    the order it sent them, so whatever those nodes sent before has arrived after this."""
    servers = ios if isinstance(ios, list) else [ios]
    for index, io in enumerate(servers):
        io.emit("sentinel", f"{tag}-{index}")
    expected = sorted(f"{tag}-{index}" for index in range(len(servers)))
    for c in clients:
        assert sorted([(await c.next("sentinel"))[0] for _ in servers]) == expected


async def test_broadcasts_reach_every_node(
    redis_server: RedisServer, stack: contextlib.AsyncExitStack
) -> None:
    (io1, url1), (io2, url2), (io3, url3) = await nodes(stack, redis_server.url, 3)
    for io in (io1, io2, io3):
        assert await io.sockets.adapter.server_count() == 3
    a = await client(stack, url1, user="a", rooms=["room-a"])
    b = await client(stack, url2, user="b", rooms=["room-a", "room-b"])
    c = await client(stack, url3, user="c")
    everyone = [a, b, c]
    io1.emit("hello", 1, {"x": [1, 2]}, b"\x00\x01")
    for each in everyone:
        assert await each.next("hello") == [1, {"x": [1, 2]}, b"\x00\x01"]
    io2.to("room-a").emit("room-a", 2)
    io3.to(["room-a", "room-b"]).except_("room-b").emit("a-not-b")
    io3.except_("room-a").emit("not-a")
    io1.to(c.sid).emit("direct")
    io2.of("/chat").to("room-b").emit("chat-b")
    io1.volatile.emit("volatile")
    await a.sio.call("shout", "from-a")  # socket.broadcast: everyone but a
    io1.local.emit("local-only")
    await settle([io1, io2, io3], everyone, "t1")
    assert [a.pending("room-a"), b.pending("room-a"), c.pending("room-a")] == [1, 1, 0]
    assert [a.pending("a-not-b"), b.pending("a-not-b"), c.pending("a-not-b")] == [1, 0, 0]
    assert [a.pending("not-a"), b.pending("not-a"), c.pending("not-a")] == [0, 0, 1]
    assert [a.pending("direct"), c.pending("direct")] == [0, 1]
    assert [b.pending("chat-b", "/chat"), a.pending("chat-b", "/chat")] == [1, 0]
    assert await b.next("chat-b", "/chat") == []
    assert [x.pending("volatile") for x in everyone] == [1, 1, 1]
    assert [x.pending("shouted") for x in everyone] == [0, 1, 1]
    assert await c.next("shouted") == ["from-a"]
    assert [x.pending("local-only") for x in everyone] == [1, 0, 0]


async def test_fetch_sockets_and_remote_sockets(
    redis_server: RedisServer, stack: contextlib.AsyncExitStack
) -> None:
    (io1, url1), (io2, url2), (io3, url3) = await nodes(stack, redis_server.url, 3)
    a = await client(stack, url1, {"question": "from a"}, user="a", rooms=["room-a"])
    b = await client(stack, url2, {"question": "from b"}, user="b", rooms=["room-a"])
    c = await client(stack, url3, user="c")
    found = await io1.fetch_sockets()
    assert sorted(s.id for s in found) == sorted([a.sid, b.sid, c.sid])
    remote = {s.id: s for s in found if isinstance(s, RemoteSocket)}
    assert set(remote) == {b.sid, c.sid}
    rb = remote[b.sid]
    assert rb.data == {"server": "s2", "user": "b"}
    assert rb.rooms == {b.sid, "room-a"}
    assert rb.handshake.auth == {"user": "b", "rooms": ["room-a"]}
    assert rb.handshake.address == "127.0.0.1" and rb.handshake.issued > 0
    in_room = await io2.in_("room-a").fetch_sockets()
    assert sorted(s.id for s in in_room) == sorted([a.sid, b.sid])
    assert [s.id for s in await io2.of("/chat").in_("room-a").fetch_sockets()] != []
    # A remote socket's operations.
    rb.emit("to-b", 1)
    assert await b.next("to-b") == [1]
    assert await rb.timeout(2).emit_with_ack("question") == "from b"
    rb.join("joined")
    await settle(io1, [a, b, c], "joined")
    assert {s.id for s in await io3.in_("joined").fetch_sockets()} == {b.sid}
    rb.leave("joined")
    await settle(io1, [a, b, c], "left")
    assert await io3.in_("joined").fetch_sockets() == []
    remote[c.sid].disconnect()
    assert await c.next("$disconnect")
    assert len(await io1.fetch_sockets()) == 2


async def test_room_operations_across_nodes(
    redis_server: RedisServer, stack: contextlib.AsyncExitStack
) -> None:
    (io1, url1), (io2, url2) = await nodes(stack, redis_server.url, 2)
    a = await client(stack, url1, user="a")
    b = await client(stack, url2, user="b", rooms=["vip"])
    io1.in_("vip").sockets_join("lounge")
    io2.sockets_join("all")
    await settle([io1, io2], [a, b], "1")
    assert {s.id for s in await io1.in_("lounge").fetch_sockets()} == {b.sid}
    assert {s.id for s in await io1.in_("all").fetch_sockets()} == {a.sid, b.sid}
    io1.except_("vip").sockets_leave("all")
    io1.local.sockets_join("local-room")
    await settle(io1, [a, b], "2")
    assert {s.id for s in await io2.in_("all").fetch_sockets()} == {b.sid}
    assert {s.id for s in await io2.in_("local-room").fetch_sockets()} == {a.sid}
    io2.in_("lounge").disconnect_sockets()
    assert await b.next("$disconnect")
    assert {s.id for s in await io1.fetch_sockets()} == {a.sid}
    io2.disconnect_sockets(close=True)
    assert await a.next("$disconnect")


async def test_server_side_emit_and_broadcast_acks(
    redis_server: RedisServer, stack: contextlib.AsyncExitStack
) -> None:
    (io1, url1), (io2, url2), (io3, _) = await nodes(stack, redis_server.url, 3)
    notes: list[tuple[str, Any]] = []
    heard = asyncio.Event()
    for name, io in (("s2", io2), ("s3", io3)):

        def note(value: Any, name: str = name) -> None:
            notes.append((name, value))
            if len(notes) == 2:
                heard.set()

        io.on_server_side("note", note)
    io1.on_server_side("note", lambda value: notes.append(("self", value)))
    io1.server_side_emit("note", {"n": 1})
    async with asyncio.timeout(5):
        await heard.wait()
    assert sorted(notes) == [("s2", {"n": 1}), ("s3", {"n": 1})]  # never the sender
    answers = await io1.server_side_emit_with_ack("ping", 7)
    assert sorted(answers, key=str) == [{"from": "s2", "echo": 7}, {"from": "s3", "echo": 7}]
    a = await client(stack, url1, {"poll": "yes-a"}, user="a")
    b = await client(stack, url2, {"poll": ["yes-b", 2]}, user="b", rooms=["room-b"])
    replies = await io3.timeout(3).emit_with_ack("poll")
    assert sorted(map(str, replies)) == sorted(["yes-a", str(["yes-b", 2])])
    assert await io3.to("room-b").timeout(3).emit_with_ack("poll") == [["yes-b", 2]]
    assert await io3.to("nobody").timeout(3).emit_with_ack("poll") == []
    rooms = await adapter_of(io3).all_rooms()
    assert rooms >= {a.sid, b.sid, "room-b"}


async def test_requests_time_out_when_a_subscriber_never_answers(
    redis_server: RedisServer, stack: contextlib.AsyncExitStack
) -> None:
    ((io1, url1),) = await nodes(stack, redis_server.url, 1, request_timeout=0.3)
    # A silent member: subscribed to the request channel (so it counts), never answering.
    silent = aioredis.Redis.from_url(redis_server.url)
    stack.push_async_callback(silent.aclose)
    pubsub = silent.pubsub()
    stack.push_async_callback(pubsub.aclose)
    await pubsub.subscribe("socket.io-request#/#")
    await pubsub.get_message(timeout=1)
    assert await io1.sockets.adapter.server_count() == 2
    a = await client(stack, url1, {"poll": "a"})
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RequestTimeout):
        await io1.fetch_sockets()
    with pytest.raises(BroadcastAckTimeout) as info:
        await io1.server_side_emit_with_ack("ping")
    assert info.value.replies == []
    assert await io1.emit_with_ack("poll") == ["a"]  # no timeout: gives up on others
    assert loop.time() - started < 2
    assert a.sid


async def test_malformed_messages_are_skipped(
    redis_server: RedisServer, stack: contextlib.AsyncExitStack
) -> None:
    (io1, url1), (_io2, url2) = await nodes(stack, redis_server.url, 2)
    a = await client(stack, url1)
    raw = aioredis.Redis.from_url(redis_server.url)
    stack.push_async_callback(raw.aclose)
    for channel, payload in [
        ("socket.io#/#", b"\xc1garbage"),
        ("socket.io#/#", b"\x93\xa1x\x81\xa4type\x01\x80"),
        ("socket.io-request#/#", b'{"type":2,"opts":{"rooms":"*"},"rooms":["x"]}'),
        ("socket.io-request#/#", b'{"type":6,"data":["connect"]}'),
        ("socket.io-request#/#", b"\x80\x04\x95 pickle"),
        ("socket.io-response#/#", b"[]"),
    ]:
        await raw.publish(channel, payload)
    await settle(io1, [a], "still fine")
    b = await client(stack, url2)
    assert {s.id for s in await io1.fetch_sockets()} == {a.sid, b.sid}


async def test_one_subscriber_connection_per_server(
    redis_server: RedisServer, stack: contextlib.AsyncExitStack
) -> None:
    raw = aioredis.Redis.from_url(redis_server.url)
    stack.push_async_callback(raw.aclose)

    async def subscribers() -> int:
        clients = await raw.client_list()
        return sum(1 for c in clients if int(c.get("sub", 0)) or int(c.get("psub", 0)))

    before = await subscribers()
    io1, _ = await sockjet_node(stack, redis_server.url, namespaces=("/", "/a", "/b", "/c"))
    assert await subscribers() == before + 1
    await sockjet_node(stack, redis_server.url, namespaces=("/", "/a"))
    assert await subscribers() == before + 2
    assert await io1.of("/b").adapter.server_count() == 1
    assert await io1.of("/a").adapter.server_count() == 2


async def test_the_python_emitter(
    redis_server: RedisServer, stack: contextlib.AsyncExitStack
) -> None:
    (io1, url1), (io2, url2) = await nodes(stack, redis_server.url, 2)
    a = await client(stack, url1, rooms=["room-a"])
    b = await client(stack, url2)
    emitter = sockjet.Emitter(redis_server.url)
    stack.push_async_callback(emitter.aclose)
    heard: asyncio.Queue[Any] = asyncio.Queue()
    io2.on_server_side("reload", heard.put_nowait)
    emitter.emit("news", {"title": "t"}, b"\x07")
    emitter.to("room-a").emit("room-a")
    emitter.except_("room-a").emit("not-a")
    emitter.of("/chat").emit("chat")
    emitter.in_(b.sid).sockets_join("joined")
    await emitter.server_side_emit("reload", 1)
    for x in (a, b):
        assert await x.next("news") == [{"title": "t"}, b"\x07"]
        assert await x.next("chat", "/chat") == []
    assert await a.next("room-a") == [] and await b.next("not-a") == []
    async with asyncio.timeout(5):
        assert await heard.get() == 1
    await settle(io1, [a, b], "emitted")
    assert [a.pending("not-a"), b.pending("room-a")] == [0, 0]
    assert {s.id for s in await io1.in_("joined").fetch_sockets()} == {b.sid}
    await emitter.in_("joined").sockets_leave("joined")
    await emitter.to("room-a").disconnect_sockets()
    assert await a.next("$disconnect")
    await settle(io2, [b], "left")
    assert await io1.in_("joined").fetch_sockets() == []


async def test_sharded_cluster(redis_server: RedisServer, stack: contextlib.AsyncExitStack) -> None:
    (io1, url1), (io2, url2) = await nodes(stack, redis_server.url, 2, sharded=True, key="sharded")
    assert await io1.sockets.adapter.server_count() == 2
    a = await client(stack, url1, {"poll": "a"}, user="a", rooms=["room-a"])
    b = await client(stack, url2, {"poll": "b"}, user="b", rooms=["room-b"])
    io1.emit("all", b"\x01")
    io1.to("room-b").emit("to-b")  # goes to the room's own shard channel
    io2.to(a.sid).emit("direct")
    assert await a.next("all") == [b"\x01"] and await b.next("all") == [b"\x01"]
    assert await b.next("to-b") == [] and await a.next("direct") == []
    found = await io1.fetch_sockets()
    assert {s.id for s in found} == {a.sid, b.sid}
    assert sorted(await io2.timeout(3).emit_with_ack("poll")) == ["a", "b"]
    assert await io1.server_side_emit_with_ack("ping", 1) == [{"from": "s2", "echo": 1}]
    io1.in_(b.sid).sockets_join("late")
    await settle(io1, [a, b], "joined")
    # b's node subscribes to the new room's channel (without waiting, as Node does).
    async with asyncio.timeout(5):
        await adapter_of(io2)._bus.wait_subscribed([(SubscriptionKind.SHARD, b"sharded#/#late#")])  # type: ignore[union-attr]
    io1.to("late").emit("late")
    assert await b.next("late") == []
    io2.in_("room-a").disconnect_sockets()
    assert await a.next("$disconnect")
