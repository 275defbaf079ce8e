"""sockjet's AsyncClient against sockjet's own server (native and ASGI), plus a server that
goes silent, for the heartbeat watchdog."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from client_peers import Events, client_tasks, silent_server, sockjet_server
from peers import Serve

import sockjet
from sockjet.client import AsyncClient, ConnectError

pytestmark = pytest.mark.asyncio(loop_scope="module")


def echo_server(**options: Any) -> tuple[sockjet.Server, Events]:
    """``echo`` acks its arguments; ``ask`` (event, *args) asks the client for an ack and emits
    ``answer`` with it; every connection is recorded with its handshake."""
    io = sockjet.Server(**options)
    seen = Events()

    @io.on("connection")
    def connection(socket: sockjet.Socket) -> None:
        seen.put("connection", socket.handshake)
        socket.emit("welcome", socket.id)

    @io.on("echo")
    def echo(socket: sockjet.Socket, *args: Any) -> tuple[Any, ...]:
        return args

    @io.on("ask")
    async def ask(socket: sockjet.Socket, event: str, *args: Any) -> None:
        socket.emit("answer", await socket.timeout(5).emit_with_ack(event, *args))

    chat = io.of("/chat")

    @chat.on("echo")
    def chat_echo(socket: sockjet.Socket, *args: Any) -> tuple[Any, ...]:
        return ("chat", *args)

    return io, seen


@pytest.mark.parametrize("transports", [["polling", "websocket"], ["websocket"], ["polling"]])
async def test_our_server_both_serving_layers(serve: Serve, transports: list[str]) -> None:
    io, _ = echo_server()
    url = await serve(io)
    events = Events()
    async with AsyncClient() as client:
        client.on("welcome", events.handler("welcome"))
        client.on("question", lambda a, b: a + b)
        client.on("answer", events.handler("answer"))
        await client.connect(url, transports=transports, namespaces=["/", "/chat"])
        assert await events.get("welcome") == client.sid
        assert client.manager is not None and client.manager.engine is not None
        expected = "websocket" if "websocket" in transports else "polling"
        assert await client.manager.engine.wait_upgrade() == expected
        blob = b"\x00" * 70_000
        assert await client.emit_with_ack("echo", [blob], "x") == ([blob], "x")
        assert await client.emit_with_ack("echo", 1, namespace="/chat") == ("chat", 1)
        client.emit("ask", "question", 2, 3)
        assert await events.get("answer") == 5
    assert client_tasks() == []


async def test_msgpack_headers_query_and_async_auth() -> None:
    io, seen = echo_server(serializer="msgpack")

    async def auth() -> dict[str, str]:
        await asyncio.sleep(0)
        return {"token": "t"}

    async with sockjet_server(io) as url, AsyncClient(serializer="msgpack") as client:
        await client.connect(
            url, auth=auth, headers={"X-Test": "yes"}, query={"room": "a"}, transports=["websocket"]
        )
        handshake = await seen.get("connection")
        assert handshake.auth == {"token": "t"}
        assert handshake.headers["x-test"] == "yes"
        assert handshake.query["room"] == "a"
        payload = {"bytes": b"\x01\x02", "list": [1, None, 2.5], "nested": {"k": [b""]}}
        assert await client.emit_with_ack("echo", payload) == payload


async def test_a_refusing_middleware() -> None:
    io = sockjet.Server()

    @io.use
    def refuse(socket: sockjet.Socket) -> None:
        raise sockjet.ConnectionRefused("not authorized", {"retry": False})

    async with sockjet_server(io) as url, AsyncClient() as client:
        with pytest.raises(ConnectError) as info:
            await client.connect(url)
        assert (info.value.message, info.value.data) == ("not authorized", {"retry": False})
    assert client_tasks() == []


async def test_retries_deliver_at_least_once() -> None:
    io = sockjet.Server()
    deliveries: list[Any] = []

    @io.on("work")
    def work(socket: sockjet.Socket, n: int) -> str:
        deliveries.append(n)
        if deliveries.count(n) == 1:
            raise RuntimeError("lost the first time")  # no acknowledgement
        return f"done {n}"

    async with sockjet_server(io) as url:
        async with AsyncClient(retries=3, ack_timeout=0.2) as client:
            await client.connect(url, transports=["websocket"])
            client.emit("work", 1)  # the queue sends one at a time, in order
            assert await client.emit_with_ack("work", 2) == "done 2"
        assert deliveries == [1, 1, 2, 2]


async def test_a_silent_server_is_detected_by_the_watchdog() -> None:
    events = Events()
    client = AsyncClient(reconnection_delay=0.01, reconnection_delay_max=0.01)
    client.on("disconnect", events.handler("disconnect"))
    client.on("reconnect", events.handler("reconnect"))
    # Read in the handler: the silent server makes every connection time out 0.2 s later.
    client.on("connect", lambda: events.put("connect", client.connected))
    async with silent_server(ping_interval_ms=100, ping_timeout_ms=100) as (url, server), client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await client.connect(url, transports=["websocket"])
        assert await server.get("connection") == 1
        assert await events.get("connect") is True
        assert await events.get("disconnect") == "ping timeout"
        # armed at the handshake for pingInterval + pingTimeout = 0.2 s
        assert 0.19 <= loop.time() - started < 2.0
        assert await events.get("reconnect") == 1
        assert await server.get("connection") == 2
        assert await events.get("connect") is True
    assert client_tasks() == []


async def test_a_server_that_shuts_down_and_stays_down() -> None:
    io, _ = echo_server()
    events = Events()
    client = AsyncClient(
        reconnection_attempts=2, reconnection_delay=0.01, reconnection_delay_max=0.02
    )
    client.on("disconnect", events.handler("disconnect"))
    client.on("reconnect_error", events.handler("reconnect_error"))
    client.on("reconnect_failed", lambda: events.put("reconnect_failed"))
    async with client:
        async with sockjet_server(io) as url:
            await client.connect(url, transports=["websocket"])
        assert await events.get("disconnect") in ("transport close", "transport error")
        error = await events.get("reconnect_error")
        assert isinstance(error, ConnectError) and error.message == "websocket error"
        await events.get("reconnect_failed")
        await asyncio.wait_for(client.wait(), 5)
        assert not client.connected
    assert client_tasks() == []


@pytest.mark.parametrize("transports", [["polling", "websocket"], ["websocket"], ["polling"]])
async def test_connection_state_recovery_with_our_server(
    serve: Serve, transports: list[str]
) -> None:
    io = sockjet.Server(connection_state_recovery=True)
    seen = Events()

    @io.on("connection")
    def connection(socket: sockjet.Socket) -> None:
        seen.put("connection", socket)

    @io.on("join")
    def join(socket: sockjet.Socket, room: str) -> None:
        socket.join(room)

    @io.on("disconnect")
    def disconnect(socket: sockjet.Socket, reason: str) -> None:
        io.to("r").emit("missed", socket.id)  # while the client is surely away
        seen.put("disconnect", reason)

    url = await serve(io)
    events = Events()
    async with AsyncClient(reconnection_delay=0.05, reconnection_delay_max=0.1) as client:
        client.on("live", events.handler("live"))
        client.on("missed", events.handler("missed"))
        client.on("connect", lambda: events.put("connect", client.recovered))
        await client.connect(url, transports=transports)
        assert await events.get("connect") is False
        first: sockjet.Socket = await seen.get("connection")
        assert client.recovered is False
        await client.emit_with_ack("join", "r")
        io.to("r").emit("live", 1)
        value, offset = await events.get("live")  # the server's offset comes last
        assert value == 1 and isinstance(offset, str)

        first.conn.close()  # the server drops the connection: "forced close", recoverable
        assert await seen.get("disconnect") == "forced close"
        again: sockjet.Socket = await seen.get("connection")
        assert again.recovered and again.id == first.id
        assert await events.get("connect") is True
        assert client.sid == first.id
        assert (await events.get("missed"))[0] == first.id
        assert again.rooms == {again.id, "r"}
        io.to("r").emit("live", 2)
        assert (await events.get("live"))[0] == 2
        assert events.pending("missed") == 0
    assert client_tasks() == []


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]])
async def test_drain_paces_a_client_that_streams_to_a_busy_server(
    serve: Serve, transports: list[str]
) -> None:
    # The server's handler is slower than the client can emit: the server pauses reading (a
    # WebSocket) or holds its answers (polling), and drain() makes the producer wait for it.
    io = sockjet.Server()
    received: list[int] = []
    done = asyncio.Event()
    count = 400

    @io.on("part")
    async def part(socket: sockjet.Socket, i: int, data: str) -> None:
        await asyncio.sleep(0.0005)
        received.append(i)
        if len(received) == count:
            done.set()

    url = await serve(io)
    async with AsyncClient(reconnection=False) as client:
        await client.connect(url, transports=transports)
        highest = 0
        for i in range(count):
            client.emit("part", i, "p" * 10_000)  # 4 MB in all
            highest = max(highest, client.buffered_amount)
            await client.drain()
        assert client.buffered_amount <= 64 * 1024
        await asyncio.wait_for(done.wait(), 30)
    assert sorted(received) == list(range(count))
    assert highest <= 64 * 1024 + 20_000  # never more queued than one emit past the level
