"""sockjet's AsyncClient against Node's reference socket.io 4.x server.

The server (``node_server`` in conftest.py, see :class:`peers.NodeSocketIOServer`) pings every
300 ms, greets each socket with ``welcome``, answers ``echo`` (ack or emit), kicks on ``kick``,
asks the client for an ack on ``ask`` and closes the Engine.IO connection on ``close_engine``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from client_peers import Events, client_tasks
from peers import NodeSocketIOServer

from sockjet.client import AsyncClient, ConnectError

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]

TRANSPORTS = {
    "polling-upgrade": ["polling", "websocket"],
    "websocket": ["websocket"],
    "polling": ["polling"],
}


@pytest.fixture(params=list(TRANSPORTS))
def transports(request: pytest.FixtureRequest) -> list[str]:
    return TRANSPORTS[request.param]


def new_client(**options: Any) -> AsyncClient:
    options.setdefault("reconnection_delay", 0.05)
    options.setdefault("reconnection_delay_max", 0.2)
    return AsyncClient(**options)


async def events_of(server: NodeSocketIOServer, sid: str, until: str) -> list[tuple[str, Any]]:
    """The events the server reported for socket ``sid``, up to event ``until``."""
    seen: list[tuple[str, Any]] = []
    while not seen or seen[-1][0] != until:
        report = await server.next_report("event", sid=sid)
        seen.append((report["event"], report["args"]))
    return seen


async def test_each_transport_carries_events_acks_and_binary(
    node_server: NodeSocketIOServer, transports: list[str]
) -> None:
    events = Events()
    client = new_client()
    client.on("welcome", events.handler("welcome"))
    client.on_any(lambda event, *args: events.put("any", event))
    await client.connect(node_server.url, transports=transports, auth={"user": "py"})
    assert await events.get("welcome") == {"id": client.sid, "nsp": "/", "auth": {"user": "py"}}
    assert await events.get("any") == "welcome"
    report = await node_server.next_report("connection", sid=client.sid)
    assert report["transport"] == transports[0]
    assert client.manager is not None and client.manager.engine is not None
    expected = "websocket" if "websocket" in transports else "polling"
    assert await client.manager.engine.wait_upgrade() == expected
    assert client.transport == expected

    payload = {"n": 1, "blob": b"\x00\xff" * 100, "nested": [b"x", {"y": b""}]}
    assert await client.emit_with_ack("echo", payload, "two", timeout=5) == (payload, "two")
    client.emit("echo", b"back")  # without ack: the server emits it back
    client.on("echo", events.handler("echo"))
    assert await events.get("echo") == b"back"

    sid = client.sid
    await client.disconnect()
    report = await node_server.next_report("disconnect", sid=sid)
    assert report["reason"] == "client namespace disconnect"
    assert client_tasks() == []  # nothing of the client is left running


async def test_handler_return_values_answer_server_acks(node_server: NodeSocketIOServer) -> None:
    events = Events()
    client = new_client()

    async def question(*args: Any) -> tuple[Any, ...]:
        await asyncio.sleep(0)
        return ("answer", *args)

    client.on("question", question)
    client.on("answer", events.handler("answer"))
    client.on("answer_error", events.handler("answer_error"))
    await client.connect(node_server.url, transports=["websocket"])
    client.emit("ask", 2000, "question", 1, {"bin": b"\x01"})
    assert await events.get("answer") == ("answer", 1, {"bin": b"\x01"})
    client.emit("ask", 100, "nobody handles this")  # unhandled: not answered
    assert await events.get("answer_error") == "operation has timed out"
    await client.disconnect()


async def test_namespaces_are_multiplexed_on_one_connection(
    node_server: NodeSocketIOServer,
) -> None:
    events = Events()
    client = new_client()
    client.on("welcome", events.handler("/"))
    client.on("welcome", events.handler("/admin"), namespace="/admin")
    await client.connect(node_server.url, transports=["websocket"], namespaces=["/", "/admin"])
    assert client.manager is not None
    engine = client.manager.engine
    root, admin = await events.get("/"), await events.get("/admin")
    assert (root["nsp"], admin["nsp"]) == ("/", "/admin")
    assert admin["id"] == client.socket("/admin").id != client.sid
    assert await client.emit_with_ack("echo", "a", namespace="/admin") == "a"
    assert await client.emit_with_ack("join", "room", namespace="/admin") is True
    client.on("news", events.handler("news"), namespace="/admin")
    client.emit("to_room", "room", "news", 42, namespace="/admin")
    assert await events.get("news") == 42

    admin_sid = client.socket("/admin").id
    assert admin_sid is not None
    client.socket("/admin").disconnect()
    report = await node_server.next_report("disconnect", sid=admin_sid)
    assert report["reason"] == "client namespace disconnect"
    assert await client.emit_with_ack("echo", "still here") == "still here"
    assert client.manager.engine is engine  # one connection all along
    await client.disconnect()


async def test_a_refused_namespace_reports_the_servers_error(
    node_server: NodeSocketIOServer,
) -> None:
    events = Events()
    client = new_client()
    client.on("connect_error", events.handler("connect_error"), namespace="/private")
    with pytest.raises(ConnectError) as info:
        await client.connect(node_server.url, namespaces=["/private"], auth={"token": "nope"})
    assert (info.value.message, info.value.data) == (
        "not authorized",
        {"code": 42, "hint": "token"},
    )
    error = await events.get("connect_error")
    assert (error.message, error.data) == ("not authorized", {"code": 42, "hint": "token"})

    async def auth() -> dict[str, str]:
        return {"token": "secret"}

    await client.connect(node_server.url, namespaces=["/private"], auth=auth)
    assert client.namespaces == ["/private"]
    await client.disconnect()


async def test_a_server_disconnect_is_final(node_server: NodeSocketIOServer) -> None:
    events = Events()
    client = new_client()
    client.on("disconnect", events.handler("disconnect"))
    client.on("reconnect_attempt", events.handler("reconnect_attempt"))
    await client.connect(node_server.url)
    client.emit("kick")
    assert await events.get("disconnect") == "io server disconnect"
    await asyncio.wait_for(client.wait(), 5)
    assert not client.connected and events.pending("reconnect_attempt") == 0
    await client.disconnect()


async def test_a_lost_connection_reconnects_and_flushes_the_send_buffer(
    node_server: NodeSocketIOServer, transports: list[str]
) -> None:
    events = Events()
    client = new_client()

    def on_disconnect(reason: str) -> None:
        events.put("disconnect", reason)
        for n in range(3):  # offline now: these wait in the send buffer
            client.emit("buffered", n)

    client.on("disconnect", on_disconnect)
    client.on("connect", events.handler("connect"))
    client.on("reconnect", events.handler("reconnect"))
    await client.connect(node_server.url, transports=transports)
    await events.get("connect")
    first_sid = client.sid
    client.emit("close_engine")
    assert await events.get("disconnect") == "transport close"
    assert await events.get("reconnect") == 1
    await events.get("connect")
    assert client.connected and client.sid not in (None, first_sid)
    assert client.sid is not None
    client.emit("echo", "sync")
    assert await events_of(node_server, client.sid, until="echo") == [
        ("buffered", [0]),
        ("buffered", [1]),
        ("buffered", [2]),
        ("echo", ["sync"]),
    ]
    await client.disconnect()


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_the_heartbeat_keeps_an_idle_connection(
    node_server: NodeSocketIOServer, transport: str
) -> None:
    events = Events()
    client = new_client()
    client.on("disconnect", events.handler("disconnect"))
    await client.connect(node_server.url, transports=[transport])
    assert client.manager is not None
    engine = client.manager.engine
    assert engine is not None and engine.ping_interval == 0.3
    # Three of the server's heartbeats: a missed ping closes the client within 0.6 s, a
    # missed pong closes the server within 0.6 s.
    await asyncio.sleep(1.0)
    assert client.connected and client.manager.engine is engine
    assert events.pending("disconnect") == 0
    await client.disconnect()
