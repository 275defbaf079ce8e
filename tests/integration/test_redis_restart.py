"""Redis dies in the middle of traffic and comes back on the same port: local delivery never
stops, cross-node requests answer (alone) instead of hanging, and once Redis is back the nodes
subscribe again by themselves and cross-node traffic resumes, Node's node included."""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import pytest
from redis_peers import (
    NodeRedisNode,
    PyClient,
    RedisServer,
    adapter_of,
    redis_available,
    sockjet_node,
)

from sockjet import Server

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not redis_available(), reason="redis-server is not installed"),
]


async def ticker(io: Server, stop: asyncio.Event) -> int:
    """Broadcast a numbered "tick" every few milliseconds until ``stop``; returns the count."""
    for n in itertools.count():
        if stop.is_set():
            return n
        io.emit("tick", n)
        await asyncio.sleep(0.005)
    raise AssertionError("unreachable")


async def until_received(io: Server, receiver: PyClient, event: str) -> None:
    """Emit ``event`` from ``io`` until ``receiver`` (on another node) gets one: after a
    restart, the first messages may be published before every node subscribed again."""
    async with asyncio.timeout(10):
        for n in itertools.count():
            io.emit(event, n)
            try:
                await receiver.next(event, timeout=0.2)
                return
            except Exception:  # not yet: the next round tries again
                continue


@pytest.mark.node
async def test_redis_restart_in_the_middle_of_traffic() -> None:
    async with RedisServer() as redis, contextlib.AsyncExitStack() as stack:
        io1, url1 = await sockjet_node(stack, redis.url, reconnect_max_delay=0.2)
        io2, url2 = await sockjet_node(stack, redis.url, reconnect_max_delay=0.2)
        node = await stack.enter_async_context(NodeRedisNode(redis.url, name="n1"))
        local = await PyClient().connect(url1)
        remote = await PyClient().connect(url2)
        on_node = await PyClient().connect(node.url)
        for c in (local, remote, on_node):
            stack.push_async_callback(c.close)
        stop = asyncio.Event()
        ticking = asyncio.create_task(ticker(io1, stop))
        assert (await remote.next("tick"))[0] >= 0
        assert (await on_node.next("tick"))[0] >= 0

        await redis.kill()
        # Local delivery goes on while Redis is away.
        seen = (await local.next("tick"))[0]
        for _ in range(5):
            assert (await local.next("tick"))[0] > seen
        # Requests to the cluster answer quickly, with this server alone.
        async with asyncio.timeout(2):
            assert [s.id for s in await io1.fetch_sockets()] == [local.sid]
            assert await io1.server_side_emit_with_ack("anyone") == []
            assert await io1.timeout(1).emit_with_ack("question") == [None]  # local only

        await redis.start()  # same port
        async with asyncio.timeout(10):
            await adapter_of(io1).wait_ready()
            await adapter_of(io2).wait_ready()
        stop.set()
        assert await ticking > 0
        await until_received(io1, remote, "again")
        await until_received(io2, local, "back")
        await until_received(io1, on_node, "node-again")  # node-redis reconnected too
        assert {s.id for s in await io2.fetch_sockets()} == {local.sid, remote.sid, on_node.sid}
        assert adapter_of(io1)._bus.reconnections >= 1  # type: ignore[union-attr]
