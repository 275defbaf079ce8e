"""Server options, adapters' lifecycle, serve/run, the package exports."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any, ClassVar

import pytest
from server_fakes import FakeConn, settle, socket_of

import sockjet
from sockjet.adapters.memory import MemoryAdapter
from sockjet.engine.cookie import SessionCookie
from sockjet.engine.server import EngineServer
from sockjet.protocol.socketio import JSON_SERIALIZER, Packet
from sockjet.server.namespace import Namespace
from sockjet.server.server import Server


def test_options_reach_the_engine() -> None:
    io = Server(
        cors_origins=["http://localhost:5173"],
        cors_credentials=True,
        ping_interval=5,
        ping_timeout=4,
        max_payload=1234,
        path="/rt",
        transports=("websocket",),
    )
    engine = io.engine
    assert isinstance(engine, EngineServer)
    assert engine.path == "/rt/" and engine.ping_interval == 5 and engine.ping_timeout == 4
    assert engine.max_payload == 1234 and engine.transports == ("websocket",)
    assert engine.cors is not None and engine.cors.credentials is True
    assert list(engine.cors.origins) == ["http://localhost:5173"]
    assert Server().engine.cors is None  # CORS closed by default


def test_invalid_handler_limit() -> None:
    with pytest.raises(ValueError, match="max_concurrent_handlers"):
        Server(max_concurrent_handlers=0)


async def test_custom_serializer_object_uses_the_generic_encoder() -> None:
    class Spy:
        name = "spy"

        def __init__(self) -> None:
            self.encoded: list[Packet] = []

        def encode(self, packet: Packet) -> list[str | bytes]:
            self.encoded.append(packet)
            return JSON_SERIALIZER.encode(packet)

        def decoder(self, limits: Any = None) -> Any:
            return JSON_SERIALIZER.decoder()

    spy = Spy()
    io = Server(serializer=spy)
    conn = FakeConn(io)
    socket_of(io, conn.connect()).emit("ev", 1)
    assert [p.data for p in spy.encoded][-1] == ["ev", 1]
    assert conn.take() == ['2["ev",1]']


class TrackingAdapter(MemoryAdapter):
    events: ClassVar[list[str]] = []

    async def init(self) -> None:  # type: ignore[override]
        TrackingAdapter.events.append(f"init {self.nsp.name}")

    async def close(self) -> None:  # type: ignore[override]
        TrackingAdapter.events.append(f"close {self.nsp.name}")


def test_adapters_start_once_the_loop_runs() -> None:
    TrackingAdapter.events = []
    io = Server(adapter=TrackingAdapter)  # no loop yet: started on the first connection
    io.of("/b")
    assert TrackingAdapter.events == []

    async def main() -> None:
        FakeConn(io)
        await settle()
        assert TrackingAdapter.events == ["init /", "init /b"]
        io.of("/c")  # created while running: started at once
        await settle()
        assert TrackingAdapter.events[-1] == "init /c"
        await io.close()

    asyncio.run(main())
    assert sorted(e for e in TrackingAdapter.events if e.startswith("close")) == [
        "close /",
        "close /b",
        "close /c",
    ]


async def test_failing_adapters_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(MemoryAdapter):
        def init(self) -> None:
            raise RuntimeError("init failed")

        def close(self) -> None:
            raise RuntimeError("close failed")

    class BrokenAsync(MemoryAdapter):
        async def init(self) -> None:  # type: ignore[override]
            raise RuntimeError("async init failed")

    with caplog.at_level(logging.ERROR, "sockjet"):
        io = Server(adapter=Broken)
        await io.close()
        io2 = Server(adapter=BrokenAsync)
        await settle()
        await io2.close()
    assert "init failed" in caplog.text and "close failed" in caplog.text
    assert "async init failed" in caplog.text


async def test_dynamic_child_cleanup_closes_its_adapter_and_can_be_disabled() -> None:
    TrackingAdapter.events = []
    io = Server(adapter=TrackingAdapter)
    io.of(lambda name, auth: True)
    conn = FakeConn(io)
    sid = conn.connect("/x")
    socket_of(io, sid, "/x").disconnect()
    await settle()
    assert "close /x" in TrackingAdapter.events
    keep = Server(cleanup_empty_child_namespaces=False)
    keep.of(lambda name, auth: True)
    conn = FakeConn(keep)
    sid = conn.connect("/y")
    socket_of(keep, sid, "/y").disconnect()
    assert conn.take() == ["1/y,"]
    assert "/y" in keep.namespaces
    conn.connect("/y")  # the kept child is reused


async def test_async_matcher_failure_then_next_matcher(caplog: pytest.LogCaptureFixture) -> None:
    io = Server()

    async def broken(name: str, auth: dict[str, Any]) -> bool:
        raise RuntimeError("matcher bug")

    async def refuses(name: str, auth: dict[str, Any]) -> bool:
        return False

    def sync_accepts(name: str, auth: dict[str, Any]) -> bool:
        return True

    def sync_breaks(name: str, auth: dict[str, Any]) -> bool:
        raise RuntimeError("sync matcher bug")

    io.of(broken)
    io.of(refuses)
    io.of(sync_breaks)
    io.of(sync_accepts)
    conn = FakeConn(io)
    with caplog.at_level(logging.ERROR, "sockjet.server"):
        conn.feed("0/z,")
        await settle()
    (reply,) = conn.take()
    assert isinstance(reply, str) and reply.startswith('0/z,{"sid"')
    assert "matcher bug" in caplog.text and "sync matcher bug" in caplog.text


async def test_client_gone_while_an_async_matcher_runs() -> None:
    io = Server()
    release = asyncio.Event()

    async def slow(name: str, auth: dict[str, Any]) -> bool:
        await release.wait()
        return True

    dyn = io.of(slow)
    conn = FakeConn(io)
    conn.feed("0/late,")
    await settle()
    conn.drop("transport close")
    release.set()
    await settle()
    assert "/late" not in io.namespaces and not dyn.children  # type: ignore[attr-defined]
    assert conn.take() == []


async def test_server_facade_delegates_to_the_main_namespace() -> None:
    io = Server()
    assert isinstance(io.sockets, Namespace) and io.of("/") is io.sockets
    conn = FakeConn(io)
    socket = socket_of(io, conn.connect())
    socket.join("r")
    io.send("hi")
    io.volatile.emit("v")
    io.except_("r").emit("never")
    assert conn.take() == ['2["message","hi"]', '2["v"]']
    assert [s.id for s in await io.fetch_sockets()] == [socket.id]
    pending = asyncio.ensure_future(io.emit_with_ack("q"))
    await settle()
    conn.take()
    conn.feed("30[1]")
    assert await pending == [1]


async def test_serve_with_the_native_server() -> None:
    io = Server()
    server = await io.serve("127.0.0.1", 0)
    try:
        assert server.port > 0
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        writer.close()
        await writer.wait_closed()
    finally:
        await io.close()
        await server.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_serves_until_a_signal_then_closes_gracefully(
    monkeypatch: pytest.MonkeyPatch, signum: signal.Signals
) -> None:
    io = Server()
    calls: list[Any] = []

    class FakeNative:
        async def close(self) -> None:
            # the Socket.IO server closed first: sockets saw "server shutting down"
            calls.append(("closed", io.engine.closed))

    async def fake_serve(host: str, port: int, **options: Any) -> FakeNative:
        calls.append((host, port, options))
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signum)
        return FakeNative()

    monkeypatch.setattr(io, "serve", fake_serve)
    io.run("0.0.0.0", 8080, static_dir="web")
    assert calls == [("0.0.0.0", 8080, {"static_dir": "web"}), ("closed", True)]


def test_run_stops_quietly_on_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    io = Server()

    async def interrupted(host: str, port: int, **options: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(io, "serve", interrupted)
    io.run()


def test_package_exports() -> None:
    assert sockjet.Server is Server
    assert sockjet.Socket.__name__ == "Socket"
    for name in sockjet.__all__:
        assert getattr(sockjet, name) is not None
    with pytest.raises(AttributeError):
        sockjet.nothing  # noqa: B018


async def test_start_starts_the_adapters_once() -> None:
    started: list[str] = []

    class Adapter(MemoryAdapter):
        async def init(self) -> None:
            started.append(self.nsp.name)

    io = Server(adapter=Adapter)
    io.start()
    io.start()  # idempotent
    await asyncio.sleep(0)
    assert started == ["/"]
    await io.close()


def test_cookie_option_reaches_the_engine() -> None:
    assert Server().engine.cookie is None
    assert Server(cookie=True).engine.cookie == SessionCookie()
    custom = SessionCookie(name="lb", secure=True)
    assert Server(cookie=custom).engine.cookie is custom
