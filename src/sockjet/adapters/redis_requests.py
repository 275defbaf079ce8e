"""Bookkeeping of the Redis adapter's requests to the other servers of the cluster.

A request this server sends (``fetch_sockets``, ``server_side_emit_with_ack``...) waits in a
:class:`Gather` for one answer per other server; a broadcast with ack waits in an
:class:`AckRequest` for each server's client count and each client's ack. Both are dropped
when they complete, time out or the adapter closes: nothing outlives a request.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from sockjet.adapters.redis_codec import ClusterResponse, RequestType
from sockjet.errors import SockjetError
from sockjet.server.acks import NO_REPLY

__all__ = ["AckRequest", "Gather", "MalformedLog", "RequestTimeout", "new_id", "once"]

logger = logging.getLogger("sockjet.adapters.redis")


class RequestTimeout(SockjetError, TimeoutError):
    """Some servers of the cluster did not answer a request (``fetch_sockets``,
    ``all_rooms``) within the adapter's ``request_timeout``."""


def new_id() -> str:
    # Six URL-safe characters, like Node's uid2(6).
    return secrets.token_urlsafe(6)[:6]


class MalformedLog:
    """Logs malformed broker messages, at most once per ``interval`` seconds."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self._interval = interval
        self._clock = clock
        self._next = 0.0
        self.suppressed = 0

    def warn(self, nsp: str, error: Exception) -> None:
        now = self._clock()
        if now < self._next:
            self.suppressed += 1
            return
        more = f" ({self.suppressed} more since the last report)" if self.suppressed else ""
        logger.warning("malformed Redis message for %s skipped: %s%s", nsp, error, more)
        self._next = now + self._interval
        self.suppressed = 0


class Gather:
    """Answers to one request from the other servers (one each)."""

    __slots__ = ("expected", "future", "received", "typed", "values")

    def __init__(self, expected: int, *, typed: RequestType | None = None) -> None:
        self.expected = expected
        self.typed = typed
        self.received = 0
        self.values: list[Any] = []
        self.future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

    def feed(self, response: ClusterResponse) -> None:
        if self.future.done():
            return
        self.received += 1
        if self.typed is None:
            self.values.append(response.body)
        elif response.type is self.typed:
            self.values.append(response.body.get("data"))
        if self.received >= self.expected:
            self.future.set_result(self.values)


class AckRequest:
    """A broadcast with ack of this server, waiting for the other servers' counts and acks."""

    __slots__ = ("clients", "expected_servers", "on_client_count", "on_reply", "replies", "servers")

    def __init__(
        self,
        on_client_count: Callable[[int], None],
        on_reply: Callable[[Any], None],
        expected_servers: int,
    ) -> None:
        self.on_client_count = on_client_count
        self.on_reply = on_reply
        self.expected_servers = expected_servers
        self.servers = 0
        self.clients = 0
        self.replies = 0

    def client_count(self, count: int) -> None:
        self.servers += 1
        self.clients += count
        self.on_client_count(count)

    def reply(self, value: Any) -> None:
        self.replies += 1
        self.on_reply(value)

    def give_up(self) -> None:
        """Count the servers and clients that never answered as gone (no timeout was set)."""
        for _ in range(self.expected_servers - 1 - self.servers):
            self.on_client_count(0)
        for _ in range(self.clients - self.replies):
            self.on_reply(NO_REPLY)


def once(callback: Callable[[Any], None]) -> Callable[[Any], None]:
    called = False

    def once(value: Any) -> None:
        nonlocal called
        if not called:
            called = True
            callback(value)

    return once
