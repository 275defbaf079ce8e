"""Running handlers: ack values both ways, errors logged, tasks drained."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from sockjet.client.handlers import HandlerRunner, ack_args, ack_value


@pytest.mark.parametrize(
    ("args", "value"), [([], None), ([1], 1), ([[1]], [1]), ([1, "a"], (1, "a"))]
)
def test_ack_value(args: list[Any], value: Any) -> None:
    assert ack_value(args) == value


@pytest.mark.parametrize(
    ("result", "args"), [(None, []), (1, [1]), ((1, 2), [1, 2]), ([1, 2], [[1, 2]]), ((), [])]
)
def test_ack_args(result: Any, args: list[Any]) -> None:
    assert ack_args(result) == args


async def test_plain_handlers_run_inline_and_async_ones_in_tasks() -> None:
    runner = HandlerRunner()
    replies: list[Any] = []

    async def later(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    runner.run(lambda x: x * 2, (2,), replies.append)
    assert replies == [4]
    runner.run(later, (5,), replies.append)
    assert runner.running == 1
    await runner.drain(1)
    assert replies == [4, 6] and runner.running == 0


async def test_errors_are_logged_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    runner = HandlerRunner()
    errors: list[BaseException] = []

    async def broken() -> None:
        raise KeyError("k")

    with caplog.at_level(logging.ERROR, logger="sockjet.client"):
        runner.run(lambda: 1 / 0, (), None, errors.append)
        runner.run(broken, (), None, errors.append)
        await runner.drain(1)
    assert [type(e) for e in errors] == [ZeroDivisionError, KeyError]
    assert "<lambda>" in caplog.text and "broken" in caplog.text


async def test_drain_cancels_what_outlives_the_grace_but_not_its_caller() -> None:
    runner = HandlerRunner()
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    async def drains_itself() -> str:
        await runner.drain(0.01)
        return "done"

    runner.run(forever, ())
    await started.wait()
    replies: list[str] = []
    runner.run(drains_itself, (), replies.append)
    await runner.drain(5)
    assert replies == ["done"] and runner.running == 0
