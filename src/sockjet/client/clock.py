"""Time for the client, behind one small interface.

Every timer of the client (connect timeout, reconnection delays, the heartbeat watchdog, ack
timeouts) goes through a :class:`Clock`, so unit tests drive them by hand instead of sleeping.
The default, :class:`LoopClock`, is the running asyncio loop: one ``call_later`` handle per
timer, never a task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "LoopClock", "Timer"]


class Timer(Protocol):
    """A scheduled callback that can be cancelled (``asyncio.TimerHandle`` is one)."""

    def cancel(self) -> None:
        """Stop the callback from running; harmless once it ran."""
        ...


class Clock(Protocol):
    """Where the client reads the time and schedules its timers (seconds)."""

    def time(self) -> float:
        """A monotonic time, in seconds."""
        ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback()`` once, ``delay`` seconds from now."""
        ...


class LoopClock:
    """The running event loop's clock (looked up at each call, so it can be built anywhere)."""

    __slots__ = ()

    def time(self) -> float:
        return asyncio.get_running_loop().time()

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)
