"""Events in both directions: handlers, acks by return value, emit_with_ack, middleware."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from server_fakes import FakeConn, settle, socket_of

from sockjet import AckTimeout
from sockjet.server.acks import ack_requested, ack_value, reply_args
from sockjet.server.server import Server
from sockjet.server.socket import Socket


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ({"ok": True}, '31[{"ok":true}]'),
        ((1, "two"), '31[1,"two"]'),
        (None, "31[]"),
        ([1, 2], "31[[1,2]]"),
    ],
)
async def test_flat_handler_return_value_answers_the_ack(value: Any, wire: str) -> None:
    io = Server()
    received: list[tuple[Socket, tuple[Any, ...]]] = []

    @io.on("ev")
    def handler(socket: Socket, *args: Any) -> Any:
        received.append((socket, args))
        return value

    conn = FakeConn(io)
    sid = conn.connect()
    conn.feed('21["ev",1,{"a":2}]')
    assert conn.take() == [wire]
    assert received == [(socket_of(io, sid), (1, {"a": 2}))]


async def test_no_ack_requested_sends_nothing() -> None:
    io = Server()
    io.on("ev", lambda socket: "ignored")
    conn = FakeConn(io)
    conn.connect()
    conn.feed('2["ev"]')
    assert conn.take() == []


async def test_async_socket_handler_answers_the_ack() -> None:
    io = Server()

    @io.on("connection")
    def connection(socket: Socket) -> None:
        @socket.on("add")
        async def add(a: int, b: int) -> int:
            await asyncio.sleep(0)
            return a + b

    conn = FakeConn(io)
    conn.connect()
    conn.feed('27["add",2,3]')
    await settle()
    assert conn.take() == ["37[5]"]


async def test_handlers_can_ask_whether_an_ack_was_requested() -> None:
    io = Server()
    seen: list[tuple[str, bool]] = []

    @io.on("plain")
    def plain(socket: Socket) -> None:
        seen.append(("plain", ack_requested()))

    @io.on("coro")
    async def coro(socket: Socket) -> None:
        await asyncio.sleep(0)  # still known after the handler's first await
        seen.append(("coro", ack_requested()))

    conn = FakeConn(io)
    conn.connect()
    conn.feed('2["plain"]', '21["plain"]', '2["coro"]', '22["coro"]')
    await settle()
    assert sorted(seen) == [("coro", False), ("coro", True), ("plain", False), ("plain", True)]
    assert sorted(conn.take()) == ["31[]", "32[]"]
    assert ack_requested() is False  # outside a handler, and nothing leaked out of dispatch


async def test_socket_handler_answers_before_flat_handler() -> None:
    io = Server()
    calls: list[str] = []

    @io.on("ev")
    def flat(socket: Socket) -> str:
        calls.append("flat")
        return "flat"

    @io.on("connection")
    def connection(socket: Socket) -> None:
        socket.on("ev", lambda: calls.append("own") or "own")

    conn = FakeConn(io)
    conn.connect()
    conn.feed('23["ev"]')
    assert conn.take() == ['33["own"]']
    assert calls == ["own", "flat"]


async def test_custom_namespace_ack_and_binary_ack() -> None:
    io = Server()
    io.of("/admin").on("blob", lambda socket, data: (data, b"\x00\x01"))
    conn = FakeConn(io)
    conn.connect("/admin")
    conn.feed('51-/admin,9["blob",{"_placeholder":true,"num":0}]', b"\xff")
    assert conn.take() == [
        '62-/admin,9[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
        b"\xff",
        b"\x00\x01",
    ]


async def test_binary_event_reaches_the_handler() -> None:
    io = Server()
    got: list[Any] = []
    io.on("upload", lambda socket, meta, blob: got.append((meta, blob)))
    conn = FakeConn(io)
    conn.connect()
    conn.feed('51-["upload",{"name":"f"},{"_placeholder":true,"num":0}]')
    assert got == [] and conn.client._decoder is not None  # waiting for the attachment
    conn.feed(b"\x01\x02\x03")
    assert got == [({"name": "f"}, b"\x01\x02\x03")]
    assert conn.client._decoder is None  # back to the shared decoder


async def test_numeric_event_names_and_odd_names_are_plain_keys() -> None:
    io = Server()
    got: list[str] = []
    io.on("42", lambda socket: got.append("42"))
    conn = FakeConn(io)
    conn.connect()
    conn.feed("2[42]", "2[42.0]", '2["__class__"]', '2["__init__",1]', '2["missing"]')
    assert got == ["42", "42"]
    assert conn.close_reason is None


async def test_handler_exceptions_are_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    io = Server()

    @io.on("sync")
    def sync_boom(socket: Socket) -> None:
        raise ValueError("sync boom")

    @io.on("async")
    async def async_boom(socket: Socket) -> None:
        raise ValueError("async boom")

    io.on("unserializable", lambda socket: object())
    io.on("ok", lambda socket: "fine")
    conn = FakeConn(io)
    conn.connect()
    with caplog.at_level(logging.ERROR, "sockjet.server"):
        conn.feed('20["sync"]', '21["async"]', '22["unserializable"]')
        await settle()
    assert "sync boom" in caplog.text and "async boom" in caplog.text
    assert "could not send the ack" in caplog.text
    conn.feed('23["ok"]')
    assert conn.take() == ['33["fine"]']
    assert conn.close_reason is None


async def test_emit_and_send() -> None:
    io = Server()
    conn = FakeConn(io)
    sid = conn.connect()
    socket = socket_of(io, sid)
    assert socket.emit("hello", "world", {"n": 1}) is True
    socket.send("msg")
    socket.emit("bin", b"\x01")
    assert conn.take() == [
        '2["hello","world",{"n":1}]',
        '2["message","msg"]',
        '51-["bin",{"_placeholder":true,"num":0}]',
        b"\x01",
    ]
    with pytest.raises(ValueError, match="reserved"):
        socket.emit("disconnect")


async def test_emit_in_custom_namespace_and_after_disconnect() -> None:
    io = Server()
    io.of("/chat")
    conn = FakeConn(io)
    sid = conn.connect("/chat")
    socket = socket_of(io, sid, "/chat")
    socket.emit("x")
    assert conn.take() == ['2/chat,["x"]']
    socket.disconnect()
    assert conn.take() == ["1/chat,"]
    assert socket.emit("x") is False
    assert conn.take() == []


async def test_volatile_emit_is_dropped_when_not_writable() -> None:
    io = Server()
    conn = FakeConn(io)
    socket = socket_of(io, conn.connect())
    conn.writable = False
    assert socket.volatile.emit("tick", 1) is False
    assert socket.emit("important") is True
    conn.writable = True
    assert socket.volatile.emit("tick", 2) is True
    assert socket.compress(False).emit("plain") is True
    assert conn.take() == ['2["important"]', '2["tick",2]', '2["plain"]']


async def test_emit_with_ack_returns_the_reply() -> None:
    io = Server()
    conn = FakeConn(io)
    socket = socket_of(io, conn.connect())
    single = asyncio.ensure_future(socket.timeout(1).emit_with_ack("q", 1))
    several = asyncio.ensure_future(socket.emit_with_ack("q", 2))
    none = asyncio.ensure_future(socket.emit_with_ack("q", 3))
    await settle()
    assert conn.take() == ['20["q",1]', '21["q",2]', '22["q",3]']
    assert socket.pending_acks == 3
    conn.feed('31["a","b"]', '30["answer"]', "32[]")
    assert await single == "answer"
    assert await several == ("a", "b")
    assert await none is None
    assert socket.pending_acks == 0 and socket._acks is None


async def test_emit_with_ack_binary_reply() -> None:
    io = Server()
    conn = FakeConn(io)
    socket = socket_of(io, conn.connect())
    pending = asyncio.ensure_future(socket.emit_with_ack("file"))
    await settle()
    conn.take()
    conn.feed('61-0[{"_placeholder":true,"num":0}]', b"\x09")
    assert await pending == b"\x09"


async def test_emit_with_ack_times_out_and_forgets_the_ack() -> None:
    io = Server()
    conn = FakeConn(io)
    socket = socket_of(io, conn.connect())
    with pytest.raises(AckTimeout):
        await socket.timeout(0.01).emit_with_ack("q")
    assert socket.pending_acks == 0
    conn.feed("30[1]")  # a late ack for a forgotten id is ignored
    conn.feed("399[1]")  # so is an ack nobody asked for
    assert conn.close_reason is None


async def test_emit_with_ack_fails_on_disconnect_and_when_disconnected() -> None:
    io = Server()
    conn = FakeConn(io)
    socket = socket_of(io, conn.connect())
    pending = asyncio.ensure_future(socket.emit_with_ack("q"))
    await settle()
    conn.drop("transport close")
    with pytest.raises(AckTimeout, match="disconnected"):
        await pending
    with pytest.raises(AckTimeout, match="not connected"):
        await socket.emit_with_ack("q")


async def test_volatile_emit_with_ack_dropped_fails_at_once() -> None:
    io = Server()
    conn = FakeConn(io)
    socket = socket_of(io, conn.connect())
    conn.writable = False
    with pytest.raises(AckTimeout, match="dropped"):
        await socket.volatile.timeout(5).emit_with_ack("q")
    assert socket.pending_acks == 0


async def test_ack_ids_are_monotonic_per_namespace() -> None:
    io = Server()
    conn = FakeConn(io)
    socket = socket_of(io, conn.connect())
    tasks = [asyncio.ensure_future(socket.timeout(1).emit_with_ack("q")) for _ in range(3)]
    await settle()
    assert conn.take() == ['20["q"]', '21["q"]', '22["q"]']
    conn.feed("30[]", "31[]", "32[]")
    await asyncio.gather(*tasks)


async def test_on_any_and_on_any_outgoing() -> None:
    io = Server()
    incoming: list[tuple[Any, ...]] = []
    outgoing: list[tuple[Any, ...]] = []
    conn = FakeConn(io)
    socket = socket_of(io, conn.connect())
    socket.on_any(lambda event, *args: incoming.append((event, *args)))
    socket.on_any_outgoing(lambda event, *args: outgoing.append((event, *args)))
    conn.feed('2["a",1]', '25["b"]')
    socket.emit("c", 2)
    assert incoming == [("a", 1), ("b",)]
    assert outgoing == [("c", 2)]
    socket.off_any()
    socket.off_any_outgoing()
    conn.feed('2["a"]')
    socket.emit("c")
    assert len(incoming) == 2 and len(outgoing) == 1


async def test_packet_middleware_can_change_and_refuse_events() -> None:
    io = Server()
    got: list[tuple[Any, ...]] = []
    errors: list[Exception] = []
    io.on("ev", lambda socket, *args: got.append(args) or "done")
    conn = FakeConn(io)
    socket = socket_of(io, conn.connect())

    @socket.use
    def upper(event: str, args: list[Any]) -> None:
        args[:] = [str(a).upper() for a in args]

    @socket.use
    async def guard(event: str, args: list[Any]) -> None:
        await asyncio.sleep(0)
        if "FORBIDDEN" in args:
            raise PermissionError("forbidden")

    socket.on("error", errors.append)
    conn.feed('21["ev","x"]', '22["ev","forbidden"]')
    await settle()
    assert got == [("X",)]
    assert conn.take() == ['31["done"]']
    assert len(errors) == 1 and isinstance(errors[0], PermissionError)


async def test_packet_middleware_error_without_handler_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    io = Server()
    conn = FakeConn(io)
    socket = socket_of(io, conn.connect())
    socket.use(lambda event, args: 1 / 0)
    with caplog.at_level(logging.WARNING, "sockjet.server"):
        conn.feed('2["ev"]')
    assert "ZeroDivisionError" in caplog.text
    assert conn.close_reason is None


async def test_socket_on_off_and_reserved_names() -> None:
    io = Server()
    conn = FakeConn(io)
    socket = socket_of(io, conn.connect())
    calls: list[int] = []

    def first(*args: Any) -> None:
        calls.append(1)

    @socket.on("ev")
    def second(*args: Any) -> None:
        calls.append(2)

    socket.on("ev", first)
    assert socket.listeners("ev") == [second, first]
    socket.off("ev", second)
    conn.feed('2["ev"]')
    assert calls == [1]
    socket.off("ev")
    conn.feed('2["ev"]')
    assert calls == [1] and socket.listeners("ev") == []
    with pytest.raises(ValueError, match="reserved"):
        socket.on("connect", first)
    with pytest.raises(ValueError, match="reserved"):
        io.on("connect_error", first)
    socket.on("disconnect", first)
    assert socket.listeners("disconnect") == [first]
    socket.off("disconnect")
    socket.off("never-registered")


async def test_namespace_off_removes_flat_handlers() -> None:
    io = Server()
    calls: list[str] = []

    def handler(socket: Socket) -> None:
        calls.append("h")

    io.on("ev", handler)
    conn = FakeConn(io)
    conn.connect()
    io.off("ev", handler)
    conn.feed('2["ev"]')
    assert calls == []
    io.on("connection", handler)
    io.off("connection")
    conn2 = FakeConn(io)
    conn2.connect()
    assert calls == []


def test_ack_value_mapping_round_trips() -> None:
    for value in (None, 1, "x", (1, 2), [1, 2], {"a": 1}):
        assert ack_value(reply_args(value)) == value
