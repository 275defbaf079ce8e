"""The boundary between the serving layer (native server, ASGI) and the Engine.IO runtime.

The serving layer parses HTTP and WebSocket frames; the engine never touches a socket. A serving
layer turns each HTTP request under the engine's path into an :class:`HTTPRequest`, awaits
:meth:`EngineServer.handle_request <sockjet.engine.server.EngineServer.handle_request>` and writes
the :class:`HTTPResponse` back. For a WebSocket upgrade it first asks the engine whether to accept
(``check_websocket``), completes the upgrade, then hands the engine a :class:`WebSocketConnection`
and feeds the returned :class:`WebSocketHandler` every message and the close.

Outbound data travels as :class:`Outgoing` objects. A broadcast builds one ``Outgoing`` per
Engine.IO packet and hands the *same object* to every recipient: each transport caches the bytes it
derives from it (the WebSocket frame, the polling form), so a message sent to a thousand sockets
is framed once.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "BodyError",
    "EngineSocket",
    "HTTPRequest",
    "HTTPResponse",
    "Outgoing",
    "SessionHandler",
    "WebSocketConnection",
    "WebSocketHandler",
    "send_packet",
]


@dataclass(slots=True)
class HTTPRequest:
    """One HTTP request as the serving layer parsed it."""

    method: str
    """Upper-case method: ``"GET"``, ``"POST"``, ``"OPTIONS"``..."""
    path: str
    """The path without the query string, percent-decoded, e.g. ``"/socket.io/"``."""
    query: dict[str, str]
    """Query parameters; the first value wins when a name repeats."""
    headers: dict[str, str]
    """Header names lower-cased; repeated headers joined with ``", "``."""
    body: bytes = b""
    """The request body, already capped by the serving layer (it answers 413 past the limit)."""
    remote_addr: tuple[str, int] | None = None
    """The peer's (host, port), when known."""
    url: str = ""
    """The raw request target as sent (path and query)."""
    secure: bool = False
    """True when the request arrived over TLS."""
    receive_body: Callable[[], Awaitable[bytes]] | None = None
    """Set when the body is still arriving (``body`` is then empty): awaiting it returns the
    whole body, capped by the serving layer, or raises :class:`BodyError`."""


