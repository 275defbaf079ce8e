"""The Redis bus on a scripted Redis stand-in: ordered pipelined publishing, bounded queueing,
subscriptions kept in sync across reconnections, dead connections detected."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from redis_fakes import FakeRedis

from sockjet.adapters.redis_bus import Publisher, RedisBus, _numsub
from sockjet.adapters.redis_protocols import SubscriptionKind

CHANNEL = (SubscriptionKind.CHANNEL, b"req")
PATTERN = (SubscriptionKind.PATTERN, b"bc*")
SHARD = (SubscriptionKind.SHARD, b"shard")


def bus_on(redis: FakeRedis, **options: float) -> RedisBus:
    defaults = {"min_delay": 0.001, "max_delay": 0.01, "health_interval": 5.0}
    return RedisBus(redis, owns_client=True, **(defaults | options))  # type: ignore[arg-type]


# -- publisher ----------------------------------------------------------------------------------


async def test_publishes_in_order_in_pipelined_batches() -> None:
    redis = FakeRedis()
    publisher = Publisher(redis)  # type: ignore[arg-type]
    publisher.publish(b"a", b"1")
    await publisher.flush(1)
    assert redis.commands == [("PUBLISH", b"a", b"1")] and redis.round_trips == 1
    redis.gate.clear()  # Redis is slow: what is emitted meanwhile goes in one round trip
    publisher.publish(b"a", b"2")
    await asyncio.sleep(0)
    for n in range(3, 8):
        publisher.publish(b"b", str(n).encode())
    assert publisher.queued == 5
    redis.gate.set()
    assert await publisher.flush(1)
    assert [c[2] for c in redis.commands] == [str(n).encode() for n in range(1, 8)]
    assert redis.round_trips == 3
    sharded = Publisher(redis, sharded=True)  # type: ignore[arg-type]
    await sharded.publish_waiting(b"s", b"x")
    assert redis.commands[-1] == ("SPUBLISH", b"s", b"x")


async def test_failures_are_logged_once_and_sending_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "sockjet.adapters.redis")
    redis = FakeRedis()
    publisher = Publisher(redis)  # type: ignore[arg-type]
    redis.fail_next = 2
    with pytest.raises(ConnectionError):
        await publisher.publish_waiting(b"a", b"lost")
    with pytest.raises(ConnectionError):
        await publisher.publish_waiting(b"a", b"also lost")
    await publisher.publish_waiting(b"a", b"sent")
    assert redis.commands == [("PUBLISH", b"a", b"sent")]
    messages = [r.message for r in caplog.records]
    assert len([m for m in messages if "publish failed" in m]) == 1
    assert any("works again" in m for m in messages)
    # An ignored failure is not reported again by asyncio ("exception never retrieved").
    redis.fail_next = 1
    publisher.publish_waiting(b"a", b"ignored")
    await publisher.flush(1)


async def test_queue_is_bounded_while_redis_is_away(caplog: pytest.LogCaptureFixture) -> None:
    redis = FakeRedis()
    redis.gate.clear()
    publisher = Publisher(redis, max_queued=3)  # type: ignore[arg-type]
    first = publisher.publish_waiting(b"c", b"0")  # in flight
    await asyncio.sleep(0)
    oldest = publisher.publish_waiting(b"c", b"1")
    for n in range(2, 6):
        publisher.publish(b"c", str(n).encode())
    assert publisher.queued == 3
    with pytest.raises(ConnectionError, match="too many"):
        await oldest
    assert any("queue full" in r.message for r in caplog.records)
    redis.gate.set()
    await first
    await publisher.flush(1)
    assert [c[2] for c in redis.commands] == [b"0", b"3", b"4", b"5"]


async def test_close_sends_what_it_can_then_fails_the_rest() -> None:
    redis = FakeRedis()
    publisher = Publisher(redis)  # type: ignore[arg-type]
    publisher.publish(b"c", b"1")
    await publisher.close(1)
    assert redis.commands == [("PUBLISH", b"c", b"1")]
    redis.gate.clear()
    publisher = Publisher(redis)  # type: ignore[arg-type]
    stuck = publisher.publish_waiting(b"c", b"2")
    await asyncio.sleep(0)
    queued = publisher.publish_waiting(b"c", b"3")
    assert not await publisher.flush(0.01)
    await publisher.close(0.01)
    with pytest.raises(ConnectionError, match="closed"):
        await queued
    assert stuck.cancelled() or stuck.done()
    redis.gate.set()


# -- subscriber ---------------------------------------------------------------------------------


async def test_subscribes_dispatches_and_unsubscribes() -> None:
    redis = FakeRedis()
    bus = bus_on(redis)
    got: list[tuple[str, bytes, bytes]] = []
    four = asyncio.Event()

    def record(tag: str) -> Callable[[bytes, bytes], None]:
        def handler(channel: bytes, data: bytes) -> None:
            got.append((tag, channel, data))
            if len(got) == 4:
                four.set()

        return handler

    bus.subscribe(CHANNEL, record("c"))
    bus.subscribe(PATTERN, record("p"))
    bus.subscribe(SHARD, record("s"))
    async with asyncio.timeout(2):
        await bus.wait_subscribed([CHANNEL, PATTERN, SHARD])
    assert bus.is_subscribed(CHANNEL)
    conn = redis.connections[0]
    assert conn.subscribed == [
        ("subscribe", b"req"),
        ("psubscribe", b"bc*"),
        ("ssubscribe", b"shard"),
    ]
    conn.push({"type": "message", "pattern": None, "channel": b"req", "data": b"1"})
    conn.push({"type": "pmessage", "pattern": b"bc*", "channel": b"bc1", "data": b"2"})
    conn.push({"type": "smessage", "pattern": None, "channel": b"shard", "data": b"3"})
    conn.push({"type": "message", "pattern": None, "channel": b"unknown", "data": b"4"})
    bus.subscribe((SubscriptionKind.CHANNEL, b"last"), record("l"))
    conn.push({"type": "message", "pattern": None, "channel": b"last", "data": b"5"})
    async with asyncio.timeout(2):
        await bus.wait_subscribed([(SubscriptionKind.CHANNEL, b"last")])
    async with asyncio.timeout(2):
        await four.wait()
    assert got == [
        ("c", b"req", b"1"),
        ("p", b"bc1", b"2"),
        ("s", b"shard", b"3"),
        ("l", b"last", b"5"),
    ]
    bus.unsubscribe(PATTERN)
    async with asyncio.timeout(2):
        await conn.wait_command("punsubscribe", b"bc*")
    assert not bus.is_subscribed(PATTERN)
    await bus.close()
    assert redis.closed and conn.closed
    await bus.close()  # idempotent


async def test_a_failing_handler_does_not_stop_the_bus(caplog: pytest.LogCaptureFixture) -> None:
    redis = FakeRedis()
    bus = bus_on(redis)
    got: list[bytes] = []
    arrived = asyncio.Event()

    def handler(channel: bytes, data: bytes) -> None:
        if data == b"boom":
            raise RuntimeError("boom")
        got.append(data)
        arrived.set()

    bus.subscribe(CHANNEL, handler)
    await bus.wait_subscribed([CHANNEL])
    conn = redis.connections[0]
    for data in (b"boom", b"ok"):
        conn.push({"type": "message", "pattern": None, "channel": b"req", "data": data})
    async with asyncio.timeout(2):
        await arrived.wait()
    assert got == [b"ok"] and any("handling a Redis message" in r.message for r in caplog.records)
    await bus.close()


async def test_reconnects_and_subscribes_again(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "sockjet.adapters.redis")
    redis = FakeRedis()
    redis.down = True  # Redis is not there yet when the server starts
    bus = bus_on(redis)
    bus.subscribe(CHANNEL, lambda ch, data: None)
    bus.subscribe(PATTERN, lambda ch, data: None)
    await asyncio.sleep(0.02)
    assert not bus.is_subscribed(CHANNEL)
    redis.down = False
    async with asyncio.timeout(2):
        first = await redis.wait_connection(1)
        await bus.wait_subscribed([CHANNEL, PATTERN])
    first.break_()  # Redis restarts
    async with asyncio.timeout(2):
        second = await redis.wait_connection(2)
        await bus.wait_subscribed([CHANNEL, PATTERN])
    assert first.closed and sorted(second.subscribed) == [
        ("psubscribe", b"bc*"),
        ("subscribe", b"req"),
    ]
    assert bus.reconnections == 2
    messages = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert [m.split(" (")[0] for m in messages] == [
        "cannot connect to Redis",
        "Redis subscriber connection lost",
    ]
    await bus.close()


async def test_a_silent_connection_counts_as_lost() -> None:
    redis = FakeRedis()
    redis.answer_pings = False
    bus = bus_on(redis, health_interval=0.01)
    bus.subscribe(CHANNEL, lambda ch, data: None)
    async with asyncio.timeout(2):
        await redis.wait_connection(2)
    assert redis.pings >= 1
    await bus.close()


async def test_counting_subscribers() -> None:
    redis = FakeRedis()
    bus = bus_on(redis)
    assert await bus.count_subscribers(CHANNEL) == 3
    redis.down = True
    assert await bus.count_subscribers(SHARD) is None
    await bus.close()
    assert _numsub([b"c", 2]) == 2
    assert _numsub([(b"c", 4)]) == 4
    assert _numsub({b"c": 5}) == 5
    assert _numsub(None) is None and _numsub([b"c", b"x"]) is None
