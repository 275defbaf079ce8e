"""Connection middleware and every disconnect reason, seen by sockjet and the official client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from peers import ConnectError, NodePuppet, Recorder, Serve

from sockjet import ConnectionRefused, Server, Socket

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]


def lifecycle_server(**options: Any) -> tuple[Server, Recorder]:
    """Records ``connection`` (the socket) and ``disconnect`` ((id, reason)) of ``/``;
    ``kick`` disconnects the sender server-side."""
    io = Server(**options)
    seen = Recorder()

    @io.on("connection")
    def on_connection(socket: Socket) -> None:
        seen.put("connection", socket)

        @socket.on("disconnect")
        def on_disconnect(reason: str) -> None:
            seen.put("socket disconnect", (socket.id, reason))

    @io.on("disconnect")
    def on_disconnect(socket: Socket, reason: str) -> None:
        seen.put("disconnect", (socket.id, reason))

    @io.on("kick")
    def kick(socket: Socket) -> None:
        socket.disconnect()

    @io.on("echo")
    def echo(socket: Socket, *args: Any) -> Any:
        return tuple(args)

    return io, seen


async def server_reason(seen: Recorder, sid: str | None) -> str:
    """The reason the server gave for ``sid``'s disconnection (flat and per-socket handler)."""
    flat_sid, flat_reason = await seen.get("disconnect")
    own_sid, own_reason = await seen.get("socket disconnect")
    assert flat_sid == own_sid == sid
    assert flat_reason == own_reason
    return str(flat_reason)


async def test_middleware_refusal_with_message_and_data(puppet: NodePuppet, serve: Serve) -> None:
    io = Server()
    admin = io.of("/admin")
    seen = Recorder()

    @io.use
    async def authenticate(socket: Socket) -> None:
        token = socket.handshake.auth.get("token")
        if token != "secret":
            raise ConnectionRefused("not authorized", {"code": 42, "got": token})
        socket.data["user"] = "alice"

    @admin.use
    def admins_only(socket: Socket) -> None:
        if socket.handshake.auth.get("role") != "admin":
            raise ConnectionRefused("admins only")

    @io.on("connection")
    def on_connection(socket: Socket) -> None:
        seen.put("connection", socket.data.get("user"))

    @admin.on("connection")
    def on_admin(socket: Socket) -> None:
        seen.put("admin", socket.handshake.auth)

    url = await serve(io)
    for transport in ("websocket", "polling"):
        with pytest.raises(ConnectError) as refused:
            await puppet.connect(url, transports=[transport], auth={"token": "nope"})
        assert refused.value.message == "not authorized"
        assert refused.value.data == {"code": 42, "got": "nope"}
    with pytest.raises(ConnectError) as refused:
        await puppet.connect(url, transports=["websocket"])
    assert refused.value.data == {"code": 42, "got": None}

    ok = await puppet.connect(url, auth={"token": "secret"})
    assert await seen.get("connection") == "alice"
    with pytest.raises(ConnectError) as refused:
        await puppet.connect(url, "/admin", transports=["websocket"])
    assert refused.value.message == "admins only"
    assert refused.value.data is None
    boss = await puppet.connect(url, "/admin", auth={"role": "admin"})
    assert await seen.get("admin") == {"role": "admin"}
    assert seen.pending("connection") == 0
    await ok.disconnect()
    await boss.disconnect()


