"""Test support for the Redis adapter without Redis.

* :class:`FakeBus` stands in for a server's :class:`~sockjet.adapters.redis_bus.RedisBus`: it
  records what the adapters publish and lets a test deliver messages as if another node had
  published them.
* :class:`FakeRedis` stands in for a ``redis.asyncio.Redis`` client under the bus itself: its
  pub/sub connections can be broken and refused, to exercise reconnection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from sockjet.adapters.redis import RedisAdapterFactory
from sockjet.adapters.redis_bus import Handler, RedisBus, SubscriptionKey
from sockjet.adapters.redis_protocols import Role, SubscriptionKind


class FakeBus:
    """What adapters see of a bus; ``count`` is what PUBSUB NUMSUB answers (None: failure)."""

    def __init__(self, count: int | None = 1) -> None:
        self.count = count
        self.handlers: dict[SubscriptionKey, Handler] = {}
        self.confirmed: set[SubscriptionKey] = set()
        self.published: list[tuple[bytes, bytes]] = []
        self.closed = False

    def subscribe(self, key: SubscriptionKey, handler: Handler) -> None:
        self.handlers[key] = handler
        self.confirmed.add(key)

    def unsubscribe(self, key: SubscriptionKey) -> None:
        self.handlers.pop(key, None)
        self.confirmed.discard(key)

    def is_subscribed(self, key: SubscriptionKey) -> bool:
        return key in self.confirmed

    async def wait_subscribed(self, keys: Iterable[SubscriptionKey]) -> None:
        assert all(key in self.confirmed for key in keys)

    def publish(self, channel: bytes, payload: bytes) -> None:
        self.published.append((channel, payload))

    async def count_subscribers(self, key: SubscriptionKey) -> int | None:
        return self.count

    async def close(self) -> None:
        self.closed = True

    def take(self) -> list[tuple[bytes, bytes]]:
        out, self.published = self.published, []
        return out

    def deliver(self, kind: SubscriptionKind, name: bytes, channel: bytes, payload: bytes) -> None:
        """Deliver a message that arrived on subscription ``(kind, name)``."""
        self.handlers[(kind, name)](channel, payload)


class FakeFactory(RedisAdapterFactory):
    """A Redis adapter factory whose adapters all use one :class:`FakeBus`."""

    def __init__(self, bus: FakeBus, **options: Any) -> None:
        super().__init__("redis://unused", **options)
        self.bus = bus
        self.detached: list[Any] = []

    def _attach(self, adapter: Any) -> RedisBus:
        return self.bus  # type: ignore[return-value]

    async def _detach(self, adapter: Any, bus: RedisBus) -> None:
        self.detached.append(adapter)


def classic_key(role: Role, nsp: str = "/", uid: str = "") -> tuple[SubscriptionKind, bytes]:
    """The subscription key a classic adapter uses for ``role``."""
    if role is Role.BROADCAST:
        return SubscriptionKind.PATTERN, f"socket.io#{nsp}#*".encode()
    if role is Role.REQUEST:
        return SubscriptionKind.CHANNEL, f"socket.io-request#{nsp}#".encode()
    return SubscriptionKind.CHANNEL, f"socket.io-response#{nsp}#{uid}".encode()


class FakePubSub:
    """One pub/sub connection of :class:`FakeRedis`."""

    def __init__(self, redis: FakeRedis) -> None:
        self.redis = redis
        self.messages: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue()
        self.subscribed: list[tuple[str, bytes]] = []
        self.changed = asyncio.Event()
        self.closed = False

    async def connect(self) -> None:
        if self.redis.down:
            raise ConnectionError("connection refused")
        self.redis.connections.append(self)
        self.redis.connected.set()

    def _command(self, verb: str, name: bytes) -> None:
        if self.redis.down:
            raise ConnectionError("connection lost")
        self.subscribed.append((verb, name))
        self.changed.set()
        if verb.endswith("unsubscribe"):
            return
        self.messages.put_nowait({"type": verb, "pattern": None, "channel": name, "data": 1})

    async def subscribe(self, name: bytes) -> None:
        self._command("subscribe", name)

    async def psubscribe(self, name: bytes) -> None:
        self._command("psubscribe", name)

    async def ssubscribe(self, name: bytes) -> None:
        self._command("ssubscribe", name)

    async def unsubscribe(self, name: bytes) -> None:
        self._command("unsubscribe", name)

    async def punsubscribe(self, name: bytes) -> None:
        self._command("punsubscribe", name)

    async def sunsubscribe(self, name: bytes) -> None:
        self._command("sunsubscribe", name)

    async def ping(self) -> None:
        self.redis.pings += 1
        if self.redis.answer_pings:
            self.messages.put_nowait(
                {"type": "pong", "pattern": None, "channel": None, "data": b""}
            )

    async def get_message(self, timeout: float | None = None) -> dict[str, Any] | None:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout):
                item = await self.messages.get()
        except TimeoutError:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    async def aclose(self) -> None:
        self.closed = True

    async def wait_command(self, verb: str, name: bytes) -> None:
        """Wait until the bus sent ``verb name`` on this connection."""
        while (verb, name) not in self.subscribed:
            self.changed.clear()
            await self.changed.wait()

    def push(self, message: dict[str, Any]) -> None:
        self.messages.put_nowait(message)

    def break_(self) -> None:
        self.messages.put_nowait(ConnectionError("connection reset"))


class FakePipeline:
    def __init__(self, redis: FakeRedis) -> None:
        self.redis = redis
        self.commands: list[tuple[Any, ...]] = []

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def execute_command(self, *args: Any) -> None:
        self.commands.append(args)

    async def execute(self) -> list[Any]:
        self.redis.round_trips += 1
        await self.redis.gate.wait()
        if self.redis.down or self.redis.fail_next:
            self.redis.fail_next = max(self.redis.fail_next - 1, 0)
            raise ConnectionError("publish failed")
        self.redis.commands.extend(self.commands)
        return [1] * len(self.commands)


class FakeRedis:
    """A ``redis.asyncio.Redis`` stand-in: commands recorded, pub/sub connections scripted."""

    def __init__(self) -> None:
        self.down = False
        self.fail_next = 0
        self.answer_pings = True
        self.pings = 0
        self.round_trips = 0
        self.numsub: Any = [b"chan", 3]
        self.gate = asyncio.Event()
        self.gate.set()
        self.commands: list[tuple[Any, ...]] = []
        self.connections: list[FakePubSub] = []
        self.connected = asyncio.Event()
        self.closed = False

    def pubsub(self) -> FakePubSub:
        return FakePubSub(self)

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)

    async def execute_command(self, *args: Any) -> Any:
        if args[0] == "PUBSUB":
            if self.down:
                raise ConnectionError("down")
            return self.numsub
        pipe = FakePipeline(self)
        pipe.execute_command(*args)
        return (await pipe.execute())[0]

    async def aclose(self) -> None:
        self.closed = True

    async def wait_connection(self, count: int) -> FakePubSub:
        """The ``count``-th pub/sub connection, once it is made."""
        while len(self.connections) < count:
            self.connected.clear()
            await self.connected.wait()
        return self.connections[count - 1]
