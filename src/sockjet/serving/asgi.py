"""Serve sockjet from any ASGI 3 server, alone or mounted in an ASGI framework.

``ASGIApp(io)`` is a complete ASGI application: run it under uvicorn, hypercorn, granian or
daphne, or mount it in Starlette/FastAPI/Litestar (``app.mount("/rt", ASGIApp(io))``: clients then
connect with ``path="/rt/socket.io/"``). Requests under the engine's path go to the Engine.IO
runtime; everything else goes to ``other_asgi_app`` (or a static directory, or 404).

The native server (:mod:`sockjet.serving.native`) is the fast path; this one trades speed for
fitting into an existing ASGI deployment. Two settings of the ASGI server matter:

- its WebSocket message cap (uvicorn's ``ws_max_size``, 16 MiB by default) should be at least the
  engine's ``max_payload``: this app closes larger messages with 1009, but only after the ASGI
  server has buffered them, so a cap far above ``max_payload`` wastes memory per hostile client;
- permessage-deflate is negotiated by the ASGI server (uvicorn's ``ws_per_message_deflate``), not
  by the engine's ``per_message_deflate`` option.

Flow control: a polling POST reaches the engine as soon as it starts, its body read by the engine
(so a second POST for the session is refused and a session that dies abandons it), within
``body_timeout`` seconds; a WebSocket whose session is behind is not read (``receive()`` is not
called, so the ASGI server stops reading the socket) until it caught up, and what is queued for a
WebSocket is counted until the ASGI server accepts it (it applies TCP backpressure).

Run the ASGI lifespan protocol (uvicorn's default ``lifespan="auto"`` does): on
``lifespan.shutdown`` this app awaits ``io.close()`` (sessions, handler tasks, adapters) before
``other_asgi_app`` sees the shutdown. ASGI tells an app about shutdown only after the server has
dealt with its connections: uvicorn first closes WebSockets itself (1012) and waits for
in-flight requests, and a polling GET may wait up to ``ping_interval`` for data, so give uvicorn a
``timeout_graceful_shutdown`` of a few seconds. For a graceful Socket.IO shutdown ("server
shutting down" on every socket), await ``io.close()`` before stopping the ASGI server.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Protocol, cast
from urllib.parse import quote

from sockjet.engine.io import (
    BodyError,
    HTTPRequest,
    HTTPResponse,
    Outgoing,
    WebSocketConnection,
    WebSocketHandler,
)
from sockjet.serving.query_string import parse_query
from sockjet.serving.static import StaticFiles

__all__ = ["ASGI3App", "ASGIApp", "ASGIWebSocket", "EngineLike", "ServerLike"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGI3App = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("sockjet.serving.asgi")

_NOT_FOUND = HTTPResponse(404, [("content-type", "text/plain; charset=utf-8")], b"Not Found")
_TOO_LARGE = HTTPResponse(
    413,
    [("content-type", "text/plain; charset=utf-8"), ("connection", "close")],
    b"Payload Too Large",
)
# uvicorn reports 1006 for a connection that dropped without a close frame; the engine's
# WebSocketHandler spells that None.
_ABNORMAL_CLOSURE = 1006
_MESSAGE_TOO_BIG = 1009
_INTERNAL_ERROR = 1011
_POLICY_VIOLATION = 1008
_SERVER_ERROR = HTTPResponse(
    500, [("content-type", "text/plain; charset=utf-8")], b"Internal Server Error"
)
DEFAULT_BODY_TIMEOUT = 30.0
"""Seconds a polling POST's body may take to arrive (then 408), as the native server's limit."""


class EngineLike(Protocol):
    """What the ASGI app needs from the Engine.IO runtime (``sockjet.engine.server.EngineServer``)."""

    @property
    def path(self) -> str: ...

    @property
    def max_payload(self) -> int: ...

    async def handle_request(self, request: HTTPRequest) -> HTTPResponse: ...

    async def check_websocket(self, request: HTTPRequest) -> HTTPResponse | None: ...

    def open_websocket(
        self, request: HTTPRequest, conn: WebSocketConnection
    ) -> WebSocketHandler: ...

    async def close(self) -> None: ...


class ServerLike(Protocol):
    """A Socket.IO server (``sockjet.Server``): it owns an engine and closes gracefully."""

    @property
    def engine(self) -> EngineLike: ...

    @property
    def endpoints(self) -> Mapping[str, Callable[[HTTPRequest], Awaitable[HTTPResponse]]]:
        """Extra HTTP endpoints by exact path (``/metrics``...)."""
        ...

    async def close(self) -> None: ...


class ASGIApp:
    """An ASGI 3 application serving a sockjet server.

    ``io`` is a :class:`sockjet.Server` (its ``engine`` is served) or an Engine.IO server itself.
    Other GET/HEAD requests are served from ``static_dir`` when given (as the native server
    does: ``index.html`` for ``/`` and, unless ``other_asgi_app`` is given, for unknown
    extension-less paths), the rest go to ``other_asgi_app``, else 404. Lifespan events are
    forwarded to ``other_asgi_app``; on shutdown ``io.close()`` is awaited first. A polling
    POST body that takes longer than ``body_timeout`` seconds is answered 408.
    """

    __slots__ = ("_base", "_body_timeout", "_endpoints", "_engine", "_io", "_other", "_static")

    def __init__(
        self,
        io: ServerLike | EngineLike,
        other_asgi_app: ASGI3App | None = None,
        *,
        static_dir: str | os.PathLike[str] | None = None,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
    ) -> None:
        if not body_timeout > 0:
            raise ValueError(f"body_timeout must be positive, not {body_timeout!r}")
        self._io = io
        self._engine = _engine_of(io)
        self._endpoints = _endpoints_of(io)
        self._base = self._engine.path.rstrip("/")
        self._other = other_asgi_app
        self._static = StaticFiles(static_dir) if static_dir is not None else None
        self._body_timeout = body_timeout

    @property
    def engine(self) -> EngineLike:
        """The Engine.IO runtime this app serves."""
        return self._engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" or kind == "websocket":
            path = _local_path(scope)
            base = self._base
            if path == base or path.startswith(base + "/"):
                if kind == "http":
                    await self._serve_http(scope, path, receive, send)
                else:
                    await self._serve_websocket(scope, path, receive, send)
                return
            if kind == "http":
                endpoint = self._endpoints.get(path)
                if endpoint is not None:
                    request = _request(scope, path, _headers(scope), b"")
                    await _send_response(send, await endpoint(request))
                    return
            if kind == "http" and self._static is not None:
                response = await self._serve_static(self._static, scope, path)
                if response is not None:
                    await _send_response(send, response)
                    return
            if self._other is not None:
                await self._other(scope, receive, send)
            elif kind == "http":
                await _send_response(send, _NOT_FOUND)
            else:
                await send({"type": "websocket.close", "code": _POLICY_VIOLATION})
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
        elif self._other is not None:
            await self._other(scope, receive, send)

    # -- HTTP ---------------------------------------------------------------------------------

    async def _serve_http(self, scope: Scope, path: str, receive: Receive, send: Send) -> None:
        engine = self._engine
        headers = _headers(scope)
        method = scope.get("method", "GET")
        if method == "POST":
            # The engine reads the body itself (see the module docstring); the POST may then
            # wait for its session's handler, and a client gone meanwhile must be noticed.
            reader = _BodyReader(receive, headers, engine.max_payload, self._body_timeout)
            request = _request(scope, path, headers, b"")
            request.receive_body = reader.read
            response = await _unless_disconnected(
                engine.handle_request(request), reader.disconnected
            )
            if response is None or reader.gone:
                return  # nobody is left to answer
            await _send_response(send, response)
            return
        try:
            body = await _read_body(receive, headers, engine.max_payload)
        except _Abort as abort:
            if abort.response is not None:
                await _send_response(send, abort.response)
            return
        request = _request(scope, path, headers, body)
        if method == "GET":
            # A polling GET may wait for data for up to a ping interval: stop waiting (and let
            # the engine see the cancellation) as soon as the client goes away.
            response = await _unless_disconnected(
                engine.handle_request(request), lambda: _disconnected(receive)
            )
            if response is None:
                return
        else:
            response = await engine.handle_request(request)
        await _send_response(send, response)

    async def _serve_static(
        self, static: StaticFiles, scope: Scope, path: str
    ) -> HTTPResponse | None:
        request = _request(scope, path, _headers(scope), b"")
        if request.method != "GET" and request.method != "HEAD":
            return None
        if self._other is not None and not await asyncio.to_thread(_names_a_file, static, path):
            return None
        return await static(request)

    # -- WebSocket ----------------------------------------------------------------------------

    async def _serve_websocket(self, scope: Scope, path: str, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        engine = self._engine
        request = _request(scope, path, _headers(scope), b"")
        try:
            refusal = await engine.check_websocket(request)
        except Exception:
            # a user hook (a CORS predicate...) failed: refuse as a failed polling request does
            logger.exception("error while checking the WebSocket upgrade %s", request.url)
            refusal = _SERVER_ERROR
        if refusal is not None:
            await _refuse_websocket(scope, send, refusal)
            return
        await send({"type": "websocket.accept"})
        conn = ASGIWebSocket(send)
        try:
            handler = engine.open_websocket(request, conn)
        except Exception:
            logger.exception("the engine failed to open a WebSocket")
            conn.close(_INTERNAL_ERROR)
            await conn.wait_closed()
            return
        conn.handler = handler
        code: int | None = None
        reason = ""
        try:
            code, reason = await _pump(receive, conn, handler, engine.max_payload)
        except asyncio.CancelledError:
            if not conn.aborted:
                raise
            # our own abort (a slow consumer): end this connection, not the server's task
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            try:
                handler.on_close(None if code == _ABNORMAL_CLOSURE else code, reason)
            except Exception:
                logger.exception("WebSocket close handler failed")
            await conn.stop()

    # -- lifespan -----------------------------------------------------------------------------

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        other = self._other
        if other is not None:
            received = False

            async def forward_receive() -> Message:
                nonlocal received
                message = await receive()
                received = True
                if message["type"] == "lifespan.startup":
                    self._start_io()
                elif message["type"] == "lifespan.shutdown":
                    # Disconnect clients while the other app's resources still exist.
                    try:
                        await self._io.close()
                    except Exception:
                        logger.exception("closing the sockjet server failed")
                return message

            try:
                await other(scope, forward_receive, send)
            except Exception:
                if received:
                    raise
                logger.debug("the other ASGI app does not support lifespan", exc_info=True)
            else:
                if received:
                    return
        # Nobody else speaks lifespan: answer it ourselves so shutdown still closes the server.
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._start_io()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self._io.close()
                except Exception as exc:
                    logger.exception("closing the sockjet server failed")
                    await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    def _start_io(self) -> None:
        """Start the Socket.IO server's adapters now rather than at the first connection (a
        Redis adapter then receives cluster broadcasts before any client connects)."""
        start = getattr(self._io, "start", None)
        if callable(start):
            start()


def _names_a_file(static: StaticFiles, path: str) -> bool:
    """Whether ``path`` is a file of ``static`` itself, not its single-page-app fallback to
    ``index.html``: with another app behind us, unknown paths are that app's routes."""
    target = static.resolve(path)
    if target is None:
        return False
    return target != static.root / "index.html" or path.strip("/") in ("", "index.html")


