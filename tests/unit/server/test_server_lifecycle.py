"""Rooms, disconnections and their reasons, protocol violations, limits, shutdown, leftovers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from server_fakes import FakeConn, settle, socket_of

from sockjet.adapters.memory import MemoryAdapter
from sockjet.server.server import Server
from sockjet.server.socket import Socket


def adapter(io: Server, nsp: str = "/") -> MemoryAdapter:
    result = io.of(nsp).adapter
    assert isinstance(result, MemoryAdapter)
    return result


def record(io: Server, nsp: str = "/") -> list[tuple[str, str, set[str]]]:
    """Record (event, reason, rooms) of the flat disconnecting/disconnect handlers."""
    events: list[tuple[str, str, set[str]]] = []
    namespace = io.of(nsp)
    namespace.on("disconnecting", lambda s, r: events.append(("disconnecting", r, s.rooms)))
    namespace.on("disconnect", lambda s, r: events.append(("disconnect", r, s.rooms)))
    return events


async def test_join_leave_and_rooms() -> None:
    io = Server()
    conn = FakeConn(io)
    socket = socket_of(io, conn.connect())
    socket.join("a")
    socket.join(["b", "c"])
    socket.join({"d"})
    assert socket.rooms == {socket.id, "a", "b", "c", "d"}
    socket.leave("b")
    socket.leave("not-joined")
    assert socket.rooms == {socket.id, "a", "c", "d"}
    assert adapter(io).rooms["a"] == {socket.id}
    assert "b" not in adapter(io).rooms  # emptied rooms are deleted


async def test_disconnecting_sees_rooms_and_everything_is_left_after() -> None:
    io = Server()
    events = record(io)
    conn = FakeConn(io)
    socket = socket_of(io, conn.connect())
    socket.join(["x", "y"])
    conn.feed("1")
    expected_rooms = {socket.id, "x", "y"}
    assert events == [
        ("disconnecting", "client namespace disconnect", expected_rooms),
        ("disconnect", "client namespace disconnect", expected_rooms),
    ]
    assert not socket.connected and socket.disconnected
    assert adapter(io).rooms == {} and adapter(io).sids == {}
    assert io.sockets.sockets == {} and conn.client.sockets == {}
    socket.join("late")  # joining after the disconnection does nothing
    assert adapter(io).rooms == {}
    socket.leave("x")
    assert conn.close_reason is None  # the connection itself stays open


async def test_socket_lifecycle_handlers_and_async_disconnect_sees_rooms() -> None:
    io = Server()
    seen: list[Any] = []
    done = asyncio.Event()

    @io.on("connection")
    def connection(socket: Socket) -> None:
        socket.join("room")

        @socket.on("disconnecting")
        async def disconnecting(reason: str) -> None:
            await asyncio.sleep(0)
            seen.append(("disconnecting", reason, socket.rooms))

        @socket.on("disconnect")
        async def disconnect(reason: str) -> None:
            await asyncio.sleep(0)
            seen.append(("disconnect", reason, socket.connected))
            done.set()

    conn = FakeConn(io)
    sid = conn.connect()
    socket_of(io, sid).disconnect()
    await asyncio.wait_for(done.wait(), 1)
    assert seen == [
        ("disconnecting", "server namespace disconnect", {sid, "room"}),
        ("disconnect", "server namespace disconnect", False),
    ]


async def test_server_namespace_disconnect_sends_disconnect_packet() -> None:
    io = Server()
    io.of("/admin")
    events = record(io, "/admin")
    conn = FakeConn(io)
    socket = socket_of(io, conn.connect("/admin"), "/admin")
    socket.disconnect()
    socket.disconnect()  # idempotent
    assert conn.take() == ["1/admin,"]
    assert [e[:2] for e in events] == [
        ("disconnecting", "server namespace disconnect"),
        ("disconnect", "server namespace disconnect"),
    ]
    assert conn.close_reason is None


async def test_disconnect_close_closes_every_namespace_and_the_connection() -> None:
    io = Server()
    io.of("/b")
    main_events = record(io)
    b_events = record(io, "/b")
    conn = FakeConn(io)
    main = socket_of(io, conn.connect())
    conn.connect("/b")
    main.disconnect(close=True)
    assert sorted(conn.take()) == ["1", "1/b,"]
    assert conn.close_reason == "forced server close"
    assert main_events[-1][:2] == ("disconnect", "server namespace disconnect")
    assert b_events[-1][:2] == ("disconnect", "server namespace disconnect")


@pytest.mark.parametrize(
    "reason",
    ["transport close", "transport error", "ping timeout", "forced close", "forced server close"],
)
async def test_engine_close_reasons_reach_every_socket(reason: str) -> None:
    io = Server()
    io.of("/b")
    main_events, b_events = record(io), record(io, "/b")
    conn = FakeConn(io)
    conn.connect()
    conn.connect("/b")
    conn.drop(reason)
    assert [e[:2] for e in main_events] == [("disconnecting", reason), ("disconnect", reason)]
    assert [e[:2] for e in b_events] == [("disconnecting", reason), ("disconnect", reason)]
    assert conn.client.sockets == {} and conn.client.closed


@pytest.mark.parametrize(
    "bad",
    [
        "garbage",
        "9",
        '2["connect"]',  # reserved names never reach handlers: refused by the parser
        '2["disconnect"]',
        '2{"not":"an array"}',
        "3",  # an ACK without payload
        '2/other,["ev"]',  # a namespace the client has not joined
        "1/other,",
        '4{"message":"clients do not send this"}',
        "0",  # a second CONNECT to a joined namespace
        b"\x00",  # an attachment nobody announced
    ],
)
async def test_protocol_violations_close_with_parse_error(bad: str | bytes) -> None:
    io = Server()
    events = record(io)
    conn = FakeConn(io)
    conn.connect()
    conn.feed(bad)
    assert conn.close_reason == "parse error"
    assert [e[:2] for e in events] == [
        ("disconnecting", "parse error"),
        ("disconnect", "parse error"),
    ]
    conn.feed('2["after"]')  # ignored once closed
    assert conn.client._decoder is None


async def test_text_while_attachments_are_due_is_a_violation() -> None:
    io = Server()
    conn = FakeConn(io)
    conn.connect()
    conn.feed('51-["ev",{"_placeholder":true,"num":0}]', '2["ev"]')
    assert conn.close_reason == "parse error"
    # the shared decoder handed to the next client is clean
    other = FakeConn(io)
    other.connect()
    assert other.close_reason is None


async def test_packet_before_connect_is_a_violation() -> None:
    io = Server()
    conn = FakeConn(io)
    conn.feed('2["ev"]')
    assert conn.close_reason == "parse error"


async def test_packet_during_connection_middleware_is_a_violation() -> None:
    io = Server()
    release = asyncio.Event()

    @io.use
    async def slow(socket: Socket) -> None:
        await release.wait()

    conn = FakeConn(io)
    conn.feed("0")
    await settle()
    conn.feed("0")  # a second CONNECT while the first is pending
    assert conn.close_reason == "parse error"
    release.set()
    await settle()
    assert io.sockets.sockets == {} and adapter(io).rooms == {}


async def test_decoder_bug_only_costs_the_connection(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    io = Server()
    conn = FakeConn(io)
    conn.connect()

    class Broken:
        def feed(self, data: str | bytes) -> None:
            raise RuntimeError("decoder bug")

    monkeypatch.setattr(io, "_decoder", Broken())
    with caplog.at_level(logging.ERROR, "sockjet.server"):
        conn.feed('2["x"]')
    assert conn.close_reason == "parse error"
    assert "decoder bug" in caplog.text


async def test_slow_handlers_bound_the_work_per_connection() -> None:
    io = Server(max_concurrent_handlers=2)
    release = asyncio.Event()
    started: list[int] = []

    @io.on("slow")
    async def slow(socket: Socket, n: int) -> int:
        started.append(n)
        await release.wait()
        return n

    conn = FakeConn(io)
    conn.connect()
    for n in range(4):  # 2 run, 2 wait in the backlog
        conn.feed(f'2{n}["slow",{n}]')
    await settle()
    assert started == [0, 1]
    assert conn.close_reason is None
    conn.feed("3[1]")  # acks are never held back
    release.set()
    await settle(20)
    assert started == [0, 1, 2, 3]
    assert sorted(conn.take()) == ["30[0]", "31[1]", "32[2]", "33[3]"]
    assert conn.client._backlog is None and conn.client._running == 0


async def test_a_flood_to_a_slow_handler_pauses_reading_and_loses_nothing() -> None:
    io = Server(max_concurrent_handlers=2)
    release = asyncio.Event()
    handled: list[int] = []

    @io.on("slow")
    async def slow(socket: Socket, n: int) -> int:
        await release.wait()
        handled.append(n)
        return n

    conn = FakeConn(io)
    other = FakeConn(io)
    other.connect()
    conn.connect()
    for n in range(3):  # 2 run, 1 waits
        conn.feed(f'2{n}["slow",{n}]')
    assert not conn.paused
    conn.feed('23["slow",3]')  # the backlog holds 2 (the handler limit): stop reading
    assert conn.paused and conn.close_reason is None
    for n in range(4, 10):  # what was already read still arrives: it is kept, in order
        conn.feed(f'2{n}["slow",{n}]')
    assert other.close_reason is None and not other.paused
    release.set()
    await settle(40)
    assert handled == list(range(10))
    assert not conn.paused and conn.pauses == 1
    assert sorted(conn.take()) == sorted(f"3{n}[{n}]" for n in range(10))
    assert io.running_tasks == 0


async def test_reading_resumes_only_once_the_backlog_is_down_to_half() -> None:
    io = Server(max_concurrent_handlers=4)
    gates = [asyncio.Event() for _ in range(12)]

    @io.on("slow")
    async def slow(socket: Socket, n: int) -> None:
        await gates[n].wait()

    conn = FakeConn(io)
    conn.connect()
    for n in range(8):  # 4 run, 4 wait: the backlog is full
        conn.feed(f'2["slow",{n}]')
    assert conn.paused
    gates[0].set()  # one ends: 3 wait, over half of 4
    await settle()
    assert conn.paused
    gates[1].set()  # 2 wait: half
    await settle()
    assert not conn.paused
    for gate in gates:
        gate.set()
    await settle(20)


async def test_backlog_is_bounded_in_bytes_too() -> None:
    io = Server(max_concurrent_handlers=1, max_buffered_bytes=100)
    release = asyncio.Event()
    seen: list[int] = []

    @io.on("slow")
    async def slow(socket: Socket, data: str) -> None:
        await release.wait()
        seen.append(len(data))

    conn = FakeConn(io)
    conn.connect()
    conn.feed('2["slow","x"]')
    assert not conn.paused
    conn.feed('2["slow","' + "y" * 200 + '"]')  # one event, 200 bytes: over the byte bound
    assert conn.paused and conn.close_reason is None
    release.set()
    await settle()
    assert seen == [1, 200] and not conn.paused


async def test_a_handler_awaiting_its_clients_ack_lets_later_events_run() -> None:
    # The ack may be behind events the client sent first: a handler waiting for it must not
    # keep them (and the ack) from being read.
    io = Server(max_concurrent_handlers=1)
    order: list[str] = []

    @io.on("ask")
    async def ask(socket: Socket) -> None:
        order.append("ask")
        order.append(f"answer {await socket.timeout(2).emit_with_ack('question')}")

    @io.on("other")
    async def other(socket: Socket, n: int) -> None:
        order.append(f"other {n}")

    conn = FakeConn(io)
    conn.connect()
    conn.feed('2["ask"]')
    await settle()
    question = conn.take()
    assert question and question[0].startswith("2")
    ack_id = int(question[0][1 : question[0].index("[")])
    conn.feed('2["other",1]', '2["other",2]')  # sent by the client before its answer
    await settle()
    assert order == ["ask", "other 1", "other 2"] and not conn.paused
    conn.feed(f'3{ack_id}["yes"]')
    await settle()
    assert order[-1] == "answer yes"
    assert conn.client._running == 0 and conn.client._lent == 0


async def test_disconnect_drops_backlogged_events() -> None:
    io = Server(max_concurrent_handlers=1)
    release = asyncio.Event()
    calls: list[str] = []

    @io.on("slow")
    async def slow(socket: Socket) -> None:
        calls.append("slow")
        await release.wait()

    io.on("quick", lambda socket: calls.append("quick"))
    conn = FakeConn(io)
    conn.connect()
    conn.feed('2["slow"]', '2["quick"]', "1")
    release.set()
    await settle()
    assert calls == ["slow"]


async def test_close_disconnects_everyone_and_is_idempotent() -> None:
    io = Server()
    io.of("/b")
    events = record(io)
    b_events = record(io, "/b")
    conns = [FakeConn(io) for _ in range(3)]
    for conn in conns:
        conn.connect()
    conns[0].connect("/b")
    pending_client = FakeConn(io)  # joined nothing yet
    finished = asyncio.Event()

    @io.on("work")
    async def work(socket: Socket) -> None:
        await asyncio.sleep(0)
        finished.set()

    conns[1].feed('2["work"]')
    await io.close()
    await io.close()
    assert [e[1] for e in events if e[0] == "disconnect"] == ["server shutting down"] * 3
    assert [e[1] for e in b_events] == ["server shutting down"] * 2
    assert finished.is_set()
    assert io.engine.closed
    assert io.sockets.sockets == {} and adapter(io).rooms == {}
    assert pending_client.client.sockets == {}
    assert io.running_tasks == 0


async def test_close_cancels_handlers_after_the_grace_period() -> None:
    io = Server()
    cancelled = asyncio.Event()

    @io.on("forever")
    async def forever(socket: Socket) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    conn = FakeConn(io)
    conn.connect()
    conn.feed('2["forever"]')
    await settle()
    await io.close(grace=0.01)
    assert cancelled.is_set() and io.running_tasks == 0


async def test_close_from_inside_a_handler() -> None:
    io = Server()
    closed = asyncio.Event()

    @io.on("shutdown")
    async def shutdown(socket: Socket) -> None:
        await io.close()
        closed.set()

    conn = FakeConn(io)
    conn.connect()
    conn.feed('2["shutdown"]')
    await asyncio.wait_for(closed.wait(), 1)


async def test_nothing_is_left_after_everyone_leaves() -> None:
    io = Server()
    io.of("/b")

    @io.on("connection")
    def connection(socket: Socket) -> None:
        socket.join(["lobby", f"user:{socket.id}"])

    conns = [FakeConn(io) for _ in range(10)]
    sockets = []
    for conn in conns:
        sockets.append(socket_of(io, conn.connect()))
        conn.connect("/b")
    pending = [asyncio.ensure_future(s.emit_with_ack("q")) for s in sockets[:5]]
    broadcast = asyncio.ensure_future(io.timeout(5).emit_with_ack("poll"))
    await settle()
    for index, conn in enumerate(conns):
        if index % 2:
            conn.feed("1", "1/b,")
        conn.drop("transport close")
    results = await asyncio.gather(*pending, return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results)
    assert await broadcast == []
    for nsp in ("/", "/b"):
        assert adapter(io, nsp).rooms == {} and adapter(io, nsp).sids == {}
        assert io.of(nsp).sockets == {}
    assert all(s.pending_acks == 0 for s in sockets)
    assert io.running_tasks == 0
    assert all(conn.client.sockets == {} and conn.client._connect_timer is None for conn in conns)


async def test_repr_and_properties() -> None:
    io = Server()
    conn = FakeConn(io)
    socket = socket_of(io, conn.connect())
    assert socket.server is io and socket.adapter is io.sockets.adapter
    assert socket.id in repr(socket) and "Namespace('/'" in repr(io.sockets)
    assert conn.client.id == conn.sid and conn.client.request is conn.request
    assert conn.sid in repr(conn.client)
    socket.data = {"a": 1}
    assert socket.data == {"a": 1}
