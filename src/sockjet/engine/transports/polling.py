"""HTTP long-polling transport: one pending GET carries packets out, POSTs carry them in.

The outbound queue holds :class:`~sockjet.engine.io.Outgoing` objects untouched; a GET answer is
their cached polling forms joined once. A GET that finds nothing queued waits on a future that the
first ``send`` resolves, so everything sent in the same event-loop iteration leaves in one
response. No task, no timer: the GET's own coroutine (the serving layer's) does the waiting.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import TYPE_CHECKING, Final

from sockjet.engine.io import HTTPRequest, HTTPResponse, Outgoing
from sockjet.errors import PayloadTooLarge, ProtocolError
from sockjet.protocol.engineio import RECORD_SEPARATOR, decode_payload
from sockjet.protocol.session import TRANSPORT_CLOSE

if TYPE_CHECKING:
    from sockjet.engine.session import Session

__all__ = ["COMPRESSION_THRESHOLD", "PollingTransport", "compress_body"]

logger = logging.getLogger("sockjet.engine")

COMPRESSION_THRESHOLD: Final = 1024
"""Polling answers this many bytes or more are compressed when the client accepts it (Node's)."""

Headers = list[tuple[str, str]]

_CLOSE: Final = "1"
_NOOP: Final = "6"
_PAYLOAD_HEADERS: Final[Headers] = [
    ("Content-Type", "text/plain; charset=UTF-8"),
    ("Cache-Control", "no-store"),
]
# text/html rather than text/plain: some user agents offered to download "ok" (Node's GH-43)
_OK_HEADERS: Final[Headers] = [("Content-Type", "text/html"), ("Cache-Control", "no-store")]
_OK: Final = b"ok"


def _accepted_encoding(accept_encoding: str) -> str | None:
    """``"gzip"`` or ``"deflate"`` (preferred in that order) if the client accepts one."""
    accepted: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        accepted[name.strip().lower()] = quality
    wildcard = accepted.get("*", 0.0)
    for encoding in ("gzip", "deflate"):
        if accepted.get(encoding, wildcard) > 0.0:
            return encoding
    return None


def compress_body(body: bytes, accept_encoding: str | None) -> tuple[bytes, str | None]:
    """Compress a polling answer as Node does: ``(body, Content-Encoding or None)``."""
    if accept_encoding is None or len(body) < COMPRESSION_THRESHOLD:
        return body, None
    encoding = _accepted_encoding(accept_encoding)
    if encoding is None:
        return body, None
    # gzip: wbits 31 (gzip wrapper); deflate: zlib-wrapped (RFC 1950), as Node's createDeflate
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31 if encoding == "gzip" else 15)
    return compressor.compress(body) + compressor.flush(), encoding


class PollingTransport:
    """The polling side of one session: its outbound queue and its pending GET."""

    name: Final = "polling"

    __slots__ = ("_limit", "_queue", "_queued", "_session", "_waiter", "discarded", "high_water")

    def __init__(self, session: Session, *, high_water: int) -> None:
        self._session = session
        self._queue: list[Outgoing] = []
        self._queued = 0
        """Characters queued (the bound of the outbound buffer)."""
        self._waiter: asyncio.Future[None] | None = None
        self.high_water = high_water
        self._limit = 4 * high_water
        self.discarded = False
        """True once the session upgraded away from polling."""

    @property
    def waiting(self) -> bool:
        """A GET is pending and can take packets now (the transport is writable)."""
        return self._waiter is not None

    @property
    def queued_bytes(self) -> int:
        return self._queued

    # -- outbound -------------------------------------------------------------------------------

    def send(self, message: Outgoing, volatile: bool) -> bool:
        """Queue one packet for the next GET answer; False when dropped (see EngineSocket.send)."""
        queued = self._queued
        if queued > self.high_water:
            if volatile:
                return False
            if queued > self._limit:
                # a client that stops polling cannot make us buffer without bound
                self._session.fail("transport error")
                return False
        elif volatile and self._waiter is None:
            # as Node: a volatile packet is dropped while the transport is not writable
            return False
        self._queue.append(message)
        self._queued = queued + len(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    def take(self) -> list[Outgoing]:
        """Remove and return everything queued (to move it to another transport)."""
        queue = self._queue
        self._queue = []
        self._queued = 0
        return queue

    def wake(self) -> None:
        """Answer the pending GET now (with whatever is queued, possibly a NOOP or CLOSE)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def release(self) -> None:
        """The session is closed: wake the pending GET (it answers CLOSE), else drop the queue."""
        if self._waiter is not None:
            self.wake()
        else:
            self.take()

    # -- requests ---------------------------------------------------------------------------

    async def handle_get(self, request: HTTPRequest, headers: Headers) -> HTTPResponse:
        """A poll: answer with what is queued, waiting for something if nothing is."""
        session = self._session
        if self._waiter is not None:
            # Node: "overlap from client" -> transport error, this request gets a bare 400
            session.fail("transport error")
            return HTTPResponse(400, list(headers))
        if not self._queue and not self.discarded and session.poll_should_wait():
            waiter = self._waiter = session.loop.create_future()
            try:
                await waiter
            except asyncio.CancelledError:
                # the serving layer gave up on this request: the client went away mid-poll
                self._waiter = None
                session.fail("transport error")
                raise
            self._waiter = None
        return self._answer(request, headers)

    def _answer(self, request: HTTPRequest, headers: Headers) -> HTTPResponse:
        queue = self._queue
        if queue:
            parts = [message.polling() for message in queue]
            self._queue = []
            self._queued = 0
        else:
            parts = []
        session = self._session
        if (
            not self.discarded
            and not session.is_open
            and session.machine.close_reason != TRANSPORT_CLOSE
        ):
            parts.append(_CLOSE)
            session.close_delivered()
        elif not parts:
            # woken for an upgrade, the transport was discarded, or the client sent CLOSE (Node
            # releases the pending GET with a NOOP): let the client move on
            parts.append(_NOOP)
        body = RECORD_SEPARATOR.join(parts).encode("utf-8", "replace")
        response_headers = _PAYLOAD_HEADERS + headers
        if self._session.http_compression:
            body, encoding = compress_body(body, request.headers.get("accept-encoding"))
            if encoding is not None:
                response_headers.append(("Content-Encoding", encoding))
        return HTTPResponse(200, response_headers, body)

    def handle_post(self, request: HTTPRequest, headers: Headers) -> HTTPResponse:
        """Packets from the client: decode the body, feed the session, answer ``ok``."""
        session = self._session
        content_type = request.headers.get("content-type")
        if content_type is not None and not content_type.lstrip().lower().startswith("text/"):
            # EIO 4 payloads are text; Node refuses application/octet-stream ("invalid content")
            session.fail("transport error")
            return HTTPResponse(400, list(headers))
        try:
            packets = decode_payload(request.body, max_payload=session.max_payload)
        except PayloadTooLarge:
            session.fail("transport error")
            return HTTPResponse(413, list(headers))
        except ProtocolError:
            session.fail("parse error")
            return HTTPResponse(400, list(headers))
        session.receive_packets(packets)
        return HTTPResponse(200, _OK_HEADERS + headers, _OK)
