"""The Redis adapters on a real Redis Cluster: three masters started here (``redis-server
--cluster-enabled yes`` x3, ``redis-cli --cluster create``), ``redis.asyncio.RedisCluster``
clients.

* The sharded adapter across three sockjet servers: broadcasts (rooms whose channels live on
  different masters included), ``fetch_sockets``, server-side emits with acks, broadcast acks,
  room operations and the server count, with subscriber connections to several masters.
* The classic adapter works too (plain pub/sub reaches every node of a cluster).
* The streams adapter with sharded pub/sub: the stream on one slot, session records on others;
  the official client recovers across servers, after its old server saw it leave and after a
  handover.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from peers import NodePuppet, Recorder
from redis_peers import (
    PyClient,
    RedisCluster,
    adapter_of,
    redis_available,
    sockjet_node,
    sockjet_streams_node,
    until,
)

from sockjet import Server, Socket
from sockjet.adapters.redis import ShardedRedisAdapter
from sockjet.adapters.redis_cluster import ClusterBus
from sockjet.server.recovery import ConnectionStateRecovery

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not redis_available(), reason="redis-server is not installed"),
]

RECONNECT_FAST = {"reconnection": True, "reconnectionDelay": 50, "reconnectionDelayMax": 100}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster() -> AsyncIterator[RedisCluster]:
    async with RedisCluster(masters=3) as cluster:
        yield cluster


@pytest_asyncio.fixture(loop_scope="module")
async def stack() -> AsyncIterator[contextlib.AsyncExitStack]:
    async with contextlib.AsyncExitStack() as stack:
        yield stack


def app(name: str) -> Any:
    def setup(io: Server) -> None:
        @io.on("connection")
        def on_connection(socket: Socket) -> None:
            if not socket.recovered:
                socket.data = {"server": name}
                socket.join(socket.handshake.auth.get("rooms", []))

        @io.on("join")
        def join(socket: Socket, room: str) -> str:
            socket.join(room)
            return room

        @io.on("whoami")
        def whoami(socket: Socket) -> dict[str, Any]:
            return {"id": socket.id, "rooms": sorted(socket.rooms), "data": socket.data}

        @io.sockets.on_server_side("ping")
        def ping(value: Any) -> dict[str, Any]:
            return {"from": name, "echo": value}

    return setup


async def client(stack: contextlib.AsyncExitStack, url: str, **auth: Any) -> PyClient:
    c = PyClient({"poll": "yes"})
    await c.connect(url, auth=auth)
    stack.push_async_callback(c.close)
    return c


async def owners(cluster: RedisCluster, channels: list[str]) -> set[int]:
    client = cluster.client()
    try:
        await client.initialize()
        return {client.nodes_manager.get_node_from_slot(client.keyslot(c)).port for c in channels}
    finally:
        await client.aclose()


async def settle(ios: list[Server], clients: list[PyClient], tag: str) -> None:
    """A sentinel from every server, to every client: what was sent before has arrived."""
    for io in ios:
        io.emit("sentinel", tag)
    for c in clients:
        for _ in ios:
            assert (await c.next("sentinel"))[0] == tag


async def test_the_sharded_adapter_across_three_servers(
    cluster: RedisCluster, stack: contextlib.AsyncExitStack
) -> None:
    # Rooms whose channels live on different masters (the base channel on yet another).
    rooms = ["room-a", "room-b", "room-c", "room-d", "room-e"]
    assert len(await owners(cluster, [f"socket.io#/#{r}#" for r in rooms])) == 3
    ios, urls = [], []
    for name in ("s1", "s2", "s3"):
        io, url = await sockjet_node(
            stack, cluster.url, app(name), namespaces=("/",), sharded=True, cluster=True
        )
        ios.append(io)
        urls.append(url)
    for io in ios:
        assert await io.sockets.adapter.server_count() == 3
    clients = [await client(stack, url, rooms=[rooms[i]]) for i, url in enumerate(urls)]
    clients.append(await client(stack, urls[0], rooms=rooms[3:]))
    for io in ios:  # each server subscribes to its rooms' channels: wait for those
        adapter = adapter_of(io)
        bus = adapter._bus
        assert isinstance(bus, ClusterBus) and isinstance(adapter, ShardedRedisAdapter)
        await bus.wait_subscribed(list(adapter._room_keys.values()))
    assert len(adapter_of(ios[0])._bus._nodes) >= 2  # type: ignore[union-attr]  # several masters
    one, two, three = ios
    one.emit("all", b"\x01")
    two.to("room-a").emit("to-a")
    three.to("room-e").emit("to-e")
    one.to(["room-b", "room-c"]).emit("to-b-c")
    two.except_("room-a").emit("not-a")
    three.to(clients[1].sid).emit("direct")
    # Channels of different masters do not keep their order between them: each expected
    # message is awaited, then a sentinel round gives any unexpected one time to show up.
    expected = [
        ["to-a"],
        ["to-b-c", "not-a", "direct"],
        ["to-b-c", "not-a"],
        ["to-e", "not-a"],
    ]
    for c, events in zip(clients, expected, strict=True):
        assert await c.next("all") == [b"\x01"]
        for event in events:
            assert await c.next(event) == []
    await settle(ios, clients, "t1")
    for event in ("to-a", "to-e", "to-b-c", "not-a", "direct"):
        assert [c.pending(event) for c in clients] == [0, 0, 0, 0], event
    # Requests and their answers across the masters.
    found = {s.id: s for s in await one.fetch_sockets()}
    assert set(found) == {c.sid for c in clients}
    assert found[clients[2].sid].data == {"server": "s3"}
    assert sorted(await one.server_side_emit_with_ack("ping", 1), key=str) == [
        {"echo": 1, "from": "s2"},
        {"echo": 1, "from": "s3"},
    ]
    assert await two.timeout(3).emit_with_ack("poll") == ["yes"] * 4
    three.in_("room-a").sockets_join("late")

    async def joined() -> bool:  # once the request reached the socket's server
        return {s.id for s in await two.in_("late").fetch_sockets()} == {clients[0].sid}

    await until(joined)


async def test_the_classic_adapter_on_a_cluster(
    cluster: RedisCluster, stack: contextlib.AsyncExitStack
) -> None:
    """Plain pub/sub reaches every node of a cluster: the classic protocol works there too
    (its server count sums PUBSUB NUMSUB over the masters)."""
    ios, clients = [], []
    for name in ("c1", "c2"):
        io, url = await sockjet_node(
            stack, cluster.url, app(name), namespaces=("/",), key="classic", cluster=True
        )
        ios.append(io)
        clients.append(await client(stack, url, rooms=[f"r-{name}"]))
    assert [await io.sockets.adapter.server_count() for io in ios] == [2, 2]
    ios[0].to("r-c2").emit("hello")
    await settle(ios, clients, "c")
    assert [c.pending("hello") for c in clients] == [0, 1]
    assert {s.id for s in await ios[1].fetch_sockets()} == {c.sid for c in clients}


@pytest.mark.node
@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_recovery_across_servers_on_a_cluster(
    puppet: NodePuppet, cluster: RedisCluster, stack: contextlib.AsyncExitStack, transport: str
) -> None:
    recovery = ConnectionStateRecovery(max_disconnection_duration=30)
    seen = Recorder()
    servers = []
    for name in ("a", "b"):

        def setup(io: Server, name: str = name) -> None:
            app(name)(io)
            io.on("disconnect", lambda socket, reason: seen.put("disconnect", (name, reason)))

        servers.append(
            await sockjet_streams_node(
                stack,
                cluster.url,
                setup,
                namespaces=("/",),
                recovery=recovery,
                cluster=True,
                sharded_pubsub=True,
                stream_name=f"cluster-{transport}",
            )
        )
    (a, url_a), (b, url_b) = servers
    assert await a.sockets.adapter.server_count() == 2
    c = await puppet.connect(url_a, transports=[transport], urls=[url_a, url_b], **RECONNECT_FAST)
    sid = c.id
    assert await c.emit_with_ack("join", "r1") == ["r1"]
    b.to("r1").emit("live", 1)
    assert (await c.next_event("live"))[0] == 1
    # Gone without a word, back on b: a hands the session over.
    a.to("r1").emit("missed", 1)
    await c.hop()
    await c.wait_connect()
    assert c.recovered and c.id == sid
    assert await seen.get("disconnect") == ("a", "transport close")
    assert (await c.next_event("missed"))[0] == 1
    [me] = await c.emit_with_ack("whoami")
    assert me == {"id": sid, "rooms": sorted([sid, "r1"]), "data": {"server": "a"}}
    # Its old server sees it leave this time; back on a.
    if transport == "websocket":
        await c.drop()
    else:
        await c.close_engine()
    assert await seen.get("disconnect") == ("b", "transport close")
    b.to("r1").emit("missed", 2)
    await c.wait_connect()
    assert c.recovered and c.id == sid and sid in a.sockets.sockets
    assert (await c.next_event("missed"))[0] == 2
    await c.disconnect()
