"""Raw clients send garbage over WebSocket and polling; the connection at fault is closed with
the right reason and a well-behaved official client (the canary) keeps working throughout."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from peers import NodeClient, NodePuppet, Recorder, Serve

from sockjet import Server, Socket

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]

MAX_PAYLOAD = 10_000


class Site:
    """One sockjet server with a canary client connected, and a raw HTTP session."""

    def __init__(self, url: str, seen: Recorder, canary: NodeClient, http: aiohttp.ClientSession):
        self.url = url
        self.seen = seen
        self.canary = canary
        self.http = http
        self.polling = f"{url}/socket.io/?EIO=4&transport=polling"
        self.websocket = f"{url}/socket.io/?EIO=4&transport=websocket"

    async def canary_alive(self) -> None:
        assert await self.canary.emit_with_ack("echo", "alive", b"\x01") == ["alive", b"\x01"]
        assert all(key != "$disconnect" for key, _ in self.canary.history)

    async def open_polling(self, *, join: bool = True) -> str:
        async with self.http.get(self.polling) as r:
            assert r.status == 200
            sid: str = json.loads((await r.text())[1:])["sid"]
        if join:
            assert await self.post(sid, "40") == (200, "ok")
            status, body = await self.get(sid)
            assert status == 200 and body.startswith("40{")
            await self.seen.get("connection")
        return sid

    async def post(self, sid: str, body: str | bytes) -> tuple[int, str]:
        async with self.http.post(f"{self.polling}&sid={sid}", data=body) as r:
            return r.status, await r.text()

    async def get(self, sid: str) -> tuple[int, str]:
        async with self.http.get(f"{self.polling}&sid={sid}") as r:
            return r.status, await r.text()

    async def open_websocket(self, *, join: bool = True) -> aiohttp.ClientWebSocketResponse:
        ws = await self.http.ws_connect(self.websocket, autoping=False, max_msg_size=0)
        assert (await ws.receive_str(timeout=5)).startswith("0{")
        if join:
            await ws.send_str("40")
            assert (await ws.receive_str(timeout=5)).startswith("40{")
            await self.seen.get("connection")
        return ws


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Read until the server closes; the close code it sent (None if it just dropped)."""
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            code = ws.close_code
            await ws.close()
            return code
        if msg.type is aiohttp.WSMsgType.ERROR:
            return None
        # Engine.IO text the server may send before closing (pings, a close packet...).


@pytest_asyncio.fixture(loop_scope="module")
async def site(puppet: NodePuppet, serve: Serve) -> AsyncIterator[Site]:
    io = Server(max_payload=MAX_PAYLOAD, max_attachments=10)
    seen = Recorder()

    @io.on("connection")
    def on_connection(socket: Socket) -> None:
        seen.put("connection", socket.id)

    @io.on("disconnect")
    def on_disconnect(socket: Socket, reason: str) -> None:
        seen.put("disconnect", reason)

    @io.on("echo")
    def echo(socket: Socket, *args: Any) -> Any:
        return tuple(args)

    url = await serve(io)
    canary = await puppet.connect(url, transports=["websocket"])
    await seen.get("connection")
    async with aiohttp.ClientSession() as http:
        yield Site(url, seen, canary, http)
        await site_canary_check(canary)


async def site_canary_check(canary: NodeClient) -> None:
    assert await canary.emit_with_ack("echo", "still here") == ["still here"]
    await canary.disconnect()


@pytest.mark.parametrize(
    "garbage",
    [
        "garbage",  # not an Engine.IO packet
        "9",  # unknown Engine.IO packet type
        "2",  # a client PING: wrong heartbeat direction
        "4garbage",  # not a Socket.IO packet
        '42"not an array"',
        "42[]",
        '42["disconnect"]',  # a reserved event name
        '42[{"x":1}]',  # event name neither string nor number
        "42/nowhere,[1]",  # a namespace the client never joined
        "42" + "1" * 5000 + '["x"]',  # an endless ack id
        '42["x",' + "[" * 3000 + "]" * 3000 + "]",  # deep nesting
    ],
    ids=lambda g: g[:24],
)
async def test_websocket_garbage_closes_only_that_connection(site: Site, garbage: str) -> None:
    ws = await site.open_websocket()
    await ws.send_str(garbage)
    await closed_with(ws)
    assert await site.seen.get("disconnect") == "parse error"
    await site.canary_alive()


