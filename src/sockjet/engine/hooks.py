"""Observation hooks of the Engine.IO server: what monitoring (the Admin UI, metrics, logs) may
listen to without touching the engine's internals.

``io.engine.hooks`` is an :class:`EngineHooks`; register with its ``on_*`` methods (usable as
decorators) and remove with :meth:`EngineHooks.remove`. Each hook is a plain list, and the engine
calls a hook only when its list is not empty, so a hook nobody listens to costs one truth test
where it would fire, and nothing on the paths that run per recipient. Hooks run inline, must not
block, and a failing one is logged and skipped. They receive the engine's own objects (an
:class:`~sockjet.engine.io.EngineSocket`): keep ids, not the objects, beyond the call.

=========================  ===================================================================
hook                       called with
=========================  ===================================================================
``session_opened``         ``(conn)``: a new Engine.IO session (Node's ``io.engine.on("connection")``)
``session_upgraded``       ``(conn, transport)``: the session moved to ``transport`` (``"websocket"``)
``session_closed``         ``(conn, reason)``: the session ended (``"transport close"``, ``"ping timeout"``...)
``connection_error``       ``(request, error)``: a refused request (Node's ``connection_error``)
``slow_consumer``          ``(conn, queued)``: a client closed as a slow consumer, ``queued`` bytes pending
``volatile_dropped``       ``(conn)``: a volatile packet not queued for ``conn``
=========================  ===================================================================
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from inspect import isawaitable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from sockjet.engine.io import EngineSocket, HTTPRequest
    from sockjet.errors import HandshakeError

__all__ = ["EngineHooks", "call_hooks", "timed"]

logger = logging.getLogger("sockjet.engine")

F = TypeVar("F", bound=Callable[..., Any])


def call_hooks(hooks: list[Callable[..., Any]], *args: Any) -> None:
    """Call each of ``hooks`` (a hook list known to be non-empty) with ``args``; a hook that
    raises is logged, never fatal to the caller."""
    for hook in tuple(hooks):
        try:
            hook(*args)
        except Exception:
            logger.exception("observation hook %r failed", hook)


class EngineHooks:
    """The engine's hook lists (see the module docstring for what each receives)."""

    __slots__ = (
        "connection_error",
        "session_closed",
        "session_opened",
        "session_upgraded",
        "slow_consumer",
        "volatile_dropped",
    )

    def __init__(self) -> None:
        self.session_opened: list[Callable[[EngineSocket], None]] = []
        self.session_upgraded: list[Callable[[EngineSocket, str], None]] = []
        self.session_closed: list[Callable[[EngineSocket, str], None]] = []
        self.connection_error: list[Callable[[HTTPRequest, HandshakeError], None]] = []
        self.slow_consumer: list[Callable[[EngineSocket, int], None]] = []
        self.volatile_dropped: list[Callable[[EngineSocket], None]] = []

    def on_session_opened(self, hook: F) -> F:
        self.session_opened.append(hook)
        return hook

    def on_session_upgraded(self, hook: F) -> F:
        self.session_upgraded.append(hook)
        return hook

    def on_session_closed(self, hook: F) -> F:
        self.session_closed.append(hook)
        return hook

    def on_connection_error(self, hook: F) -> F:
        self.connection_error.append(hook)
        return hook

    def on_slow_consumer(self, hook: F) -> F:
        self.slow_consumer.append(hook)
        return hook

    def on_volatile_dropped(self, hook: F) -> F:
        self.volatile_dropped.append(hook)
        return hook

    def remove(self, hook: Callable[..., Any]) -> None:
        """Remove ``hook`` from every list it was registered in."""
        for name in self.__slots__:
            hooks: list[Callable[..., Any]] = getattr(self, name)
            while hook in hooks:
                hooks.remove(hook)


def timed(handler: Callable[..., Any], done: Callable[[float], None]) -> Callable[..., Any]:
    """``handler``, reporting to ``done`` the seconds it took (a coroutine handler: until it
    finished), whether it returned or raised."""

    def timed_handler(*args: Any) -> Any:
        start = time.perf_counter()
        try:
            result = handler(*args)
        except BaseException:
            done(time.perf_counter() - start)
            raise
        if result is not None and isawaitable(result):
            return _timed_until_done(result, start, done)
        done(time.perf_counter() - start)
        return result

    timed_handler.__qualname__ = getattr(handler, "__qualname__", repr(handler))
    return timed_handler


async def _timed_until_done(
    pending: Awaitable[Any], start: float, done: Callable[[float], None]
) -> Any:
    try:
        return await pending
    finally:
        done(time.perf_counter() - start)
