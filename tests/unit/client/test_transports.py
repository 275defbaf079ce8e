"""The aiohttp transports against a scripted HTTP/WebSocket server on localhost."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from sockjet.client import transports as transports_module
from sockjet.client.errors import TransportError
from sockjet.client.transports import (
    HTTPOptions,
    HTTPTransports,
    PollingTransport,
    Transport,
    WebSocketTransport,
)
from sockjet.protocol.engineio import Packet, PacketType

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Listener:
    """Collects the transport's reports; tests await them in order."""

    def __init__(self) -> None:
        self.reports: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def transport_open(self, transport: Transport) -> None:
        self.reports.put_nowait(("open", None))

    def transport_packets(self, transport: Transport, packets: list[Packet]) -> None:
        self.reports.put_nowait(("packets", packets))

    def transport_drain(self, transport: Transport) -> None:
        self.reports.put_nowait(("drain", None))

    def transport_closed(self, transport: Transport, error: TransportError | None) -> None:
        self.reports.put_nowait(("closed", error))

    async def next(self) -> tuple[str, Any]:
        return await asyncio.wait_for(self.reports.get(), 5)


class Server:
    """An aiohttp app whose handler for /socket.io/ each test sets."""

    def __init__(self) -> None:
        self.route: Route | None = None
        self.requests: asyncio.Queue[tuple[str, dict[str, str], bytes]] = asyncio.Queue()
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.put_nowait((request.method, dict(request.query), body))
        assert self.route is not None
        return await self.route(request)


@pytest_asyncio.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    app = web.Application()
    app.router.add_route("*", "/socket.io/", state.handle)
    runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def polling(
    server: Server, session: aiohttp.ClientSession, **options: Any
) -> tuple[PollingTransport, Listener]:
    transport = PollingTransport(session, HTTPOptions(url=server.url, **options))
    listener = Listener()
    transport.open(listener)
    return transport, listener


def websocket(
    server: Server, session: aiohttp.ClientSession, sid: str | None = None, **options: Any
) -> tuple[WebSocketTransport, Listener]:
    transport = WebSocketTransport(session, HTTPOptions(url=server.url, **options), sid)
    listener = Listener()
    transport.open(listener)
    return transport, listener