async def test_websocket_binary_garbage_and_attachment_limits(site: Site) -> None:
    # A binary frame nobody announced.
    ws = await site.open_websocket()
    await ws.send_bytes(b"\x00\x01\x02")
    await closed_with(ws)
    assert await site.seen.get("disconnect") == "parse error"
    # More attachments announced than allowed: refused before anything is buffered.
    ws = await site.open_websocket()
    await ws.send_str('4511-["x",' + ",".join(['{"_placeholder":true,"num":0}'] * 11) + "]")
    await closed_with(ws)
    assert await site.seen.get("disconnect") == "parse error"
    # Placeholders are checked once the attachments are in: -1 must not index from the end.
    for placeholder in ('{"_placeholder":true,"num":-1}', '{"_placeholder":true,"num":1}'):
        ws = await site.open_websocket()
        await ws.send_str('451-["x",' + placeholder + "]")
        await ws.send_bytes(b"\x07")
        await closed_with(ws)
        assert await site.seen.get("disconnect") == "parse error"
    # Text where an attachment was expected.
    ws = await site.open_websocket()
    await ws.send_str('451-["x",{"_placeholder":true,"num":0}]')
    await ws.send_str('42["y"]')
    await closed_with(ws)
    assert await site.seen.get("disconnect") == "parse error"
    await site.canary_alive()


async def test_websocket_message_over_max_payload_closed_1009(site: Site) -> None:
    ws = await site.open_websocket()
    await ws.send_str('42["echo","' + "x" * (MAX_PAYLOAD + 10) + '"]')
    assert await closed_with(ws) == 1009
    assert await site.seen.get("disconnect") in ("transport close", "transport error")
    await site.canary_alive()


async def test_websocket_before_joining_and_invalid_utf8(site: Site) -> None:
    ws = await site.open_websocket(join=False)
    await ws.send_str("garbage")
    await closed_with(ws)
    # Invalid UTF-8 in a text frame: close 1007 (aiohttp cannot send it, so write raw bytes).
    ws = await site.open_websocket(join=False)
    conn = ws._writer.protocol.transport
    assert conn is not None
    conn.write(bytes([0x81, 0x82, 0, 0, 0, 0, 0xC3, 0x28]))  # masked text frame, bad UTF-8
    assert await closed_with(ws) in (1007, None)
    await site.canary_alive()


@pytest.mark.parametrize(
    "garbage",
    ["garbage", "9", "4garbage", '42["disconnect"]', "40\x1e4garbage", "\x1e\x1e"],
    ids=repr,
)
async def test_polling_garbage_closes_only_that_session(site: Site, garbage: str) -> None:
    sid = await site.open_polling()
    status, _ = await site.post(sid, garbage)
    assert status in (200, 400)
    assert await site.seen.get("disconnect") == "parse error"
    # The session is gone: its next GET gets the close packet or "Session ID unknown".
    status, body = await site.get(sid)
    assert (status, body) in ((200, "1"), (200, "6\x1e1")) or (
        status == 400 and json.loads(body)["code"] == 1
    )
    await site.canary_alive()


async def test_polling_protocol_errors_answered(site: Site) -> None:
    async with site.http.get(f"{site.url}/socket.io/?EIO=4&transport=carrier-pigeon") as r:
        assert (r.status, await r.json(content_type=None)) == (
            400,
            {"code": 0, "message": "Transport unknown"},
        )
    async with site.http.get(f"{site.polling}&sid=nope") as r:
        assert (r.status, await r.json(content_type=None)) == (
            400,
            {"code": 1, "message": "Session ID unknown"},
        )
    async with site.http.get(f"{site.url}/socket.io/?EIO=3&transport=polling") as r:
        assert (r.status, (await r.json(content_type=None))["code"]) == (400, 5)
    async with site.http.put(site.polling) as r:
        assert r.status == 400
    # A body over max_payload: 413 (Node cuts the connection instead; the session itself
    # may live on until the client closes it or stops polling).
    sid = await site.open_polling()
    status, _ = await site.post(sid, '42["echo","' + "x" * (MAX_PAYLOAD + 10) + '"]')
    assert status == 413
    await site.canary_alive()
    status, _ = await site.post(sid, "1")
    assert status in (200, 400)
