"""Acknowledgements: how handler return values become ACK packets and how replies come back.

Conventions (both directions use the same mapping, so a reply round-trips):

* A handler's return value answers the client's ack: ``None`` -> an ACK with no arguments,
  a ``tuple`` -> one argument per item, anything else -> one argument (:func:`reply_args`).
* ``await socket.emit_with_ack(...)`` returns the client's ack arguments the same way:
  none -> ``None``, one -> that value, several -> a ``tuple`` (:func:`ack_value`).
* Broadcast acks (``io.timeout(5).emit_with_ack(...)``) return a list with one such value per
  client; on timeout :class:`BroadcastAckTimeout` carries the replies that did arrive.

Ack ids come from one counter per namespace (as in Node), so a broadcast can use the same id for
every recipient and never collide with a socket's own pending acks. Pending acks live in a lazily
created dict on each socket and are removed on reply, on timeout and on disconnect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Final, Protocol

from sockjet.errors import AckTimeout


class AckHolder(Protocol):
    """A socket, as acks see it: where waiters are registered under an ack id."""

    @property
    def id(self) -> str: ...

    def _add_ack(self, ack_id: int, waiter: AckWaiter) -> None: ...

    def _drop_ack(self, ack_id: int) -> None: ...


__all__ = [
    "NO_REPLY",
    "AckHolder",
    "AckWaiter",
    "BroadcastAckTimeout",
    "BroadcastAckTracker",
    "ReplyCollector",
    "SingleAck",
    "ack_requested",
    "ack_value",
    "reply_args",
]

ACK_REQUESTED: Final[ContextVar[bool]] = ContextVar("sockjet_ack_requested", default=False)
"""Set while the handlers of an event that asked for an ack are called (a coroutine handler's
task copies it, so it holds for the handler's whole run)."""


def ack_requested() -> bool:
    """Whether the client asked for an acknowledgement of the event being handled.

    Call it from an event handler (plain or coroutine). The return value answers the ack either
    way; this lets a handler choose how to report, e.g. an error in the ack when one is awaited
    and an ``error`` event otherwise (the ack callback argument of Node's API, as a question).
    Outside an event handler it is False.
    """
    return ACK_REQUESTED.get()


class _NoReply:
    """Marks a recipient that disconnected before answering a broadcast ack."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_REPLY"


NO_REPLY: Final = _NoReply()
"""Passed to a broadcast's reply callback when a local recipient left without answering."""


def reply_args(value: Any) -> list[Any]:
    """The ACK arguments for a handler's return value (``None`` -> none, tuple -> several)."""
    if value is None:
        return []
    if value.__class__ is tuple:
        return list(value)
    return [value]


def ack_value(args: list[Any]) -> Any:
    """The Python value of received ACK arguments (none -> ``None``, several -> a tuple)."""
    if not args:
        return None
    if len(args) == 1:
        return args[0]
    return tuple(args)


class BroadcastAckTimeout(AckTimeout):
    """Not every recipient of a broadcast answered in time; ``replies`` holds those that did."""

    def __init__(self, message: str, replies: list[Any]) -> None:
        super().__init__(message)
        self.replies = replies


class AckWaiter(Protocol):
    """Something waiting for a socket's ACK: registered under an ack id in the socket."""

    def on_ack(self, socket: AckHolder, args: list[Any]) -> None:
        """The socket answered with ``args``."""

    def on_close(self, socket: AckHolder) -> None:
        """The socket disconnected before answering."""


class SingleAck:
    """Waits for one socket's reply (``socket.emit_with_ack``)."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future

    def on_ack(self, socket: AckHolder, args: list[Any]) -> None:
        if not self.future.done():
            self.future.set_result(ack_value(args))

    def on_close(self, socket: AckHolder) -> None:
        if not self.future.done():
            self.future.set_exception(AckTimeout("the socket disconnected before acknowledging"))


class BroadcastAckTracker:
    """The local side of a broadcast with ack: one instance shared by every local recipient.

    Registered under the same ack id in each recipient; forwards each first reply to
    ``on_reply`` and forgets the recipient. At ``expire()`` (the broadcast's timeout) it removes
    itself from the recipients that did not answer, so nothing outlives the request.
    """

    __slots__ = ("_ack_id", "_on_reply", "_pending", "_timer")

    def __init__(self, ack_id: int, on_reply: Callable[[Any], None]) -> None:
        self._ack_id = ack_id
        self._on_reply = on_reply
        self._pending: dict[str, AckHolder] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, socket: AckHolder) -> None:
        """Wait for ``socket``'s reply."""
        self._pending[socket.id] = socket
        socket._add_ack(self._ack_id, self)

    @property
    def count(self) -> int:
        """How many recipients have not answered yet."""
        return len(self._pending)

    def arm(self, timeout: float | None) -> None:
        """Expire after ``timeout`` seconds (never, when ``None``) unless everyone answered."""
        if timeout is not None and self._pending:
            self._timer = asyncio.get_running_loop().call_later(timeout, self.expire)

    def on_ack(self, socket: AckHolder, args: list[Any]) -> None:
        if self._pending.pop(socket.id, None) is not None:
            self._settled()
            self._on_reply(ack_value(args))

    def on_close(self, socket: AckHolder) -> None:
        if self._pending.pop(socket.id, None) is not None:
            self._settled()
            self._on_reply(NO_REPLY)

    def expire(self) -> None:
        """Stop waiting: remove the ack id from every recipient that has not answered."""
        self._timer = None
        pending, self._pending = self._pending, {}
        for socket in pending.values():
            socket._drop_ack(self._ack_id)

    def _settled(self) -> None:
        if not self._pending and self._timer is not None:
            self._timer.cancel()
            self._timer = None


class ReplyCollector:
    """Gathers the replies of a broadcast with ack across every server of the cluster.

    Complete once each of ``expected_servers`` servers reported how many clients it reached
    (``on_client_count``) and that many replies arrived (``on_reply``).
    """

    __slots__ = (
        "_answered",
        "_expected_clients",
        "_expected_servers",
        "_servers",
        "future",
        "replies",
    )

    def __init__(self, future: asyncio.Future[list[Any]], expected_servers: int) -> None:
        self.future = future
        self.replies: list[Any] = []
        self._expected_servers = expected_servers
        self._servers = 0
        self._expected_clients = 0
        self._answered = 0

    def on_client_count(self, count: int) -> None:
        """One server reached ``count`` clients."""
        self._servers += 1
        self._expected_clients += count
        self.check()

    def on_reply(self, value: Any) -> None:
        """One client answered (or left without answering: :data:`NO_REPLY`)."""
        if self.future.done():
            return
        self._answered += 1
        if value is not NO_REPLY:
            self.replies.append(value)
        self.check()

    def check(self) -> None:
        """Resolve the future if every expected report and reply arrived."""
        if (
            not self.future.done()
            and self._servers >= self._expected_servers
            and self._answered >= self._expected_clients
        ):
            self.future.set_result(self.replies)