def text(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/plain")


# -- polling --------------------------------------------------------------------------------------


async def test_polling_receives_and_sends(server: Server, session: aiohttp.ClientSession) -> None:
    gets: asyncio.Queue[str] = asyncio.Queue()
    gets.put_nowait('0{"sid":"abc"}\x1e4hi\x1ebAQI=')

    async def route(request: web.Request) -> web.Response:
        if request.method == "POST":
            if await request.read() == b"1":
                gets.put_nowait("6")  # a closed session releases its pending GET
            return text("ok")
        return text(await gets.get())

    server.route = route
    transport, listener = polling(server, session, query={"q": "1"}, headers={"X-A": "b"})
    assert await listener.next() == (
        "packets",
        [
            Packet(PacketType.OPEN, '{"sid":"abc"}'),
            Packet(PacketType.MESSAGE, "hi"),
            Packet(PacketType.MESSAGE, b"\x01\x02"),
        ],
    )
    method, query, _ = await server.requests.get()
    assert method == "GET"
    assert {k: query[k] for k in ("q", "EIO", "transport")} == {
        "q": "1",
        "EIO": "4",
        "transport": "polling",
    }
    assert "t" in query and "sid" not in query
    transport.set_sid("abc")
    assert transport.writable
    transport.send([Packet(PacketType.MESSAGE, "x"), Packet(PacketType.MESSAGE, b"\xff")])
    assert not transport.writable
    while True:  # the next GET (with the sid) may come before the POST
        method, query, body = await server.requests.get()
        if method == "POST":
            break
    assert (query["sid"], body) == ("abc", b"4x\x1eb/w==")
    assert await listener.next() == ("drain", None)
    assert transport.writable
    transport.close()
    method, query, body = await server.requests.get()
    while method == "GET":
        method, query, body = await server.requests.get()
    assert (method, body) == ("POST", b"1")  # the CLOSE packet
    await transport.wait_closed()


async def test_polling_stops_at_the_server_close(
    server: Server, session: aiohttp.ClientSession
) -> None:
    async def route(request: web.Request) -> web.Response:
        return text("4bye\x1e1\x1e4never")

    server.route = route
    transport, listener = polling(server, session)
    assert await listener.next() == ("packets", [Packet(PacketType.MESSAGE, "bye")])
    assert await listener.next() == ("closed", None)
    await transport.wait_closed()
    assert server.requests.qsize() == 1


@pytest.mark.parametrize(
    ("status", "body", "description"),
    [
        (400, '{"code":3,"message":"Bad request"}', 'HTTP 400 {"code":3,"message":"Bad request"}'),
        (200, "x" * 100, "body over 50 bytes"),
        (200, "9nope", "InvalidPacket: unknown packet type '9'"),
    ],
)
async def test_polling_failures_are_transport_errors(
    server: Server, session: aiohttp.ClientSession, status: int, body: str, description: str
) -> None:
    async def route(request: web.Request) -> web.Response:
        return web.Response(text=body, status=status)

    server.route = route
    transport, listener = polling(server, session, max_payload=50)
    kind, error = await listener.next()
    assert kind == "closed" and isinstance(error, TransportError)
    assert (error.message, error.description) == ("xhr poll error", description)
    transport.close()
    await transport.wait_closed()


async def test_a_chunked_body_over_the_limit_is_refused(
    server: Server, session: aiohttp.ClientSession
) -> None:
    async def route(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(10):
            await response.write(b"4" + b"x" * 20)
        await response.write_eof()
        return response

    server.route = route
    transport, listener = polling(server, session, max_payload=100)
    kind, error = await listener.next()
    assert kind == "closed" and error.description == "body over 100 bytes"
    await transport.wait_closed()


async def test_a_failed_post_is_a_transport_error(
    server: Server, session: aiohttp.ClientSession
) -> None:
    poll: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def route(request: web.Request) -> web.Response:
        if request.method == "POST":
            return web.Response(status=400, text="no")
        return text(await poll)

    server.route = route
    transport, listener = polling(server, session)
    transport.send([Packet(PacketType.MESSAGE, "x")])
    kind, error = await listener.next()
    assert kind == "closed" and error.message == "xhr post error"
    transport.close()
    poll.set_result("6")
    await transport.wait_closed()


async def test_a_refused_connection_is_a_transport_error(session: aiohttp.ClientSession) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens there
    transport = PollingTransport(session, HTTPOptions(url=f"http://127.0.0.1:{port}"))
    listener = Listener()
    transport.open(listener)
    kind, error = await listener.next()
    assert kind == "closed" and error.message == "xhr poll error"
    assert isinstance(error.__cause__, aiohttp.ClientConnectionError)
    await transport.wait_closed()


async def test_pause_waits_for_the_poll_in_flight(
    server: Server, session: aiohttp.ClientSession
) -> None:
    poll: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def route(request: web.Request) -> web.Response:
        return text(await poll)

    server.route = route
    transport, listener = polling(server, session)
    await server.requests.get()
    pausing = asyncio.ensure_future(transport.pause())
    await asyncio.sleep(0)
    assert not pausing.done()
    poll.set_result("6")  # the NOOP that releases the GET
    await asyncio.wait_for(pausing, 5)
    assert await listener.next() == ("packets", [Packet(PacketType.NOOP)])
    assert server.requests.qsize() == 0  # no new poll once paused
    transport.close(notify=False)
    await transport.wait_closed()


# -- websocket ------------------------------------------------------------------------------------


async def test_websocket_sends_and_receives_frames(
    server: Server, session: aiohttp.ClientSession
) -> None:
    received: asyncio.Queue[Any] = asyncio.Queue()

    async def route(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str('0{"sid":"w"}')
        await ws.send_bytes(b"\x01")
        async for msg in ws:
            received.put_nowait(msg.data)
            if msg.data == "4bye":
                await ws.close()
        return ws

    server.route = route
    transport, listener = websocket(server, session, sid="w1", headers={"X-A": "b"})
    assert await listener.next() == ("open", None)
    assert transport.writable
    _, query, _ = await server.requests.get()
    assert (query["EIO"], query["transport"], query["sid"]) == ("4", "websocket", "w1")
    assert await listener.next() == ("packets", [Packet(PacketType.OPEN, '{"sid":"w"}')])
    assert await listener.next() == ("packets", [Packet(PacketType.MESSAGE, b"\x01")])
    transport.send([Packet(PacketType.MESSAGE, "a"), Packet(PacketType.MESSAGE, b"\x02")])
    assert await listener.next() == ("drain", None)
    assert [await received.get(), await received.get()] == ["4a", b"\x02"]
    transport.send([Packet(PacketType.MESSAGE, "bye")])
    assert await listener.next() == ("drain", None)
    assert await listener.next() == ("closed", None)  # closed by the server
    await transport.wait_closed()


@pytest.mark.parametrize(("frame", "description"), [("9", "unknown packet"), ("x" * 200, "")])
async def test_websocket_garbage_or_oversized_is_an_error(
    server: Server, session: aiohttp.ClientSession, frame: str, description: str
) -> None:
    async def route(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(frame)
        async for _ in ws:
            pass
        return ws

    server.route = route
    transport, listener = websocket(server, session, max_payload=100)
    assert await listener.next() == ("open", None)
    kind, error = await listener.next()
    assert kind == "closed" and error.message == "websocket error"
    assert description in (error.description or "")
    await transport.wait_closed()


async def test_websocket_close_packet_ends_the_transport(
    server: Server, session: aiohttp.ClientSession
) -> None:
    async def route(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("1")
        async for _ in ws:
            pass
        return ws

    server.route = route
    transport, listener = websocket(server, session)
    assert await listener.next() == ("open", None)
    assert await listener.next() == ("closed", None)
    await transport.wait_closed()


async def test_a_refused_websocket_is_an_error(
    server: Server, session: aiohttp.ClientSession
) -> None:
    async def route(request: web.Request) -> web.Response:
        return web.Response(status=400, text='{"code":1,"message":"Session ID unknown"}')

    server.route = route
    transport, listener = websocket(server, session)
    kind, error = await listener.next()
    assert kind == "closed" and error.message == "websocket error"
    assert "400" in (error.description or "")
    await transport.wait_closed()


async def test_closing_a_websocket_while_it_connects(
    server: Server, session: aiohttp.ClientSession
) -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def route(request: web.Request) -> web.WebSocketResponse:
        await gate
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            pass
        return ws

    server.route = route
    transport, listener = websocket(server, session)
    await server.requests.get()
    transport.close()
    gate.set_result(None)
    await transport.wait_closed()
    assert listener.reports.empty()
    await transport.pause()  # no-ops on a websocket
    transport.resume()


def test_the_factory_builds_both_transports() -> None:
    factory = HTTPTransports(None, HTTPOptions(url="https://h"))  # type: ignore[arg-type]
    assert isinstance(factory("polling", None), PollingTransport)
    ws = factory("websocket", "s")
    assert isinstance(ws, WebSocketTransport)
    assert ws._url() == "wss://h/socket.io/"
    with pytest.raises(ValueError):
        factory("carrier-pigeon", None)


async def test_a_close_the_server_ignores_is_cut_short(
    server: Server, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transports_module, "CLOSE_TIMEOUT", 0.05)
    stuck: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def route(request: web.Request) -> web.Response:
        if request.method == "POST":
            return text("ok")
        return text(await stuck)  # never released

    server.route = route
    transport, listener = polling(server, session)
    await server.requests.get()
    transport.set_sid("s")
    transport.close()
    await asyncio.wait_for(transport.wait_closed(), 2)
    assert listener.reports.empty()
