"""The ASGI app, under a real uvicorn and called directly, against a scripted fake engine."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn

from sockjet.engine.io import BodyError, HTTPRequest, HTTPResponse, Outgoing, WebSocketConnection
from sockjet.serving import asgi
from sockjet.serving.asgi import ASGIApp, ASGIWebSocket

Message = dict[str, Any]
LIMIT = 1000


# -- a scripted engine -----------------------------------------------------------------------


class FakeHandler:
    """Echoes every message; ``"close"`` makes it say goodbye and close with 4000."""

    def __init__(self, conn: WebSocketConnection, fail_on: str | None = None) -> None:
        self.conn = conn
        self.messages: list[str | bytes] = []
        self.closes: list[tuple[int | None, str]] = []
        self.closed = asyncio.Event()
        self.fail_on = fail_on

    def on_message(self, data: str | bytes) -> None:
        self.messages.append(data)
        if data == self.fail_on:
            raise RuntimeError("handler bug")
        if data == "close":
            self.conn.send(Outgoing("goodbye"))
            self.conn.close(4000, "bye")
            self.conn.send(Outgoing("dropped: after close"))
        else:
            self.conn.send(Outgoing(data))

    def on_close(self, code: int | None, reason: str) -> None:
        self.closes.append((code, reason))
        self.closed.set()


class FakeEngine:
    path = "/socket.io/"
    max_payload = LIMIT
    per_message_deflate = False

    def __init__(self) -> None:
        self.requests: list[HTTPRequest] = []
        self.ws_requests: list[HTTPRequest] = []
        self.refusal: HTTPResponse | None = None
        self.handlers: list[FakeHandler] = []
        self.opened = asyncio.Event()
        self.poll_started = asyncio.Event()
        self.poll_cancelled = asyncio.Event()
        self.gate = asyncio.Event()
        self.fail_open = False
        self.fail_on: str | None = None
        self.closed = 0
        self.bodies: list[bytes] = []

    async def handle_request(self, request: HTTPRequest) -> HTTPResponse:
        self.requests.append(request)
        if "wait" in request.query:
            self.poll_started.set()
            try:
                await asyncio.Event().wait()  # a long-poll with nothing to send
            except asyncio.CancelledError:
                self.poll_cancelled.set()
                raise
        if "gate" in request.query:
            await self.gate.wait()
        body = request.body
        if request.receive_body is not None:  # a POST: the engine reads its body itself
            try:
                body = await request.receive_body()
            except BodyError as error:
                return HTTPResponse(error.status or 400, [("Content-Type", "text/plain")], b"")
            self.bodies.append(body)
        return HTTPResponse(200, [("Content-Type", "text/plain")], b"engine:" + body)

    async def check_websocket(self, request: HTTPRequest) -> HTTPResponse | None:
        self.ws_requests.append(request)
        return self.refusal

    def open_websocket(self, request: HTTPRequest, conn: WebSocketConnection) -> FakeHandler:
        if self.fail_open:
            raise RuntimeError("engine bug")
        handler = FakeHandler(conn, self.fail_on)
        self.handlers.append(handler)
        self.opened.set()
        return handler

    async def close(self) -> None:
        self.closed += 1


class FakeServer:
    """A Socket.IO server as ASGIApp sees it: an engine and a close()."""

    def __init__(self) -> None:
        self.engine = FakeEngine()
        self.endpoints: dict[str, Any] = {}
        self.closed = 0
        self.started = 0

    def start(self) -> None:
        self.started += 1

    async def close(self) -> None:
        self.closed += 1


class Tracked:
    """Wraps an ASGI app to know when every call it got has returned."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.active = 0
        self.idle = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # lasts as long as the server
            await self.app(scope, receive, send)
            return
        self.active += 1
        self.idle.clear()
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
            if not self.active:
                self.idle.set()


def leftover_tasks() -> list[asyncio.Task[Any]]:
    """Tasks still running code of the ASGI app or the fake engine."""
    ours = {asgi.__file__, __file__}
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done()
        and getattr(task.get_coro(), "cr_code", None) is not None
        # a task's coroutine: its code object tells which module it runs
        and task.get_coro().cr_code.co_filename in ours  # type: ignore[union-attr]
        and task is not asyncio.current_task()
    ]


