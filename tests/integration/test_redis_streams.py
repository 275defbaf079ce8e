"""sockjet servers on the Redis Streams adapter, on a real redis-server: connection state recovery
across servers with the official client, over WebSocket and polling. A client that left one
server comes back on another with its id, rooms, ``socket.data`` and every packet it missed, once
each and in order: after its old server saw it leave, after it left without a word (the old
server, still holding the session, hands it over), with packets flowing all the while, without
any offset of its own, and not at all once the stream no longer holds its offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from peers import NodeClient, NodePuppet, Recorder
from redis_peers import RedisServer, redis_available, sockjet_streams_node, until

from sockjet import Server, Socket
from sockjet.adapters.redis_streams import SessionRecord, StreamsAdapter
from sockjet.server.recovery import ConnectionStateRecovery

pytestmark = [
    pytest.mark.node,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not redis_available(), reason="redis-server is not installed"),
]

RECONNECT_FAST = {"reconnection": True, "reconnectionDelay": 50, "reconnectionDelayMax": 100}
RECOVERY = ConnectionStateRecovery(max_disconnection_duration=30)
OFFSET = re.compile(r"[0-9]+-[0-9]+")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def redis_server() -> AsyncIterator[RedisServer]:
    async with RedisServer() as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def stack() -> AsyncIterator[contextlib.AsyncExitStack]:
    async with contextlib.AsyncExitStack() as stack:
        yield stack


def app(name: str, seen: Recorder) -> Any:
    """``join`` (room, ack), ``set`` (key, value into socket.data, ack), ``whoami`` (ack: id,
    rooms, data, server); connections and disconnections are recorded as (server, sid,
    recovered | reason)."""

    def setup(io: Server) -> None:
        @io.on("connection")
        def connection(socket: Socket) -> None:
            seen.put("connection", (name, socket.id, socket.recovered))

        @io.on("join")
        def join(socket: Socket, room: str) -> str:
            socket.join(room)
            return room

        @io.on("set")
        def set_(socket: Socket, key: str, value: Any) -> bool:
            socket.data[key] = value
            return True

        @io.on("whoami")
        def whoami(socket: Socket) -> dict[str, Any]:
            return {"id": socket.id, "rooms": sorted(socket.rooms), "data": socket.data}

        @io.on("disconnect")
        def disconnect(socket: Socket, reason: str) -> None:
            seen.put("disconnect", (name, socket.id, reason))

    return setup


async def two_servers(
    stack: contextlib.AsyncExitStack, redis_url: str, **options: Any
) -> tuple[Server, str, Server, str, Recorder]:
    seen = Recorder()
    a, url_a = await sockjet_streams_node(
        stack, redis_url, app("a", seen), recovery=RECOVERY, **options
    )
    b, url_b = await sockjet_streams_node(
        stack, redis_url, app("b", seen), recovery=RECOVERY, **options
    )
    return a, url_a, b, url_b, seen


async def _fewer(value: Awaitable[int], than: int) -> bool:
    return await value < than


async def _truth(value: Awaitable[Any]) -> bool:
    return bool(await value)


def without_offset(args: list[Any]) -> list[Any]:
    assert args and isinstance(args[-1], str) and OFFSET.fullmatch(args[-1]), args
    return args[:-1]


async def sentinel(io: Server, client: NodeClient, tag: str) -> None:
    io.emit("sentinel", tag)
    assert without_offset(await client.next_event("sentinel")) == [tag]


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_client_recovers_on_another_server(
    puppet: NodePuppet, redis_server: RedisServer, stack: contextlib.AsyncExitStack, transport: str
) -> None:
    a, url_a, b, url_b, seen = await two_servers(stack, redis_server.url)
    c = await puppet.connect(url_a, transports=[transport], urls=[url_a, url_b], **RECONNECT_FAST)
    sid = c.id
    assert await seen.get("connection") == ("a", sid, False)
    assert await c.emit_with_ack("join", "r1") == ["r1"]
    assert await c.emit_with_ack("set", "user", {"name": "ada"}) == [True]
    b.to("r1").emit("live", 1)
    [value, offset] = await c.next_event("live")  # the stream entry id rides as last argument
    assert value == 1 and OFFSET.fullmatch(offset)

    if transport == "websocket":
        await c.drop()  # the TCP connection dies: "transport close" on a
    else:
        await c.close_engine()  # the client closes its engine, then reconnects
    assert await seen.get("disconnect") == ("a", sid, "transport close")
    await c.wait_connect()
    # Back on b: the same socket, in its room, with its data and what it missed, once each.
    assert c.recovered and c.id == sid
    assert await seen.get("connection") == ("b", sid, True)
    assert await c.emit_with_ack("whoami") == [
        {"id": sid, "rooms": sorted([sid, "r1"]), "data": {"user": {"name": "ada"}}}
    ]
    a.to("r1").emit("live", 2)
    b.to("r1").emit("live", 3)  # two servers: either may reach the stream first
    assert sorted([without_offset(await c.next_event("live")) for _ in "ab"]) == [[2], [3]]
    await sentinel(a, c, "s")
    assert c.pending("live") == 0
    await c.disconnect()


async def test_what_was_missed_comes_back_once_and_in_order_under_traffic(
    puppet: NodePuppet, redis_server: RedisServer, stack: contextlib.AsyncExitStack
) -> None:
    """Numbered broadcasts flow from both servers while the client leaves one and recovers on
    the other: it gets every number, each once, in the order of the stream."""
    a, url_a, b, url_b, _ = await two_servers(stack, redis_server.url)
    c = await puppet.connect(url_a, transports=["websocket"], urls=[url_a, url_b], **RECONNECT_FAST)
    sid = c.id
    await c.count_events("n")  # counted, not reported one by one
    total = 600
    sent = 0
    underway = asyncio.Event()

    async def pump() -> None:
        nonlocal sent
        while sent < total:
            for io in (a, b):
                io.emit("n", sent)
                sent += 1
            if sent % 20 == 0:
                await asyncio.sleep(0.002)
            if sent >= total // 4:
                underway.set()

    async def leave_and_come_back() -> None:
        await underway.wait()
        await c.drop()
        await c.wait_connect()

    await asyncio.gather(pump(), leave_and_come_back())
    assert c.recovered and c.id == sid
    await c.wait_count("n", total, timeout=10)
    assert (await c.counted("n"))[0] == total  # none twice (nor lost: wait_count saw them all)
    await c.disconnect()


async def test_the_old_server_hands_a_live_session_over(
    puppet: NodePuppet, redis_server: RedisServer, stack: contextlib.AsyncExitStack
) -> None:
    """A polling client back on b before a noticed it left: a disconnects it at once (it would
    have waited for its ping timeout) and b restores what a had, data changed a moment ago
    included."""
    a, url_a, b, url_b, seen = await two_servers(stack, redis_server.url)
    c = await puppet.connect(url_a, transports=["polling"], urls=[url_a, url_b], **RECONNECT_FAST)
    sid = c.id
    await seen.get("connection")
    assert await c.emit_with_ack("join", "r1") == ["r1"]
    b.to("r1").emit("live", 1)
    assert without_offset(await c.next_event("live")) == [1]
    # Changed on a without a record write yet (no join or leave since): the handover has it.
    a.sockets.sockets[sid].data["fresh"] = True
    a.to("r1").emit("missed", 1)
    await c.hop()  # gone without a word, back on b
    await c.wait_connect()
    assert c.recovered and c.id == sid
    assert await seen.get("disconnect") == ("a", sid, "transport close")  # at once, not later
    assert await seen.get("connection") == ("b", sid, True)
    assert without_offset(await c.next_event("missed")) == [1]
    assert await c.emit_with_ack("whoami") == [
        {"id": sid, "rooms": sorted([sid, "r1"]), "data": {"fresh": True}}
    ]
    assert sid not in a.sockets.sockets
    await sentinel(b, c, "s")
    assert c.pending("missed") == 0
    # Back on the server that holds the session: it hands it over to itself.
    await c.hop(url_b)
    await c.wait_connect()
    assert c.recovered and c.id == sid
    assert await seen.get("disconnect") == ("b", sid, "transport close")
    assert await seen.get("connection") == ("b", sid, True)
    await c.disconnect()


async def test_a_client_without_offset_recovers_from_where_it_connected(
    puppet: NodePuppet, redis_server: RedisServer, stack: contextlib.AsyncExitStack
) -> None:
    """The official client sends no offset until it received a recorded packet (Node cannot
    recover it then): the record says where the stream stood when it connected."""
    a, url_a, _, url_b, seen = await two_servers(stack, redis_server.url)
    c = await puppet.connect(url_a, transports=["websocket"], urls=[url_a, url_b], **RECONNECT_FAST)
    sid = c.id
    await c.drop()
    assert (await seen.get("disconnect"))[2] == "transport close"
    a.emit("while-away")
    await c.wait_connect()
    assert c.recovered and c.id == sid
    assert without_offset(await c.next_event("while-away")) == []
    await c.disconnect()


async def test_no_recovery_once_the_offset_is_trimmed_or_the_client_left(
    puppet: NodePuppet, redis_server: RedisServer, stack: contextlib.AsyncExitStack
) -> None:
    a, url_a, b, url_b, seen = await two_servers(
        stack, redis_server.url, stream_name="short", max_len=1, recent_packets=0
    )
    c = await puppet.connect(url_a, transports=["websocket"], urls=[url_a, url_b], **RECONNECT_FAST)
    sid = c.id
    a.emit("first")
    await c.next_event("first")
    await c.drop()
    assert (await seen.get("disconnect"))[2] == "transport close"
    for i in range(300):  # MAXLEN ~ 1 trims whole stream nodes (100 entries each)
        b.emit("flood", i)
    raw = aioredis.Redis.from_url(redis_server.url)
    stack.push_async_callback(raw.aclose)
    await until(lambda: _fewer(raw.xlen("short"), 250))
    await c.wait_connect()
    assert not c.recovered and c.id != sid  # a fresh session: what it missed is gone
    # A client that disconnects on purpose cannot come back: its record goes.
    server = a if c.id in a.sockets.sockets else b
    key = f"sio:session:{server.sockets.sockets[c.id]._pid}"
    await until(lambda: _truth(raw.exists(key)))
    await c.disconnect()
    assert (await seen.get("disconnect"))[2] == "client namespace disconnect"
    await until(lambda: _fewer(raw.exists(key), 1))


async def test_packets_kept_in_memory_outlive_the_trimmed_stream(
    puppet: NodePuppet, redis_server: RedisServer, stack: contextlib.AsyncExitStack
) -> None:
    """A server restores from the packets it delivered last (``recent_packets``), without
    reading the stream: it recovers a client even once the stream was trimmed past its offset."""
    a, url_a, b, url_b, _ = await two_servers(
        stack, redis_server.url, stream_name="trimmed", recent_packets=1000
    )
    slow = {**RECONNECT_FAST, "reconnectionDelay": 1000, "reconnectionDelayMax": 1000}
    c = await puppet.connect(url_a, transports=["websocket"], urls=[url_a, url_b], **slow)
    sid = c.id
    a.emit("first")
    await c.next_event("first")
    await c.count_events("flood")
    await c.drop()
    for i in range(300):
        b.emit("flood", i)
    b.emit("last")
    raw = aioredis.Redis.from_url(redis_server.url)
    stack.push_async_callback(raw.aclose)
    await b.sockets.adapter.flush()  # type: ignore[attr-defined]
    [(tip, _)] = await raw.xrevrange("trimmed", count=1)

    async def read_by_both() -> bool:
        return all(io.sockets.adapter._reader.position == tip for io in (a, b))  # type: ignore[attr-defined]

    await until(read_by_both)
    assert await raw.xtrim("trimmed", maxlen=0) == 302  # the stream no longer has its offset
    await c.wait_connect()
    assert c.recovered and c.id == sid
    await c.wait_count("flood", 300)
    assert without_offset(await c.next_event("last")) == []
    assert (await c.counted("flood"))[0] == 300
    await c.disconnect()


async def test_live_records_follow_rooms_and_data(
    puppet: NodePuppet, redis_server: RedisServer, stack: contextlib.AsyncExitStack
) -> None:
    """The record of a connected socket is in Redis and follows its rooms (and its data, on
    the explicit hook), naming the server that holds it; the final one names none."""
    a, url_a, *_ = await two_servers(stack, redis_server.url)
    adapter = a.sockets.adapter
    assert isinstance(adapter, StreamsAdapter) and adapter.recovery is not None
    c = await puppet.connect(url_a, transports=["websocket"], **RECONNECT_FAST)
    sid = c.id
    socket = a.sockets.sockets[sid]
    raw = aioredis.Redis.from_url(redis_server.url)
    stack.push_async_callback(raw.aclose)
    key = f"sio:session:{socket._pid}"

    async def record(predicate: Any) -> SessionRecord:
        async with asyncio.timeout(5):
            while True:
                value = await raw.get(key)
                if value is not None and predicate(found := SessionRecord.decode(value)):
                    return found
                await asyncio.sleep(0.01)

    first = await record(lambda r: True)
    assert first.sid == sid and first.holder == adapter.uid and first.rooms == [sid]
    assert 0 < await raw.pttl(key) <= 30_000
    await c.emit_with_ack("join", "r2")
    assert (await record(lambda r: "r2" in r.rooms)).rooms == sorted([sid, "r2"])
    socket.data["score"] = 7
    adapter.recovery.save(socket)
    assert (await record(lambda r: r.data is not None)).data == {"score": 7}
    await c.drop()
    final = await record(lambda r: r.holder is None)
    assert final.rooms == sorted([sid, "r2"]) and final.data == {"score": 7}
    await c.wait_connect()
    assert c.recovered
    await c.disconnect()
