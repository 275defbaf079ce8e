"""The publish/subscribe bus a cluster adapter talks to: :class:`Bus`.

:class:`~sockjet.adapters.redis.RedisAdapter` (and its sharded variant) turns every operation
that must reach the other servers into ``(channel, payload)`` pairs
(:mod:`sockjet.adapters.redis_protocols`) and hands them to a bus; what the bus receives on a
subscription goes back to the adapter as ``(channel, payload)``. Two buses satisfy this
protocol, so the adapter's logic (broadcasts, rooms, ``fetch_sockets``, acks, server-side
emits) is written once:

* :class:`~sockjet.adapters.redis_bus.RedisBus`: Redis pub/sub, servers on any hosts;
* :class:`~sockjet.adapters.local_bus.LocalBus`: Unix sockets between the workers of one host
  (``sockjet serve --workers N`` without ``--redis``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from sockjet.adapters.redis_protocols import SubscriptionKind

__all__ = ["Bus", "Handler", "SubscriptionKey"]

SubscriptionKey = tuple[SubscriptionKind, bytes]
"""How a subscription is made, and its channel (or pattern)."""
Handler = Callable[[bytes, bytes], None]
"""Called with ``(channel, payload)`` for each message of a subscription."""


class Bus(Protocol):
    """One server's link to the others: subscriptions in, messages out."""

    def subscribe(self, key: SubscriptionKey, handler: Handler) -> None:
        """Receive the messages of ``key`` (made effective as soon as the bus can)."""
        ...

    def unsubscribe(self, key: SubscriptionKey) -> None: ...

    def is_subscribed(self, key: SubscriptionKey) -> bool:
        """Whether the subscription is effective now (and counted by
        :meth:`count_subscribers`)."""
        ...

    async def wait_subscribed(self, keys: Iterable[SubscriptionKey]) -> None:
        """Wait until every subscription of ``keys`` is effective (no timeout here)."""
        ...

    def publish(self, channel: bytes, payload: bytes) -> None:
        """Send a message to the subscribers of ``channel`` (in order, at most once)."""
        ...

    async def count_subscribers(self, key: SubscriptionKey) -> int | None:
        """The servers subscribed to ``key``, or None when that cannot be known now."""
        ...

    async def close(self) -> None:
        """Stop (idempotent)."""
        ...
