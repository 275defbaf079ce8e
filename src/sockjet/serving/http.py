"""HTTP/1.1 for the native server: one :class:`HTTPProtocol` per connection, parsed by httptools.

Requests on a connection are answered strictly in order (keep-alive and pipelining): each parsed
request joins the connection's queue, and one task answers the queue front to back, then ends
(no task while the connection is idle). A POST to the engine joins the queue as soon as its
headers are in, its body still arriving (:attr:`~sockjet.engine.io.HTTPRequest.receive_body`):
the engine then knows it is in flight, and may answer it (a session that died) before the body is
complete, in which case the connection closes after the answer. Every limit refuses with an answer (400, 408, 413, 414,
431) written after the responses already owed, then closes. A request with ``Upgrade:
websocket`` switches the transport to a :class:`~sockjet.serving.websocket.WebSocketProtocol`.

With ``--workers`` (:attr:`ServerContext.handoff`), a polling GET/POST or an upgrade whose ``sid``
names another worker is not answered here: once its headers are in, the connection itself (its
socket and every byte read from this request on) goes to that worker, which feeds them to a
fresh :class:`HTTPProtocol` (``initial``). See :mod:`sockjet.serving.handoff`.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
from collections import deque
from functools import partial
from http import HTTPStatus
from typing import TYPE_CHECKING, Final, Protocol, cast
from urllib.parse import unquote

import httptools

from sockjet.engine.io import BodyError, HTTPRequest, HTTPResponse
from sockjet.protocol.websocket import FrameParser, accept_key, negotiate_deflate
from sockjet.serving.header_strings import SharedStrings
from sockjet.serving.query_string import parse_query
from sockjet.serving.websocket import Flusher, WebSocketProtocol

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from sockjet.engine.io import WebSocketConnection, WebSocketHandler
    from sockjet.serving.limits import NativeLimits
    from sockjet.serving.static import StaticFiles

__all__ = ["Engine", "HTTPProtocol", "Handoff", "ServerContext", "encode_response"]

_SHARED_QUERY: Final = frozenset({"EIO", "transport"})

logger = logging.getLogger("sockjet.serving")


class Engine(Protocol):
    """What the native server needs from the Engine.IO runtime (``EngineServer``)."""

    @property
    def path(self) -> str:
        """Requests whose path starts with this (e.g. ``"/socket.io/"``) go to the engine."""
        ...

    @property
    def max_payload(self) -> int:
        """Cap on HTTP bodies and WebSocket messages."""
        ...

    @property
    def per_message_deflate(self) -> bool:
        """Whether to negotiate permessage-deflate."""
        ...

    async def handle_request(self, request: HTTPRequest) -> HTTPResponse:
        """Answer a polling GET (may wait, a long-poll), POST or OPTIONS. Cancelled when the
        client's connection drops while it waits."""
        ...

    async def check_websocket(self, request: HTTPRequest) -> HTTPResponse | None:
        """None accepts the upgrade; a response is sent instead (then the connection closes)."""
        ...

    def open_websocket(self, request: HTTPRequest, conn: WebSocketConnection) -> WebSocketHandler:
        """Take over an accepted WebSocket; returns who receives its messages and close."""
        ...

    async def close(self) -> None:
        """Close every session (not called by the native server: its owner closes it)."""
        ...


class Handoff(Protocol):
    """Where the requests of sessions that live in another process go (``--workers``; the
    implementation is :class:`sockjet.serving.handoff.HandoffRouter`)."""

    def owner(self, sid: str) -> object | None:
        """The process holding session ``sid`` when it is another one; None: answer here."""
        ...

    def balance(self) -> object | None:
        """Where a new session should go when this process holds more than its share, or
        is draining (a handshake is then handed over like the requests of another's session);
        None: here."""
        ...

    def hand_over(
        self,
        owner: object,
        transport: asyncio.Transport,
        data: bytes,
        done: Callable[[bool], None],
    ) -> None:
        """Pass the connection of ``transport`` (paused) and ``data`` (every byte read from it
        from the current request on) to ``owner``, then call ``done(True)``: the caller then
        closes its transport, which leaves the client's TCP connection open. ``done(False)``
        when it cannot (the owner is gone): the request is answered here."""
        ...


