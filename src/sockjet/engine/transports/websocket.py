"""WebSocket transport: every packet is one message; the serving layer does the framing.

The same object is the :class:`~sockjet.engine.io.WebSocketHandler` the serving layer feeds, both
while it is the session's active transport and while it is only being probed for an upgrade.
A text MESSAGE (``"4..."``) or a binary message goes straight to the session's handler; only
control packets take the slower way through the session's state machine.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from sockjet.engine.flow import SLOW_CONSUMER
from sockjet.engine.io import Outgoing, WebSocketConnection
from sockjet.protocol.session import Phase

if TYPE_CHECKING:
    from sockjet.engine.transports.owner import TransportOwner

__all__ = ["CLOSE_CODES", "RefusedWebSocket", "WebSocketTransport"]

logger = logging.getLogger("sockjet.engine")

CLOSE_CODES: Final = {
    "forced server close": 1001,  # going away
    "parse error": 1002,  # protocol error
    "transport error": 1008,  # policy violation: the client did not read what we sent
}
"""WebSocket close code per close reason; anything else closes normally (1000)."""

_OPEN: Final = Phase.OPEN
_ERROR_CODES: Final = frozenset({1002, 1007, 1009, 1011})
"""Close codes of a broken WebSocket (bad frames, bad UTF-8, too big, our internal error)."""


class WebSocketTransport:
    """One WebSocket of a session: the session's transport, or a candidate for an upgrade."""

    name: Final = "websocket"

    __slots__ = ("closed", "conn", "high_water", "session")

    def __init__(
        self, session: TransportOwner, conn: WebSocketConnection, *, high_water: int
    ) -> None:
        self.session = session
        self.conn = conn
        self.high_water = high_water
        self.closed = False
        """True once either side closed the connection."""

    def send(self, message: Outgoing, volatile: bool) -> bool:
        """Hand one packet to the connection; False when dropped (see EngineSocket.send)."""
        conn = self.conn
        buffered = conn.buffered_amount
        if buffered + message.size > self.high_water and not self.session.admit(
            buffered, message.size, volatile
        ):
            return False
        conn.send(message)
        return True

    @property
    def buffered_amount(self) -> int:
        return self.conn.buffered_amount

    def watch_drain(self, level: int) -> None:
        self.conn.watch_drain(level)

    def pause_reading(self) -> None:
        self.conn.pause_reading()

    def resume_reading(self) -> None:
        self.conn.resume_reading()

    def close(self, reason: str = "") -> None:
        """Close the connection with the code that fits ``reason``. Idempotent.

        A slow consumer is dropped at once: a close frame would wait behind what it does not
        read, and what is queued for it is given up.
        """
        if not self.closed:
            self.closed = True
            if reason == SLOW_CONSUMER:
                self.conn.abort()
            else:
                self.conn.close(CLOSE_CODES.get(reason, 1000))

    # -- WebSocketHandler -------------------------------------------------------------------------

    def on_message(self, data: str | bytes) -> None:
        """A message from the client."""
        session = self.session
        if session.active is self and session.machine.phase is _OPEN:
            # the hot path: MESSAGE packets skip the state machine
            if isinstance(data, str):
                if data[:1] == "4":
                    session.deliver(data[1:])
                    return
            else:
                session.deliver(data)
                return
        session.websocket_message(self, data)

    def on_close(self, code: int | None, reason: str) -> None:
        """The connection is gone (either side closed it)."""
        self.closed = True
        self.session.websocket_closed(self, code in _ERROR_CODES)

    def on_drain(self) -> None:
        """The connection's queue fell to the level the session watches."""
        self.session.drained(self)


class RefusedWebSocket:
    """The handler for a WebSocket the engine closed as soon as it was handed over."""

    __slots__ = ()

    def on_message(self, data: str | bytes) -> None:
        """Ignored: the connection is closing."""

    def on_close(self, code: int | None, reason: str) -> None:
        """Nothing to release."""

    def on_drain(self) -> None:
        """Nothing waits for it."""
