"""Running the application's handlers: plain functions inline, coroutines as tracked tasks.

A plain function runs at once, in the order the events arrived. A handler that returns an
awaitable (an ``async def``) gets its own task; the runner keeps every such task until it ends,
so that :meth:`HandlerRunner.drain` can wait for them when the client disconnects. An exception
in a handler is logged (logger ``sockjet.client``) and goes no further.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Handler", "HandlerRunner", "ack_args", "ack_value"]

logger = logging.getLogger("sockjet.client")

Handler = Callable[..., Any]
"""An event handler: ``handler(*args)``, plain or ``async def``."""


def ack_value(args: list[Any]) -> Any:
    """What an acknowledgement's arguments become for Python: none -> ``None``, one -> that
    value, several -> a tuple (as the server's ``emit_with_ack`` does)."""
    if not args:
        return None
    if len(args) == 1:
        return args[0]
    return tuple(args)


def ack_args(result: Any) -> list[Any]:
    """The acknowledgement arguments a handler's return value stands for: ``None`` -> none, a
    tuple -> one per item, anything else -> that one value."""
    if result is None:
        return []
    if isinstance(result, tuple):
        return list(result)
    return [result]


class HandlerRunner:
    """Calls handlers and keeps the tasks of the asynchronous ones."""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        """How many handler tasks have not finished yet."""
        return len(self._tasks)

    def run(
        self,
        handler: Handler,
        args: tuple[Any, ...] | list[Any],
        reply: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Call ``handler(*args)``; hand its result (awaited if need be) to ``reply``, or an
        exception it raised to ``on_error`` (after logging it)."""
        try:
            result = handler(*args)
        except Exception as exc:
            self._failed(handler, exc, on_error)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(self._finish(handler, result, reply, on_error))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif reply is not None:
            reply(result)

    async def _finish(
        self,
        handler: Handler,
        awaitable: Awaitable[Any],
        reply: Callable[[Any], None] | None,
        on_error: Callable[[BaseException], None] | None,
    ) -> None:
        try:
            result = await awaitable
        except Exception as exc:
            self._failed(handler, exc, on_error)
            return
        if reply is not None:
            reply(result)

    @staticmethod
    def _failed(
        handler: Handler, exc: Exception, on_error: Callable[[BaseException], None] | None
    ) -> None:
        name = getattr(handler, "__qualname__", repr(handler))
        logger.error("sockjet client handler %s raised", name, exc_info=exc)
        if on_error is not None:
            on_error(exc)

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the running handler tasks (not the caller's own),
        then cancel those still running and wait for them to end."""
        current = asyncio.current_task()
        while True:
            pending = {task for task in self._tasks if task is not current}
            if not pending:
                return
            _, late = await asyncio.wait(pending, timeout=grace)
            if late:
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
                grace = 0
