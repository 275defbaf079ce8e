"""DeadlineSlots: many deadlines on one loop timer per slot, never early, at most a slot late."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from sockjet.engine.deadlines import (
    MAX_RESOLUTION,
    MIN_RESOLUTION,
    DeadlineSlots,
    slot_resolution,
)


class FakeLoop:
    """call_at recorded, fired by hand in time order."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Callable[..., Any], tuple[Any, ...]]] = []

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> None:
        self.timers.append((when, callback, args))

    def advance(self, to: float) -> None:
        self.now = to
        due = sorted((t for t in self.timers if t[0] <= to), key=lambda t: t[0])
        self.timers = [t for t in self.timers if t[0] > to]
        for _, callback, args in due:
            callback(*args)


class Item:
    def __init__(self, loop: FakeLoop, fired: list[tuple[str, float]], name: str) -> None:
        self.loop, self.fired, self.name = loop, fired, name

    def on_deadline(self) -> None:
        self.fired.append((self.name, self.loop.now))


def make(resolution: float = 0.1) -> tuple[FakeLoop, DeadlineSlots, list[tuple[str, float]]]:
    loop = FakeLoop()
    return loop, DeadlineSlots(loop, resolution), []  # type: ignore[arg-type]


def test_deadlines_in_one_slot_share_one_loop_timer() -> None:
    loop, slots, fired = make()
    items = [Item(loop, fired, str(i)) for i in range(100)]
    for i, item in enumerate(items):
        slots.add(item, 1.0 + i / 1000)  # all within (1.0, 1.1]
    assert len(loop.timers) == 2  # 1.0 itself is its own slot
    assert len(slots) == 100
    loop.advance(1.1)
    assert len(fired) == 100 and len(slots) == 0


def test_never_early_at_most_one_slot_late() -> None:
    loop, slots, fired = make()
    _, at = slots.add(Item(loop, fired, "a"), 2.03)
    assert 2.03 <= at <= 2.03 + 0.1
    loop.advance(2.029)
    assert fired == []
    loop.advance(at)
    assert fired == [("a", at)]


def test_discarded_deadlines_do_not_fire() -> None:
    loop, slots, fired = make()
    keep, drop = Item(loop, fired, "keep"), Item(loop, fired, "drop")
    slots.add(keep, 1.0)
    slot, _ = slots.add(drop, 1.0)
    slots.discard(drop, slot)
    loop.advance(1.0)
    loop.advance(2.0)
    assert fired == [("keep", 1.0)]


def test_a_failing_item_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    loop, slots, fired = make()

    class Broken:
        def on_deadline(self) -> None:
            raise RuntimeError("bug")

    slots.add(Broken(), 1.0)
    slots.add(Item(loop, fired, "ok"), 1.0)
    loop.advance(1.0)
    assert fired == [("ok", 1.0)]
    assert "deadline of" in caplog.text


def test_an_item_re_added_from_its_callback_gets_a_new_timer() -> None:
    loop, slots, fired = make()

    class Again(Item):
        def on_deadline(self) -> None:
            super().on_deadline()
            if len(self.fired) < 3:
                slots.add(self, self.loop.now + 1)

    slots.add(Again(loop, fired, "x"), 1.0)
    for t in (1.0, 2.0, 3.0, 4.0):
        loop.advance(t)
    assert [t for _, t in fired] == pytest.approx([1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    ("intervals", "expected"),
    [((25.0, 20.0), 0.02), ((0.3, 0.2), MIN_RESOLUTION), ((500.0, 300.0), MAX_RESOLUTION)],
)
def test_slot_resolution(intervals: tuple[float, ...], expected: float) -> None:
    assert slot_resolution(*intervals) == pytest.approx(expected)


async def test_on_a_real_loop() -> None:
    loop = asyncio.get_running_loop()
    slots = DeadlineSlots(loop, 0.005)
    done = loop.create_future()

    class Waiter:
        def on_deadline(self) -> None:
            done.set_result(loop.time())

    start = loop.time()
    slots.add(Waiter(), start + 0.01)
    fired_at = await asyncio.wait_for(done, 1)
    assert fired_at >= start + 0.01 - 0.001  # the loop's clock granularity
