"""Acknowledgements both ways between sockjet and the official client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from peers import AckTimeoutError, NodePuppet, Recorder, Serve

from sockjet import AckTimeout, BroadcastAckTimeout, Server, Socket

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]


def ack_server() -> tuple[Server, Recorder]:
    io = Server()
    seen = Recorder()

    @io.on("none")
    def none(socket: Socket) -> None:
        return None

    @io.on("one")
    def one(socket: Socket, value: Any) -> Any:
        return value

    @io.on("many")
    async def many(socket: Socket, a: Any, b: Any) -> tuple[Any, ...]:
        await asyncio.sleep(0)  # an async handler's return value answers too
        return (b, a, {"sum": a + b})

    @io.on("binary")
    def binary(socket: Socket, blob: bytes) -> dict[str, Any]:
        return {"len": len(blob), "reversed": blob[::-1], "nested": [blob[:1]]}

    @io.on("ask")
    async def ask(socket: Socket, event: str, seconds: float, *args: Any) -> None:
        # Server -> client ack, reported back out of band.
        try:
            seen.put("answer", await socket.timeout(seconds).emit_with_ack(event, *args))
        except AckTimeout as exc:
            seen.put("answer", exc)

    @io.on("poll")
    async def poll(socket: Socket, seconds: float) -> list[Any]:
        # A broadcast ack: one reply per client of the namespace, this one included.
        replies = await io.timeout(seconds).emit_with_ack("vote", "q")
        return sorted(replies, key=repr)

    @io.on("poll_room")
    async def poll_room(socket: Socket, room: str) -> list[Any]:
        return sorted(await io.to(room).timeout(2).emit_with_ack("vote", room), key=repr)

    @io.on("join")
    def join(socket: Socket, room: str) -> None:
        socket.join(room)

    return io, seen


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_client_acks_answered_by_return_value(
    puppet: NodePuppet, serve: Serve, transport: str
) -> None:
    io, _ = ack_server()
    url = await serve(io)
    c = await puppet.connect(url, transports=[transport])
    assert await c.emit_with_ack("none") == []
    assert await c.emit_with_ack("one", {"k": [1, 2]}) == [{"k": [1, 2]}]
    assert await c.emit_with_ack("one", [1, 2]) == [[1, 2]]  # a list is one argument
    assert await c.emit_with_ack("many", 1, 2) == [2, 1, {"sum": 3}]
    assert await c.emit_with_ack("binary", b"\x01\x02\x03") == [
        {"len": 3, "reversed": b"\x03\x02\x01", "nested": [b"\x01"]}
    ]
    # Several acks in flight at once resolve independently.
    results = await asyncio.gather(*(c.emit_with_ack("one", i) for i in range(20)))
    assert results == [[i] for i in range(20)]
    await c.disconnect()


async def test_client_ack_with_client_timeout_for_unknown_event(
    puppet: NodePuppet, serve: Serve
) -> None:
    io, _ = ack_server()
    url = await serve(io)
    c = await puppet.connect(url, transports=["websocket"])
    # No handler: the server never answers, the client's own timeout fires.
    with pytest.raises(AckTimeoutError, match="operation has timed out"):
        await c.emit_with_ack("nobody_listens", 1, timeout=0.2)
    assert await c.emit_with_ack("one", "still fine") == ["still fine"]
    await c.disconnect()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_server_ack_answered_by_client(
    puppet: NodePuppet, serve: Serve, transport: str
) -> None:
    io, seen = ack_server()
    url = await serve(io)
    c = await puppet.connect(url, transports=[transport])
    c.on_ack_reply("question", ["yes", 2])
    c.on_ack_reply("single", [{"only": b"\x09"}])
    c.on_ack_reply("empty", [])
    await c.emit("ask", "question", 2, "q", 1)
    assert await c.next_event("question") == ["q", 1]
    assert await seen.get("answer") == ("yes", 2)  # several args -> a tuple
    await c.emit("ask", "single", 2)
    assert await seen.get("answer") == {"only": b"\x09"}  # one -> the value
    await c.emit("ask", "empty", 2)
    assert await seen.get("answer") is None  # none -> None
    # Answered later, by hand.
    await c.emit("ask", "manual", 2, "x")
    received = await c.next_received("manual")
    assert received.ack_id is not None
    await c.ack(received.ack_id, "late")
    assert await seen.get("answer") == "late"
    await c.disconnect()


async def test_server_ack_timeout(puppet: NodePuppet, serve: Serve) -> None:
    io, seen = ack_server()
    url = await serve(io)
    c = await puppet.connect(url, transports=["websocket"])
    await c.emit("ask", "unanswered", 0.1)
    received = await c.next_received("unanswered")
    assert isinstance(await seen.get("answer"), AckTimeout)
    # An answer after the timeout is ignored, and the socket keeps working.
    assert received.ack_id is not None
    await c.ack(received.ack_id, "too late")
    assert await c.emit_with_ack("one", 1) == [1]
    assert seen.pending("answer") == 0
    await c.disconnect()


async def test_broadcast_ack_collects_every_reply(puppet: NodePuppet, serve: Serve) -> None:
    io, _ = ack_server()
    url = await serve(io)
    clients = []
    for n, transport in enumerate(["websocket", "polling", "websocket"]):
        c = await puppet.connect(url, transports=[transport], ack_replies={"vote": [f"v{n}"]})
        clients.append(c)
    assert await clients[0].emit_with_ack("poll", 2) == [["v0", "v1", "v2"]]
    assert await clients[1].emit_with_ack("join", "room") == []
    assert await clients[2].emit_with_ack("join", "room") == []
    assert await clients[0].emit_with_ack("poll_room", "room") == [["v1", "v2"]]
    # Nobody in the room: an empty list at once, no waiting for the timeout.
    assert await clients[0].emit_with_ack("poll_room", "empty", wait=1.5) == [[]]
    for c in clients:
        await c.disconnect()


async def test_broadcast_ack_timeout_keeps_replies(puppet: NodePuppet, serve: Serve) -> None:
    io = Server()
    seen = Recorder()

    @io.on("poll")
    async def poll(socket: Socket) -> None:
        try:
            await io.timeout(0.3).emit_with_ack("vote")
        except BroadcastAckTimeout as exc:
            seen.put("timeout", exc)

    url = await serve(io)
    yes = await puppet.connect(url, transports=["websocket"], ack_replies={"vote": ["yes"]})
    silent = await puppet.connect(url, transports=["websocket"])
    await yes.emit("poll")
    await silent.next_received("vote")
    exc = await seen.get("timeout")
    assert isinstance(exc, BroadcastAckTimeout) and isinstance(exc, AckTimeout)
    assert exc.replies == ["yes"]  # what did arrive is kept
    await yes.disconnect()
    await silent.disconnect()