class BodyError(Exception):
    """A request body could not be read in full: too large, too slow, or the client left.

    ``status`` is what to answer (413, 408), or None when nobody is left to answer.
    """

    def __init__(self, status: int | None, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(slots=True)
class HTTPResponse:
    """An HTTP response for the serving layer to write."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class Outgoing:
    """One Engine.IO packet on its way out, shared by every recipient of a broadcast.

    ``data`` is the packet in its WebSocket form: a ``str`` for a text packet (type digit
    included, e.g. ``'42["tick",1]'``) or ``bytes`` for a binary message (no type prefix).
    Transports cache what they derive from it in the slots below, so the work is done once
    however many connections the packet goes to.
    """

    __slots__ = ("compress", "data", "payload_form", "size", "ws_frame")

    def __init__(self, data: str | bytes, compress: bool = True) -> None:
        self.data = data
        self.size = (
            len(data) if data.__class__ is bytes or data.isascii() else len(data.encode())  # type: ignore[union-attr]
        )
        """Its bytes (UTF-8 for text; ``str.isascii`` is constant-time), computed once: every
        recipient's flow control reads it, and the traffic counters (a Python ``__len__`` per
        recipient had cost a fifth of a fan-out's time)."""
        self.compress = compress
        """False when the sender asked for no compression (``emit`` with ``compress(False)``):
        transports that can compress per message (permessage-deflate) send it as is."""
        self.ws_frame: bytes | None = None
        """The complete server-to-client WebSocket frame, filled by the first WebSocket writer."""
        self.payload_form: str | None = None
        """The packet as it appears in a polling payload, filled by :meth:`polling`."""

    @classmethod
    def message(cls, data: str | bytes, compress: bool = True) -> Outgoing:
        """An Engine.IO MESSAGE packet carrying ``data`` (a Socket.IO packet or attachment)."""
        return cls("4" + data if isinstance(data, str) else data, compress)

    @property
    def is_binary(self) -> bool:
        return not isinstance(self.data, str)

    def polling(self) -> str:
        """The packet as it appears in a polling payload (binary as ``b`` + base64), cached."""
        form = self.payload_form
        if form is None:
            data = self.data
            form = data if isinstance(data, str) else "b" + base64.b64encode(data).decode("ascii")
            self.payload_form = form
        return form

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"Outgoing({self.data!r})"


class WebSocketConnection(Protocol):
    """What the serving layer gives the engine for one accepted WebSocket."""

    def send(self, message: Outgoing) -> None:
        """Queue one message (text frame for ``str`` data, binary for ``bytes``). Never blocks.

        Implementations may coalesce everything queued in one event-loop iteration into a
        single write.
        """

    @property
    def buffered_amount(self) -> int:
        """Bytes queued and not yet handed to the kernel (for backpressure decisions)."""
        ...

    def watch_drain(self, level: int) -> None:
        """Call the handler's ``on_drain()`` once, when a write (or the kernel taking what was
        written) leaves ``buffered_amount`` at most ``level``; never from inside this call.
        A later call replaces the level."""

    def pause_reading(self) -> None:
        """Deliver no more messages until :meth:`resume_reading` (messages already read are
        held, in order, and no more bytes are read: TCP flow control slows the peer)."""

    def resume_reading(self) -> None:
        """Deliver what was held, then read again."""

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (after what is queued) and close the connection. Idempotent."""

    def abort(self) -> None:
        """Drop the connection now: what is queued is discarded, no close handshake."""


class WebSocketHandler(Protocol):
    """What the engine gives back for an accepted WebSocket; the serving layer calls it."""

    def on_message(self, data: str | bytes) -> None:
        """A complete message arrived (``str`` for text frames, ``bytes`` for binary)."""

    def on_close(self, code: int | None, reason: str) -> None:
        """The connection is gone: ``code`` is the peer's close code, or None if it dropped.

        Called exactly once, also after the engine itself called ``close()``.
        """

    def on_drain(self) -> None:
        """``buffered_amount`` fell to the level given to ``watch_drain``."""


class SessionHandler(Protocol):
    """What the Socket.IO layer gives the engine for each new Engine.IO session."""

    def on_message(self, data: str | bytes) -> None:
        """An Engine.IO MESSAGE arrived (its payload: text without the ``4``, or raw bytes)."""

    def on_close(self, reason: str) -> None:
        """The session closed. Called exactly once. ``reason`` is one of the Engine.IO
        reasons as Node spells them: ``"transport close"``, ``"transport error"``,
        ``"ping timeout"``, ``"parse error"``, ``"forced close"``, ``"forced server close"``,
        or ``"slow consumer"`` (sockjet's own: the client stopped taking what it is sent).
        """


class EngineSocket(Protocol):
    """The engine's face of one session, as the Socket.IO layer sees it."""

    @property
    def sid(self) -> str:
        """The Engine.IO session id."""
        ...

    @property
    def request(self) -> HTTPRequest:
        """The handshake request (headers, query, remote address, url)."""
        ...

    @property
    def transport(self) -> str:
        """The current transport: ``"polling"`` or ``"websocket"``."""
        ...

    def send(self, message: Outgoing, *, volatile: bool = False) -> bool:
        """Queue one packet. Returns False when it was dropped: a volatile packet while
        the transport is not writable or over its high-water mark, or any packet once the
        session is closing (a slow consumer is closed rather than queued past its cap).
        Never blocks, never raises."""
        ...

    @property
    def buffered_amount(self) -> int:
        """Outbound bytes queued for this session and not yet handed to the kernel."""
        ...

    async def drain(self) -> None:
        """Return once ``buffered_amount`` is under the low-water mark (or the session ended)."""

    def pause_reading(self) -> None:
        """The handler is behind: stop delivering messages (and reading them) until
        :meth:`resume_reading`. A polling POST is answered only once reading resumes."""

    def resume_reading(self) -> None:
        """Deliver and read again."""

    def close(self, reason: str = "forced close") -> None:
        """Flush what is queued, then close; the handler's ``on_close(reason)`` follows."""


def send_packet(conn: EngineSocket, messages: Sequence[Outgoing], volatile: bool = False) -> bool:
    """Queue the messages of one Socket.IO packet (a binary packet and its attachments) on
    ``conn``: False when the first was dropped (volatile, or the session is closing). Once it is
    queued the others always are: half a binary packet would break the client's decoder."""
    send = conn.send
    if not send(messages[0], volatile=volatile):
        return False
    for message in messages[1:]:
        send(message)
    return True
