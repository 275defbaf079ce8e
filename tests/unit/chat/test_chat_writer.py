"""The write-behind queue: ordered batches, a bounded queue, retries, failures reported,
nothing lost at close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest
from chat_fakes import MemoryStore, message, settle

from sockjet.chat.writer import Pending, WriteBehind


class Failures:
    def __init__(self) -> None:
        self.reported: list[tuple[list[str], BaseException]] = []

    def __call__(self, batch: Sequence[Pending], error: BaseException) -> None:
        self.reported.append(([p.message.id for p in batch], error))


async def test_saves_in_order_in_batches_and_flushes() -> None:
    store = MemoryStore()
    writer = WriteBehind(store, Failures(), batch_size=3)
    writer.start()
    writer.start()  # idempotent
    for n in range(1, 8):
        assert writer.submit(message(n), "sid")
    assert writer.pending == 7
    await writer.flush()
    assert writer.pending == 0
    assert store.batches == [["id1", "id2", "id3"], ["id4", "id5", "id6"], ["id7"]]
    assert writer.submit(message(8), "sid")
    await writer.flush()
    assert [m.id for m in store.rows][-1] == "id8"
    await writer.close()


async def test_unsaved_lists_queued_and_in_flight_messages_of_a_room() -> None:
    store = MemoryStore()
    store.gate = asyncio.Event()
    writer = WriteBehind(store, Failures(), batch_size=2)
    writer.start()
    writer.submit(message(1), "a")
    writer.submit(message(2, room="other"), "a")
    await settle()  # the first batch (1, 2) is now being saved, held by the gate
    writer.submit(message(3), "b")
    assert [m.id for m in writer.unsaved("r")] == ["id1", "id3"]
    assert [m.id for m in writer.unsaved("other")] == ["id2"]
    store.gate.set()
    await writer.flush()
    assert writer.unsaved("r") == []
    await writer.close()


async def test_a_full_queue_refuses_instead_of_losing() -> None:
    store = MemoryStore()
    store.gate = asyncio.Event()
    writer = WriteBehind(store, Failures(), max_pending=3, batch_size=1)
    writer.start()
    assert all(writer.submit(message(n), "s") for n in (1, 2, 3))
    assert not writer.submit(message(4), "s")  # full: the caller must refuse the message
    store.gate.set()
    await writer.flush()
    assert writer.submit(message(5), "s")
    await writer.close()
    assert [m.id for m in store.rows] == ["id1", "id2", "id3", "id5"]


async def test_a_failed_save_is_retried() -> None:
    store = MemoryStore()
    store.fail = 2
    failures = Failures()
    writer = WriteBehind(store, failures, retry_delays=(0, 0))
    writer.start()
    writer.submit(message(1), "s")
    await writer.flush()
    assert [m.id for m in store.rows] == ["id1"] and failures.reported == []
    await writer.close()


async def test_a_batch_failing_every_retry_is_logged_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore()
    store.fail = 3
    failures = Failures()
    writer = WriteBehind(store, failures, retry_delays=(0, 0))
    writer.start()
    writer.submit(message(1), "s")
    writer.submit(message(2), "s")
    with caplog.at_level(logging.WARNING, "sockjet.chat"):
        await writer.flush()
    assert [(ids, str(error)) for ids, error in failures.reported] == [
        (["id1", "id2"], "database down")
    ]
    assert "2 chat messages could not be saved to memory" in caplog.text
    assert "ids: id1, id2" in caplog.text
    writer.submit(message(3), "s")  # the writer carries on
    await writer.close()
    assert [m.id for m in store.rows] == ["id3"]


async def test_a_failing_failure_handler_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def broken(batch: Sequence[Pending], error: BaseException) -> None:
        raise RuntimeError("oops")

    store = MemoryStore()
    store.fail = 1
    writer = WriteBehind(store, broken, retry_delays=())
    writer.start()
    writer.submit(message(1), "s")
    with caplog.at_level(logging.ERROR, "sockjet.chat"):
        await writer.flush()
    assert "reporting unsaved chat messages failed" in caplog.text
    await writer.close()


async def test_close_saves_everything_accepted_then_refuses() -> None:
    store = MemoryStore()
    store.gate = asyncio.Event()
    writer = WriteBehind(store, Failures(), batch_size=2)
    writer.start()
    for n in range(1, 6):
        writer.submit(message(n), "s")
    closing = asyncio.create_task(writer.close())
    await settle()
    assert not closing.done()
    assert not writer.submit(message(6), "s")
    store.gate.set()
    await closing
    assert [m.id for m in store.rows] == ["id1", "id2", "id3", "id4", "id5"]
    await writer.close()  # idempotent


async def test_close_without_start_still_saves() -> None:
    store = MemoryStore()
    writer = WriteBehind(store, Failures())
    writer.submit(message(1), "s")
    await writer.close()
    assert [m.id for m in store.rows] == ["id1"]
    await WriteBehind(MemoryStore(), Failures()).close()  # nothing queued, never started


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WriteBehind(MemoryStore(), Failures(), max_pending=0)