class ServerContext:
    """What every connection of one server shares."""

    __slots__ = (
        "closing",
        "connections",
        "drained",
        "endpoints",
        "engine",
        "engine_exact",
        "engine_prefix",
        "fallback",
        "flusher",
        "handoff",
        "limits",
        "secure",
        "static",
        "strings",
    )

    def __init__(
        self,
        engine: Engine,
        limits: NativeLimits,
        flusher: Flusher,
        *,
        static: StaticFiles | None = None,
        fallback: Callable[[HTTPRequest], Awaitable[HTTPResponse]] | None = None,
        secure: bool = False,
        endpoints: Mapping[str, Callable[[HTTPRequest], Awaitable[HTTPResponse]]] | None = None,
        handoff: Handoff | None = None,
    ) -> None:
        self.engine = engine
        self.endpoints = dict(endpoints or {})
        self.limits = limits
        self.flusher = flusher
        self.static = static
        self.fallback = fallback
        self.secure = secure
        self.handoff = handoff
        """Set in a worker of ``--workers``: see :class:`Handoff`."""
        prefix = engine.path if engine.path.endswith("/") else engine.path + "/"
        self.engine_prefix = prefix
        self.engine_exact = prefix.rstrip("/") or "/"
        self.connections: set[HTTPProtocol | WebSocketProtocol] = set()
        self.strings = SharedStrings()
        """Header names and common values, decoded once (what idle sessions keep)."""
        self.closing = False
        self.drained: asyncio.Future[None] | None = None

    def is_engine_path(self, path: str) -> bool:
        return path.startswith(self.engine_prefix) or path == self.engine_exact

    def add(self, conn: HTTPProtocol | WebSocketProtocol) -> None:
        self.connections.add(conn)

    def discard(self, conn: HTTPProtocol | WebSocketProtocol) -> None:
        self.connections.discard(conn)
        if not self.connections and self.drained is not None and not self.drained.done():
            self.drained.set_result(None)


# -- responses ---------------------------------------------------------------------------------

_STATUS_LINES: Final = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n" for status in HTTPStatus
}
_MANAGED_HEADERS: Final = frozenset({"content-length", "connection", "transfer-encoding"})


def encode_response(
    response: HTTPResponse, *, close: bool, head: bool = False, keep_alive_header: bool = False
) -> bytes:
    """Serialize a response: we own Content-Length and Connection; no header can split it."""
    status = response.status
    parts = [_STATUS_LINES.get(status) or f"HTTP/1.1 {status} Status\r\n"]
    for name, value in response.headers:
        if name.lower() in _MANAGED_HEADERS or _unsafe(name) or _unsafe(value):
            continue
        parts.append(f"{name}: {value}\r\n")
    body = response.body
    if status >= 200 and status != 204 and status != 304:
        parts.append(f"content-length: {len(body)}\r\n")
    if close:
        parts.append("connection: close\r\n")
    elif keep_alive_header:
        parts.append("connection: keep-alive\r\n")
    parts.append("\r\n")
    head_bytes = "".join(parts).encode("latin-1", "replace")
    return head_bytes if head or not body else head_bytes + body


def _unsafe(text: str) -> bool:
    return "\r" in text or "\n" in text or "\x00" in text


