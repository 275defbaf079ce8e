"""The Redis adapters on a Redis Cluster (``redis.asyncio.RedisCluster``).

What changes on a cluster is where things live, not what the adapters say:

* **Sharded pub/sub** (``SSUBSCRIBE``/``SPUBLISH``, the sharded protocol and the streams
  adapter's ``sharded_pubsub``) is what scales across a cluster: a shard channel lives on the
  master that owns its hash slot, and a message only travels within that shard. The subscriber
  therefore holds **one connection per master** that owns one of its channels
  (:class:`ClusterBus`), each a :class:`~sockjet.adapters.redis_bus.RedisBus` of its own (with
  its reconnection and health checks); ``PUBSUB SHARDNUMSUB`` is asked of the channel's master.
* **Classic pub/sub** (``SUBSCRIBE``/``PUBLISH``, the classic protocol) works too, but every
  message is forwarded to every node of the cluster: one subscriber connection (to one master)
  hears everything, and ``PUBSUB NUMSUB`` is summed over the masters. A server publishes
  through that same master, so its messages keep their order.
* **Order**: with sharded pub/sub, a server's messages on one channel keep their order, but
  messages on channels of different masters (a room's and the namespace's) may overtake each
  other, as with Node's sharded adapter on a cluster.
* **Keys**: the streams adapter's stream is one key, on one slot (its reader and its writer
  connect to that slot's master); session records ``sio:session:<pid>`` are spread over the
  slots. Nothing needs two keys at once (no ``MULTI`` across slots: a restore reads a session
  with ``GETDEL``, then the stream).

Slots are looked up when a channel is subscribed and when a connection is made again, so a
channel follows its slot after a failover or a resharding once its connection is lost or its
subscription refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from redis.asyncio import ConnectionPool, Redis, RedisCluster

from sockjet.adapters.redis_bus import Handler, Publisher, RedisBus, SubscriptionKey
from sockjet.adapters.redis_protocols import SubscriptionKind

__all__ = ["ClusterBus", "is_cluster"]

logger = logging.getLogger("sockjet.adapters.redis")


def is_cluster(client: Any) -> bool:
    """Whether ``client`` is a ``redis.asyncio.RedisCluster``."""
    return isinstance(client, RedisCluster)


class ClusterBus:
    """What :class:`~sockjet.adapters.redis_bus.RedisBus` is to one Redis, for a cluster: the
    same interface, one subscriber connection per master (see the module docs), one
    :class:`~sockjet.adapters.redis_bus.Publisher` on the cluster client (it routes each
    ``SPUBLISH`` to its slot's master)."""

    def __init__(
        self,
        client: RedisCluster,
        *,
        owns_client: bool,
        sharded: bool = False,
        request_timeout: float = 5.0,
        max_queued: int = 100_000,
        min_delay: float = 0.05,
        max_delay: float = 5.0,
        health_interval: float = 15.0,
        max_message_size: int = 512 * 1024 * 1024,
    ) -> None:
        self.client: Any = client
        self._owns_client = owns_client
        self.request_timeout = request_timeout
        self.publisher = Publisher(client, sharded=sharded, max_queued=max_queued)
        self._bus_options: dict[str, Any] = {
            "sharded": sharded,
            "request_timeout": request_timeout,
            "max_queued": max_queued,
            "min_delay": min_delay,
            "max_delay": max_delay,
            "health_interval": health_interval,
            "max_message_size": max_message_size,
        }
        self._sharded = sharded
        self._home: Publisher | None = None  # classic: publishes through the subscriber's node
        self._nodes: dict[str, RedisBus] = {}  # node name -> its subscriber
        self._routes: dict[SubscriptionKey, RedisBus] = {}
        self._wanted: dict[SubscriptionKey, Handler] = {}
        self._routed = asyncio.Event()
        self._routing: asyncio.Task[None] | None = None
        self._closed = False

    # -- where a channel lives --------------------------------------------------------------------

    def _node_bus(self, node: Any) -> RedisBus:
        bus = self._nodes.get(node.name)
        if bus is None:
            pool = ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
            bus = self._nodes[node.name] = RedisBus(
                Redis.from_pool(pool), owns_client=True, **self._bus_options
            )
        return bus

    def _bus_of(self, key: SubscriptionKey) -> RedisBus | None:
        """The subscriber for ``key``: its slot's master (shard channels), else one master."""
        manager = self.client.nodes_manager
        if not manager.slots_cache:
            return None  # the cluster is not known yet
        kind, channel = key
        if kind is SubscriptionKind.SHARD:
            node = manager.get_node_from_slot(self.client.keyslot(channel))
        else:
            node = min(self.client.get_primaries(), key=lambda n: n.name)
        return self._node_bus(node)

    def _route(self) -> None:
        pending = [key for key in self._wanted if key not in self._routes]
        for key in pending:
            bus = self._bus_of(key)
            if bus is None:
                if self._routing is None and not self._closed:
                    self._routing = asyncio.get_running_loop().create_task(
                        self._discover(), name="sockjet-redis-cluster-discover"
                    )
                return
            self._routes[key] = bus
            bus.subscribe(key, self._wanted[key])
        self._routed.set()

    async def _discover(self) -> None:
        delay = 0.05
        try:
            while not self._closed:
                try:
                    await self.client.initialize()
                    break
                except Exception as exc:
                    logger.warning("cannot reach the Redis Cluster (%s); retrying", exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._bus_options["max_delay"])
        finally:
            self._routing = None
        if not self._closed:
            self._route()

    # -- RedisBus's interface -----------------------------------------------------------------------

    def subscribe(self, key: SubscriptionKey, handler: Handler) -> None:
        self._wanted[key] = handler
        self._routed.clear()
        self._route()

    def unsubscribe(self, key: SubscriptionKey) -> None:
        self._wanted.pop(key, None)
        bus = self._routes.pop(key, None)
        if bus is not None:
            bus.unsubscribe(key)

    def is_subscribed(self, key: SubscriptionKey) -> bool:
        bus = self._routes.get(key)
        return bus is not None and bus.is_subscribed(key)

    async def wait_subscribed(self, keys: Iterable[SubscriptionKey]) -> None:
        for key in keys:
            while key not in self._routes:
                await self._routed.wait()
            await self._routes[key].wait_subscribed([key])

    def publish(self, channel: bytes, payload: bytes) -> None:
        if self._sharded:
            self.publisher.publish(channel, payload)  # SPUBLISH: to the channel's master
            return
        home = self._home
        if home is None:
            bus = self._bus_of((SubscriptionKind.CHANNEL, channel))
            if bus is None:  # the cluster is not known yet
                self.publisher.publish(channel, payload)
                return
            home = self._home = Publisher(bus.client, max_queued=self._bus_options["max_queued"])
        home.publish(channel, payload)

    @property
    def reconnections(self) -> int:
        return sum(bus.reconnections for bus in self._nodes.values())

    async def count_subscribers(self, key: SubscriptionKey) -> int | None:
        """``PUBSUB SHARDNUMSUB`` of the channel's master, or ``PUBSUB NUMSUB`` summed over the
        masters (None if one could not be asked)."""
        kind, _ = key
        if kind is SubscriptionKind.SHARD:
            bus = self._routes.get(key) or self._bus_of(key)
            return None if bus is None else await bus.count_subscribers(key)
        if not self.client.nodes_manager.slots_cache:
            return None
        counts = await asyncio.gather(
            *(self._node_bus(node).count_subscribers(key) for node in self.client.get_primaries())
        )
        if any(count is None for count in counts):
            return None
        return sum(count or 0 for count in counts)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        routing, self._routing = self._routing, None
        if routing is not None:
            routing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await routing
        await self.publisher.close(min(self.request_timeout, 1.0))
        if self._home is not None:
            await self._home.close(min(self.request_timeout, 1.0))
        for bus in self._nodes.values():
            await bus.close()
        self._nodes.clear()
        self._routes.clear()
        if self._owns_client:
            await self.client.aclose()
