"""HTTP long-polling transport: one pending GET carries packets out, POSTs carry them in.

The outbound queue holds :class:`~sockjet.engine.io.Outgoing` objects untouched; a GET answer is
their cached polling forms joined once. A GET that finds nothing queued waits on a future that the
first ``send`` resolves, so everything sent in the same event-loop iteration leaves in one
response. No task, no timer: the GET's own coroutine (the serving layer's) does the waiting.

One GET and one POST at a time per session (a second one closes the session, as in Node). A POST
is answered once its packets were all taken: while the session's reading is paused (its handler
is behind) the answer waits, and a client that waits for its answer before the next POST (every
Engine.IO client does) is slowed down. The queue for the next GET counts as the session's outbound
buffer (see :mod:`sockjet.engine.flow`).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import TYPE_CHECKING, Final

from sockjet.engine.io import BodyError, HTTPRequest, HTTPResponse, Outgoing
from sockjet.errors import PayloadTooLarge, ProtocolError
from sockjet.protocol.engineio import RECORD_SEPARATOR, decode_payload
from sockjet.protocol.session import TRANSPORT_CLOSE

if TYPE_CHECKING:
    from sockjet.engine.transports.owner import TransportOwner

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

    __slots__ = (
        "_posting",
        "_queue",
        "_queued",
        "_session",
        "_waiter",
        "_watched",
        "discarded",
        "high_water",
    )

    def __init__(self, session: TransportOwner, *, high_water: int) -> None:
        self._session = session
        self._queue: list[Outgoing] = []
        self._queued = 0
        """Bytes queued, UTF-8 (the session's outbound buffer while it polls)."""
        self._waiter: asyncio.Future[None] | None = None
        self._posting = False  # a POST is in flight
        self._watched: int | None = None  # the level watch_drain asked for
        self.high_water = high_water
        self.discarded = False
        """True once the session upgraded away from polling."""

    @property
    def waiting(self) -> bool:
        """A GET is pending and can take packets now (the transport is writable)."""
        return self._waiter is not None

    @property
    def buffered_amount(self) -> int:
        """What waits for the next GET (UTF-8 bytes; binary counted before base64)."""
        return self._queued

    # -- outbound -------------------------------------------------------------------------------

    def send(self, message: Outgoing, volatile: bool) -> bool:
        """Queue one packet for the next GET answer; False when dropped (see EngineSocket.send)."""
        if volatile and self._waiter is None:
            # as Node: a volatile packet is dropped while the transport is not writable
            self._session.dropped_volatile()
            return False
        queued = self._queued
        size = message.size
        if queued + size > self.high_water and not self._session.admit(queued, size, volatile):
            return False
        self._queue.append(message)
        self._queued = queued + size
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

    def watch_drain(self, level: int) -> None:
        """Tell the session when the next GET took the queue (it takes it all)."""
        self._watched = level

    def pause_reading(self) -> None:
        """Nothing to do here: :meth:`handle_post` holds its answer while the session pauses."""

    def resume_reading(self) -> None:
        """Nothing to do here (see :meth:`pause_reading`)."""

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
        session = self._session
        if queue:
            cap = session.max_packets_per_poll
            if cap is not None and len(queue) > cap:
                # the rest goes with the next poll, which the client sends at once
                self._queue = queue[cap:]
                queue = queue[:cap]
                self._queued -= sum(map(len, queue))
            else:
                self._queue = []
                self._queued = 0
            parts = [message.polling() for message in queue]
            watched = self._watched
            if watched is not None and self._queued <= watched:
                self._watched = None
                session.drained(self)
        else:
            parts = []
        if self._queue:
            pass  # more to come: the CLOSE packet, if due, goes last with the next poll
        elif (
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

    async def handle_post(self, request: HTTPRequest, headers: Headers) -> HTTPResponse:
        """Packets from the client: read and decode the body, feed the session (waiting while
        its reading is paused), answer ``ok``.

        A second POST while one is in flight closes the session (Node: "data request overlap
        from client"), and so does a client that leaves mid-request. A POST whose session ends
        while it waits is answered 400.
        """
        session = self._session
        if self._posting:
            session.fail("transport error")
            return HTTPResponse(400, list(headers))
        self._posting = True
        try:
            return await self._post(request, headers)
        except asyncio.CancelledError:
            # the serving layer gave up on this request: the client went away mid-POST
            session.fail("transport error")
            raise
        finally:
            self._posting = False

    async def _post(self, request: HTTPRequest, headers: Headers) -> HTTPResponse:
        session = self._session
        content_type = request.headers.get("content-type")
        if content_type is not None and not content_type.lstrip().lower().startswith("text/"):
            # EIO 4 payloads are text; Node refuses application/octet-stream ("invalid content")
            session.fail("transport error")
            return HTTPResponse(400, list(headers))
        body = request.body
        if request.receive_body is not None:
            try:
                received = await session.until_ended(request.receive_body())
            except BodyError as error:
                session.fail("transport error")
                return HTTPResponse(error.status or 400, list(headers))
            if received is None:  # the session ended first: abandon the request
                return HTTPResponse(400, list(headers))
            body = received
        try:
            packets = decode_payload(body, max_payload=session.max_payload)
        except PayloadTooLarge:
            session.fail("transport error")
            return HTTPResponse(413, list(headers))
        except ProtocolError:
            session.fail("parse error")
            return HTTPResponse(400, list(headers))
        if not await session.receive_posted(packets):
            return HTTPResponse(400, list(headers))
        return HTTPResponse(200, _OK_HEADERS + headers, _OK)
