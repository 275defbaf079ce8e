"""Reconnection delays, computed exactly as socket.io-client's ``Backoff`` does.

``delay = min * factor ** attempts`` milliseconds, then jitter: one random number ``r`` in
[0, 1) gives a deviation ``floor(r * jitter * delay)``, subtracted when ``floor(r * 10)`` is
even and added when odd; the result is capped at ``max`` and truncated to whole milliseconds.
With the defaults (1 s, max 5 s, jitter 0.5) the delays are about 1, 2, 4, 5, 5... seconds, each
within ±50 %.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable
from typing import Final

__all__ = ["Backoff"]

# 2.0 ** 1024 overflows a float; JS gets Infinity there (and then NaN, a zero delay, for half the
# draws). Capping the exponent keeps the delay at ``max`` forever instead.
_MAX_EXPONENT: Final = 1000


class Backoff:
    """Exponential backoff with jitter. Times are in seconds; the arithmetic is JS's, in ms."""

    __slots__ = ("_random", "attempts", "factor", "jitter", "max", "min")

    def __init__(
        self,
        min: float = 0.1,
        max: float = 10.0,
        *,
        factor: float = 2.0,
        jitter: float = 0.0,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.min = min
        self.max = max
        self.factor = factor
        # Like JS: a jitter outside (0, 1] means none.
        self.jitter = jitter if 0 < jitter <= 1 else 0.0
        self.attempts = 0
        """Delays handed out since the last :meth:`reset`."""
        self._random = random

    def duration(self) -> float:
        """The delay before the next attempt, in seconds; counts one attempt."""
        ms = self.min * 1000 * self.factor ** min(self.attempts, _MAX_EXPONENT)
        self.attempts += 1
        if self.jitter:
            rand = self._random()
            deviation = math.floor(rand * self.jitter * ms)
            ms = ms - deviation if math.floor(rand * 10) & 1 == 0 else ms + deviation
        return int(min(ms, self.max * 1000)) / 1000

    def reset(self) -> None:
        """Start counting attempts from zero again."""
        self.attempts = 0
