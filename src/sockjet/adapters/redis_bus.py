"""One server's connection to Redis: a subscriber connection and an ordered publisher.

A :class:`RedisBus` belongs to one :class:`~sockjet.Server` and serves all its namespaces'
adapters, as Node's adapter shares one ``subClient``: **one** subscriber connection per server,
whatever the number of namespaces (each namespace only adds its channels to it). That
connection is made by redis-py (URL, TLS, AUTH) and then read directly, a chunk at a time, by
:class:`~sockjet.adapters.redis_resp.RespReader`: a burst of messages costs one read, not one
trip through redis-py's reply machinery per message (about 3x the throughput).

Faults:

- The subscriber reconnects with capped, jittered exponential backoff and subscribes again to
  everything its adapters want; a silent connection (no message and no answer to a PING for
  two ``health_interval`` periods) counts as lost. Local delivery is never blocked meanwhile.
- The :class:`Publisher` sends in order (one queue, one sender task, pipelined batches), so an
  ``emit`` after a ``sockets_join`` reaches the other servers after it. While Redis is down its
  queue is bounded (oldest messages dropped first, with a warning); a batch whose send failed is
  dropped, never replayed (pub/sub is at-most-once, and a replay could duplicate).
- Broker input is handed to the adapters' handlers, which treat it as untrusted; a handler that
  raises is logged and the bus goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Final

from redis.asyncio import Redis, RedisCluster

from sockjet.adapters.redis_protocols import SubscriptionKind
from sockjet.adapters.redis_resp import RespError, RespProtocolError, RespReader, pack_command

__all__ = ["Handler", "Publisher", "RedisBus", "SubscriptionKey"]

logger = logging.getLogger("sockjet.adapters.redis")

SubscriptionKey = tuple[SubscriptionKind, bytes]
Handler = Callable[[bytes, bytes], None]
"""Called with ``(channel, payload)`` for each message of a subscription."""

_BATCH: Final = 1024  # messages per pipelined round trip
_READ_SIZE: Final = 256 * 1024
_CONFIRMATIONS: Final = {
    b"subscribe": SubscriptionKind.CHANNEL,
    b"psubscribe": SubscriptionKind.PATTERN,
    b"ssubscribe": SubscriptionKind.SHARD,
}


def _quiet(future: asyncio.Future[None]) -> None:
    # A caller may ignore the future of a publish: its failure is logged by the publisher, so
    # asyncio must not report it again as "never retrieved".
    if not future.cancelled():
        future.exception()


class Publisher:
    """PUBLISH (or SPUBLISH) in order on one client, in pipelined batches."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        sharded: bool = False,
        max_queued: int = 100_000,
        max_delay: float = 5.0,
    ) -> None:
        self._client: Any = client  # redis-py's command methods are untyped
        self._command = "SPUBLISH" if sharded else "PUBLISH"
        self._queue: deque[tuple[bytes, bytes, asyncio.Future[None] | None]] = deque()
        self._max_queued = max_queued
        self._max_delay = max_delay
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._failing = False
        self._dropped = 0

    @property
    def queued(self) -> int:
        """Messages waiting to be sent."""
        return len(self._queue)

    def publish(self, channel: bytes, payload: bytes) -> None:
        """Queue one message (sent soon, in order; failures are logged)."""
        self._enqueue(channel, payload, None)

    def publish_waiting(self, channel: bytes, payload: bytes) -> asyncio.Future[None]:
        """Like :meth:`publish`; the future resolves once Redis took the message, or fails
        with the error (ignoring it is fine: the failure is logged anyway)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_quiet)
        self._enqueue(channel, payload, future)
        return future

    def _enqueue(self, channel: bytes, payload: bytes, waiter: asyncio.Future[None] | None) -> None:
        queue = self._queue
        if len(queue) >= self._max_queued:
            _, _, lost = queue.popleft()
            if lost is not None and not lost.done():
                lost.set_exception(ConnectionError("dropped: too many messages queued for Redis"))
            self._dropped += 1
            if self._dropped == 1:  # once until messages go through again
                logger.warning("Redis publish queue full (%d): dropping the oldest", len(queue))
        queue.append((channel, payload, waiter))
        if self._task is None:
            self._idle.clear()
            self._task = asyncio.get_running_loop().create_task(
                self._drain(), name="sockjet-redis-publish"
            )

    async def flush(self, grace: float) -> bool:
        """Wait until everything queued was sent (or dropped); False after ``grace`` s."""
        try:
            async with asyncio.timeout(grace):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def close(self, grace: float = 1.0) -> None:
        """Send what is queued (waiting at most ``grace`` seconds), then stop."""
        await self.flush(grace)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        error = ConnectionError("the Redis publisher is closed")
        while self._queue:
            _, _, waiter = self._queue.popleft()
            if waiter is not None and not waiter.done():
                waiter.set_exception(error)
        self._idle.set()

    async def _send(self, batch: list[tuple[bytes, bytes, asyncio.Future[None] | None]]) -> None:
        command = self._command
        if len(batch) == 1:
            channel, payload, _ = batch[0]
            await self._client.execute_command(command, channel, payload)
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for channel, payload, _ in batch:
                pipe.execute_command(command, channel, payload)
            await pipe.execute()

    async def _drain(self) -> None:
        queue = self._queue
        delay = 0.0
        try:
            while queue:
                batch = [queue.popleft() for _ in range(min(len(queue), _BATCH))]
                try:
                    await self._send(batch)
                except asyncio.CancelledError:
                    queue.extendleft(reversed(batch))
                    raise
                except Exception as exc:
                    for _, _, waiter in batch:
                        if waiter is not None and not waiter.done():
                            waiter.set_exception(exc)
                    if not self._failing:
                        self._failing = True
                        logger.warning("Redis publish failed (%s); retrying with backoff", exc)
                    delay = min(max(delay * 2, 0.05), self._max_delay)
                    await asyncio.sleep(delay * (0.5 + random.random() / 2))
                    continue
                for _, _, waiter in batch:
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)
                if self._failing:
                    self._failing = False
                    logger.info("Redis publish works again (%d dropped)", self._dropped)
                    self._dropped = 0
                elif self._dropped and not queue:
                    self._dropped = 0  # the burst is over
                delay = 0.0
        finally:
            if self._task is asyncio.current_task():
                self._task = None
            if not queue or self._task is None:
                self._idle.set()


class _StreamLink:
    """The subscriber connection, read and written directly (the fast path).

    redis-py makes the connection (URL, TLS, AUTH, HELLO); then its stream is read in chunks
    and parsed by :class:`~sockjet.adapters.redis_resp.RespReader`, a whole burst at once.
    """

    def __init__(self, connection: Any, max_bulk: int) -> None:
        self._connection = connection
        self._reader: asyncio.StreamReader = connection._reader
        self._writer: asyncio.StreamWriter = connection._writer
        self._resp = RespReader(max_bulk)

    @classmethod
    async def open(cls, client: Any, max_bulk: int) -> _StreamLink | None:
        """Connect; None when the client does not expose the streams this path needs (a
        stand-in client, another redis-py)."""
        pool = getattr(client, "connection_pool", None)
        make = getattr(pool, "make_connection", None)
        if make is None:
            return None
        connection = make()
        await connection.connect()
        if not isinstance(getattr(connection, "_reader", None), asyncio.StreamReader):
            await connection.disconnect()
            return None
        return cls(connection, max_bulk)

    async def command(self, *parts: bytes) -> None:
        self._writer.write(pack_command(*parts))
        await self._writer.drain()

    async def read(self, wait: float) -> list[Any] | None:
        """The next values Redis sent (None if nothing came within ``wait`` seconds)."""
        try:
            async with asyncio.timeout(wait):
                data = await self._reader.read(_READ_SIZE)
        except TimeoutError:
            return None
        if not data:
            raise ConnectionError("Redis closed the connection")
        try:
            return self._resp.feed(data)
        except RespProtocolError as exc:
            raise ConnectionError(f"garbage from Redis: {exc}") from None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._connection.disconnect()


class _PubSubLink:
    """The subscriber connection through redis-py's ``PubSub`` (for clients the fast path
    cannot use); messages are turned into the RESP shapes the fast path yields."""

    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    @classmethod
    async def open(cls, client: Any) -> _PubSubLink:
        pubsub = client.pubsub()
        try:
            await pubsub.connect()
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        return cls(pubsub)

    async def command(self, *parts: bytes) -> None:
        verb = parts[0].decode().lower()
        await getattr(self._pubsub, verb)(*parts[1:])

    async def read(self, wait: float) -> list[Any] | None:
        message = await self._pubsub.get_message(timeout=wait)
        if message is None:
            return None
        kind = message["type"].encode()
        if kind == b"pmessage":
            return [[kind, message["pattern"], message["channel"], message["data"]]]
        return [[kind, message["channel"], message["data"]]]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()


_Link = _StreamLink | _PubSubLink


class RedisBus:
    """The Redis connections of one server: one subscriber connection shared by every
    namespace's adapter (subscriptions are added and removed as they come and go), and one
    :class:`Publisher`."""

    def __init__(
        self,
        client: Redis,
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
        self.client: Any = client  # redis-py's command methods are untyped
        self._owns_client = owns_client
        self.request_timeout = request_timeout
        self.publisher = Publisher(
            client, sharded=sharded, max_queued=max_queued, max_delay=max_delay
        )
        self._min_delay = min_delay
        self._max_delay = max_delay
        self._health_interval = health_interval
        self._wanted: dict[SubscriptionKey, Handler] = {}
        self._sent: set[SubscriptionKey] = set()
        self._confirmed: set[SubscriptionKey] = set()
        self._waiters: dict[SubscriptionKey, list[asyncio.Future[None]]] = {}
        self._max_bulk = max_message_size + 1024
        self._link: _Link | None = None
        self._runner: asyncio.Task[None] | None = None
        self._syncing: asyncio.Task[None] | None = None
        self._closed = False
        self._down = False
        self._heard = False
        self._count_failing = False
        self.reconnections = 0
        """How many times the subscriber connected after a failure (lost or refused)."""

    # -- subscriptions ----------------------------------------------------------------------------

    def subscribe(self, key: SubscriptionKey, handler: Handler) -> None:
        """Receive the messages of ``key`` (sent to Redis at once if connected, else on
        connection)."""
        self._wanted[key] = handler
        self._start()
        self._kick()

    def unsubscribe(self, key: SubscriptionKey) -> None:
        self._wanted.pop(key, None)
        self._kick()

    def is_subscribed(self, key: SubscriptionKey) -> bool:
        """Whether Redis confirmed the subscription on the current connection."""
        return key in self._confirmed

    async def wait_subscribed(self, keys: Iterable[SubscriptionKey]) -> None:
        """Wait until Redis confirmed every subscription of ``keys`` (no timeout here)."""
        loop = asyncio.get_running_loop()
        for key in keys:
            while key not in self._confirmed:
                future: asyncio.Future[None] = loop.create_future()
                self._waiters.setdefault(key, []).append(future)
                await future

    def _confirm(self, key: SubscriptionKey) -> None:
        if key in self._sent:
            self._confirmed.add(key)
        for future in self._waiters.pop(key, ()):
            if not future.done():
                future.set_result(None)

    def _kick(self) -> None:
        if self._link is not None and self._syncing is None:
            self._syncing = asyncio.get_running_loop().create_task(
                self._sync(self._link), name="sockjet-redis-subscribe"
            )

    async def _sync(self, link: _Link) -> None:
        """Bring the connection's subscriptions to what the adapters want (in order, one
        command at a time, so a quick join/leave/join of a room cannot be reordered)."""
        try:
            while self._link is link:
                add = [key for key in self._wanted if key not in self._sent]
                remove = [key for key in self._sent if key not in self._wanted]
                if not add and not remove:
                    return
                for key in add:
                    self._sent.add(key)
                    await link.command(_SUBSCRIBE[key[0]], key[1])
                for key in remove:
                    self._sent.discard(key)
                    self._confirmed.discard(key)
                    await link.command(_UNSUBSCRIBE[key[0]], key[1])
        except Exception as exc:  # the reader sees the same failure and reconnects
            logger.debug("Redis subscribe failed: %s", exc)
        finally:
            if self._syncing is asyncio.current_task():
                self._syncing = None

    # -- the subscriber connection ----------------------------------------------------------------

    def _start(self) -> None:
        if self._runner is None and not self._closed:
            self._runner = asyncio.get_running_loop().create_task(
                self._run(), name="sockjet-redis-subscriber"
            )

    async def _connect(self) -> _Link:
        link = await _StreamLink.open(self.client, self._max_bulk)
        if link is None:
            return await _PubSubLink.open(self.client)
        return link

    async def _run(self) -> None:
        delay = self._min_delay
        while True:
            self._heard = False
            link: _Link | None = None
            try:
                link = self._link = await self._connect()
                if self._down:
                    self._down = False
                    self.reconnections += 1
                    logger.info("Redis subscriber connected again")
                self._kick()
                await self._read(link)
            except Exception as exc:
                if not self._down:
                    self._down = True
                    if link is not None:  # it was connected
                        logger.warning("Redis subscriber connection lost (%s); reconnecting", exc)
                    else:
                        logger.warning("cannot connect to Redis (%s); retrying", exc)
            finally:
                self._link = None
                self._sent.clear()
                self._confirmed.clear()
                syncing, self._syncing = self._syncing, None
                if syncing is not None:
                    syncing.cancel()
                if link is not None:
                    await link.close()
            if self._heard:  # it worked for a while: start the backoff over
                delay = self._min_delay
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, self._max_delay)

    async def _read(self, link: _Link) -> None:
        silent = False
        dispatch = self._dispatch
        while True:
            values = await link.read(self._health_interval)
            if values is None:
                if silent:
                    raise ConnectionError("Redis did not answer a PING")
                silent = True
                await link.command(b"PING")
                continue
            silent = False
            self._heard = True
            for value in values:
                dispatch(value)

    def _dispatch(self, value: Any) -> None:
        """Act on one value from the subscriber connection (a push message, mostly)."""
        if value.__class__ is not list or len(value) < 3:
            if isinstance(value, RespError):  # e.g. SSUBSCRIBE on a Redis older than 7
                logger.error("Redis refused a subscription: %s", value.message)
            return  # PONG and the like
        kind = value[0]
        if kind == b"message":
            handler = self._wanted.get((SubscriptionKind.CHANNEL, value[1]))
            channel, data = value[1], value[2]
        elif kind == b"pmessage" and len(value) >= 4:
            handler = self._wanted.get((SubscriptionKind.PATTERN, value[1]))
            channel, data = value[2], value[3]
        elif kind == b"smessage":
            handler = self._wanted.get((SubscriptionKind.SHARD, value[1]))
            channel, data = value[1], value[2]
        else:
            confirmed = _CONFIRMATIONS.get(kind)
            if confirmed is not None:
                self._confirm((confirmed, value[1]))
            return
        if handler is not None and data.__class__ is bytes:
            try:
                handler(channel, data)
            except Exception:
                logger.exception("handling a Redis message failed")

    # -- queries ------------------------------------------------------------------------------------

    def publish(self, channel: bytes, payload: bytes) -> None:
        """Queue a message for the other servers (see :class:`Publisher`)."""
        self.publisher.publish(channel, payload)

    async def count_subscribers(self, key: SubscriptionKey) -> int | None:
        """Subscribers of a channel (PUBSUB NUMSUB/SHARDNUMSUB), or None if Redis could not
        be asked within the request timeout."""
        kind, channel = key
        command = "SHARDNUMSUB" if kind is SubscriptionKind.SHARD else "NUMSUB"
        try:
            async with asyncio.timeout(self.request_timeout):
                reply = await self.client.execute_command("PUBSUB", command, channel)
        except Exception as exc:
            if not self._count_failing:  # once per outage
                self._count_failing = True
                logger.warning("cannot count the servers on Redis (%s): acting alone", exc)
            return None
        self._count_failing = False
        return _numsub(reply)

    async def close(self) -> None:
        """Send what is queued (briefly), close the connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        await self.publisher.close(min(self.request_timeout, 1.0))
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        for futures in self._waiters.values():
            for future in futures:
                future.cancel()
        self._waiters.clear()
        if self._owns_client:
            await self.client.aclose()


def _numsub(reply: Any) -> int | None:
    # RESP2: [channel, count] (redis-py may have parsed it into [(channel, count)]);
    # RESP3: {channel: count}.
    if isinstance(reply, dict):
        values = list(reply.values())
    elif isinstance(reply, list | tuple) and reply and isinstance(reply[0], list | tuple):
        values = [reply[0][1]]
    elif isinstance(reply, list | tuple) and len(reply) >= 2:
        values = [reply[1]]
    else:
        return None
    try:
        return int(values[0])
    except (TypeError, ValueError, IndexError):
        return None


_SUBSCRIBE: Final = {
    SubscriptionKind.CHANNEL: b"SUBSCRIBE",
    SubscriptionKind.PATTERN: b"PSUBSCRIBE",
    SubscriptionKind.SHARD: b"SSUBSCRIBE",
}
_UNSUBSCRIBE: Final = {
    SubscriptionKind.CHANNEL: b"UNSUBSCRIBE",
    SubscriptionKind.PATTERN: b"PUNSUBSCRIBE",
    SubscriptionKind.SHARD: b"SUNSUBSCRIBE",
}
