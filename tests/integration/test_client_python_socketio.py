"""sockjet's AsyncClient against python-socketio's AsyncServer (under aiohttp, in the test loop)."""

from __future__ import annotations

from typing import Any

import pytest
import socketio
from client_peers import Events, client_tasks, python_socketio_server

from sockjet.client import AsyncClient, ConnectError

TRANSPORTS = {"polling-upgrade": ["polling", "websocket"], "websocket": ["websocket"]}


@pytest.fixture(params=list(TRANSPORTS))
def transports(request: pytest.FixtureRequest) -> list[str]:
    return TRANSPORTS[request.param]


def make_server(**options: Any) -> tuple[socketio.AsyncServer, Events]:
    """Records ``connect`` (auth, X-Test header, query) and ``disconnect`` per namespace;
    ``echo`` acks its arguments; ``kick`` disconnects; ``close_engine`` closes the connection;
    ``ask`` (event, *args) asks the client for an ack and emits ``answer`` with it."""
    sio = socketio.AsyncServer(async_mode="aiohttp", **options)
    seen = Events()

    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        if auth and auth.get("token") == "bad":
            raise socketio.exceptions.ConnectionRefusedError("nope", {"why": 1})
        seen.put("connect", (auth, environ.get("HTTP_X_TEST"), environ.get("QUERY_STRING")))

    async def disconnect(sid: str, *reason: Any) -> None:
        seen.put("disconnect", sid)

    async def echo(sid: str, *args: Any) -> tuple[Any, ...]:
        return args

    async def kick(sid: str, namespace: str = "/") -> None:
        await sio.disconnect(sid, namespace=namespace)

    async def close_engine(sid: str) -> None:
        await sio.eio.disconnect(sio.manager.eio_sid_from_sid(sid, "/"))

    async def ask(sid: str, event: str, *args: Any) -> None:
        async def later() -> None:
            answer = await sio.call(event, args, to=sid, timeout=5)
            await sio.emit("answer", answer, to=sid)

        sio.start_background_task(later)

    for namespace in ("/", "/chat"):
        sio.on("connect", connect, namespace=namespace)
        sio.on("disconnect", disconnect, namespace=namespace)
        sio.on("echo", echo, namespace=namespace)
    sio.on("kick", kick)
    sio.on("close_engine", close_engine)
    sio.on("ask", ask)
    return sio, seen


async def test_transports_headers_auth_events_and_acks(transports: list[str]) -> None:
    sio, seen = make_server()
    async with python_socketio_server(sio) as url:
        async with AsyncClient() as client:
            await check_transport(client, url, transports, seen)
            assert client_tasks()
        assert await seen.get("disconnect")
        assert client_tasks() == []


async def check_transport(
    client: AsyncClient, url: str, transports: list[str], seen: Events
) -> None:
    events = Events()
    client.on("question", lambda *args: [n * 2 for n in args])
    client.on("answer", events.handler("answer"))
    await client.connect(
        url + "/?from=url",
        transports=transports,
        auth={"token": "ok"},
        headers={"X-Test": "yes"},
        query={"a": "b"},
    )
    auth, header, query = await seen.get("connect")
    assert (auth, header) == ({"token": "ok"}, "yes")
    assert "from=url" in query and "a=b" in query and "EIO=4" in query
    assert client.manager is not None and client.manager.engine is not None
    assert await client.manager.engine.wait_upgrade() == "websocket"
    blob = bytes(range(256))
    assert await client.emit_with_ack("echo", 1, {"b": blob}) == (1, {"b": blob})
    client.emit("ask", "question", 1, 2)
    assert await events.get("answer") == [2, 4]


async def test_namespaces_and_refusals() -> None:
    sio, _ = make_server()
    async with python_socketio_server(sio) as url, AsyncClient() as client:
        await client.connect(url, namespaces=["/", "/chat"], transports=["websocket"])
        assert await client.emit_with_ack("echo", "c", namespace="/chat") == "c"
        assert client.socket("/chat").id not in (None, client.sid)
        await client.disconnect()

        with pytest.raises(ConnectError) as info:
            await client.connect(url, auth={"token": "bad"})
        assert (info.value.message, info.value.data) == ("nope", {"why": 1})


async def test_server_disconnect_and_lost_connection() -> None:
    sio, _ = make_server()
    events = Events()
    client = AsyncClient(reconnection_delay=0.05, reconnection_delay_max=0.1)
    client.on("disconnect", events.handler("disconnect"))
    client.on("reconnect", events.handler("reconnect"))
    async with python_socketio_server(sio) as url, client:
        await client.connect(url, namespaces=["/", "/chat"], transports=["websocket"])
        client.emit("close_engine")
        assert await events.get("disconnect") == "transport close"
        assert await events.get("reconnect") == 1
        assert await client.emit_with_ack("echo", "again", namespace="/chat") == "again"
        client.emit("kick")
        assert await events.get("disconnect") == "io server disconnect"
        assert client.socket("/chat").connected  # only "/" was disconnected


async def test_msgpack() -> None:
    sio, _ = make_server(serializer="msgpack")
    async with python_socketio_server(sio) as url, AsyncClient(serializer="msgpack") as client:
        await client.connect(url, transports=["polling", "websocket"])
        payload = {"bin": b"\x00\x01", "list": [1, 2.5, None, True], "text": "é"}
        assert await client.emit_with_ack("echo", payload) == payload
