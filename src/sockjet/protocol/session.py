"""The Engine.IO v4 session state machine, without I/O and without a clock.

One :class:`SessionMachine` per Engine.IO session decides *what* happens; the runtime
(:mod:`sockjet.engine.session`) does it. The runtime feeds it the packets the client sent and
the current time, and gets back one :class:`Action` per call; between calls it arms a single
timer for :attr:`SessionMachine.deadline` and calls :meth:`SessionMachine.on_timer` when it
fires (until that returns :attr:`Action.NONE`). Keeping time out of here makes every timing rule
testable with an injected clock and lets the runtime use one ``call_at`` handle per session
instead of a task.

Rules (as Node engine.io 6.6 does them, for protocol v4):

* Heartbeat: the server sends PING every ``ping_interval`` seconds, counted from the last PONG
  (or from the open); no PONG within ``ping_timeout`` of a PING closes with ``"ping timeout"``.
* From the client, MESSAGE is delivered, PONG feeds the heartbeat, CLOSE closes with
  ``"transport close"``, NOOP is ignored; anything else (OPEN, PING outside the probe, UPGRADE
  on the active transport) is out of state and closes with ``"parse error"``.
* Upgrade: a second transport may join an upgradable session once; on it, ``2probe`` is answered
  with ``3probe`` and UPGRADE switches transports. Anything else there, or no UPGRADE within
  ``upgrade_timeout``, drops that transport only; the session carries on.
* A forced close that must first deliver what is queued (polling with no pending GET) waits in
  CLOSING for at most ``close_timeout`` seconds.
* While the runtime does not read the client (its handler is behind: flow control), a PONG
  cannot arrive, so the ping timeout is not enforced; reading again gives the client a fresh
  ``ping_timeout`` to answer (sockjet's rule; Node never stops reading).
"""

from __future__ import annotations

import enum

from sockjet.protocol.engineio import PacketType

__all__ = ["Action", "Phase", "SessionMachine", "Upgrade"]

PING_TIMEOUT = "ping timeout"
PARSE_ERROR = "parse error"
TRANSPORT_CLOSE = "transport close"

_NEVER = float("inf")


class Phase(enum.Enum):
    """Where the session is in its life."""

    OPEN = "open"
    CLOSING = "closing"
    """Closed by the server, waiting for what is queued to reach the client."""
    CLOSED = "closed"


class Upgrade(enum.Enum):
    """Where the session is in a transport upgrade."""

    NONE = "none"
    """No upgrade under way (one may start if the session is upgradable)."""
    PROBING = "probing"
    """A second transport is attached; waiting for ``2probe``/UPGRADE on it."""
    PROBED = "probed"
    """``3probe`` was sent: the client is pausing its polling; waiting for UPGRADE."""
    DONE = "done"
    """The session switched transports; it never upgrades again."""


class Action(enum.IntEnum):
    """What the runtime must do after a call into the machine."""

    NONE = 0
    """Nothing."""
    DELIVER = 1
    """Hand the MESSAGE payload to the session's handler."""
    SEND_PING = 2
    """Write a PING packet to the client."""
    CLOSE = 3
    """The session is closed: release everything; the reason is :attr:`SessionMachine.close_reason`."""
    SEND_PROBE_PONG = 4
    """Answer ``3probe`` on the probing transport."""
    UPGRADE = 5
    """Make the probing transport the active one and flush what is queued on it."""
    ABORT_UPGRADE = 6
    """Close the probing transport only; the session stays on the old one."""


