"""python-socketio's AsyncClient as a second, independent peer of sockjet's server."""

from __future__ import annotations

from typing import Any

import pytest
import socketio  # type: ignore[import-untyped]  # no stubs
from peers import NodePuppet, Recorder, Serve
from psio_peers import psio_client

from sockjet import Server, Socket

pytestmark = pytest.mark.asyncio(loop_scope="module")


def app(seen: Recorder) -> Server:
    io = Server()
    admin = io.of("/admin")

    @io.on("connection")
    def on_connection(socket: Socket) -> None:
        seen.put("connection", socket)
        socket.emit("welcome", socket.id)

    @io.on("disconnect")
    def on_disconnect(socket: Socket, reason: str) -> None:
        seen.put("disconnect", reason)

    @io.on("echo")
    def echo(socket: Socket, *args: Any) -> Any:
        return tuple(args)

    @io.on("shout")
    def shout(socket: Socket, text: str) -> None:
        io.emit("shouted", text)

    @io.on("ask")
    async def ask(socket: Socket, *args: Any) -> None:
        seen.put("answer", await socket.timeout(2).emit_with_ack("question", *args))

    @admin.on("connection")
    def on_admin(socket: Socket) -> None:
        socket.emit("welcome", "admin")

    @admin.on("echo")
    def admin_echo(socket: Socket, *args: Any) -> Any:
        return ("admin", *args)

    @admin.on("disconnect")
    def on_admin_disconnect(socket: Socket, reason: str) -> None:
        seen.put("admin disconnect", reason)

    return io


def record(client: socketio.AsyncClient, seen: Recorder, event: str, namespace: str = "/") -> None:
    """Record each ``event`` the client receives as ``"<namespace> <event>"``."""

    def handler(*args: Any) -> None:
        seen.put(f"{namespace} {event}", args)

    client.on(event, handler, namespace=namespace)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_python_socketio_basics(serve: Serve, transport: str) -> None:
    seen = Recorder()
    url = await serve(app(seen))
    got = Recorder()

    def setup(sio: socketio.AsyncClient) -> None:
        record(sio, got, "welcome")
        record(sio, got, "welcome", "/admin")
        record(sio, got, "shouted")

        def question(*args: Any) -> Any:
            return ("answer", *args)

        sio.on("question", question)

    async with psio_client(url, transport, namespaces=["/", "/admin"], setup=setup) as sio:
        socket = await seen.get("connection")
        assert await got.get("/ welcome") == (socket.id,)
        assert await got.get("/admin welcome") == ("admin",)
        assert socket.transport == transport
        assert await sio.call("echo", {"a": [1, None]}, timeout=5) == {"a": [1, None]}
        assert await sio.call("echo", (1, 2), timeout=5) == (1, 2)  # a tuple: several args
        assert await sio.call("echo", 1, namespace="/admin", timeout=5) == ("admin", 1)
        blob = {"bytes": b"\x00\xff" * 50, "nested": [b"\x01", {"b": b""}]}
        assert await sio.call("echo", blob, timeout=5) == blob
        await sio.emit("shout", "hey")
        assert await got.get("/ shouted") == ("hey",)
        await sio.emit("ask", (7, b"\x02"))
        assert await seen.get("answer") == ("answer", 7, b"\x02")
    # python-socketio sends DISCONNECT for each namespace, then closes the engine at once:
    # Node's server reports "transport close" for that, either reason is right.
    expected = {"client namespace disconnect", "transport close"}
    assert await seen.get("disconnect") in expected
    assert await seen.get("admin disconnect") in expected


@pytest.mark.node
async def test_broadcast_reaches_both_stacks(puppet: NodePuppet, serve: Serve) -> None:
    seen = Recorder()
    url = await serve(app(seen))
    got = Recorder()
    official = await puppet.connect(url, transports=["websocket"])

    def setup(sio: socketio.AsyncClient) -> None:
        record(sio, got, "shouted")

    async with psio_client(url, "polling", setup=setup) as sio:
        await sio.emit("shout", "from python")
        assert await got.get("/ shouted") == ("from python",)
        assert await official.next_event("shouted") == ["from python"]
        await official.emit("shout", {"from": "node", "bin": b"\x03"})
        assert await got.get("/ shouted") == ({"from": "node", "bin": b"\x03"},)
        assert await official.next_event("shouted") == [{"from": "node", "bin": b"\x03"}]
    await official.disconnect()
