"""Connection state recovery: a client back within minutes gets its id, rooms, data and the
packets it missed (Node's ``connectionStateRecovery``, socket.io 4.6+).

How it works, as in Node so that the official client recovers unchanged:

* Every socket gets a private session id (``pid``), sent in the CONNECT reply next to its ``sid``.
* Every recorded packet carries an offset, appended as its last argument: the client remembers
  the last one it received. Recorded are the packets sent with :meth:`Socket.emit` and
  broadcasts, except volatile ones and those that wait for acks (an ack callback cannot outlive
  the connection).
* When a socket disconnects for a reason the client recovers from (:data:`RECOVERABLE_REASONS`:
  a lost transport, a ping timeout, a server shutdown), its session is kept for
  ``max_disconnection_duration``.
* The client's next CONNECT carries ``{pid, offset}`` in its auth. A matching session comes
  back: same ``sid``, rooms and ``data``, ``socket.recovered`` is True, and the packets recorded
  after the offset that were meant for it are sent again, in order, right after the CONNECT.

One improvement on Node: a client that had received no recorded packet yet sends no offset, and
Node then cannot recover it (though it may have missed something). Here the session remembers
where the store stood when the socket connected, and recovers from there.

:class:`RecoveryStore` is the in-memory store of one namespace, kept by the memory adapter. It
prunes by age (``max_disconnection_duration``) and by count (``max_packets``) as it goes, with no
timer; a session whose packets were pruned is not recovered (the client gets a new session).
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Any, Final

from sockjet.server.targets import BroadcastOptions, Room, SocketId

__all__ = [
    "RECOVERABLE_REASONS",
    "ConnectionStateRecovery",
    "PersistedSession",
    "RecoveryStore",
    "RestoredSession",
]

RECOVERABLE_REASONS: Final = frozenset(
    {
        "transport error",
        "transport close",
        "forced close",
        "ping timeout",
        "server shutting down",
        "forced server close",
        # a client that fell behind (a stalled network) may come back for what it missed
        "slow consumer",
    }
)
"""Disconnect reasons after which the session is kept (Node's list): the client reconnects by
itself after these, and not after a deliberate namespace disconnect on either side."""


@dataclass(frozen=True, slots=True)
class ConnectionStateRecovery:
    """The ``connection_state_recovery`` option of :class:`sockjet.Server`."""

    max_disconnection_duration: float = 120.0
    """Seconds a disconnected session (and every recorded packet) is kept."""
    skip_middlewares: bool = True
    """Whether a recovered socket skips the connection middlewares (``io.use``)."""
    max_packets: int = 100_000
    """Most packets kept per namespace, whatever their age: a bound on memory under heavy
    traffic. Sessions that would need a pruned packet are not recovered."""

    def __post_init__(self) -> None:
        if self.max_disconnection_duration <= 0:
            raise ValueError("max_disconnection_duration must be positive")
        if self.max_packets < 1:
            raise ValueError("max_packets must be at least 1")


@dataclass(slots=True)
class PersistedSession:
    """What is kept of a socket that disconnected (Node's ``SessionToPersist``)."""

    sid: SocketId
    pid: str
    rooms: list[Room]
    data: Any
    since: Any
    """The store's position when the socket connected (:attr:`SessionRecovery.position`, of the
    store's own type): where to recover from without offset."""


@dataclass(slots=True)
class RestoredSession:
    """A session found again: the socket's identity and the packets it missed."""

    sid: SocketId
    pid: str
    rooms: list[Room]
    data: Any
    missed: list[list[Any]]
    """``[event, *args, offset]`` of each missed packet, oldest first."""


class RecoveryStore:
    """Recorded packets and disconnected sessions of one namespace (in memory).

    Offsets are ``<store prefix>-<sequence number in hex>``: the random prefix makes offsets of
    another store (another process, an earlier run) unknown here rather than wrongly matched.
    """

    __slots__ = ("_clock", "_first", "_packets", "_prefix", "_sessions", "options")

    def __init__(
        self, options: ConnectionStateRecovery, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.options = options
        self._clock = clock
        self._prefix = secrets.token_hex(4) + "-"
        # (recorded at, who it was for, [event, *args, offset]); _first is the sequence number
        # of _packets[0], so a sequence number is also an index.
        self._packets: deque[tuple[float, BroadcastOptions, list[Any]]] = deque()
        self._first = 0
        # pid -> (disconnected at, session); insertion order is expiry order.
        self._sessions: dict[str, tuple[float, PersistedSession]] = {}

    @property
    def position(self) -> int:
        """The sequence number the next recorded packet will get."""
        return self._first + len(self._packets)

    def stamp(self, data: list[Any]) -> None:
        """Append the offset the next recorded packet gets to ``data`` (``[event, *args]``).

        Call :meth:`record` once the packet encoded: a packet that cannot be encoded is never
        recorded (it would fail again on every replay), and its offset is given to the next.
        """
        data.append(f"{self._prefix}{self.position:x}")

    def record(self, data: list[Any], opts: BroadcastOptions) -> None:
        """Keep ``data`` (stamped by :meth:`stamp`, and encoded) for recovery."""
        now = self._clock()
        packets = self._packets
        packets.append((now, opts, data))
        if len(packets) > self.options.max_packets:
            packets.popleft()
            self._first += 1
        self._prune_packets(now)

    def persist(self, session: PersistedSession) -> None:
        """Keep the session of a socket that disconnected for a recoverable reason."""
        now = self._clock()
        self._prune_sessions(now)
        self._sessions[session.pid] = (now, session)

    def restore(self, pid: str, offset: str | None) -> RestoredSession | None:
        """The session ``pid`` with the packets recorded for it after ``offset`` (or since it
        connected, without offset); None when unknown, expired or not fully recoverable. A
        session is restored at most once."""
        now = self._clock()
        self._prune_sessions(now)
        self._prune_packets(now)
        entry = self._sessions.pop(pid, None)
        if entry is None:
            return None
        session = entry[1]
        start = session.since if offset is None else self._after(offset)
        if start is None or not self._first <= start <= self.position:
            return None  # unknown offset, or packets it needs are gone
        rooms = set(session.rooms)
        missed = [
            data
            for _, opts, data in islice(self._packets, start - self._first, None)
            if _meant_for(rooms, opts)
        ]
        return RestoredSession(session.sid, session.pid, session.rooms, session.data, missed)

    def _after(self, offset: str) -> int | None:
        """The sequence number following ``offset``, or None if it is not one of ours."""
        prefix = self._prefix
        if not offset.startswith(prefix) or len(offset) > len(prefix) + 16:
            return None
        digits = offset[len(prefix) :]
        try:
            seq = int(digits, 16)
        except ValueError:
            return None
        # int() accepts forms we never write ("+1", "0x1", "1_0", spaces): refuse them.
        if seq < 0 or digits != f"{seq:x}":
            return None
        return seq + 1

    def _prune_packets(self, now: float) -> None:
        packets = self._packets
        horizon = now - self.options.max_disconnection_duration
        while packets and packets[0][0] < horizon:
            packets.popleft()
            self._first += 1

    def _prune_sessions(self, now: float) -> None:
        sessions = self._sessions
        horizon = now - self.options.max_disconnection_duration
        while sessions:
            pid = next(iter(sessions))
            if sessions[pid][0] >= horizon:
                break
            del sessions[pid]


def _meant_for(rooms: set[Room], opts: BroadcastOptions) -> bool:
    """Whether a socket in ``rooms`` was among the recipients (Node's ``shouldIncludePacket``)."""
    included = not opts.rooms or not rooms.isdisjoint(opts.rooms)
    return included and rooms.isdisjoint(opts.except_)
