"""The session cookie over real HTTP, under both serving layers."""

from __future__ import annotations

import json

import aiohttp
import pytest
from peers import Serve

from sockjet import Server
from sockjet.engine.cookie import SessionCookie

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_the_polling_handshake_sets_the_cookie(serve: Serve) -> None:
    io = Server(cookie=SessionCookie(name="route", max_age=60))
    url = await serve(io)
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{url}/socket.io/?EIO=4&transport=polling") as response,
    ):
        body = await response.text()
        sid = json.loads(body.split("\x1e")[0][1:])["sid"]
        assert response.headers.getall("Set-Cookie") == [
            f"route={sid}; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"
        ]
        # Close the session as a client would (else the server waits for its next poll).
        async with http.post(f"{url}/socket.io/?EIO=4&transport=polling&sid={sid}", data=b"1"):
            pass