# -- a real uvicorn in the test's loop ---------------------------------------------------------


class _Uvicorn(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@contextlib.asynccontextmanager
async def running(app: Any, **options: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (free port); yields the base URL."""
    options.setdefault("lifespan", "off")
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_config=None,
        log_level="warning",
        ws_max_size=4 * LIMIT,  # >= max_payload, as the module docs ask
        timeout_graceful_shutdown=2,
        **options,
    )
    server = _Uvicorn(config)
    serving = asyncio.create_task(server.serve())
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait((serving, ready), return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        await serving
        raise AssertionError("uvicorn did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def raw_exchange(base: str, request: bytes) -> bytes:
    """Send raw bytes, read until the server closes."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()


# -- HTTP --------------------------------------------------------------------------------------


async def test_http_request_reaches_engine_with_every_field(
    http: aiohttp.ClientSession,
) -> None:
    engine = FakeEngine()
    async with (
        running(ASGIApp(engine)) as base,
        http.post(
            base + "/socket.io/?EIO=4&transport=polling&a=1&a=2&e=&x=%C3%A9",
            data=b"hello",
            headers=[("X-Twice", "one"), ("X-Twice", "two")],
        ) as response,
    ):
        assert response.status == 200
        assert await response.read() == b"engine:hello"
        assert response.headers["Content-Type"] == "text/plain"
        assert response.headers["Content-Length"] == str(len(b"engine:hello"))
    (request,) = engine.requests
    assert request.method == "POST"
    assert request.path == "/socket.io/"
    assert request.query == {"EIO": "4", "transport": "polling", "a": "1", "e": "", "x": "é"}
    assert request.headers["x-twice"] == "one, two"
    assert engine.bodies == [b"hello"]  # read by the engine through receive_body
    assert request.remote_addr is not None and request.remote_addr[0] == "127.0.0.1"
    assert request.url == "/socket.io/?EIO=4&transport=polling&a=1&a=2&e=&x=%C3%A9"
    assert request.secure is False


async def test_path_without_trailing_slash_reaches_engine(http: aiohttp.ClientSession) -> None:
    engine = FakeEngine()
    async with running(ASGIApp(engine)) as base:
        async with http.get(base + "/socket.io?EIO=4") as response:
            assert await response.read() == b"engine:"
        async with http.get(base + "/socket.iox/") as response:
            assert response.status == 404
    assert [r.path for r in engine.requests] == ["/socket.io"]


async def test_body_over_max_payload_is_refused_413(http: aiohttp.ClientSession) -> None:
    engine = FakeEngine()
    async with running(ASGIApp(engine)) as base:
        async with http.post(base + "/socket.io/", data=b"x" * LIMIT) as response:
            assert response.status == 200  # exactly the limit is fine
        async with http.post(base + "/socket.io/", data=b"x" * (LIMIT + 1)) as response:
            assert response.status == 413

        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b"y" * (LIMIT // 2)

        async with http.post(base + "/socket.io/", data=chunked()) as response:
            assert response.status == 413  # counted while streaming, no Content-Length
    assert [len(body) for body in engine.bodies] == [LIMIT]


async def test_declared_length_over_limit_is_refused_before_reading() -> None:
    engine = FakeEngine()
    app = ASGIApp(engine)
    sent: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("the body must not be read")

    async def send(message: Message) -> None:
        sent.append(message)

    scope = http_scope("/socket.io/", method="POST", headers=[(b"content-length", b"1001")])
    await app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert engine.bodies == []  # the engine learnt of the POST and of its refusal


async def test_long_poll_is_cancelled_when_the_client_leaves() -> None:
    engine = FakeEngine()
    app = Tracked(ASGIApp(engine))
    async with running(app) as base:
        host, port = base.removeprefix("http://").split(":")
        _reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /socket.io/?wait=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        await engine.poll_started.wait()
        writer.close()
        await writer.wait_closed()
        await engine.poll_cancelled.wait()
        await app.idle.wait()
        assert leftover_tasks() == []


async def test_engine_failure_leaves_no_task_behind() -> None:
    class Failing(FakeEngine):
        async def handle_request(self, request: HTTPRequest) -> HTTPResponse:
            raise RuntimeError("engine bug")

    app = ASGIApp(Failing())
    incoming: asyncio.Queue[Message] = asyncio.Queue()
    incoming.put_nowait({"type": "http.request", "body": b"", "more_body": False})

    async def send(message: Message) -> None:
        raise AssertionError("nothing to send")

    with pytest.raises(RuntimeError, match="engine bug"):
        await app(http_scope("/socket.io/"), incoming.get, send)
    assert leftover_tasks() == []


async def test_a_server_saying_more_than_disconnect_does_not_cancel_the_poll() -> None:
    engine = FakeEngine()
    replies = 0

    async def receive() -> Message:
        nonlocal replies
        replies += 1
        if replies == 2:  # said while the engine is still working on the request
            engine.gate.set()
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await ASGIApp(engine)(http_scope("/socket.io/", query=b"gate=1"), receive, send)
    assert sent[1] == {"type": "http.response.body", "body": b"engine:"}
    assert replies == 2
    assert leftover_tasks() == []


async def test_cancelling_the_app_cancels_the_long_poll() -> None:
    engine = FakeEngine()
    app = ASGIApp(engine)
    never = asyncio.Event()

    async def receive() -> Message:
        if not engine.requests:
            return {"type": "http.request", "body": b"", "more_body": False}
        await never.wait()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        raise AssertionError("nothing to send")

    call = asyncio.create_task(app(http_scope("/socket.io/", query=b"wait=1"), receive, send))
    await engine.poll_started.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert engine.poll_cancelled.is_set()
    assert leftover_tasks() == []


async def test_client_gone_while_sending_body_gets_no_answer() -> None:
    engine = FakeEngine()
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await ASGIApp(engine)(http_scope("/socket.io/", method="POST"), receive, send)
    assert sent == []
    assert len(engine.requests) == 1  # the engine knew of the POST, and learnt it was abandoned


# -- routing, mounting, static files -------------------------------------------------------------


async def other_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "other:" + scope["path"]})
        await send({"type": "websocket.close", "code": 1000})
        return
    body = f"other:{scope.get('root_path', '')}|{scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def test_other_paths_go_to_the_other_app(http: aiohttp.ClientSession) -> None:
    engine = FakeEngine()
    async with running(ASGIApp(engine, other_app)) as base:
        async with http.get(base + "/api/items") as response:
            assert await response.text() == "other:|/api/items"
        async with http.ws_connect(base + "/chat") as ws:
            assert await ws.receive_str() == "other:/chat"
        async with http.get(base + "/socket.io/") as response:
            assert await response.text() == "engine:"
    assert len(engine.requests) == 1


async def test_without_other_app_unknown_paths_are_404(http: aiohttp.ClientSession) -> None:
    async with running(ASGIApp(FakeEngine())) as base:
        async with http.get(base + "/nope") as response:
            assert response.status == 404
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(base + "/nope")
        assert refused.value.status == 403


def mount(prefix: str, app: Any, *, strip: bool = False) -> Any:
    """A router like Starlette's Mount: ``root_path`` grows by ``prefix``; ``path`` keeps the
    full path (current ASGI/Starlette) or loses the prefix (``strip``, older routers)."""

    async def router(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await app(scope, receive, send)
            return
        path = scope["path"]
        if path == prefix or path.startswith(prefix + "/"):
            child = dict(scope, root_path=scope.get("root_path", "") + prefix)
            if strip:
                child["path"] = path[len(prefix) :] or "/"
            await app(child, receive, send)
        else:
            await other_app(scope, receive, send)

    return router


@pytest.mark.parametrize("strip", [False, True])
async def test_mounted_under_a_prefix(http: aiohttp.ClientSession, strip: bool) -> None:
    engine = FakeEngine()
    async with running(mount("/rt", ASGIApp(engine), strip=strip)) as base:
        async with http.get(base + "/rt/socket.io/?EIO=4") as response:
            assert await response.text() == "engine:"
        async with http.get(base + "/socket.io/") as response:
            assert await response.text() == "other:|/socket.io/"
        async with http.ws_connect(base + "/rt/socket.io/?EIO=4&transport=websocket") as ws:
            await ws.send_str("hi")
            assert await ws.receive_str() == "hi"
    assert engine.requests[0].path == "/socket.io/"
    assert engine.ws_requests[0].path == "/socket.io/"


async def test_mounted_in_starlette(http: aiohttp.ClientSession) -> None:
    starlette_applications = pytest.importorskip("starlette.applications")
    routing = pytest.importorskip("starlette.routing")
    engine = FakeEngine()
    app = starlette_applications.Starlette(routes=[routing.Mount("/rt", ASGIApp(engine))])
    async with running(app) as base:
        async with http.get(base + "/rt/socket.io/?EIO=4") as response:
            assert await response.text() == "engine:"
        async with http.ws_connect(base + "/rt/socket.io/?transport=websocket") as ws:
            await ws.send_str("hi")
            assert await ws.receive_str() == "hi"
    assert engine.requests[0].path == "/socket.io/"


async def test_static_files(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    site = tmp_path / "site"
    (site / "docs").mkdir(parents=True)
    (site / "index.html").write_text("<h1>hi</h1>")
    (site / "docs" / "index.html").write_text("docs")
    (site / "app.js").write_text("1")
    (tmp_path / "secret.txt").write_text("secret")
    (site / "link.txt").symlink_to(tmp_path / "secret.txt")
    async with running(ASGIApp(FakeEngine(), other_app, static_dir=site)) as base:
        async with http.get(base + "/") as response:
            assert await response.text() == "<h1>hi</h1>"
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        async with http.get(base + "/docs/") as response:
            assert await response.text() == "docs"
        async with http.get(base + "/app.js") as response:
            assert "javascript" in response.headers["Content-Type"]
        async with http.head(base + "/app.js") as response:
            assert response.status == 200
        for escape in ("/../secret.txt", "/%2e%2e/secret.txt", "/link.txt", "/a%00b.txt"):
            async with http.get(base + escape) as response:
                assert await response.text() != "secret", escape
        # with another app behind, what is not a file is that app's route
        for path in ("/missing.css", "/api/items"):
            async with http.get(base + path) as response:
                assert await response.text() == "other:|" + path
        async with http.post(base + "/index.html") as response:
            assert await response.text() == "other:|/index.html"
    async with running(ASGIApp(FakeEngine(), static_dir=site)) as base:
        # alone, it is a single-page app: unknown extension-less paths get index.html
        async with http.get(base + "/rooms/42") as response:
            assert await response.text() == "<h1>hi</h1>"
        async with http.get(base + "/missing.css") as response:
            assert response.status == 404


# -- WebSocket ---------------------------------------------------------------------------------


async def test_websocket_messages_both_ways(http: aiohttp.ClientSession) -> None:
    engine = FakeEngine()
    app = Tracked(ASGIApp(engine))
    async with running(app) as base:
        ws = await http.ws_connect(
            base + "/socket.io/?EIO=4&transport=websocket", headers={"Origin": "http://o"}
        )
        async with ws:
            assert ws.protocol is None
            await ws.send_str("4hello")
            assert await ws.receive_str() == "4hello"
            await ws.send_bytes(b"\x00\x01\xff")
            assert await ws.receive_bytes() == b"\x00\x01\xff"
            await ws.send_str("é" * 10)
            assert await ws.receive_str() == "é" * 10
            await ws.close(code=4001, message=b"client bye")
        (handler,) = engine.handlers
        await handler.closed.wait()
        await app.idle.wait()
    assert handler.messages == ["4hello", b"\x00\x01\xff", "é" * 10]
    assert handler.closes == [(4001, "client bye")]
    assert handler.conn.buffered_amount == 0
    (request,) = engine.ws_requests
    assert request.method == "GET"
    assert request.path == "/socket.io/"
    assert request.query == {"EIO": "4", "transport": "websocket"}
    assert request.headers["origin"] == "http://o"
    assert request.secure is False
    assert leftover_tasks() == []


async def test_engine_close_is_sent_after_what_is_queued(http: aiohttp.ClientSession) -> None:
    engine = FakeEngine()
    app = Tracked(ASGIApp(engine))
    async with running(app) as base:
        async with http.ws_connect(base + "/socket.io/") as ws:
            await ws.send_str("close")
            assert await ws.receive_str() == "goodbye"
            closing = await ws.receive()
            assert closing.type == aiohttp.WSMsgType.CLOSE
            assert (closing.data, closing.extra) == (4000, "bye")
        (handler,) = engine.handlers
        await handler.closed.wait()
        await app.idle.wait()
    assert handler.closes == [(4000, "bye")]
    assert leftover_tasks() == []


@pytest.mark.parametrize("message", ["x" * (LIMIT + 1), "é" * (LIMIT // 2 + 1), b"x" * (LIMIT + 1)])
async def test_message_over_max_payload_closes_1009(
    http: aiohttp.ClientSession, message: str | bytes
) -> None:
    engine = FakeEngine()
    async with running(ASGIApp(engine)) as base:
        async with http.ws_connect(base + "/socket.io/") as ws:
            if isinstance(message, str):
                await ws.send_str(message)
            else:
                await ws.send_bytes(message)
            closing = await ws.receive()
            assert closing.type == aiohttp.WSMsgType.CLOSE
            assert closing.data == 1009
        await engine.handlers[0].closed.wait()
    assert engine.handlers[0].messages == []
    assert engine.handlers[0].closes[0][0] == 1009


async def test_message_at_max_payload_is_delivered(http: aiohttp.ClientSession) -> None:
    engine = FakeEngine()
    async with running(ASGIApp(engine)) as base, http.ws_connect(base + "/socket.io/") as ws:
        await ws.send_str("é" * (LIMIT // 2))
        assert await ws.receive_str() == "é" * (LIMIT // 2)


async def test_refused_upgrade_gets_the_engine_response(http: aiohttp.ClientSession) -> None:
    engine = FakeEngine()
    body = b'{"code":3,"message":"Bad request"}'
    engine.refusal = HTTPResponse(400, [("Content-Type", "application/json")], body)
    async with running(ASGIApp(engine)) as base:
        response = await raw_exchange(
            base,
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(base + "/socket.io/")
        assert refused.value.status == 400
    assert response.startswith(b"HTTP/1.1 400 ")
    assert b"\r\ncontent-type: application/json\r\n" in response.lower()
    assert response.endswith(b"\r\n\r\n" + body)
    assert engine.handlers == []


async def test_refusal_without_the_http_response_extension_closes() -> None:
    engine = FakeEngine()
    engine.refusal = HTTPResponse(403, [], b"no")
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await ASGIApp(engine)(ws_scope(), receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_client_dropping_the_connection_closes_once(http: aiohttp.ClientSession) -> None:
    engine = FakeEngine()
    app = Tracked(ASGIApp(engine))
    async with running(app) as base:
        ws = await http.ws_connect(base + "/socket.io/")
        await engine.opened.wait()
        ws._response.connection.transport.abort()  # type: ignore[union-attr]
        await ws.close()
        (handler,) = engine.handlers
        await handler.closed.wait()
        await app.idle.wait()
    assert len(handler.closes) == 1
    assert handler.closes[0][0] in (None, 1005)
    assert leftover_tasks() == []


async def test_disconnect_before_connect_is_ignored() -> None:
    engine = FakeEngine()

    async def receive() -> Message:
        return {"type": "websocket.disconnect", "code": 1006}

    async def send(message: Message) -> None:
        raise AssertionError("nothing to send")

    await ASGIApp(engine)(ws_scope(), receive, send)
    assert engine.ws_requests == []


async def test_abnormal_closure_is_reported_as_none() -> None:
    engine = FakeEngine()
    incoming: asyncio.Queue[Message] = asyncio.Queue()
    for message in ({"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1006}):
        incoming.put_nowait(message)

    async def send(message: Message) -> None:
        pass

    await ASGIApp(engine)(ws_scope(), incoming.get, send)
    assert engine.handlers[0].closes == [(None, "")]
    assert leftover_tasks() == []


async def test_close_handler_failure_is_contained(caplog: pytest.LogCaptureFixture) -> None:
    class Failing(FakeHandler):
        def on_close(self, code: int | None, reason: str) -> None:
            raise RuntimeError("close bug")

    class Engine(FakeEngine):
        def open_websocket(self, request: HTTPRequest, conn: WebSocketConnection) -> Failing:
            return Failing(conn)

    incoming: asyncio.Queue[Message] = asyncio.Queue()
    for message in (
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "4x"},
        {"type": "websocket.disconnect", "code": 1001, "reason": "away"},
    ):
        incoming.put_nowait(message)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await ASGIApp(Engine())(ws_scope(), incoming.get, send)
    assert "close bug" in caplog.text
    assert sent[0] == {"type": "websocket.accept"}
    assert leftover_tasks() == []


async def test_handler_failure_closes_1011(http: aiohttp.ClientSession) -> None:
    engine = FakeEngine()
    engine.fail_on = "boom"
    async with running(ASGIApp(engine)) as base, http.ws_connect(base + "/socket.io/") as ws:
        await ws.send_str("boom")
        await ws.send_str("ignored: the connection is closing")
        closing = await ws.receive()
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1011)
        await engine.handlers[0].closed.wait()
    assert engine.handlers[0].messages == ["boom"]


async def test_open_failure_closes_1011(http: aiohttp.ClientSession) -> None:
    engine = FakeEngine()
    engine.fail_open = True
    async with running(ASGIApp(engine)) as base, http.ws_connect(base + "/socket.io/") as ws:
        closing = await ws.receive()
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1011)


# -- the connection object itself --------------------------------------------------------------


async def test_connection_queues_without_blocking_and_closes_once() -> None:
    written: list[Message] = []
    gate = asyncio.Event()

    async def send(message: Message) -> None:
        await gate.wait()  # a slow client: nothing leaves until the gate opens
        written.append(message)

    conn = ASGIWebSocket(send)
    conn.send(Outgoing("4abc"))
    conn.send(Outgoing(b"\x01\x02"))
    assert conn.buffered_amount == 6
    conn.close(4002, "first")
    conn.close(1000, "second")
    conn.send(Outgoing("late"))
    assert conn.closing
    assert conn.buffered_amount == 6
    gate.set()
    await conn.wait_closed()
    assert written == [
        {"type": "websocket.send", "text": "4abc"},
        {"type": "websocket.send", "bytes": b"\x01\x02"},
        {"type": "websocket.close", "code": 4002, "reason": "first"},
    ]
    assert conn.buffered_amount == 0


async def test_connection_write_failure_drops_the_queue() -> None:
    async def send(message: Message) -> None:
        raise OSError("peer gone")

    conn = ASGIWebSocket(send)
    conn.send(Outgoing("a"))
    conn.send(Outgoing("b"))
    await conn.wait_closed()
    assert conn.closing
    assert conn.buffered_amount == 0
    conn.send(Outgoing("c"))
    assert conn.buffered_amount == 0
    await conn.stop()


# -- lifespan ----------------------------------------------------------------------------------


class LifespanApp:
    """A framework app that records lifespan events and what the engine looked like then."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.events: list[tuple[str, int]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            self.events.append((message["type"], self.server.closed))
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return


async def test_lifespan_closes_the_server_under_uvicorn() -> None:
    server = FakeServer()
    async with running(ASGIApp(server), lifespan="on"):
        assert server.closed == 0
        assert server.started == 1  # adapters start at lifespan startup, not first connection
    assert server.closed == 1
    assert server.engine.closed == 0  # the Socket.IO server closes its own engine


async def test_lifespan_is_forwarded_and_closes_the_server_first() -> None:
    server = FakeServer()
    other = LifespanApp(server)
    async with running(ASGIApp(server, other), lifespan="on"):
        assert other.events == [("lifespan.startup", 0)]
        assert server.started == 1
    assert other.events == [("lifespan.startup", 0), ("lifespan.shutdown", 1)]


async def lifespan_exchange(app: ASGIApp) -> list[Message]:
    incoming: asyncio.Queue[Message] = asyncio.Queue()
    incoming.put_nowait({"type": "lifespan.startup"})
    incoming.put_nowait({"type": "lifespan.shutdown"})
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, incoming.get, send)
    return sent


async def test_lifespan_runs_even_when_the_other_app_does_not_speak_it() -> None:
    async def refuses(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] != "lifespan", "no lifespan here"

    async def ignores(scope: Any, receive: Any, send: Any) -> None:
        return

    for other in (refuses, ignores):
        server = FakeServer()
        sent = await lifespan_exchange(ASGIApp(server, other))
        assert [m["type"] for m in sent] == [
            "lifespan.startup.complete",
            "lifespan.shutdown.complete",
        ]
        assert server.closed == 1


async def test_lifespan_failure_of_the_other_app_propagates() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        raise RuntimeError("startup bug")

    with pytest.raises(RuntimeError, match="startup bug"):
        await lifespan_exchange(ASGIApp(FakeServer(), broken))


async def test_lifespan_shutdown_failure_is_reported() -> None:
    class Failing(FakeServer):
        async def close(self) -> None:
            raise RuntimeError("close bug")

    sent = await lifespan_exchange(ASGIApp(Failing()))
    assert sent[-1]["type"] == "lifespan.shutdown.failed"
    assert "close bug" in sent[-1]["message"]

    forwarded = LifespanApp(Failing())
    await lifespan_exchange(ASGIApp(forwarded.server, forwarded))
    assert [e[0] for e in forwarded.events] == ["lifespan.startup", "lifespan.shutdown"]


async def test_server_or_engine_is_accepted() -> None:
    server = FakeServer()
    assert ASGIApp(server).engine is server.engine
    engine = FakeEngine()
    assert ASGIApp(engine).engine is engine


async def test_unknown_scope_types_go_to_the_other_app() -> None:
    seen: list[str] = []

    async def other(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    noop: Callable[..., Awaitable[Any]] = asyncio.sleep
    await ASGIApp(FakeEngine(), other)({"type": "webtransport"}, noop, noop)
    await ASGIApp(FakeEngine())({"type": "webtransport"}, noop, noop)
    assert seen == ["webtransport"]


# -- scopes for direct calls -------------------------------------------------------------------


def http_scope(
    path: str,
    *,
    method: str = "GET",
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers or [],
        "client": None,
        "server": None,
    }


def ws_scope() -> dict[str, Any]:
    scope = http_scope("/socket.io/")
    del scope["method"]
    scope.update(type="websocket", scheme="wss", subprotocols=[])
    return scope


# -- the real Socket.IO server behind the ASGI app -----------------------------------------------


def echo_server() -> Any:
    from sockjet.server.server import Server

    io = Server(max_payload=LIMIT)

    @io.on("echo")
    async def echo(socket: Any, *args: Any) -> tuple[Any, ...]:
        return args

    return io


async def test_real_server_handshake_and_payload_cap(http: aiohttp.ClientSession) -> None:
    io = echo_server()
    async with running(ASGIApp(io), lifespan="on") as base:
        async with http.get(base + "/socket.io/?EIO=4&transport=polling") as response:
            opened = await response.text()
        assert opened.startswith('0{"sid":')
        sid = opened.split('"sid":"')[1].split('"')[0]
        url = f"{base}/socket.io/?EIO=4&transport=polling&sid={sid}"
        async with http.post(url, data="4" + "x" * LIMIT) as response:
            assert response.status == 413
    assert io.engine.closed  # lifespan shutdown closed the server


@pytest.mark.parametrize("transports", [["polling"], ["websocket"], ["polling", "websocket"]])
async def test_python_socketio_client_through_asgi(transports: list[str]) -> None:
    socketio = pytest.importorskip("socketio")
    io = echo_server()
    disconnected = asyncio.Event()

    @io.on("connection")
    def on_connection(socket: Any) -> None:
        socket.on("disconnect", lambda reason: disconnected.set())

    app = Tracked(ASGIApp(io))
    async with running(app, lifespan="on") as base:
        client = socketio.AsyncClient()
        await client.connect(base, transports=transports)
        try:
            assert await client.call("echo", ("hi", b"\x00bin"), timeout=5) == ("hi", b"\x00bin")
            assert client.transport() == transports[-1]
        finally:
            await client.disconnect()
        await disconnected.wait()
        await app.idle.wait()
        assert leftover_tasks() == []
