"""Namespaces, rooms and every emit variant, observed by official clients.

"Did not receive" is asserted without sleeping: after the emits under test, the server sends a
sentinel to everyone; per-connection ordering means anything sent before it has arrived by then.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from peers import ConnectError, NodeClient, NodePuppet, Recorder, Serve

from sockjet import Server, Socket

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]


async def settle(io: Server, clients: Sequence[NodeClient], tag: str) -> None:
    """Send a sentinel to every socket of ``/`` and wait until each client has it."""
    io.emit("sentinel", tag)
    for c in clients:
        assert await c.next_event("sentinel") == [tag]


async def counts(clients: dict[str, NodeClient], event: str) -> dict[str, int]:
    """How many ``event`` each client holds (and consume them, checking their payloads)."""
    result: dict[str, int] = {}
    for name, c in clients.items():
        n = c.pending(event)
        for _ in range(n):
            await c.next_event(event)
        result[name] = n
    return result


def room_server() -> tuple[Server, Recorder]:
    io = Server()
    io.of("/admin")
    seen = Recorder()

    @io.on("connection")
    def on_connection(socket: Socket) -> None:
        seen.put("connection", socket)

    @io.on("join")
    def join(socket: Socket, *rooms: str) -> list[str]:
        socket.join(list(rooms))
        return sorted(r for r in socket.rooms if r != socket.id)

    @io.on("leave")
    def leave(socket: Socket, room: str) -> list[str]:
        socket.leave(room)
        return sorted(r for r in socket.rooms if r != socket.id)

    @io.on("do")
    def do(socket: Socket, variant: str, *rooms: str) -> bool:
        # Each variant emits the event named after it, with the variant as payload.
        match variant:
            case "socket.emit":
                socket.emit(variant)
            case "io.emit":
                io.emit(variant)
            case "socket.broadcast.emit":
                socket.broadcast.emit(variant)
            case "io.to":
                io.to(rooms[0]).emit(variant)
            case "io.in_":
                io.in_(rooms[0]).emit(variant)
            case "socket.to":
                socket.to(rooms[0]).emit(variant)
            case "io.to.many":
                io.to(list(rooms)).emit(variant)
            case "io.to.chained":
                io.to(rooms[0]).to(rooms[1]).emit(variant)
            case "socket.to.many":
                socket.to(list(rooms)).emit(variant)
            case "io.except_":
                io.except_(rooms[0]).emit(variant)
            case "io.to.except_":
                io.to(rooms[0]).except_(rooms[1]).emit(variant)
            case "socket.except_":
                socket.except_(rooms[0]).emit(variant)
            case "io.volatile":
                io.volatile.emit(variant)
            case "io.local":
                io.local.emit(variant)
            case "socket.local":
                socket.local.emit(variant)
            case "io.of.admin":
                io.of("/admin").emit(variant)
            case _:
                raise AssertionError(variant)
        return True

    return io, seen


async def test_rooms_join_leave(puppet: NodePuppet, serve: Serve) -> None:
    io, _ = room_server()
    url = await serve(io)
    a = await puppet.connect(url, transports=["websocket"])
    b = await puppet.connect(url, transports=["polling"])
    assert await a.emit_with_ack("join", "r1", "r2") == [["r1", "r2"]]
    assert await b.emit_with_ack("join", "r2") == [["r2"]]
    clients = {"a": a, "b": b}

    io.to("r1").emit("room")
    await settle(io, [a, b], "1")
    assert await counts(clients, "room") == {"a": 1, "b": 0}

    io.to("r2").emit("room")
    await settle(io, [a, b], "2")
    assert await counts(clients, "room") == {"a": 1, "b": 1}

    assert await a.emit_with_ack("leave", "r2") == [["r1"]]
    io.to("r2").emit("room")
    await settle(io, [a, b], "3")
    assert await counts(clients, "room") == {"a": 0, "b": 1}

    # A room empties when its last member leaves or disconnects.
    await b.disconnect()
    await a.emit_with_ack("leave", "r1")
    io.to(["r1", "r2"]).emit("room")
    await settle(io, [a], "4")
    assert a.pending("room") == 0
    await a.disconnect()


async def test_every_emit_variant(puppet: NodePuppet, serve: Serve) -> None:
    io, _ = room_server()
    url = await serve(io)
    # a in r1; b in r1 and r2; c in r2; d in no room (b over polling: broadcasts reach both
    # transports).
    a = await puppet.connect(url, transports=["websocket"])
    b = await puppet.connect(url, transports=["polling"])
    c = await puppet.connect(url, transports=["websocket"])
    d = await puppet.connect(url)
    admin = await puppet.connect(url, "/admin", share=a)
    await a.emit_with_ack("join", "r1")
    await b.emit_with_ack("join", "r1", "r2")
    await c.emit_with_ack("join", "r2")
    clients = {"a": a, "b": b, "c": c, "d": d}
    everyone = [a, b, c, d]

    expected = {
        ("socket.emit",): {"a": 1, "b": 0, "c": 0, "d": 0},
        ("io.emit",): {"a": 1, "b": 1, "c": 1, "d": 1},
        ("socket.broadcast.emit",): {"a": 0, "b": 1, "c": 1, "d": 1},
        ("io.to", "r1"): {"a": 1, "b": 1, "c": 0, "d": 0},
        ("io.in_", "r2"): {"a": 0, "b": 1, "c": 1, "d": 0},
        ("socket.to", "r1"): {"a": 0, "b": 1, "c": 0, "d": 0},
        # several rooms: each socket once, even b (in both)
        ("io.to.many", "r1", "r2"): {"a": 1, "b": 1, "c": 1, "d": 0},
        ("io.to.chained", "r1", "r2"): {"a": 1, "b": 1, "c": 1, "d": 0},
        ("socket.to.many", "r1", "r2"): {"a": 0, "b": 1, "c": 1, "d": 0},
        ("io.except_", "r2"): {"a": 1, "b": 0, "c": 0, "d": 1},
        ("io.to.except_", "r1", "r2"): {"a": 1, "b": 0, "c": 0, "d": 0},
        ("socket.except_", "r2"): {"a": 0, "b": 0, "c": 0, "d": 1},
        ("io.local",): {"a": 1, "b": 1, "c": 1, "d": 1},
        ("socket.local",): {"a": 0, "b": 1, "c": 1, "d": 1},
        ("io.of.admin",): {"a": 0, "b": 0, "c": 0, "d": 0},
    }
    for n, (call, want) in enumerate(expected.items()):
        variant, *rooms = call
        assert await a.emit_with_ack("do", variant, *rooms) == [True]
        await settle(io, everyone, str(n))
        assert await counts(clients, variant) == want, variant
    assert await admin.next_event("io.of.admin") == []

    # volatile: may be dropped for a socket that cannot take it right now, never duplicated;
    # idle WebSockets can take it.
    assert await a.emit_with_ack("do", "io.volatile") == [True]
    await settle(io, everyone, "volatile")
    got = await counts(clients, "io.volatile")
    assert got["a"] == got["c"] == 1 and set(got.values()) <= {0, 1}
    for client in (*everyone, admin):
        await client.disconnect()


async def test_namespaces_default_custom_and_invalid(puppet: NodePuppet, serve: Serve) -> None:
    io = Server()
    seen = Recorder()
    admin = io.of("/admin")
    dynamic = io.of(re.compile(r"^/dyn-\d+$"))

    @io.on("connection")
    def main_connection(socket: Socket) -> None:
        socket.emit("hello", "/")

    @io.on("whoami")
    def main_whoami(socket: Socket) -> str:
        seen.put("whoami", "/")
        return "main"

    @admin.on("connection")
    def admin_connection(socket: Socket) -> None:
        socket.emit("hello", socket.nsp.name)

    @admin.on("whoami")
    def admin_whoami(socket: Socket) -> str:
        seen.put("whoami", "/admin")
        return "admin"

    @dynamic.on("connection")
    def dyn_connection(socket: Socket) -> None:
        socket.emit("hello", socket.nsp.name)

    url = await serve(io)
    main = await puppet.connect(url)
    assert await main.next_event("hello") == ["/"]
    # Multiplexed over main's connection, and on a connection of its own.
    shared = await puppet.connect(url, "/admin", share=main)
    alone = await puppet.connect(url, "/admin", transports=["websocket"])
    assert await shared.next_event("hello") == ["/admin"]
    assert await alone.next_event("hello") == ["/admin"]
    assert await main.emit_with_ack("whoami") == ["main"]
    assert await shared.emit_with_ack("whoami") == ["admin"]
    assert await alone.emit_with_ack("whoami") == ["admin"]
    assert [await seen.get("whoami") for _ in range(3)] == ["/", "/admin", "/admin"]

    admin.emit("only_admin", 1)
    assert await shared.next_event("only_admin") == [1]
    assert await alone.next_event("only_admin") == [1]
    await settle(io, [main], "x")
    assert main.pending("only_admin") == 0

    dyn = await puppet.connect(url, "/dyn-42", transports=["websocket"])
    assert await dyn.next_event("hello") == ["/dyn-42"]

    with pytest.raises(ConnectError) as refused:
        await puppet.connect(url, "/nowhere", transports=["websocket"])
    assert refused.value.message == "Invalid namespace"
    with pytest.raises(ConnectError, match="Invalid namespace"):
        await puppet.connect(url, "/dyn-x", transports=["polling"])
    # A refused namespace leaves the client's other namespaces working.
    with pytest.raises(ConnectError, match="Invalid namespace"):
        await puppet.connect(url, "/nowhere", share=main)
    assert await main.emit_with_ack("whoami") == ["main"]
    assert await seen.get("whoami") == "/"
    for c in (shared, main, alone, dyn):
        await c.disconnect()