def _endpoints_of(
    io: ServerLike | EngineLike,
) -> Mapping[str, Callable[[HTTPRequest], Awaitable[HTTPResponse]]]:
    # A server's endpoints (a dict it keeps: endpoints added later are served too).
    if hasattr(io, "handle_request"):
        return {}
    return io.endpoints


def _engine_of(io: ServerLike | EngineLike) -> EngineLike:
    # An engine answers requests itself; a Socket.IO server delegates to its engine.
    if hasattr(io, "handle_request"):
        return cast(EngineLike, io)
    return io.engine


class ASGIWebSocket:
    """The engine's :class:`~sockjet.engine.io.WebSocketConnection` over an ASGI WebSocket.

    ``send()`` never blocks: messages wait in a deque that one writer task per connection drains
    through the ASGI ``send`` (which applies the server's backpressure). ``close()`` is queued
    behind what is already waiting. ``abort()`` (a slow consumer) gives up what is queued and
    ends the connection's ASGI call.
    """

    __slots__ = (
        "_buffered",
        "_closing",
        "_dead",
        "_drain_level",
        "_owner",
        "_paused",
        "_queue",
        "_resumed",
        "_send",
        "_wakeup",
        "_writer",
        "aborted",
        "handler",
    )

    def __init__(self, send: Send) -> None:
        self._send = send
        self._queue: deque[Outgoing] = deque()
        self._buffered = 0
        self._closing: tuple[int, str] | None = None
        self._dead = False
        self._drain_level: int | None = None
        self._paused = False
        self._resumed: asyncio.Future[None] | None = None
        self._wakeup = asyncio.Event()
        self._owner = asyncio.current_task()  # the ASGI call serving this connection
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        self.aborted = False
        """True once :meth:`abort` was called."""
        self.handler: WebSocketHandler | None = None
        """Who hears ``on_drain()`` (the engine's handler, set once it took the connection)."""

    def send(self, message: Outgoing) -> None:
        """Queue one message; dropped silently once the connection is closing."""
        if self._closing is not None or self._dead:
            return
        self._queue.append(message)
        self._buffered += message.size
        self._wakeup.set()

    @property
    def buffered_amount(self) -> int:
        """Bytes queued and not yet accepted by the ASGI server (UTF-8 for text)."""
        return self._buffered

    @property
    def closing(self) -> bool:
        """True once ``close()`` was called or the connection can no longer be written."""
        return self._closing is not None or self._dead

    def watch_drain(self, level: int) -> None:
        """Call the handler's ``on_drain()`` once the writer left at most ``level`` queued."""
        self._drain_level = level
        self._wakeup.set()  # the writer checks it, even with nothing to write

    def pause_reading(self) -> None:
        """Stop calling ``receive()`` (the ASGI server then stops reading the socket)."""
        self._paused = True

    def resume_reading(self) -> None:
        self._paused = False
        resumed, self._resumed = self._resumed, None
        if resumed is not None and not resumed.done():
            resumed.set_result(None)

    async def readable(self) -> None:
        """Return once reading is not paused."""
        while self._paused and not self._dead:
            resumed = self._resumed
            if resumed is None:
                resumed = self._resumed = asyncio.get_running_loop().create_future()
            await resumed

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close after what is queued. Idempotent: only the first call counts."""
        if self._closing is None:
            self._closing = (code, reason)
            self._wakeup.set()

    def abort(self) -> None:
        """Give up what is queued and end the connection now (ASGI has no abort: the call
        serving it returns, and the ASGI server closes the socket)."""
        if self.aborted:
            return
        self.aborted = True
        self._dead = True
        self._queue.clear()
        self._buffered = 0
        self._writer.cancel()
        self.resume_reading()
        owner = self._owner
        if owner is not None and not owner.done() and owner is not asyncio.current_task():
            owner.cancel()

    async def wait_closed(self) -> None:
        """Wait until the writer is done (close sent or the connection failed)."""
        await asyncio.wait((self._writer,))

    async def stop(self) -> None:
        """Stop writing now (the peer is gone) and wait for the writer to finish."""
        writer = self._writer
        if not writer.done():
            writer.cancel()
            await asyncio.wait((writer,))

    def _check_drain(self) -> None:
        level = self._drain_level
        if level is not None and self._buffered <= level:
            self._drain_level = None
            handler = self.handler
            if handler is not None:
                try:
                    handler.on_drain()
                except Exception:
                    logger.exception("WebSocket drain handler failed")

    async def _write_loop(self) -> None:
        queue = self._queue
        send = self._send
        try:
            while True:
                while queue:
                    message = queue[0]
                    data = message.data
                    if isinstance(data, str):
                        await send({"type": "websocket.send", "text": data})
                    else:
                        await send({"type": "websocket.send", "bytes": data})
                    queue.popleft()
                    self._buffered -= message.size
                    if self._drain_level is not None:
                        self._check_drain()
                if self._drain_level is not None:
                    self._check_drain()
                if self._closing is not None:
                    code, reason = self._closing
                    await send({"type": "websocket.close", "code": code, "reason": reason})
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
        except Exception:
            # The peer vanished mid-write (uvicorn raises ClientDisconnected, an OSError);
            # the receive side sees the disconnect and ends the connection.
            logger.debug("WebSocket write failed", exc_info=True)
        finally:
            self._dead = True
            queue.clear()
            self._buffered = 0


async def _pump(
    receive: Receive, conn: ASGIWebSocket, handler: WebSocketHandler, limit: int
) -> tuple[int | None, str]:
    """Feed incoming messages to the handler until the disconnect; return its code and reason.

    While the engine paused reading, ``receive()`` is not called: the ASGI server then stops
    reading the socket (uvicorn does after each message until the next ``receive()``).
    """
    while True:
        if conn._paused:
            await conn.readable()
        message = await receive()
        kind = message["type"]
        if kind == "websocket.receive":
            if conn.closing:
                continue  # the engine is done with this connection; so are we
            data: str | bytes | None = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            if _over_limit(data, limit):
                conn.close(_MESSAGE_TOO_BIG, "Max payload size exceeded")
                continue
            try:
                handler.on_message(data)
            except Exception:
                logger.exception("WebSocket message handler failed")
                conn.close(_INTERNAL_ERROR)
        elif kind == "websocket.disconnect":
            return message.get("code"), message.get("reason") or ""


def _over_limit(data: str | bytes, limit: int) -> bool:
    size = len(data)
    if size > limit:
        return True
    # A character is up to 4 bytes of UTF-8: count bytes only when that could matter.
    if isinstance(data, str) and size * 4 > limit and not data.isascii():
        return len(data.encode("utf-8", "surrogatepass")) > limit
    return False


async def _refuse_websocket(scope: Scope, send: Send, response: HTTPResponse) -> None:
    """Answer a refused upgrade with the engine's HTTP response when the server can send one."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": response.status,
                "headers": _encode_headers(response),
            }
        )
        await send({"type": "websocket.http.response.body", "body": response.body})
    else:
        # ASGI servers answer a close before accept with 403.
        await send({"type": "websocket.close", "code": _POLICY_VIOLATION})