class SessionMachine:
    """Heartbeat, upgrade and close rules of one Engine.IO session.

    ``now`` arguments are seconds on any monotonic clock (the runtime passes ``loop.time()``).
    Methods return an :class:`Action` and never raise for anything a client sends.
    """

    __slots__ = (
        "_close_deadline",
        "_ping_at",
        "_pong_deadline",
        "_reads_paused",
        "_upgrade_deadline",
        "close_reason",
        "close_timeout",
        "phase",
        "ping_interval",
        "ping_timeout",
        "upgradable",
        "upgrade",
        "upgrade_timeout",
    )

    def __init__(
        self,
        now: float,
        *,
        ping_interval: float,
        ping_timeout: float,
        upgradable: bool,
        upgrade_timeout: float = 10.0,
        close_timeout: float = 30.0,
    ) -> None:
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.upgrade_timeout = upgrade_timeout
        self.close_timeout = close_timeout
        self.upgradable = upgradable
        """False for a session that opened on its final transport (WebSocket)."""
        self.phase = Phase.OPEN
        self.upgrade = Upgrade.NONE
        self.close_reason = ""
        """Why the session closed (or is closing): one of Node's reason strings; "" while open."""
        # Deadlines are _NEVER when not pending: comparisons need no None checks.
        self._ping_at = now + ping_interval
        self._pong_deadline = _NEVER
        self._upgrade_deadline = _NEVER
        self._close_deadline = _NEVER
        self._reads_paused = False

    # -- time ------------------------------------------------------------------------------

    @property
    def deadline(self) -> float | None:
        """When :meth:`on_timer` next has something to do, or None once closed.

        While open, a ping or a pong is always pending, so there is always a deadline, except
        while reads are paused with a PONG outstanding: then it may be ``inf`` (nothing due).
        """
        phase = self.phase
        if phase is Phase.OPEN:
            pong = _NEVER if self._reads_paused else self._pong_deadline
            return min(self._ping_at, pong, self._upgrade_deadline)
        if phase is Phase.CLOSING:
            return self._close_deadline
        return None

    def on_timer(self, now: float) -> Action:
        """Do what is due at ``now``: one action per call; call again until NONE.

        Calling early (before :attr:`deadline`) is harmless and returns NONE, so the runtime may
        keep a timer that fires before a postponed deadline instead of rescheduling it.
        """
        phase = self.phase
        if phase is Phase.CLOSING:
            if now >= self._close_deadline:
                # the queued packets never got out: give up waiting
                self._closed(self.close_reason)
                return Action.CLOSE
            return Action.NONE
        if phase is Phase.CLOSED:
            return Action.NONE
        if now >= self._upgrade_deadline:
            self.abort_upgrade()
            return Action.ABORT_UPGRADE
        if now >= self._pong_deadline and not self._reads_paused:
            self._closed(PING_TIMEOUT)
            return Action.CLOSE
        if now >= self._ping_at:
            self._ping_at = _NEVER
            self._pong_deadline = now + self.ping_timeout
            return Action.SEND_PING
        return Action.NONE

    # -- flow control -------------------------------------------------------------------------

    def pause_reads(self) -> None:
        """The runtime stopped reading the client: a missing PONG proves nothing meanwhile."""
        self._reads_paused = True

    def resume_reads(self, now: float) -> None:
        """Reading again: a PONG still owed is due within ``ping_timeout`` from ``now``."""
        self._reads_paused = False
        if self._pong_deadline != _NEVER:
            self._pong_deadline = max(self._pong_deadline, now + self.ping_timeout)

    # -- packets from the client ----------------------------------------------------------------

    def receive(self, packet_type: PacketType, now: float) -> Action:
        """A packet arrived on the active transport."""
        if self.phase is not Phase.OPEN:
            # Node ignores what arrives once the session is closing
            return Action.NONE
        if packet_type == PacketType.MESSAGE:
            return Action.DELIVER
        if packet_type == PacketType.PONG:
            if self._pong_deadline != _NEVER:
                self._pong_deadline = _NEVER
                self._ping_at = now + self.ping_interval
            return Action.NONE
        if packet_type == PacketType.NOOP:
            return Action.NONE
        if packet_type == PacketType.CLOSE:
            self._closed(TRANSPORT_CLOSE)
            return Action.CLOSE
        # OPEN, a PING (wrong heartbeat direction in v4), UPGRADE outside an upgrade
        self._closed(PARSE_ERROR)
        return Action.CLOSE

    def receive_probe(self, packet_type: PacketType, data: str | bytes | None) -> Action:
        """A packet arrived on the transport being upgraded to."""
        if self.phase is Phase.CLOSED or self.upgrade not in (Upgrade.PROBING, Upgrade.PROBED):
            return Action.ABORT_UPGRADE
        if packet_type == PacketType.PING and data == "probe":
            self.upgrade = Upgrade.PROBED
            return Action.SEND_PROBE_PONG
        if packet_type == PacketType.UPGRADE:
            # like Node, the probe is not required before UPGRADE
            self.upgrade = Upgrade.DONE
            self._upgrade_deadline = _NEVER
            return Action.UPGRADE
        self.abort_upgrade()
        return Action.ABORT_UPGRADE

    # -- upgrade --------------------------------------------------------------------------------

    def start_upgrade(self, now: float) -> bool:
        """A second transport wants to take over: True if it may try (one at a time)."""
        if self.phase is not Phase.OPEN or not self.upgradable or self.upgrade is not Upgrade.NONE:
            return False
        self.upgrade = Upgrade.PROBING
        self._upgrade_deadline = now + self.upgrade_timeout
        return True

    def abort_upgrade(self) -> None:
        """The probing transport failed or closed: forget it (a later upgrade may try again)."""
        if self.upgrade is Upgrade.PROBING or self.upgrade is Upgrade.PROBED:
            self.upgrade = Upgrade.NONE
            self._upgrade_deadline = _NEVER

    # -- closing ----------------------------------------------------------------------------

    def close(self, reason: str, now: float, *, drain: bool) -> Action:
        """The server closes the session.

        With ``drain`` (queued packets must still reach the client and the transport cannot
        take them now) the session goes CLOSING and returns NONE; the runtime calls
        :meth:`drained` once they are out, or :meth:`on_timer` gives up after
        ``close_timeout``. Otherwise it closes at once and returns CLOSE. Idempotent: NONE
        when already closing or closed.
        """
        if self.phase is not Phase.OPEN:
            return Action.NONE
        if drain:
            self.phase = Phase.CLOSING
            self.close_reason = reason
            self._close_deadline = now + self.close_timeout
            return Action.NONE
        self._closed(reason)
        return Action.CLOSE

    def drained(self) -> Action:
        """What was queued reached the client: a CLOSING session finishes (CLOSE)."""
        if self.phase is not Phase.CLOSING:
            return Action.NONE
        self._closed(self.close_reason)
        return Action.CLOSE

    def fail(self, reason: str) -> Action:
        """The transport failed (``"transport error"``, ``"transport close"``...): close now.

        A CLOSING session finishes with the reason the server gave when it closed it.
        NONE when already closed.
        """
        phase = self.phase
        if phase is Phase.CLOSED:
            return Action.NONE
        self._closed(self.close_reason if phase is Phase.CLOSING else reason)
        return Action.CLOSE

    def _closed(self, reason: str) -> None:
        self.phase = Phase.CLOSED
        self.close_reason = reason
        if self.upgrade is not Upgrade.DONE:
            self.upgrade = Upgrade.NONE
        self._ping_at = self._pong_deadline = _NEVER
        self._upgrade_deadline = self._close_deadline = _NEVER
