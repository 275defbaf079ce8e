"""Outbound flow control: the limits every session of one engine shares, and what they counted.

The rule: memory is bounded by backpressure and by time, never by disconnecting a client that
keeps up. Per session, the bytes queued for the client and not yet taken by the kernel (a
WebSocket's unsent frames, a polling session's packets waiting for the next GET) are watched
against three numbers:

* over ``high_water``, volatile packets are dropped, and the slow-consumer clock starts;
* staying over ``high_water`` for ``slow_consumer_timeout`` seconds, the client is a slow
  consumer: it is disconnected (reason ``"slow consumer"``), logged once and counted;
* a packet that would take the queue over ``max_buffered`` disconnects it at once, whatever the
  clock says, so memory per stalled client is bounded under any traffic.

A client that drains what it is sent, however much (a 10 MB burst), never meets any of them.
Applications that produce faster than a client may take can wait for ``low_water`` with
``await socket.drain()``.

Broadcast frames are shared by every recipient (built once): what a queue counts is what that
client still owes, not memory of its own, so a room of stalled clients costs the broadcast's
bytes once plus each kernel socket buffer, not ``max_buffered`` each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "DEFAULT_MAX_BUFFERED",
    "DEFAULT_SLOW_CONSUMER_TIMEOUT",
    "SLOW_CONSUMER",
    "FlowLimits",
    "FlowStats",
]

SLOW_CONSUMER: Final = "slow consumer"
"""The close reason of a client that stopped taking what it is sent."""

DEFAULT_MAX_BUFFERED: Final = 16 * 1024 * 1024
"""Hard cap on the bytes queued for one client (16 MiB)."""

DEFAULT_SLOW_CONSUMER_TIMEOUT: Final = 30.0
"""Seconds a client's queue may stay over the high-water mark."""


@dataclass(frozen=True, slots=True)
class FlowLimits:
    """The outbound limits of one engine (see the module docstring)."""

    high_water: int = 1_000_000
    max_buffered: int = DEFAULT_MAX_BUFFERED
    slow_consumer_timeout: float = DEFAULT_SLOW_CONSUMER_TIMEOUT

    def __post_init__(self) -> None:
        if self.high_water <= 0:
            raise ValueError(f"the high-water mark must be positive, not {self.high_water!r}")
        if self.max_buffered < self.high_water:
            raise ValueError(
                f"max_outbound_bytes ({self.max_buffered}) must be at least the high-water mark"
                f" ({self.high_water})"
            )
        if not self.slow_consumer_timeout > 0:
            raise ValueError(
                f"slow_consumer_timeout must be positive, not {self.slow_consumer_timeout!r}"
            )

    @property
    def low_water(self) -> int:
        """``drain()`` returns once the queue is at most this (a quarter of the high-water)."""
        return self.high_water // 4


class FlowStats:
    """What flow control did, engine-wide (read by monitoring; plain counters)."""

    __slots__ = ("slow_consumers", "volatile_dropped")

    def __init__(self) -> None:
        self.volatile_dropped = 0
        """Volatile packets not queued (not writable, or over the high-water mark)."""
        self.slow_consumers = 0
        """Sessions closed as slow consumers."""
