"""One socket's events take effect in the order the socket sent them.

A handler that must ask the cluster something before it acts (``joinRoom`` looks for the user's
other tabs and for a socket named like the room; ``leaveRoom`` and a disconnection look for the
user's remaining tabs) would otherwise be overtaken by the same socket's next events: its first
message would reach the room before "X joined the chat". :class:`SocketOrder` queues them
instead:

* an event that arrives while no earlier event of its socket is still at work runs at once,
  inline (the common case costs one dict lookup);
* otherwise it waits for the one before it, in a task of its own (the server runs it and counts
  it against the connection's handler limit, so ``ack_requested()`` stays the event's own);
* a step that awaits holds its socket's turn until it calls ``release()`` (or ends): ``joinRoom``
  releases it once the room has seen everything the join causes, before reading the history.

Each socket's queue is a chain of futures, one per event still at work, so nothing is left
behind once the socket is idle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["Release", "SocketOrder"]

T = TypeVar("T")

Release = Callable[[], None]
"""Lets the socket's next event run (idempotent)."""


class _Turn:
    """One event's place in its socket's chain: it runs once ``after`` is done and lets the next
    one run by resolving ``mine``."""

    __slots__ = ("_after", "_key", "_mine", "_order")

    def __init__(
        self,
        order: SocketOrder,
        key: str,
        after: asyncio.Future[None] | None,
        mine: asyncio.Future[None],
    ) -> None:
        self._order = order
        self._key = key
        self._after = after
        self._mine = mine

    async def wait(self) -> None:
        after = self._after
        if after is not None:
            await asyncio.shield(after)  # a cancelled waiter must not cancel the chain

    def release(self) -> None:
        mine = self._mine
        if mine.done():
            return
        after = self._after
        if after is not None and not after.done():
            # Released early (this event was cancelled while waiting): the next one still
            # comes after the previous one.
            after.add_done_callback(lambda _: self.release())
            return
        mine.set_result(None)
        tails = self._order._tails
        if tails.get(self._key) is mine:
            del tails[self._key]


class SocketOrder:
    """Runs the events of each socket (keyed by its id) one after another, in arrival order."""

    __slots__ = ("_tails",)

    def __init__(self) -> None:
        self._tails: dict[str, asyncio.Future[None]] = {}
        """Per socket, the future that the last event still at work resolves when done."""

    def busy(self, key: str) -> bool:
        """Whether an event of this socket is still at work (a new one would wait)."""
        return key in self._tails

    def run(self, key: str, step: Callable[[], T]) -> T | Awaitable[T]:
        """``step()`` now when the socket is idle, else an awaitable that runs it in turn."""
        after = self._tails.get(key)
        if after is None:
            return step()
        turn = self._enter(key, after)
        return self._run_later(turn, step)

    def hold(self, key: str, step: Callable[[Release], Awaitable[T]]) -> Awaitable[T]:
        """An awaitable that runs ``step(release)`` in turn; the socket's next events wait
        until it calls ``release`` or ends."""
        turn = self._enter(key, self._tails.get(key))
        return self._hold(turn, step)

    def _enter(self, key: str, after: asyncio.Future[None] | None) -> _Turn:
        # Taken now, synchronously: an event dispatched right after this one (the same
        # WebSocket frame batch, the same polling POST) queues behind it even before its task
        # starts.
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[key] = mine
        return _Turn(self, key, after, mine)

    @staticmethod
    async def _run_later(turn: _Turn, step: Callable[[], T]) -> T:
        try:
            await turn.wait()
            return step()
        finally:
            turn.release()

    @staticmethod
    async def _hold(turn: _Turn, step: Callable[[Release], Awaitable[T]]) -> T:
        try:
            await turn.wait()
            return await step(turn.release)
        finally:
            turn.release()
