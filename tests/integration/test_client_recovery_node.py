"""Connection state recovery: sockjet's AsyncClient against Node's socket.io 4.x server with
``connectionStateRecovery`` enabled (see :class:`peers.NodeSocketIOServer`).

After the server closes the connection (``close_engine``: "forced close", a recoverable
reason), the client reconnects by itself, offers its session id and last offset, and the server
gives back the same socket id and rooms and replays the room events broadcast meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from client_peers import Events
from peers import NodeSocketIOServer

from sockjet.client import AsyncClient

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]

TRANSPORTS = {
    "polling-upgrade": ["polling", "websocket"],
    "websocket": ["websocket"],
    "polling": ["polling"],
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def recovery_server() -> AsyncIterator[NodeSocketIOServer]:
    async with NodeSocketIOServer(
        pingInterval=300,
        pingTimeout=300,
        connectionStateRecovery={"maxDisconnectionDuration": 60000, "skipMiddlewares": True},
    ) as server:
        yield server


@pytest.fixture(params=list(TRANSPORTS))
def transports(request: pytest.FixtureRequest) -> list[str]:
    return TRANSPORTS[request.param]


def new_client() -> AsyncClient:
    return AsyncClient(reconnection_delay=0.05, reconnection_delay_max=0.2)


async def server_got(server: NodeSocketIOServer, sid: str, event: str, *args: Any) -> None:
    """Wait until the server reported ``event(*args)`` from socket ``sid``: Node handles an
    event synchronously, so whatever it broadcast for it is stored by then."""
    while True:
        report = await server.next_report("event", sid=sid)
        if report["event"] == event and report["args"] == list(args):
            return


async def test_a_reconnection_recovers_the_session_and_the_missed_events(
    recovery_server: NodeSocketIOServer, transports: list[str]
) -> None:
    server = recovery_server
    events = Events()
    held = asyncio.Event()
    auth_calls = 0

    async def auth() -> dict[str, str]:
        # The reconnection's CONNECT waits here until the room event was broadcast without us.
        nonlocal auth_calls
        auth_calls += 1
        if auth_calls > 1:
            await held.wait()
        return {"user": "a"}

    async with new_client() as client, new_client() as other:
        client.on("connect", lambda: events.put("connect", client.recovered))
        client.on("disconnect", events.handler("disconnect"))
        client.on("news", events.handler("news"))
        await client.connect(server.url, transports=transports, auth=auth)
        assert await events.get("connect") is False
        sid = client.sid
        assert sid is not None and client.recovered is False
        assert (await server.next_report("connection", sid=sid))["auth"] == {"user": "a"}
        assert await client.emit_with_ack("join", "room") is True

        await other.connect(server.url, transports=["websocket"])
        assert other.sid is not None
        other.emit("to_room", "room", "news", "live")
        text, offset = await events.get("news")  # the server appended the offset
        assert text == "live" and isinstance(offset, str) and offset

        client.emit("close_engine")
        assert await events.get("disconnect") == "transport close"
        report = await server.next_report("disconnect", sid=sid)
        assert report["reason"] == "forced close"  # the session is kept for recovery
        other.emit("to_room", "room", "news", "missed")
        await server_got(server, other.sid, "to_room", "room", "news", "missed")
        held.set()

        assert await events.get("connect") is True
        assert client.sid == sid and client.recovered
        again = await server.next_report("connection", sid=sid)
        assert again["auth"]["user"] == "a" and again["auth"]["offset"] == offset
        assert isinstance(again["auth"]["pid"], str)
        missed, missed_offset = await events.get("news")
        assert missed == "missed" and missed_offset not in (offset, None)
        # Replayed before the CONNECT answer, so delivered before the connect handlers ran.
        assert events.history.index(("news", (missed, missed_offset))) < events.history.index(
            ("connect", True)
        )

        # The room came back with the session, and nothing was delivered twice.
        other.emit("to_room", "room", "news", "after")
        assert (await events.get("news"))[0] == "after"
        assert await client.emit_with_ack("echo", "sync") == "sync"
        assert events.pending("news") == 0
        assert [value[0] for key, value in events.history if key == "news"] == [
            "live",
            "missed",
            "after",
        ]


async def test_a_client_that_disconnected_on_purpose_is_not_recovered(
    recovery_server: NodeSocketIOServer,
) -> None:
    server = recovery_server
    events = Events()
    async with new_client() as client, new_client() as other:
        client.on("news", events.handler("news"))
        await client.connect(server.url, transports=["websocket"])
        sid = client.sid
        assert sid is not None
        assert await client.emit_with_ack("join", "room") is True
        await other.connect(server.url, transports=["websocket"])
        other.emit("to_room", "room", "news", "live")
        _, offset = await events.get("news")

        await client.disconnect()
        report = await server.next_report("disconnect", sid=sid)
        assert report["reason"] == "client namespace disconnect"
        await client.connect(server.url, transports=["websocket"])
        assert client.sid not in (None, sid) and client.recovered is False
        # The client did offer its session (as the JS client does); the server declined it.
        report = await server.next_report("connection", sid=client.sid)
        assert report["auth"]["offset"] == offset and isinstance(report["auth"]["pid"], str)
