"""The Redis I/O of the streams adapter (:mod:`sockjet.adapters.redis_streams`): what writes
stream entries, what writes the rest in order, what reads a stream.

* :class:`EntryWriter`: ``XADD`` on a connection of its own, each command handed to the socket
  the moment it is issued (not at the next turn of the event loop): a broadcast is on its way to
  Redis before anything its handler sends afterwards, an ack included, so a server killed right
  after acknowledging a message has sent the message too. Replies are read in order.
* :class:`CommandWriter`: any commands (session records, ``PING``) in order, in pipelined
  batches, through redis-py (standalone or cluster).
* :class:`StreamReader`: ``XREAD BLOCK`` from where the stream stood when it started, entries
  handed over in order, the position kept across outages.

Faults: while Redis is unreachable, writes wait (bounded: the oldest go first, counted in
``dropped``) and go out once it answers again; what was on its way when a connection failed may
or may not have reached Redis: it is not sent again (that could duplicate a broadcast) but
counted in ``lost`` and logged as *may be lost*. A reader that finds, after an outage, that the
stream no longer holds its position (Redis restarted without its data) says so, and the
entries this server had recorded since then are counted as lost too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from redis.exceptions import RedisError

from sockjet.adapters.redis_resp import RespError, RespProtocolError, RespReader, pack_command

__all__ = [
    "CommandWriter",
    "EntryWriter",
    "StreamReader",
    "entries_of",
    "entry_key",
    "report_lost",
]

logger = logging.getLogger("sockjet.adapters.redis")

_BATCH: Final = 512  # commands per pipelined round trip
_READ_SIZE: Final = 256 * 1024
_MAX_REPLY: Final = 1024 * 1024  # an XADD reply is an id: anything longer is garbage
_REDIRECTS: Final = ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "LOADING")

EntryId = tuple[int, int]


def entry_key(entry_id: bytes | str) -> EntryId:
    """An entry id as a comparable pair (``b"1795677783006-0"`` -> ``(1795677783006, 0)``)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _count(counts: dict[str, int], kind: str, n: int = 1) -> int:
    total = counts[kind] = counts.get(kind, 0) + n
    return total


def report_lost(counts: dict[str, int], lost: dict[str, int], why: str) -> None:
    """Add ``counts`` (by kind) to ``lost`` and log them: "<why>: 2 broadcast may be lost"."""
    counts = {kind: n for kind, n in counts.items() if kind != "barrier" and n}
    for kind, n in counts.items():
        _count(lost, kind, n)
    if counts:
        logger.warning(
            "%s: %s may be lost",
            why,
            ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())),
        )