def _plain(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> HTTPResponse:
    return HTTPResponse(
        status,
        [("content-type", "text/plain; charset=utf-8"), *(headers or [])],
        message.encode(),
    )


_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


# -- the protocol ------------------------------------------------------------------------------


class _Refuse(Exception):
    """Raised inside a parser callback to stop parsing; the status is on the protocol."""


class _HandOver(Exception):
    """Raised inside a parser callback to stop parsing: the connection goes to another worker."""


class _Item:
    """One request owed an answer, in arrival order."""

    __slots__ = ("body", "keep_alive", "refusal", "request", "upgrade")

    def __init__(
        self,
        request: HTTPRequest | None,
        keep_alive: bool = False,
        upgrade: bool = False,
        refusal: HTTPResponse | None = None,
    ) -> None:
        self.request = request
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        self.refusal = refusal
        self.body: asyncio.Future[bytes] | None = None
        """While the body of a streamed request is arriving: resolved with it, or failed."""

    def receive_body(self) -> asyncio.Future[bytes]:
        assert self.body is not None
        return self.body

    def fail_body(self, status: int | None, reason: str) -> None:
        body = self.body
        if body is not None and not body.done():
            body.set_exception(BodyError(status, reason))
            body.exception()  # nobody may be waiting (the engine answered already)
        self.keep_alive = False


_TIMER_SLACK: Final = 0.001  # uvloop's timers have millisecond resolution

_IDLE: Final = 0  # between requests
_HEAD: Final = 1  # a request line or headers are arriving
_BODY: Final = 2  # headers complete, the body is arriving


class HTTPProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection, until it closes or becomes a WebSocket."""

    __slots__ = (
        "_body",
        "_body_size",
        "_ctx",
        "_deadline",
        "_fed",
        "_fresh",
        "_handover",
        "_head_size",
        "_header_count",
        "_headers",
        "_http10",
        "_initial",
        "_keep_alive",
        "_local_once",
        "_parser",
        "_phase",
        "_queue",
        "_raw",
        "_reading_paused",
        "_refusal",
        "_remote",
        "_streaming",
        "_task",
        "_timer",
        "_transport",
        "_untouched",
        "_upgrade_tail",
        "_url",
        "_url_size",
    )

    def __init__(self, ctx: ServerContext, initial: bytes = b"") -> None:
        """``initial``: bytes read from the connection elsewhere (another worker handed it
        over), parsed before anything the connection sends."""
        self._ctx = ctx
        self._initial = initial
        self._transport: asyncio.Transport | None = None
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self._remote: tuple[str, int] | None = None
        self._phase = _IDLE
        self._fed = 0
        self._url: list[bytes] = []
        self._url_size = 0
        self._headers: dict[str, str] = {}
        self._header_count = 0
        self._head_size = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._keep_alive = False
        self._http10 = False
        self._refusal: tuple[int, str] = (400, "Bad Request")
        self._queue: deque[_Item] = deque()
        self._streaming: _Item | None = None  # the queued request whose body is arriving
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None  # when the current phase times out (loop time)
        self._reading_paused = False
        self._upgrade_tail: list[bytes] | None = None
        # With a handoff: the chunks read since the current request began, while its head is
        # arriving, when it began at the start of a chunk (else None: its start is unknown).
        self._raw: list[bytes] | None = None
        self._fresh = False  # the chunk being parsed began between two requests
        self._handover: tuple[object, list[bytes]] | None = None
        self._local_once = False  # answer the next request here (its owner is gone)
        self._untouched = not initial  # nothing received yet (see shutdown)

    # -- connection events ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        transport = cast("asyncio.Transport", transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._remote = (str(peer[0]), int(peer[1]))
        self._ctx.add(self)
        if self._ctx.closing:
            transport.close()
            return
        self._arm(self._ctx.limits.header_timeout)
        if self._initial:
            initial, self._initial = self._initial, b""
            self._local_once = True  # handed to us: its first request is ours, whatever it is
            self.data_received(initial)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._parser = None
        self._cancel_timer()
        if self._streaming is not None:
            self._streaming.fail_body(None, "the client left")
            self._streaming = None
        if self._task is not None:
            # A long-poll in progress learns that its client left (CancelledError).
            self._task.cancel()
            self._task = None
        self._queue.clear()
        self._ctx.discard(self)

    def data_received(self, data: bytes) -> None:
        self._untouched = False
        parser = self._parser
        if parser is None:
            tail = self._upgrade_tail
            if tail is not None and sum(map(len, tail)) <= self._ctx.engine.max_payload:
                tail.append(data)  # frames sent before our 101: replayed once upgraded
            return
        if self._phase != _BODY:
            self._fed += len(data)
        if self._ctx.handoff is not None:
            self._fresh = self._phase == _IDLE
            if self._fresh:
                self._raw = [data]
            elif self._phase == _HEAD and self._raw is not None:
                self._raw.append(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0]
            self._parser = None
            self._upgrade_tail = [data[offset:]]
            self._pause_reading()
            return
        except httptools.HttpParserError:
            handover, self._handover = self._handover, None
            if handover is not None:
                self._hand_over(*handover)
                return
            self._refuse(*self._refusal)
            return
        if self._phase != _BODY and self._fed > self._ctx.limits.max_header_size:
            # httptools buffers a header line internally until it ends: cap what we feed it.
            self._refuse(431, "Request Header Fields Too Large")

    def eof_received(self) -> bool | None:
        # A half-close is a client gone (browsers never half-close): close, so that a long-poll
        # in progress is cancelled now rather than answered into the void later.
        return None

    # -- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        if not self._fresh:
            self._raw = None  # it began inside a chunk: where is unknown
        self._fresh = False
        self._phase = _HEAD
        self._url = []
        self._url_size = 0
        self._headers = {}
        self._header_count = 0
        self._head_size = 0
        self._body = []
        self._body_size = 0
        self._arm(self._ctx.limits.header_timeout)

    def on_url(self, url: bytes) -> None:
        self._url_size += len(url)
        if self._url_size > self._ctx.limits.max_url_size:
            self._refusal = (414, "URI Too Long")
            raise _Refuse
        self._url.append(url)
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        limits = self._ctx.limits
        size = len(name) + len(value)
        self._header_count += 1
        self._head_size += size + 4
        if (
            self._header_count > limits.max_headers
            or size > limits.max_header_line
            or self._head_size > limits.max_header_size
        ):
            self._refusal = (431, "Request Header Fields Too Large")
            raise _Refuse
        strings = self._ctx.strings
        key = strings.name(name)
        text = strings.value(key, value)
        headers = self._headers
        previous = headers.get(key)
        headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        self._phase = _BODY
        self._fed = 0
        self._keep_alive = parser.should_keep_alive()
        self._http10 = parser.get_http_version() == "1.0"
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._ctx.engine.max_payload:
            self._refusal = (413, "Payload Too Large")
            raise _Refuse
        raw, self._raw = self._raw, None
        handoff = self._ctx.handoff
        if handoff is not None:
            if self._local_once:
                self._local_once = False
            elif raw is not None and not self._queue:
                # Nothing owed on this connection: it may go to another worker as it is. (A
                # request behind others, or pipelined mid-chunk, is answered here.)
                owner = self._owner(handoff, parser)
                if owner is not None:
                    self._handover = (owner, raw)
                    raise _HandOver
        if self._headers.get("expect", "").lower() == "100-continue" and not self._queue:
            self._write(_CONTINUE)
        self._arm(self._ctx.limits.body_timeout)
        if parser.get_method() == b"POST" and not parser.should_upgrade():
            self._stream_engine_post()

    def _owner(self, handoff: Handoff, parser: httptools.HttpRequestParser) -> object | None:
        """The other worker holding the session of this polling request or upgrade, if any."""
        if parser.get_method() not in (b"GET", b"POST"):
            return None
        url = b"".join(self._url)
        at = url.find(b"sid=")
        if at <= 0 or url[at - 1] not in b"?&":
            # a handshake (or not the engine's): here, unless others hold fewer sessions
            if parser.get_method() != b"GET" or not self._ctx.is_engine_path(
                url[: url.find(b"?")].decode("latin-1") if b"?" in url else url.decode("latin-1")
            ):
                return None
            return handoff.balance()
        end = url.find(b"&", at)
        raw = url[at + 4 : end if end >= 0 else None]
        owner = handoff.owner(raw.decode("latin-1"))
        if owner is None:
            return None  # ours (the common case, decided without parsing the whole URL)
        if b"%" in url or b"+" in url or url.find(b"sid=", at + 4) >= 0:
            # an escape or a second sid: decide on the URL as the engine will read it
            request = self._build_request("GET")
            sid = request.query.get("sid")
            if not sid or not self._ctx.is_engine_path(request.path):
                return None
            return handoff.owner(sid)
        return owner if self._ctx.is_engine_path(url[: url.find(b"?")].decode("latin-1")) else None

    def _hand_over(self, owner: object, raw: list[bytes]) -> None:
        handoff = self._ctx.handoff
        transport = self._transport
        assert handoff is not None and transport is not None
        self._parser = None
        self._cancel_timer()
        self._pause_reading()
        data = b"".join(raw)
        handoff.hand_over(owner, transport, data, partial(self._handed_over, data))

    def _handed_over(self, data: bytes, done: bool) -> None:
        transport = self._transport
        if transport is None:
            return  # closed meanwhile (a server shutdown)
        if done:
            transport.abort()  # our descriptor only: the owner has the connection now
            return
        # The owner is gone, and its sessions with it: answer here, parsing from the start.
        self._parser = httptools.HttpRequestParser(self)
        self._phase = _IDLE
        self._local_once = True
        self._reading_paused = False
        transport.resume_reading()
        self.data_received(data)

    def _stream_engine_post(self) -> None:
        """Queue a POST to the engine now, its body to follow (see the module docstring)."""
        request = self._build_request("POST")
        if not self._ctx.is_engine_path(request.path):
            return
        item = _Item(request, self._keep_alive)
        item.body = asyncio.get_running_loop().create_future()
        request.receive_body = item.receive_body
        self._streaming = item
        self._enqueue(item)

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._ctx.engine.max_payload:
            self._refusal = (413, "Payload Too Large")
            raise _Refuse
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        self._phase = _IDLE
        self._fed = 0
        self._deadline = None  # no timeout while answering; the timer stays for the next _arm
        streaming = self._streaming
        if streaming is not None:
            self._streaming = None
            body = streaming.body
            if body is not None and not body.done():
                body.set_result(b"".join(self._body))
            self._body = []
            return
        request = self._build_request(parser.get_method().decode("ascii", "replace"))
        upgrade = parser.should_upgrade()
        if upgrade and not has_token(request.headers.get("upgrade", ""), "websocket"):
            # Another protocol (h2c, "websocketx"...): answer over HTTP/1.1 and close.
            upgrade = False
            self._keep_alive = False
        self._enqueue(_Item(request, self._keep_alive, upgrade))

    def _enqueue(self, item: _Item) -> None:
        self._queue.append(item)
        if len(self._queue) > self._ctx.limits.max_pipelined:
            self._pause_reading()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._answer())

    def _build_request(self, method: str) -> HTTPRequest:
        url = b"".join(self._url)
        try:
            parsed = httptools.parse_url(url)
            raw_path, raw_query = parsed.path or b"/", parsed.query or b""
        except httptools.HttpParserInvalidURLError:  # pragma: no cover - llhttp refuses these first
            # httptools' URL splitter is not llhttp: never let a disagreement crash a request.
            raw_path, _, raw_query = url.partition(b"?")
        query: dict[str, str] = {}
        share = self._ctx.strings.share
        for key, value in parse_query(raw_query.decode("latin-1")):
            # "EIO", "transport", "websocket": kept by every session, shared; "t", "sid" vary
            query.setdefault(share(key), share(value) if key in _SHARED_QUERY else value)
        return HTTPRequest(
            method=method,
            path=(
                unquote(raw_path.decode("latin-1"))
                if b"%" in raw_path
                else self._ctx.strings.text(raw_path)
            ),
            query=query,
            headers=self._headers,
            body=b"".join(self._body),
            remote_addr=self._remote,
            url=url.decode("latin-1"),
            secure=self._ctx.secure,
        )

    # -- answering ------------------------------------------------------------------------

    async def _answer(self) -> None:
        """Answer the queued requests in order; ends when the queue is empty."""
        queue = self._queue
        try:
            while queue and self._transport is not None:
                item = queue[0]
                if item.refusal is not None:
                    self._send(item.refusal, close=True)
                    return
                request = item.request
                assert request is not None
                if item.upgrade:
                    await self._upgrade(request)
                    return
                try:
                    response = await self._dispatch(request)
                except Exception:
                    logger.exception("error while answering %s %s", request.method, request.url)
                    response = _plain(500, "Internal Server Error")
                    item.keep_alive = False
                if self._transport is None:
                    return
                if self._streaming is item:
                    # answered before its body was complete (its session died): stop reading
                    # it, and end the connection after the answer
                    item.fail_body(None, "answered before the body was complete")
                    self._streaming = None
                    self._parser = None
                keep_alive = item.keep_alive and not self._ctx.closing
                self._send(response, close=not keep_alive, head=request.method == "HEAD")
                queue.popleft()
                if not keep_alive:
                    return
                if self._reading_paused and len(queue) <= self._ctx.limits.max_pipelined // 2:
                    self._reading_paused = False
                    self._transport.resume_reading()
        finally:
            self._task = None
        if self._phase == _IDLE and self._parser is not None:
            self._arm(self._ctx.limits.keepalive_timeout)

    async def _dispatch(self, request: HTTPRequest) -> HTTPResponse:
        ctx = self._ctx
        if ctx.is_engine_path(request.path):
            return await ctx.engine.handle_request(request)
        endpoint = ctx.endpoints.get(request.path)
        if endpoint is not None:
            return await endpoint(request)
        if ctx.static is not None:
            response = await ctx.static(request)
            if response is not None:
                return response
        if ctx.fallback is not None:
            return await ctx.fallback(request)
        return _plain(404, "Not Found")

    async def _upgrade(self, request: HTTPRequest) -> None:
        ctx = self._ctx
        engine = ctx.engine
        if not ctx.is_engine_path(request.path):
            self._send(_plain(404, "Not Found"), close=True)
            return
        if ctx.closing:
            self._send(_plain(503, "Server shutting down"), close=True)
            return
        try:
            refusal = _check_upgrade(request)
            if refusal is None:
                refusal = await engine.check_websocket(request)
        except Exception:
            # a user hook (a CORS predicate...) failed: answer as a failed polling request does
            logger.exception("error while checking the WebSocket upgrade %s", request.url)
            refusal = _plain(500, "Internal Server Error")
        transport = self._transport
        if transport is None:
            return
        if refusal is not None:
            self._send(refusal, close=True)
            return
        headers = request.headers
        response = [
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
            f"Sec-WebSocket-Accept: {accept_key(headers['sec-websocket-key'].strip())}\r\n",
        ]
        deflate = None
        offers = headers.get("sec-websocket-extensions")
        if engine.per_message_deflate and offers:
            agreed = negotiate_deflate(offers)
            if agreed is not None:
                response.append(f"Sec-WebSocket-Extensions: {agreed[0]}\r\n")
                deflate = agreed[1]
        response.append("\r\n")
        ws = WebSocketProtocol(
            transport,
            FrameParser(engine.max_payload, ctx.limits.max_ws_fragments, deflate),
            ctx.flusher,
            close_timeout=ctx.limits.close_timeout,
            deflate=deflate,
            on_lost=ctx.discard,
            handshake="".join(response).encode("latin-1"),
        )
        tail = b"".join(self._upgrade_tail or ())
        self._upgrade_tail = None
        self._cancel_timer()
        self._transport = None
        ctx.add(ws)
        ctx.discard(self)
        transport.set_protocol(ws)
        try:
            handler = engine.open_websocket(request, ws)
        except Exception:
            logger.exception("open_websocket failed")
            ws.fail(1011, "internal error")
            return
        ws.start(handler, tail)  # resumes reading, unless the engine paused it already
        if ctx.closing:
            ws.shutdown()

    def _send(self, response: HTTPResponse, *, close: bool, head: bool = False) -> None:
        self._write(
            encode_response(
                response, close=close, head=head, keep_alive_header=self._http10 and not close
            )
        )
        if close:
            self._close()

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    # -- refusals, timers, closing --------------------------------------------------------

    def _refuse(self, status: int, message: str) -> None:
        """Stop reading; answer ``status`` after what is owed; then close."""
        self._parser = None
        self._upgrade_tail = None
        self._cancel_timer()
        self._pause_reading()
        streaming = self._streaming
        if streaming is not None:
            # the engine already has this request: it answers with our status, then we close
            self._streaming = None
            streaming.fail_body(status, message)
            return
        refusal = _plain(status, message)
        if self._queue:
            self._queue.append(_Item(None, refusal=refusal))
        else:
            self._send(refusal, close=True)

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        if deadline - loop.time() > _TIMER_SLACK:  # re-armed since: wait for the new deadline
            self._timer = loop.call_at(deadline, self._on_timer)
            return
        self._deadline = None
        self._on_timeout()

    def _on_timeout(self) -> None:
        if self._phase == _IDLE:
            self._close()  # idle keep-alive, or a connection that never sent a byte
        else:
            self._refuse(408, "Request Timeout")

    def _arm(self, delay: float) -> None:
        # Each request used to arm three timers (header, body, keep-alive), each a call_later
        # plus a cancel (py-spy: 13% of the server in the 1,000-client polling fan-out). Now
        # re-arming only moves the deadline; the one pending timer is replaced only when the
        # new deadline is earlier, and when it fires early it sleeps on until the deadline.
        # Measured (bench polling, A/B, 3 rounds): 5.92 -> 4.97 us of CPU per delivery (-16%).
        loop = asyncio.get_running_loop()
        deadline = self._deadline = loop.time() + delay
        timer = self._timer
        if timer is None or timer.when() > deadline + _TIMER_SLACK:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def _close(self) -> None:
        """Close after what is written; abort if the peer does not read it in time."""
        transport = self._transport
        if transport is None:
            return
        self._parser = None
        self._cancel_timer()
        transport.close()
        if transport.get_write_buffer_size():
            self._timer = asyncio.get_running_loop().call_later(
                self._ctx.limits.close_timeout, transport.abort
            )

    def shutdown(self) -> None:
        """Server shutdown: close now if idle, else after the answers owed (no keep-alive).

        A worker of ``--workers`` that drains keeps a connection that has sent nothing yet (it
        was accepted as the drain began): its first request is handed to a worker that serves,
        instead of the client finding its connection closed. The server's shutdown timeout
        bounds the wait."""
        if not self._queue and self._phase == _IDLE:
            if self._untouched and self._ctx.handoff is not None:
                return
            self._close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


def has_token(value: str, token: str) -> bool:
    """Whether a comma-separated header value lists ``token`` (case-insensitive, exact)."""
    return any(item.strip().lower() == token for item in value.split(","))


def _check_upgrade(request: HTTPRequest) -> HTTPResponse | None:
    """RFC 6455 4.2.1: what a WebSocket opening handshake must carry.

    llhttp flags an upgrade on any ``Upgrade`` header with ``Connection: upgrade``;
    :meth:`HTTPProtocol.on_message_complete` kept only ``Upgrade: websocket`` (as a token), and
    both tokens are checked exactly here.
    """
    headers = request.headers
    if request.method != "GET":
        return _plain(405, "WebSocket handshake must be a GET", [("allow", "GET")])
    if not has_token(headers.get("upgrade", ""), "websocket") or not has_token(
        headers.get("connection", ""), "upgrade"
    ):
        return _plain(400, "Invalid WebSocket upgrade headers")
    if headers.get("sec-websocket-version", "").strip() != "13":
        return _plain(426, "Unsupported WebSocket version", [("sec-websocket-version", "13")])
    key = headers.get("sec-websocket-key", "").strip()
    try:
        valid = len(binascii.a2b_base64(key.encode("ascii"), strict_mode=True)) == 16
    except (binascii.Error, UnicodeEncodeError):
        valid = False
    if not valid:
        return _plain(400, "Invalid Sec-WebSocket-Key")
    return None
