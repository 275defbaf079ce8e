"""The native server on uvloop (what the Server/CLI installs when available): a smoke run."""

from __future__ import annotations

import asyncio

import pytest
from native_client import FakeEngine, client, frame, running, websocket

uvloop = pytest.importorskip("uvloop")


def test_http_and_websocket_on_uvloop() -> None:
    uvloop.run(_scenario())


async def _scenario() -> None:
    assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    engine = FakeEngine()
    async with running(engine) as server:
        async with client(server.port) as c:
            assert (await c.get("/socket.io/?EIO=4")).status == 200
            c.send(b"POST /socket.io/ HTTP/1.1\r\nContent-Length: 2000\r\n\r\n")
            assert (await c.response()).status == 413
        async with websocket(server.port) as ws:
            ws.send(frame(1, "twice"))
            assert await asyncio.wait_for(ws.reader.read(100), 5) == b"\x81\x03one\x81\x03two"
            ws.send(frame(1, "x", masked=False))
            assert (await ws.close_frame())[0] == 1002
        async with websocket(server.port) as ws:
            closing = asyncio.create_task(server.close())
            assert await ws.close_frame() == (1001, "going away")
            ws.send(frame(8, b"\x03\xe9"))
            await closing
    assert [h.closes for h in engine.handlers] == [
        [(1002, "client frame is not masked")],
        [(1001, "")],
    ]
