"""Connection state recovery with the official client: after a lost connection it comes back with
the same id, rooms and data, ``socket.recovered`` true, and the packets it missed, once each."""

from __future__ import annotations

from typing import Any

import pytest
from peers import NodeClient, NodePuppet, Recorder, Serve

from sockjet import Server, Socket
from sockjet.server.recovery import ConnectionStateRecovery

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]

RECONNECT_FAST = {"reconnection": True, "reconnectionDelay": 50, "reconnectionDelayMax": 100}


def recovering_server() -> tuple[Server, Recorder]:
    """``join`` (room) with ack; ``whoami`` acks socket.data; each disconnection emits, from
    the disconnect handler itself (so surely while the client is away), ``missed`` to the room
    and ``gone`` to everyone, and ``disconnect`` is recorded with (sid, reason)."""
    io = Server(connection_state_recovery=ConnectionStateRecovery(max_disconnection_duration=30))
    seen = Recorder()

    @io.on("connection")
    def connection(socket: Socket) -> None:
        seen.put("connection", socket)

    @io.on("join")
    def join(socket: Socket, room: str) -> None:
        socket.join(room)
        socket.data["room"] = room

    @io.on("whoami")
    def whoami(socket: Socket) -> Any:
        return socket.data

    @io.on("disconnect")
    def disconnect(socket: Socket, reason: str) -> None:
        room = socket.data.get("room")
        if room is not None:
            io.to(room).emit("missed", socket.id)
        io.emit("gone", socket.id)
        seen.put("disconnect", (socket.id, reason))

    return io, seen


async def lose_connection(client: NodeClient, transport: str) -> None:
    if transport == "websocket":
        await client.drop()  # the TCP connection dies: "transport close" on the server
    else:
        await client.close_engine()  # the client closes its engine, then reconnects


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_lost_connection_is_recovered_with_what_it_missed(
    puppet: NodePuppet, serve: Serve, transport: str
) -> None:
    io, seen = recovering_server()
    url = await serve(io)
    c = await puppet.connect(url, transports=[transport], **RECONNECT_FAST)
    assert c.recovered is False
    sid = c.id
    assert not (await seen.get("connection")).recovered
    await c.emit_with_ack("join", "r1")
    io.to("r1").emit("live", 1)
    [value, offset] = await c.next_event("live")  # the offset rides as the last argument
    assert value == 1 and isinstance(offset, str)

    await lose_connection(c, transport)
    assert await seen.get("disconnect") == (sid, "transport close")
    await c.wait_connect()
    assert c.recovered is True and c.id == sid
    assert (await c.next_event("missed"))[0] == sid
    assert (await c.next_event("gone"))[0] == sid
    recovered: Socket = await seen.get("connection")
    assert recovered.recovered and recovered.id == sid

    # Rooms and data came back; nothing arrives twice.
    assert await c.emit_with_ack("whoami") == [{"room": "r1"}]
    io.to("r1").emit("live", 2)
    assert (await c.next_event("live"))[0] == 2
    assert c.pending("missed") == c.pending("gone") == c.pending("live") == 0
    await c.disconnect()


async def test_a_client_that_left_on_purpose_starts_afresh(
    puppet: NodePuppet, serve: Serve
) -> None:
    io, seen = recovering_server()
    url = await serve(io)
    c = await puppet.connect(url, transports=["websocket"], **RECONNECT_FAST)
    first = c.id
    await c.disconnect()
    assert (await seen.get("disconnect"))[1] == "client namespace disconnect"
    again = await puppet.connect(url, transports=["websocket"])
    assert again.recovered is False and again.id != first
    await again.disconnect()


async def test_several_clients_recover_only_what_was_theirs(
    puppet: NodePuppet, serve: Serve
) -> None:
    io, seen = recovering_server()
    url = await serve(io)
    a = await puppet.connect(url, transports=["websocket"], **RECONNECT_FAST)
    b = await puppet.connect(url, transports=["websocket"], **RECONNECT_FAST)
    await a.emit_with_ack("join", "ra")
    await b.emit_with_ack("join", "rb")
    io.emit("hello")
    for c in (a, b):
        await c.next_event("hello")

    await a.drop()
    assert (await seen.get("disconnect"))[0] == a.id
    await a.wait_connect()
    assert a.recovered
    assert (await a.next_event("missed"))[0] == a.id  # to its own room "ra"
    assert (await b.next_event("gone"))[0] == a.id  # b stayed: live
    assert b.pending("missed") == 0  # "ra" was not b's room
    io.emit("sentinel")
    for c in (a, b):
        await c.next_event("sentinel")
    assert a.pending("gone") == 1  # "gone" was meant for everyone, a included: replayed once
    for c in (a, b):
        await c.disconnect()
