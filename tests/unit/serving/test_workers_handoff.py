"""Connections handed over between workers (``sockjet.serving.handoff``): two workers in one
process, each a sockjet Server on its own port with its own handoff socket, sharing a run
directory. A polling request (or an upgrade) for one worker's session sent to the other is
answered by its owner, over the very connection it came on; on asyncio and on uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from native_client import Client, client, frame, upgrade_request

from sockjet import Server
from sockjet.serving.handoff import (
    PART,
    HandoffListener,
    HandoffRouter,
    LoadTable,
    handoff_path,
    listen_handoff,
)
from sockjet.serving.native import NativeServer

LOOPS = ["asyncio", "uvloop"]


def run(loop: str, scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        uvloop.run(scenario())
    else:
        asyncio.run(scenario())


@dataclass
class Worker:
    wid: str
    io: Server
    server: NativeServer
    router: HandoffRouter
    listener: HandoffListener

    @property
    def port(self) -> int:
        return self.server.port


@contextlib.asynccontextmanager
async def worker(
    run_dir: Path, wid: str, load: LoadTable | None = None, peers: tuple[str, ...] = ()
) -> AsyncIterator[Worker]:
    io = Server(ping_interval=30, ping_timeout=30)

    @io.on("echo")
    def echo(sid: str, *args: Any) -> tuple[Any, ...]:
        return (wid, *args)

    io.engine.sid_prefix = wid
    router = HandoffRouter(
        wid,
        run_dir,
        load=load,
        sessions=lambda: io.engine.clients_count,
        peers=lambda: list(peers),
    )
    router.serving = True
    listener_sock = listen_handoff(handoff_path(run_dir, wid))
    server = await io.serve("127.0.0.1", 0, handoff=router)
    listener = HandoffListener(listener_sock, server.adopt, router.stats)
    try:
        yield Worker(wid, io, server, router, listener)
    finally:
        listener.close()
        router.close()
        await io.engine.close(grace=0.01)  # polling sessions left open: no wait for them
        await io.close()
        await server.close()


async def handshake(c: Client) -> str:
    response = await c.get("/socket.io/?EIO=4&transport=polling")
    assert response.status == 200, response
    sid: str = json.loads(response.body[1:])["sid"]
    return sid


def post(sid: str, body: bytes) -> bytes:
    return (
        f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def get(sid: str) -> bytes:
    return f"GET /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


@pytest.mark.parametrize("loop", LOOPS)
def test_polling_requests_reach_the_owner_over_the_same_connection(
    loop: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with worker(tmp_path, "AA") as a, worker(tmp_path, "BB") as b:
            async with client(a.port) as first:
                sid = await handshake(first)
            assert sid.startswith("AA") and len(sid) == 20
            async with client(b.port) as c:  # B accepted it; A holds the session
                c.send(post(sid, b"40"))
                assert (await c.response()).body == b"ok"
                c.send(get(sid))
                reply = await c.response()
                assert reply.body.startswith(b"40{"), reply
                # keep-alive: the connection is A's now, no second handoff
                c.send(post(sid, b'42["echo","hi"]'))
                assert (await c.response()).body == b"ok"
                c.send(post(sid, b'421["echo",1]'))
                assert (await c.response()).body == b"ok"
                c.send(get(sid))
                assert (await c.response()).body == b'431["AA",1]'
            assert (b.router.stats.sent, a.router.stats.adopted) == (1, 1)
            assert b.router.stats.failed == a.router.stats.sent == 0

    run(loop, scenario)


@pytest.mark.parametrize("loop", LOOPS)
def test_an_upgrade_reaches_the_owner(loop: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with worker(tmp_path, "AA") as a, worker(tmp_path, "BB") as b:
            async with client(b.port) as first:
                sid = await handshake(first)
                first.send(post(sid, b"40"))
                assert (await first.response()).body == b"ok"
                first.send(get(sid))
                assert (await first.response()).body.startswith(b"40{")
            async with client(a.port) as ws:
                path = f"/socket.io/?EIO=4&transport=websocket&sid={sid}"
                # the probe goes in the same write as the upgrade: handed over with it
                ws.send(upgrade_request(path) + frame(1, "2probe"))
                assert (await ws.response()).status == 101
                assert (await ws.frame())[2] == b"3probe"
                ws.send(frame(1, "5"))
                ws.send(frame(1, '421["echo","ws"]'))
                assert (await ws.frame())[2] == b'431["BB","ws"]'
            assert (a.router.stats.sent, b.router.stats.adopted) == (1, 1)

    run(loop, scenario)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_session_of_a_worker_gone_is_unknown_here(loop: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with worker(tmp_path, "AA") as a:
            async with client(a.port) as c:
                c.send(get("ZZ" + "x" * 18))  # no worker ZZ: answered here, as without workers
                reply = await c.response()
                assert reply.status == 400
                assert json.loads(reply.body) == {"code": 1, "message": "Session ID unknown"}
            # a worker that has gone, its socket still there but nobody listening
            dead = listen_handoff(handoff_path(tmp_path, "DD"))
            dead.close()
            async with client(a.port) as c:
                c.send(post("DD" + "y" * 18, b"40"))
                assert (await c.response()).status == 400
            assert a.router.stats.failed == 2 and a.router.stats.sent == 0

    run(loop, scenario)


def test_pipelined_requests_go_along_or_are_answered_here(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with worker(tmp_path, "AA") as a, worker(tmp_path, "BB") as b:
            async with client(a.port) as c:
                sid_a = await handshake(c)
                c.send(post(sid_a, b"40"))
                assert (await c.response()).body == b"ok"
            async with client(b.port) as c:
                sid_b = await handshake(c)
            async with client(b.port) as c:
                # one write, two requests for A's session: both go to A with the connection
                c.send(get(sid_a) + post(sid_a, b'42["echo"]'))
                assert (await c.response()).body.startswith(b"40{")
                assert (await c.response()).body == b"ok"
            async with client(b.port) as c:
                # B's own request first, then one for A behind it in the same chunk: its start
                # is unknown, so it is answered here (Session ID unknown)
                c.send(post(sid_b, b"40") + get(sid_a))
                assert (await c.response()).body == b"ok"
                assert (await c.response()).status == 400
            assert b.router.stats.sent == 1

    asyncio.run(scenario())


def test_a_large_head_travels_in_several_messages(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with worker(tmp_path, "AA") as a, worker(tmp_path, "BB") as b:
            async with client(a.port) as c:
                sid = await handshake(c)
            body = b'42["echo","' + b"x" * (3 * PART) + b'"]'
            reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = Client(reader, writer)
            try:
                c.send(post(sid, b"40" + b"\x1e" + body))
                assert (await c.response()).body == b"ok"
            finally:
                writer.close()
            assert b.router.stats.sent == 1 and a.router.stats.adopted == 1

    asyncio.run(scenario())


def test_new_sessions_go_to_the_worker_holding_the_fewest(tmp_path: Path) -> None:
    async def scenario() -> None:
        load = LoadTable.create(tmp_path / "load")
        async with (
            worker(tmp_path, "AA", load, ("BB",)) as a,
            worker(tmp_path, "BB", load, ("AA",)) as b,
        ):
            assert load.get("AA") == load.get("BB") == -1  # not published yet
            for _ in range(3):  # nobody else serves: A keeps them
                async with client(a.port) as c:
                    assert (await handshake(c)).startswith("AA")
            b.router.publish_load()
            assert load.get("BB") == 0
            async with client(a.port) as c:  # 3 here, 0 there: over the slack of 2
                assert (await handshake(c)).startswith("BB")
            assert load.get("AA") == 3 and load.get("BB") == 1
            async with client(a.port) as c:  # 3 and 1: within it
                assert (await handshake(c)).startswith("AA")
            async with client(b.port) as c:  # B holds fewer: its own
                assert (await handshake(c)).startswith("BB")
            # a handshake over WebSocket is balanced too, and a draining worker takes none
            ws_path = "/socket.io/?EIO=4&transport=websocket"
            async with client(a.port) as c:
                c.send(upgrade_request(ws_path))
                assert (await c.response()).status == 101
                assert b'"sid":"BB' in (await c.frame())[2]
            b.router.serving = False
            b.router.publish_load()
            assert load.get("BB") == -1
            async with client(a.port) as c:
                assert (await handshake(c)).startswith("AA")
            assert (a.router.stats.balanced, b.router.stats.adopted) == (2, 2)
        load.close()

    asyncio.run(scenario())
