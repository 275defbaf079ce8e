"""The write-behind queue: messages are saved after they are sent, never in the way of the send.

``sendMessage`` broadcasts at once and hands the message to :class:`WriteBehind`; one background
task saves what accumulated in batches, in the order accepted. The queue is bounded: when it is
full (the database is down or too slow), :meth:`WriteBehind.submit` says no and the chat refuses
the message instead of accepting something it could lose. A batch that still fails after its
retries goes to ``on_failure`` (the chat logs it and tells the senders); :meth:`WriteBehind.close`
saves everything accepted before it returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from sockjet.chat.models import ChatMessage
from sockjet.chat.store import MessageStore

__all__ = ["DEFAULT_MAX_PENDING", "Pending", "WriteBehind"]

logger = logging.getLogger("sockjet.chat")

DEFAULT_MAX_PENDING: Final = 10_000
"""Most messages accepted but not yet saved (about 3 MB of text at most)."""
DEFAULT_BATCH_SIZE: Final = 200
DEFAULT_RETRY_DELAYS: Final = (0.05, 0.25, 1.0)
"""Seconds to wait before each retry of a failed batch (so four attempts in about 1.3 s)."""


@dataclass(frozen=True, slots=True)
class Pending:
    """A message waiting to be saved, and the socket that sent it (told if the save fails)."""

    message: ChatMessage
    sender: str


FailureHandler = Callable[[Sequence[Pending], BaseException], None]


class WriteBehind:
    """Saves messages to ``store`` in the background (see the module docstring).

    ``start()`` once the event loop runs; ``await close()`` to flush and stop.
    """

    __slots__ = (
        "_closing",
        "_idle",
        "_in_flight",
        "_queue",
        "_task",
        "_wakeup",
        "batch_size",
        "max_pending",
        "on_failure",
        "retry_delays",
        "store",
    )

    def __init__(
        self,
        store: MessageStore,
        on_failure: FailureHandler,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        batch_size: int = DEFAULT_BATCH_SIZE,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
    ) -> None:
        if max_pending < 1 or batch_size < 1:
            raise ValueError("max_pending and batch_size must be at least 1")
        self.store = store
        self.on_failure = on_failure
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.retry_delays = tuple(retry_delays)
        self._queue: deque[Pending] = deque()
        self._in_flight: list[Pending] = []
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def pending(self) -> int:
        """Messages accepted and not saved yet (being saved included)."""
        return len(self._queue) + len(self._in_flight)

    def start(self) -> None:
        """Start the saving task (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="sockjet-chat-writer"
            )

    def submit(self, message: ChatMessage, sender: str) -> bool:
        """Queue a message for saving; False when the queue is full or closing (then the
        message must not be accepted)."""
        if self._closing or self.pending >= self.max_pending:
            return False
        self._queue.append(Pending(message, sender))
        self._idle.clear()
        self._wakeup.set()
        return True

    def unsaved(self, room_id: str) -> list[ChatMessage]:
        """The accepted messages of a room not saved yet (or being saved), oldest first: what
        history must add to what the database returns."""
        return [p.message for p in (*self._in_flight, *self._queue) if p.message.room_id == room_id]

    async def flush(self) -> None:
        """Wait until every message accepted so far has been saved (or reported failed)."""
        await self._idle.wait()

    async def close(self) -> None:
        """Refuse new messages, save the queued ones, stop. Idempotent."""
        self._closing = True
        self._wakeup.set()
        if self._task is None:
            if self._queue:  # never started: save what there is now
                self.start()
            else:
                return
        assert self._task is not None
        await asyncio.shield(self._task)

    async def _run(self) -> None:
        # _save never raises an Exception (failures are reported), so this loop only ends
        # when close() asked and everything is saved.
        while True:
            if not self._queue:
                self._idle.set()
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            take = min(self.batch_size, len(self._queue))
            self._in_flight = [self._queue.popleft() for _ in range(take)]
            try:
                await self._save(self._in_flight)
            finally:
                self._in_flight = []

    async def _save(self, batch: list[Pending]) -> None:
        messages = [p.message for p in batch]
        error: BaseException | None = None
        for delay in (0.0, *self.retry_delays):
            if delay:
                await asyncio.sleep(delay)
            try:
                await self.store.save(messages)
            except Exception as exc:
                error = exc
                logger.warning(
                    "saving %d chat messages to %s failed: %r",
                    len(batch),
                    self.store.description,
                    exc,
                )
                continue
            return
        assert error is not None
        self._report(batch, error)

    def _report(self, batch: Sequence[Pending], error: BaseException) -> None:
        logger.error(
            "%d chat messages could not be saved to %s: %r (ids: %s)",
            len(batch),
            self.store.description,
            error,
            ", ".join(p.message.id for p in batch),
        )
        try:
            self.on_failure(batch, error)
        except Exception:
            logger.exception("reporting unsaved chat messages failed")
