"""Shared timers for the heartbeats of many sessions.

Every session has a next deadline (send a PING, give up waiting for the PONG, drop an upgrade).
One event-loop timer per session costs about 600 bytes each (the loop's handle, the libuv
timer, a copied context, a bound method), which at 10,000 idle WebSockets is most of what a
session costs beyond its socket. Deadlines are therefore rounded up to slots of ``resolution``
seconds: one loop timer per slot in use, and a session costs one set entry. Nothing fires early;
a deadline fires at most ``resolution`` late: a thousandth of the shortest timeout, so 20 ms
with the default 25 s / 20 s heartbeat and the loop's own 1 ms granularity for short test
heartbeats (a client's pong that makes it in time is never cut off by the rounding).
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Final, Protocol

__all__ = ["MAX_RESOLUTION", "MIN_RESOLUTION", "DeadlineSlots", "Timed", "slot_resolution"]

logger = logging.getLogger("sockjet.engine")

MAX_RESOLUTION: Final = 0.1
"""Coarsest slot: 100 ms, nothing next to a heartbeat of seconds."""
MIN_RESOLUTION: Final = 0.001


def slot_resolution(*intervals: float) -> float:
    """The slot width for these timeouts: a thousandth of the shortest, within 1-100 ms."""
    shortest = min((i for i in intervals if i > 0), default=MAX_RESOLUTION * 1000)
    return max(MIN_RESOLUTION, min(MAX_RESOLUTION, shortest / 1000))


class Timed(Protocol):
    """What a slot calls when its time comes."""

    def on_deadline(self) -> None: ...


class DeadlineSlots:
    """Deadlines of many :class:`Timed` objects, grouped into slots of ``resolution`` seconds."""

    __slots__ = ("_loop", "_resolution", "_slots")

    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float) -> None:
        self._loop = loop
        self._resolution = resolution
        self._slots: dict[int, set[Timed]] = {}

    def add(self, item: Timed, deadline: float) -> tuple[int, float]:
        """Call ``item.on_deadline()`` at ``deadline`` or up to one slot later; returns the
        slot (for :meth:`discard`) and the time it fires."""
        slot = math.ceil(deadline / self._resolution)
        members = self._slots.get(slot)
        if members is None:
            members = self._slots[slot] = set()
            self._loop.call_at(slot * self._resolution, self._fire, slot)
        members.add(item)
        # never earlier than asked, whatever the float rounding of slot * resolution
        return slot, max(deadline, slot * self._resolution)

    def discard(self, item: Timed, slot: int) -> None:
        """Forget ``item``'s deadline in ``slot`` (the slot's timer still fires, for nothing)."""
        members = self._slots.get(slot)
        if members is not None:
            members.discard(item)

    def __len__(self) -> int:
        """Deadlines pending."""
        return sum(len(members) for members in self._slots.values())

    def _fire(self, slot: int) -> None:
        for item in self._slots.pop(slot, ()):
            try:
                item.on_deadline()
            except Exception:  # one session's bug must not stall the others' heartbeats
                logger.exception("deadline of %r failed", item)
