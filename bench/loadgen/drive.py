"""Building blocks the scenarios drive servers with: connect many clients, a shared delivery
counter that wakes the driver, percentiles."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from bench.loadgen.pollclient import PollClient, connect_polling
from bench.loadgen.wsclient import PER_MESSAGE, ClientWrites, SourceAddresses, WSClient, connect_ws

__all__ = ["Sink", "close_all", "connect_many", "connect_polling_many", "percentile"]


class Sink:
    """A delivery counter shared by many receivers; wakes one waiter at a threshold."""

    __slots__ = ("count", "threshold", "waiter")

    def __init__(self) -> None:
        self.count = 0
        self.threshold = 1 << 62
        self.waiter: asyncio.Future[None] | None = None

    def add(self, n: int) -> None:
        """Count ``n`` deliveries."""
        self.count += n
        if self.count >= self.threshold and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def reach(self, threshold: int, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until ``count >= threshold``; False on timeout."""
        if self.count >= threshold:
            return True
        self.threshold = threshold
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self.waiter, timeout)
        except TimeoutError:
            return False
        finally:
            self.threshold = 1 << 62
            self.waiter = None
        return True


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


async def _open_many(count: int, concurrency: int, open_one: Callable[[], Awaitable[C]]) -> list[C]:
    """Run ``open_one`` ``count`` times, ``concurrency`` at a time; on failure close what opened."""
    opened: list[C] = []
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            opened.append(await open_one())

    workers = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, count))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for client in opened:
            client.close()
        raise
    return opened


async def connect_many(
    port: int,
    count: int,
    concurrency: int = 100,
    on_message: Callable[[WSClient, Any], None] | None = None,
    sources: SourceAddresses | None = None,
    latencies: list[float] | None = None,
    writes: ClientWrites = PER_MESSAGE,
) -> list[WSClient]:
    """Open ``count`` WebSocket clients writing in mode ``writes``, ``concurrency`` handshakes
    in flight at a time; ``latencies`` (if given) receives each handshake's duration in s."""
    addresses = sources or SourceAddresses()

    async def open_one() -> WSClient:
        started = time.perf_counter()
        client = await connect_ws(port, addresses.next(), on_message, writes=writes)
        if latencies is not None:
            latencies.append(time.perf_counter() - started)
        return client

    return await _open_many(count, concurrency, open_one)


async def connect_polling_many(
    port: int, count: int, concurrency: int = 50, sources: SourceAddresses | None = None
) -> list[PollClient]:
    """Open ``count`` long-polling clients, ``concurrency`` handshakes in flight at a time."""
    addresses = sources or SourceAddresses()
    return await _open_many(count, concurrency, lambda: connect_polling(port, addresses.next()))


def close_all(clients: Sequence[WSClient]) -> None:
    """Drop every client (RST)."""
    for client in clients:
        client.close()


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` (0..1) percentile by nearest rank; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
