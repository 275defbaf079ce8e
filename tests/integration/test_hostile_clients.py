"""Holes a hostile client found, each closed and kept closed: raw HTTP and WebSocket against
sockjet under both serving layers (native, and ASGI under uvicorn).

Each test speaks the wire itself (asyncio streams, or aiohttp's WebSocket client), because the
official clients never send these requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from peers import Recorder, Serve

import sockjet

pytestmark = pytest.mark.asyncio(loop_scope="module")

TIMEOUT = 5.0


class Raw:
    """One raw HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        """Read one response (status, lower-cased headers, body by Content-Length)."""
        async with asyncio.timeout(TIMEOUT):
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = await self.reader.readexactly(length) if length else b""
        return status, headers, body

    async def closed(self) -> bool:
        """Whether the server closes the connection within the timeout."""
        try:
            async with asyncio.timeout(TIMEOUT):
                return await self.reader.read(65536) == b""
        except (ConnectionError, TimeoutError):
            return False


@contextlib.asynccontextmanager
async def raw(url: str) -> AsyncIterator[Raw]:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        yield Raw(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def get(query: str, *headers: str) -> bytes:
    lines = [f"GET /socket.io/?EIO=4&{query} HTTP/1.1", "Host: localhost", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post(sid: str, body: bytes, *, length: int | None = None) -> bytes:
    head = (
        f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: localhost\r\n"
        "Content-Type: text/plain;charset=UTF-8\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
    )
    return head.encode() + body


async def handshake(url: str) -> str:
    async with raw(url) as c:
        await c.send(get("transport=polling"))
        status, _, body = await c.response()
    assert status == 200, body
    sid: str = json.loads(body[1:])["sid"]
    return sid


async def polling_session(url: str) -> str:
    """A polling session connected to the main namespace."""
    sid = await handshake(url)
    async with raw(url) as c:
        await c.send(post(sid, b"40"))
        assert (await c.response())[0] == 200
    return sid


async def test_a_second_post_while_one_is_in_flight_closes_the_session(serve: Serve) -> None:
    recorder = Recorder()
    io = sockjet.Server()
    io.on("disconnect", lambda socket, reason: recorder.put("disconnect", reason))
    url = await serve(io)
    sid = await polling_session(url)
    async with raw(url) as first, raw(url) as second:
        await first.send(post(sid, b'42["a"', length=50))  # in flight: its body is not all in
        await asyncio.sleep(0.1)  # let the server take it up
        await second.send(post(sid, b'42["b"]'))
        status, _, _ = await second.response()
        assert status == 400  # Node: "data request overlap from client"
        assert await recorder.get("disconnect") == "transport error"
        assert (await first.response())[0] == 400  # its session is gone: abandoned, answered
    async with raw(url) as c:
        await c.send(get(f"transport=polling&sid={sid}"))
        assert (await c.response())[0] == 400  # Session ID unknown


async def test_a_trickled_post_is_abandoned_when_its_session_dies(serve: Serve) -> None:
    recorder = Recorder()
    io = sockjet.Server(ping_interval=0.2, ping_timeout=0.2)
    io.on("disconnect", lambda socket, reason: recorder.put("disconnect", reason))
    url = await serve(io)
    sid = await polling_session(url)
    async with raw(url) as c:
        await c.send(post(sid, b"4", length=1000))  # 100 bytes trickle in: never complete
        trickling = asyncio.ensure_future(_trickle(c))
        try:
            # nobody polls, so no PONG: the heartbeat ends the session within about 0.4 s
            assert await recorder.get("disconnect") == "ping timeout"
            status, _, _ = await c.response()  # long before any body timeout
            assert status == 400
        finally:
            trickling.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await trickling


async def _trickle(c: Raw) -> None:
    for _ in range(99):
        await asyncio.sleep(0.05)
        await c.send(b"2")


@pytest.mark.parametrize("upgrade", ["websocketx", "xwebsocket", "web socket"])
async def test_an_upgrade_to_another_protocol_is_never_switched(serve: Serve, upgrade: str) -> None:
    url = await serve(sockjet.Server())
    async with raw(url) as c:
        await c.send(
            get(
                "transport=websocket",
                f"Upgrade: {upgrade}",
                "Connection: Upgrade",
                "Sec-WebSocket-Version: 13",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            )
        )
        status, _, _ = await c.response()
    assert status != 101 and 400 <= status < 500


async def test_a_connection_token_must_be_exact(serve_native: Serve) -> None:
    url = await serve_native(sockjet.Server())
    async with raw(url) as c:
        await c.send(
            get(
                "transport=websocket",
                "Upgrade: websocket",
                "Connection: keep-alive, Upgradex",
                "Sec-WebSocket-Version: 13",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            )
        )
        status, _, _ = await c.response()
    assert status != 101


async def _ws(url: str, session: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(url + "/socket.io/?EIO=4&transport=websocket")
    opened = await ws.receive_str(timeout=TIMEOUT)
    assert opened.startswith("0{")
    await ws.send_str("40")
    assert (await ws.receive_str(timeout=TIMEOUT)).startswith("40{")
    return ws


async def test_the_largest_javascript_ack_id_is_accepted(serve: Serve) -> None:
    io = sockjet.Server()
    io.on("echo", lambda socket, value: value)
    url = await serve(io)
    async with aiohttp.ClientSession() as session:
        ws = await _ws(url, session)
        await ws.send_str('429007199254740991["echo",1]')  # Number.MAX_SAFE_INTEGER
        assert await ws.receive_str(timeout=TIMEOUT) == "439007199254740991[1]"
        await ws.send_str('429007199254740992["echo",2]')  # one more cannot be exact in JS
        closing = await ws.receive(timeout=TIMEOUT)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await ws.close()


async def test_a_failing_origin_predicate_on_the_upgrade_is_answered_500(serve: Serve) -> None:
    def allowed(origin: str) -> bool:
        return int(origin.rsplit(":", 1)[-1]) > 0  # "null" breaks it

    url = await serve(sockjet.Server(cors_origins=allowed))
    async with raw(url) as c:
        await c.send(
            get(
                "transport=websocket",
                "Upgrade: websocket",
                "Connection: Upgrade",
                "Sec-WebSocket-Version: 13",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                "Origin: null",
            )
        )
        status, _, _ = await c.response()
        assert status == 500
        assert await c.closed()
    async with raw(url) as c:  # the same failure over polling: also 500
        await c.send(get("transport=polling", "Origin: null"))
        assert (await c.response())[0] == 500


async def test_a_hanging_allow_request_is_refused_after_the_connect_timeout(
    serve: Serve,
) -> None:
    async def allow(request: Any) -> bool:
        await asyncio.Event().wait()
        return True

    url = await serve(sockjet.Server(allow_request=allow, connect_timeout=0.3))
    async with raw(url) as c:
        await c.send(get("transport=polling"))
        status, _, body = await c.response()
    assert status == 403 and json.loads(body)["code"] == 4


async def test_a_hanging_origin_predicate_is_bounded_too(serve: Serve) -> None:
    async def allowed(origin: str) -> bool:
        await asyncio.Event().wait()
        return True

    url = await serve(sockjet.Server(cors_origins=allowed, connect_timeout=0.3))
    async with raw(url) as c:
        await c.send(get("transport=polling", "Origin: http://elsewhere.example"))
        assert (await c.response())[0] == 500


async def test_a_hanging_connection_middleware_is_refused_after_the_connect_timeout(
    serve: Serve,
) -> None:
    io = sockjet.Server(connect_timeout=0.3)

    @io.of("/slow").use
    async def stuck(socket: sockjet.Socket) -> None:
        await asyncio.Event().wait()

    url = await serve(io)
    async with aiohttp.ClientSession() as session:
        ws = await _ws(url, session)  # in "/": the connection itself is not idle
        await ws.send_str("40/slow,")
        refused = await ws.receive_str(timeout=TIMEOUT)
        assert refused.startswith("44/slow,") and "message" in json.loads(refused[8:])
        await ws.close()
    assert io.running_tasks == 0
