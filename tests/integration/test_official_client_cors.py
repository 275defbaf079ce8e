"""CORS and the Origin check: preflights, and browser-like official clients (Origin header)
refused on polling and on the WebSocket upgrade itself."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from peers import ConnectError, NodePuppet, Serve

from sockjet import Server, Socket

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]

ALLOWED = "http://allowed.example"
EVIL = "http://evil.example"
FORBIDDEN = {"code": 4, "message": "Forbidden"}


async def close_session(
    http: aiohttp.ClientSession, endpoint: str, body: str, headers: dict[str, str]
) -> None:
    """Close the polling session a raw handshake opened (a CLOSE packet), as a client leaving
    would: the server's shutdown then has no session to wait for."""
    sid = json.loads(body[1:])["sid"]  # "0{...}": the OPEN packet
    async with http.post(f"{endpoint}&sid={sid}", data="1", headers=headers) as r:
        assert r.status == 200


def cors_server(**options: Any) -> Server:
    io = Server(**options)

    @io.on("echo")
    def echo(socket: Socket, *args: Any) -> Any:
        return tuple(args)

    return io


async def test_preflight_allowed_and_refused(serve: Serve) -> None:
    io = cors_server(cors_origins=[ALLOWED], cors_credentials=True, cors_max_age=600)
    url = await serve(io)
    endpoint = f"{url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        preflight = {
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        }
        async with http.options(endpoint, headers=preflight) as r:
            assert r.status in (200, 204)
            assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
            assert r.headers["Access-Control-Allow-Credentials"] == "true"
            assert "POST" in r.headers["Access-Control-Allow-Methods"]
            assert r.headers["Access-Control-Allow-Headers"].lower() == "content-type"
            assert r.headers["Access-Control-Max-Age"] == "600"
        async with http.options(endpoint, headers={**preflight, "Origin": EVIL}) as r:
            assert r.status == 403
            assert "Access-Control-Allow-Origin" not in r.headers
            assert await r.json(content_type=None) == FORBIDDEN
        # The handshake itself: allowed origin gets the headers, another one is refused.
        async with http.get(endpoint, headers={"Origin": ALLOWED}) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
            await close_session(http, endpoint, await r.text(), {"Origin": ALLOWED})
        async with http.get(endpoint, headers={"Origin": EVIL}) as r:
            assert r.status == 403
            assert "Access-Control-Allow-Origin" not in r.headers
        # No Origin (not a browser): allowed, without CORS headers.
        async with http.get(endpoint) as r:
            assert r.status == 200
            assert "Access-Control-Allow-Origin" not in r.headers
            await close_session(http, endpoint, await r.text(), {})


async def test_cors_closed_by_default(serve: Serve) -> None:
    url = await serve(cors_server())
    endpoint = f"{url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(endpoint, headers={"Origin": ALLOWED}) as r:
            assert r.status == 403
            assert "Access-Control-Allow-Origin" not in r.headers
        # Same origin (the Origin names this server): allowed.
        async with http.get(endpoint, headers={"Origin": url}) as r:
            assert r.status == 200
            await close_session(http, endpoint, await r.text(), {"Origin": url})


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_browser_like_client_origin_check(
    puppet: NodePuppet, serve: Serve, transport: str
) -> None:
    url = await serve(cors_server(cors_origins=[ALLOWED]))
    ok = await puppet.connect(url, transports=[transport], extraHeaders={"Origin": ALLOWED})
    assert await ok.emit_with_ack("echo", "hi") == ["hi"]
    assert await ok.transport() == transport
    with pytest.raises(ConnectError) as refused:
        await puppet.connect(url, transports=[transport], extraHeaders={"Origin": EVIL})
    assert refused.value.message in ("websocket error", "xhr poll error")
    await ok.disconnect()


async def test_allowed_origin_upgrades(puppet: NodePuppet, serve: Serve) -> None:
    url = await serve(cors_server(cors_origins=lambda origin: origin == ALLOWED))
    ok = await puppet.connect(url, extraHeaders={"Origin": ALLOWED})
    assert await ok.wait_upgrade() == "websocket"
    assert await ok.emit_with_ack("echo", 1) == [1]
    with pytest.raises(ConnectError):
        await puppet.connect(url, extraHeaders={"Origin": EVIL})
    await ok.disconnect()


async def test_origin_checked_on_websocket_requests(serve: Serve) -> None:
    url = await serve(cors_server(cors_origins=[ALLOWED]))
    polling = f"{url}/socket.io/?EIO=4&transport=polling"
    websocket = f"{url}/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http:
        # A fresh WebSocket session from a foreign page: refused before the upgrade.
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(websocket, headers={"Origin": EVIL})
        assert refused.value.status == 403
        # Upgrading a session opened from an allowed origin: the upgrade request is checked
        # too, so a hijacker holding a sid gains nothing.
        async with http.get(polling, headers={"Origin": ALLOWED}) as r:
            opened = await r.text()
            sid = json.loads(opened[1:])["sid"]  # "0{...}": the OPEN packet
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{websocket}&sid={sid}", headers={"Origin": EVIL})
        assert refused.value.status == 403
        async with http.ws_connect(f"{websocket}&sid={sid}", headers={"Origin": ALLOWED}) as ws:
            await ws.send_str("2probe")
            assert await ws.receive_str(timeout=5) == "3probe"
        await close_session(http, polling, opened, {"Origin": ALLOWED})
        async with http.ws_connect(websocket, headers={"Origin": ALLOWED}) as ws:
            assert (await ws.receive_str(timeout=5)).startswith("0{")