# -- HTTP helpers ------------------------------------------------------------------------------


class _Abort(Exception):
    """Stop serving a request: answer ``response``, or nothing when the client is gone."""

    def __init__(self, response: HTTPResponse | None) -> None:
        super().__init__()
        self.response = response


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The request body, counted while it streams in and never read past ``limit``."""
    declared = headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _Abort(_TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            raise _Abort(None)
        chunk: bytes = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _Abort(_TOO_LARGE)
            chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _BodyReader:
    """A polling POST's body for the engine to read (``receive_body``), and then the watch for
    the client going away while the POST waits for its answer."""

    __slots__ = ("_done", "_headers", "_limit", "_receive", "_timeout", "gone")

    def __init__(
        self, receive: Receive, headers: dict[str, str], limit: int, timeout: float
    ) -> None:
        self._receive = receive
        self._headers = headers
        self._limit = limit
        self._timeout = timeout
        self._done = asyncio.Event()
        self.gone = False
        """True when the client disconnected while its body was read."""

    async def read(self) -> bytes:
        try:
            async with asyncio.timeout(self._timeout):
                return await _read_body(self._receive, self._headers, self._limit)
        except TimeoutError:
            raise BodyError(408, "the body took too long") from None
        except _Abort as abort:
            if abort.response is None:
                self.gone = True
                raise BodyError(None, "the client left") from None
            raise BodyError(abort.response.status, "body refused") from None
        finally:
            self._done.set()

    async def disconnected(self) -> None:
        """Return when the client disconnects (only the disconnect may follow the body)."""
        await self._done.wait()
        await _disconnected(self._receive)


async def _unless_disconnected(
    request: Awaitable[HTTPResponse], disconnected: Callable[[], Awaitable[None]]
) -> HTTPResponse | None:
    """Await ``request``, or cancel it and return None if the client disconnects first."""
    handling = asyncio.ensure_future(request)
    watching = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait((handling, watching), return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Also on our own cancellation: neither task may outlive the request.
        await _cancel(watching)
        await _cancel(handling)
    if handling.cancelled():
        return None
    return handling.result()


async def _disconnected(receive: Receive) -> None:
    if (await receive())["type"] != "http.disconnect":
        # Only the disconnect may follow the body. A server that says something else cannot
        # tell us about the disconnect either: never report one (we are cancelled instead).
        await asyncio.get_running_loop().create_future()


async def _cancel(task: asyncio.Future[Any]) -> None:
    if not task.done():
        task.cancel()
        await asyncio.wait((task,))
    if not task.cancelled():
        task.exception()  # retrieved: a failure here must not be reported as "never retrieved"


async def _send_response(send: Send, response: HTTPResponse) -> None:
    headers = _encode_headers(response)
    if not any(name == b"content-length" for name, _ in headers):
        headers.append((b"content-length", str(len(response.body)).encode("ascii")))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def _encode_headers(response: HTTPResponse) -> list[tuple[bytes, bytes]]:
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers
    ]


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        previous = headers.get(name)
        headers[name] = value if previous is None else previous + ", " + value
    return headers


def _local_path(scope: Scope) -> str:
    """The request path below the mount point (ASGI servers and Starlette keep ``root_path``
    as a prefix of ``path``; older routers stripped it already)."""
    path: str = scope["path"]
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        path = path[len(root) :]
    return path or "/"


def _request(scope: Scope, path: str, headers: dict[str, str], body: bytes) -> HTTPRequest:
    raw_query: bytes = scope.get("query_string") or b""
    query_string = raw_query.decode("latin-1")
    query: dict[str, str] = {}
    if query_string:
        for name, value in parse_query(query_string):
            query.setdefault(name, value)
    raw_path: bytes | None = scope.get("raw_path")
    target = raw_path.decode("latin-1") if raw_path else quote(scope["path"])
    if query_string:
        target += "?" + query_string
    client = scope.get("client")
    return HTTPRequest(
        method=scope.get("method", "GET"),
        path=path,
        query=query,
        headers=headers,
        body=body,
        remote_addr=(client[0], client[1]) if client else None,
        url=target,
        secure=scope.get("scheme") in ("https", "wss"),
    )
