"""The official socket.io-client over each transport, against sockjet (native and ASGI)."""

from __future__ import annotations

from typing import Any

import pytest
from peers import NodePuppet, Recorder, Serve

from sockjet import Server, Socket

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]

BLOB = bytes(range(256))


def echo_server(**options: Any) -> tuple[Server, Recorder]:
    """``echo`` answers its ack with its args; ``say`` emits ``said`` back; ``burst`` records;
    ``send_binary`` emits nested binary to the sender."""
    io = Server(**options)
    seen = Recorder()

    @io.on("connection")
    async def on_connection(socket: Socket) -> None:
        seen.put("connection", socket)
        socket.emit("welcome", {"transport": socket.transport})

    @io.on("echo")
    async def echo(socket: Socket, *args: Any) -> Any:
        seen.put("echo", args)
        return tuple(args)

    @io.on("say")
    async def say(socket: Socket, *args: Any) -> None:
        socket.emit("said", *args)

    @io.on("burst")
    def burst(socket: Socket, n: int) -> None:
        seen.put("burst", n)

    @io.on("send_binary")
    async def send_binary(socket: Socket) -> None:
        socket.emit("binary", {"blob": BLOB, "list": [b"", {"deep": b"\xff" * 3}]}, b"\x00")

    return io, seen


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_single_transport(puppet: NodePuppet, serve: Serve, transport: str) -> None:
    io, seen = echo_server()
    url = await serve(io)
    c = await puppet.connect(url, transports=[transport])
    assert await c.next_event("welcome") == [{"transport": transport}]
    assert (await seen.get("connection")).transport == transport
    args = [1, "a", {"b": [None, True, 1.5]}, ["x"]]
    assert await c.emit_with_ack("echo", *args) == args
    await c.emit("say", "hi", {"n": 2})
    assert await c.next_event("said") == ["hi", {"n": 2}]
    assert await c.transport() == transport
    await c.disconnect()


async def test_polling_upgrades_to_websocket(puppet: NodePuppet, serve: Serve) -> None:
    io, seen = echo_server()
    url = await serve(io)
    c = await puppet.connect(url)  # default: polling first, then upgrade
    assert await c.next_event("welcome") == [{"transport": "polling"}]
    assert await c.wait_upgrade() == "websocket"
    assert await c.transport() == "websocket"
    socket = await seen.get("connection")
    assert await c.emit_with_ack("echo", "after upgrade") == ["after upgrade"]
    assert socket.transport == "websocket"
    await c.emit("say", 1)
    assert await c.next_event("said") == [1]
    await c.disconnect()


async def test_upgrade_disabled_stays_on_polling(puppet: NodePuppet, serve: Serve) -> None:
    io, _ = echo_server()
    url = await serve(io)
    c = await puppet.connect(url, upgrade=False)
    assert await c.emit_with_ack("echo", 1) == [1]
    assert await c.transport() == "polling"
    await c.disconnect()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_binary_both_directions(puppet: NodePuppet, serve: Serve, transport: str) -> None:
    io, seen = echo_server()
    url = await serve(io)
    c = await puppet.connect(url, transports=[transport])
    nested = {"blob": BLOB, "parts": [b"", b"\x00\x01", {"deeper": [b"\xfe" * 1000]}], "n": 7}
    assert await c.emit_with_ack("echo", nested, b"second") == [nested, b"second"]
    assert await seen.get("echo") == (nested, b"second")
    await c.emit("send_binary")
    assert await c.next_event("binary") == [
        {"blob": BLOB, "list": [b"", {"deep": b"\xff\xff\xff"}]},
        b"\x00",
    ]
    await c.disconnect()


async def test_polling_burst_arrives_complete_and_in_order(
    puppet: NodePuppet, serve: Serve
) -> None:
    io, seen = echo_server()
    url = await serve(io)
    c = await puppet.connect(url, transports=["polling"])
    # Emitted in one synchronous run: the client batches them into (at most two) POST bodies.
    await c.emit_many(("burst", [i]) for i in range(100))
    assert await c.emit_with_ack("echo", "done") == ["done"]
    assert [await seen.get("burst") for _ in range(100)] == list(range(100))
    await c.disconnect()


async def test_large_message_under_max_payload(puppet: NodePuppet, serve: Serve) -> None:
    io, _ = echo_server(max_payload=200_000)
    url = await serve(io)
    for transport in ("websocket", "polling"):
        c = await puppet.connect(url, transports=[transport])
        text = "x" * 150_000
        assert await c.emit_with_ack("echo", text) == [text]
        await c.disconnect()