async def test_middleware_crash_is_refused_without_details(
    puppet: NodePuppet, serve: Serve
) -> None:
    io = Server()

    @io.use
    def broken(socket: Socket) -> None:
        raise RuntimeError("secret internals")

    url = await serve(io)
    with pytest.raises(ConnectError) as refused:
        await puppet.connect(url, transports=["websocket"])
    assert "secret internals" not in refused.value.message
    assert "secret internals" not in repr(refused.value.data)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_client_namespace_disconnect(
    puppet: NodePuppet, serve: Serve, transport: str
) -> None:
    io, seen = lifecycle_server()
    url = await serve(io)
    c = await puppet.connect(url, transports=[transport])
    await c.disconnect()
    assert await c.wait_disconnect() == "io client disconnect"
    assert await server_reason(seen, c.id) == "client namespace disconnect"


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_server_namespace_disconnect(
    puppet: NodePuppet, serve: Serve, transport: str
) -> None:
    io, seen = lifecycle_server()
    url = await serve(io)
    c = await puppet.connect(url, transports=[transport])
    await c.emit("kick")
    assert await c.wait_disconnect() == "io server disconnect"
    assert await server_reason(seen, c.id) == "server namespace disconnect"


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_transport_close_when_client_closes_engine(
    puppet: NodePuppet, serve: Serve, transport: str
) -> None:
    io, seen = lifecycle_server()
    url = await serve(io)
    c = await puppet.connect(url, transports=[transport])
    await c.close_engine()
    assert await c.wait_disconnect() == "forced close"
    assert await server_reason(seen, c.id) == "transport close"


async def test_transport_close_when_tcp_drops(puppet: NodePuppet, serve: Serve) -> None:
    io, seen = lifecycle_server()
    url = await serve(io)
    c = await puppet.connect(url, transports=["websocket"])
    await c.drop()
    assert await c.wait_disconnect() == "transport close"
    assert await server_reason(seen, c.id) == "transport close"


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_frozen_client_dropped_for_ping_timeout(
    puppet: NodePuppet, serve: Serve, transport: str
) -> None:
    io, seen = lifecycle_server(ping_interval=0.2, ping_timeout=0.2)
    url = await serve(io)
    canary = await puppet.connect(url, transports=["websocket"])
    c = await puppet.connect(url, transports=[transport])
    assert (await seen.get("connection")).id == canary.id
    assert (await seen.get("connection")).id == c.id
    loop = asyncio.get_running_loop()
    frozen_at = loop.time()
    await c.freeze()
    assert await server_reason(seen, c.id) == "ping timeout"
    # Dropped ping_timeout after the first unanswered ping, which comes within ping_interval:
    # between 0.2 and 0.4 s after the freeze (plus scheduling slack on a busy machine).
    assert 0.15 <= loop.time() - frozen_at <= 1.2
    assert await c.wait_disconnect(timeout=2) == "transport close"
    # The healthy client answered every ping meanwhile and is still there.
    assert await canary.emit_with_ack("echo", "alive") == ["alive"]
    assert seen.pending("disconnect") == 0
    await canary.disconnect()


async def test_heartbeat_keeps_idle_clients(puppet: NodePuppet, serve: Serve) -> None:
    io, seen = lifecycle_server(ping_interval=0.1, ping_timeout=1.0)  # margin for a loaded CI
    url = await serve(io)
    ws = await puppet.connect(url, transports=["websocket"])
    polling = await puppet.connect(url, transports=["polling"])
    # Idle through several heartbeats: each ping is observed on the client, not slept through.
    for _ in range(4):
        await ws.wait_ping(timeout=1)
        await polling.wait_ping(timeout=1)
    assert seen.pending("disconnect") == 0
    assert await ws.emit_with_ack("echo", 1) == [1]
    assert await polling.emit_with_ack("echo", 2) == [2]
    await ws.disconnect()
    await polling.disconnect()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_server_shutting_down(puppet: NodePuppet, serve: Serve, transport: str) -> None:
    io, seen = lifecycle_server()
    url = await serve(io)
    c = await puppet.connect(url, transports=[transport])
    await io.close()
    assert await server_reason(seen, c.id) == "server shutting down"
    assert await c.wait_disconnect() == "transport close"
    # New clients are refused while (and after) the server shuts down.
    with pytest.raises(ConnectError):
        await puppet.connect(url, transports=[transport], timeout=3)