class CommandWriter:
    """Redis commands sent in order on one client, in pipelined batches.

    While Redis is unreachable the queue waits (bounded by ``max_queued``: the oldest go first)
    and a PING tells when it is back; then what waited is sent. Commands of a batch whose send
    failed may or may not have reached Redis: they are not sent again (that could duplicate a
    broadcast) but counted as *possibly lost* and logged (:attr:`lost`).
    """

    def __init__(self, client: Any, *, max_queued: int = 100_000, max_delay: float = 5.0) -> None:
        self._client = client
        self._queue: deque[tuple[tuple[Any, ...], asyncio.Future[Any] | None, str]] = deque()
        self._max_queued = max_queued
        self._max_delay = max_delay
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._failing = False
        self._closed = False
        self.lost: dict[str, int] = {}
        """What may be lost, by kind (``"broadcast"``, ``"operation"``, ``"session"``)."""
        self.dropped: dict[str, int] = {}
        """What was dropped unsent because too much waited for Redis, by kind."""

    @property
    def queued(self) -> int:
        return len(self._queue)

    def send(self, args: tuple[Any, ...], kind: str) -> None:
        """Queue one command (sent soon, in order; failures are logged and counted)."""
        self._enqueue(args, None, kind)

    def send_waiting(self, args: tuple[Any, ...], kind: str) -> asyncio.Future[Any]:
        """Like :meth:`send`; the future resolves with Redis's reply or fails with the error."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_quiet)
        self._enqueue(args, future, kind)
        return future

    def barrier(self) -> asyncio.Future[Any]:
        """A future that resolves once everything queued before it was sent (or failed)."""
        return self.send_waiting(("PING",), "barrier")

    def _enqueue(
        self, args: tuple[Any, ...], waiter: asyncio.Future[Any] | None, kind: str
    ) -> None:
        if self._closed:
            if waiter is not None:
                waiter.set_exception(ConnectionError("the Redis writer is closed"))
            return
        queue = self._queue
        if len(queue) >= self._max_queued:
            _, lost, lost_kind = queue.popleft()
            if lost is not None and not lost.done():
                lost.set_exception(ConnectionError("dropped: too many commands queued for Redis"))
            count = self.dropped[lost_kind] = self.dropped.get(lost_kind, 0) + 1
            if count == 1 or count % 10_000 == 0:
                logger.warning(
                    "Redis write queue full (%d): dropping the oldest (%d %s dropped)",
                    len(queue),
                    count,
                    lost_kind,
                )
        queue.append((args, waiter, kind))
        if self._task is None:
            self._idle.clear()
            self._task = asyncio.get_running_loop().create_task(
                self._drain(), name="sockjet-redis-streams-write"
            )

    async def flush(self, grace: float) -> bool:
        """Wait until everything queued was sent (or failed); False after ``grace`` s."""
        try:
            async with asyncio.timeout(grace):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def close(self, grace: float = 1.0) -> None:
        """Send what is queued (waiting at most ``grace`` seconds), then stop."""
        await self.flush(grace)
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        error = ConnectionError("the Redis writer is closed")
        while self._queue:
            _, waiter, kind = self._queue.popleft()
            self.dropped[kind] = self.dropped.get(kind, 0) + 1
            if waiter is not None and not waiter.done():
                waiter.set_exception(error)
        self._idle.set()

    async def _execute(self, batch: list[tuple[tuple[Any, ...], Any, str]]) -> list[Any]:
        if len(batch) == 1:
            return [await self._client.execute_command(*batch[0][0])]
        async with self._client.pipeline(transaction=False) as pipe:
            for args, _, _ in batch:
                pipe.execute_command(*args)
            result: list[Any] = await pipe.execute(raise_on_error=False)
            return result

    def _count_lost(self, batch: list[tuple[tuple[Any, ...], Any, str]], exc: Exception) -> None:
        counts: dict[str, int] = {}
        for _, _, kind in batch:
            _count(counts, kind)
        report_lost(counts, self.lost, f"Redis write failed ({exc})")

    async def _drain(self) -> None:
        queue = self._queue
        delay = 0.0
        try:
            while queue:
                if self._failing:
                    # Nothing is sent until Redis answers: what waits is not lost meanwhile.
                    try:
                        await self._client.execute_command("PING")
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        delay = min(max(delay * 2, 0.05), self._max_delay)
                        await asyncio.sleep(delay * (0.5 + random.random() / 2))
                        continue
                    self._failing = False
                    logger.info("Redis writes work again (%d waiting)", len(queue))
                batch = [queue.popleft() for _ in range(min(len(queue), _BATCH))]
                try:
                    results = await self._execute(batch)
                except asyncio.CancelledError:
                    queue.extendleft(reversed(batch))
                    raise
                except Exception as exc:
                    self._failing = True
                    if _unsent(exc):  # no connection: nothing went out, it all waits
                        queue.extendleft(reversed(batch))
                        continue
                    self._count_lost(batch, exc)
                    for _, waiter, _ in batch:
                        if waiter is not None and not waiter.done():
                            waiter.set_exception(exc)
                    continue
                delay = 0.0
                for (_, waiter, kind), result in zip(batch, results, strict=False):
                    if isinstance(result, Exception):
                        if kind != "barrier":
                            self.lost[kind] = self.lost.get(kind, 0) + 1
                            logger.warning("Redis refused a %s write: %s", kind, result)
                        if waiter is not None and not waiter.done():
                            waiter.set_exception(result)
                    elif waiter is not None and not waiter.done():
                        waiter.set_result(result)
        finally:
            if self._task is asyncio.current_task():
                self._task = None
            if not queue or self._task is None:
                self._idle.set()


def _unsent(exc: Exception) -> bool:
    """Whether a command failed before anything was sent: redis-py could not connect (it says
    "Error 111 connecting to ...", "Timeout connecting to server")."""
    return isinstance(exc, RedisError | OSError) and "connecting to" in str(exc)


def _quiet(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


Connect = Callable[[], Awaitable[Any]]
"""Makes a new connected redis-py ``Connection`` (its ``_reader``/``_writer`` are used)."""


class EntryWriter:
    """``XADD`` commands on a connection of their own (see the module docs).

    ``connect()`` makes the connection (redis-py's: URL, TLS, AUTH and RESP version are its
    business); ``on_recorded(id, kind)`` is told the id of each entry Redis recorded.
    """

    def __init__(
        self,
        connect: Connect,
        *,
        on_recorded: Callable[[bytes, str], None] | None = None,
        max_queued: int = 100_000,
        max_delay: float = 5.0,
    ) -> None:
        self._connect = connect
        self._on_recorded = on_recorded
        self._max_queued = max_queued
        self._max_delay = max_delay
        self._queue: deque[tuple[tuple[Any, ...], str]] = deque()  # not written yet
        self._inflight: deque[tuple[tuple[Any, ...], str]] = deque()  # written, no reply yet
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._down = False
        self.lost: dict[str, int] = {}
        self.dropped: dict[str, int] = {}

    @property
    def queued(self) -> int:
        return len(self._queue) + len(self._inflight)

    def send(self, args: tuple[Any, ...], kind: str) -> None:
        """Write one command now (or queue it until connected); failures are logged."""
        if self._closed:
            _count(self.dropped, kind)
            return
        self._idle.clear()
        writer = self._writer
        if writer is not None and not self._queue:
            writer.write(pack_command(*_as_bytes(args)))
            self._inflight.append((args, kind))
        else:
            queue = self._queue
            if len(queue) >= self._max_queued:
                _, lost_kind = queue.popleft()
                n = _count(self.dropped, lost_kind)
                if n == 1 or n % 10_000 == 0:
                    logger.warning(
                        "Redis write queue full (%d): dropping the oldest (%d %s dropped)",
                        len(queue),
                        n,
                        lost_kind,
                    )
            queue.append((args, kind))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="sockjet-redis-streams-xadd"
            )

    async def flush(self, grace: float) -> bool:
        """Wait until every command has its reply (or failed); False after ``grace`` s."""
        try:
            async with asyncio.timeout(grace):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def close(self, grace: float = 1.0) -> None:
        await self.flush(grace)
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        counts: dict[str, int] = {}
        for _, kind in self._inflight:
            _count(counts, kind)
        report_lost(counts, self.lost, "the Redis stream writer closed with replies pending")
        for _, kind in self._queue:
            _count(self.dropped, kind)
        self._queue.clear()
        self._inflight.clear()
        self._idle.set()

    async def _run(self) -> None:
        delay = 0.05
        while True:
            connection = None
            try:
                connection = await self._connect()
                reader: asyncio.StreamReader = connection._reader
                writer: asyncio.StreamWriter = connection._writer
                if self._down:
                    self._down = False
                    logger.info("Redis stream writes work again (%d waiting)", len(self._queue))
                delay = 0.05
                self._writer = writer
                queue, inflight = self._queue, self._inflight
                while queue:  # what waited goes first, in order
                    args, kind = queue.popleft()
                    writer.write(pack_command(*_as_bytes(args)))
                    inflight.append((args, kind))
                if not inflight:
                    self._idle.set()
                await self._read(reader)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._writer = None
                counts: dict[str, int] = {}
                for _, kind in self._inflight:
                    _count(counts, kind)
                self._inflight.clear()
                if counts:
                    report_lost(counts, self.lost, f"Redis write failed ({exc})")
                elif not self._down:
                    logger.warning("Redis stream writer: %s; reconnecting", exc)
                self._down = True
                if not self._queue:
                    self._idle.set()
            finally:
                self._writer = None
                if connection is not None:
                    await _abort(connection)
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, self._max_delay)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        resp = RespReader(_MAX_REPLY)
        inflight = self._inflight
        on_recorded = self._on_recorded
        while True:
            data = await reader.read(_READ_SIZE)
            if not data:
                raise ConnectionError("Redis closed the connection")
            try:
                values = resp.feed(data)
            except RespProtocolError as exc:
                raise ConnectionError(f"garbage from Redis: {exc}") from None
            redirected: list[tuple[tuple[Any, ...], str]] = []
            for value in values:
                if not inflight:
                    raise ConnectionError("a reply from Redis that nothing asked for")
                item = inflight.popleft()
                if isinstance(value, RespError):
                    if value.message.startswith(_REDIRECTS):
                        redirected.append(item)  # not executed: sent again elsewhere
                    else:
                        _count(self.lost, item[1])
                        logger.warning("Redis refused a %s write: %s", item[1], value.message)
                elif on_recorded is not None and value.__class__ is bytes:
                    on_recorded(value, item[1])
            if redirected:
                # The stream moved (a cluster resharded, a failover): reconnect to where it is
                # now, then send these again first, in order.
                self._queue.extendleft(reversed([*redirected, *inflight]))
                inflight.clear()
                raise ConnectionError("the stream moved to another node")
            if not inflight and not self._queue:
                self._idle.set()


def _as_bytes(args: tuple[Any, ...]) -> list[bytes]:
    out = []
    for arg in args:
        if arg.__class__ is bytes:
            out.append(arg)
        elif arg.__class__ is str:
            out.append(arg.encode())
        else:
            out.append(str(arg).encode())
    return out


Dispatch = Callable[[bytes, dict[bytes, bytes]], None]


class StreamReader:
    """Reads one stream from where it stood when the reader started (``XREAD BLOCK``), and hands
    each entry to ``dispatch(entry_id, fields)`` in order. The position is kept across Redis
    outages: nothing recorded meanwhile is skipped. ``on_gap(position)``: after an outage, the
    stream no longer holds the position (Redis lost its data, or trimmed past a reader that
    fell too far behind): entries may have been lost.

    With ``connect`` the reader has a connection of its own, read directly (closing it stops a
    blocked ``XREAD`` at once); otherwise it goes through redis-py's ``client``.
    """

    def __init__(
        self,
        client: Any,
        stream: bytes,
        dispatch: Dispatch,
        *,
        connect: Connect | None = None,
        count: int = 100,
        block: float = 2.0,
        timeout: float = 5.0,
        max_delay: float = 5.0,
        max_message_size: int = 64 * 1024 * 1024,
        on_gap: Callable[[bytes], None] | None = None,
    ) -> None:
        self._client = client
        self._connect = connect
        self.stream = stream
        self._dispatch = dispatch
        self._on_gap = on_gap
        self._count = count
        self._block_ms = max(1, round(block * 1000))
        self._wait = block + timeout
        self._max_delay = max_delay
        self._max_bulk = max_message_size + 1024
        self.position: bytes | None = None
        """The id of the last entry handed over (``b"0-0"``: none yet), None until started."""
        self.origin: bytes | None = None
        """Where the stream stood when the reader started (every entry after it is handed
        over), None until started."""
        self.started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._down = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="sockjet-redis-streams-read"
            )

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        delay = 0.05
        while True:
            connection = None
            try:
                if self._connect is None:
                    command: Callable[..., Awaitable[Any]] = self._client.execute_command
                else:
                    connection = await self._connect()
                    command = _Direct(connection, self._max_bulk, self._wait).command
                await self._read(command)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._down:
                    self._down = True
                    logger.warning("reading stream %s failed (%s); retrying", self.stream, exc)
            finally:
                if connection is not None:
                    await _abort(connection)
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, self._max_delay)

    async def _read(self, command: Callable[..., Awaitable[Any]]) -> None:
        stream = self.stream
        if self.position is None:
            reply = await command("XREVRANGE", stream, "+", "-", "COUNT", "1")
            self.position = next((entry_id for entry_id, _ in entries_of(reply)), b"0-0")
            self.origin = self.position
            self.started.set()
        elif self._down and self.position != b"0-0":
            position = self.position
            if not await command("XRANGE", stream, position, position):
                logger.warning(
                    "stream %s no longer holds %s (Redis restarted without its data?): entries "
                    "recorded meanwhile may be lost",
                    stream,
                    position,
                )
                if self._on_gap is not None:
                    self._on_gap(position)
        first = True
        dispatch = self._dispatch
        while True:
            reply = await command(
                "XREAD", "COUNT", self._count, "BLOCK", self._block_ms, "STREAMS", stream,
                self.position,
            )  # fmt: skip
            if first:
                first = False
                if self._down:
                    self._down = False
                    logger.info("reading stream %s works again", stream)
            for entry_id, fields in entries_of(_only_stream(reply)):
                try:
                    dispatch(entry_id, fields)
                except Exception:
                    logger.exception("handling a stream entry failed")
                self.position = entry_id


class _Direct:
    """One command at a time on a connection read directly (the reader's)."""

    def __init__(self, connection: Any, max_bulk: int, wait: float) -> None:
        self._reader: asyncio.StreamReader = connection._reader
        self._writer: asyncio.StreamWriter = connection._writer
        self._resp = RespReader(max_bulk)
        self._wait = wait

    async def command(self, *args: Any) -> Any:
        self._writer.write(pack_command(*_as_bytes(args)))
        async with asyncio.timeout(self._wait):
            while True:
                data = await self._reader.read(_READ_SIZE)
                if not data:
                    raise ConnectionError("Redis closed the connection")
                try:
                    values = self._resp.feed(data)
                except RespProtocolError as exc:
                    raise ConnectionError(f"garbage from Redis: {exc}") from None
                if values:
                    value = values[0]
                    if isinstance(value, RespError):
                        raise RedisError(value.message)
                    return value


async def _abort(connection: Any) -> None:
    """Drop a directly used connection now (a blocked read is not waited for)."""
    writer = getattr(connection, "_writer", None)
    transport = getattr(writer, "transport", None)
    if transport is not None:
        transport.abort()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            await connection.disconnect(nowait=True)


def _only_stream(reply: Any) -> Any:
    """The entries of the (single) stream of an XREAD reply (RESP2 list, RESP3 map)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        for value in reply.values():
            # redis-py wraps RESP3's entries in one more list; a raw reply does not
            wrapped = len(value) == 1 and isinstance(value[0], list)
            if wrapped and value[0] and isinstance(value[0][0], list | tuple):
                return value[0]
            return value
        return []
    first = reply[0]
    return first[1] if isinstance(first, list | tuple) and len(first) == 2 else []


def entries_of(reply: Any) -> Iterable[tuple[bytes, dict[bytes, bytes]]]:
    """``(id, fields)`` of each entry of an XRANGE/XREAD reply (raw, or as redis-py parses
    it)."""
    for item in reply or ():
        if not isinstance(item, list | tuple) or len(item) != 2:
            continue
        entry_id, fields = item
        if fields is None:
            continue  # an entry deleted meanwhile
        if not isinstance(fields, dict):
            it = iter(fields)
            fields = dict(zip(it, it, strict=False))
        yield entry_id, fields
