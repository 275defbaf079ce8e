"""Connection state recovery through the server: pid in CONNECT, offsets, sessions restored."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
import pytest
from server_fakes import FakeConn, settle, socket_of

from sockjet.engine.io import Outgoing
from sockjet.errors import ConnectionRefused
from sockjet.server.recovery import ConnectionStateRecovery
from sockjet.server.server import Server
from sockjet.server.socket import Socket


def connect(conn: FakeConn, auth: Any = None) -> dict[str, Any]:
    """Send CONNECT; return the reply's data ({sid, pid})."""
    conn.feed("0" + (orjson.dumps(auth).decode() if auth is not None else ""))
    reply, *rest = conn.take()
    assert isinstance(reply, str) and reply.startswith("0"), reply
    conn.sent[:0] = [Outgoing.message(r) for r in rest]  # the missed packets that followed
    data: dict[str, Any] = orjson.loads(reply[1:])
    return data


def events(conn: FakeConn) -> list[list[Any]]:
    out = []
    for payload in conn.take():
        assert isinstance(payload, str) and payload.startswith("2"), payload
        out.append(orjson.loads(payload[1:]))
    return out


def recovering_server(**options: Any) -> tuple[Server, list[Socket]]:
    io = Server(connection_state_recovery=ConnectionStateRecovery(**options))
    connected: list[Socket] = []
    io.on("connection", connected.append)
    return io, connected


async def test_without_recovery_connect_has_no_pid_and_packets_no_offset() -> None:
    io = Server()
    conn = FakeConn(io)
    assert set(connect(conn)) == {"sid"}
    io.emit("news", 1)
    assert events(conn) == [["news", 1]]


async def test_pid_and_offsets_then_a_recovery_with_what_was_missed() -> None:
    io, connected = recovering_server()
    conn = FakeConn(io)
    first = connect(conn)
    assert set(first) == {"sid", "pid"} and first["sid"] != first["pid"]
    socket = connected[0]
    assert socket.recovered is False
    socket.join("room")
    socket.data["user"] = "ann"

    io.emit("news", 1)
    socket.emit("direct", "a")
    [[_, _, offset], direct] = events(conn)  # the client's last offset: that of "news"
    assert direct[:2] == ["direct", "a"] and isinstance(direct[2], str)

    conn.drop("transport close")
    io.to("room").emit("missed", 2)  # while it is away
    io.to("elsewhere").emit("not-for-it", 3)
    socket.emit("direct", "b")  # the old socket object records for its successor
    socket.to("room").emit("excluded")  # its own broadcast excludes it, then as now

    conn2 = FakeConn(io)
    again = connect(conn2, {"pid": first["pid"], "offset": offset, "token": "t"})
    assert again == first  # same sid and pid
    missed = events(conn2)
    assert [m[:-1] for m in missed] == [["direct", "a"], ["missed", 2], ["direct", "b"]]
    recovered = socket_of(io, first["sid"])
    assert recovered is connected[1] and recovered.recovered
    assert recovered.rooms == {first["sid"], "room"}
    assert recovered.data == {"user": "ann"}
    assert recovered.handshake.auth["token"] == "t"

    io.to("room").emit("live", 4)
    assert [e[:-1] for e in events(conn2)] == [["live", 4]]


async def test_a_socket_that_got_nothing_yet_recovers_from_its_connection() -> None:
    io, _ = recovering_server()
    io.emit("before", 0)  # recorded before it connected: not missed
    conn = FakeConn(io)
    pid = connect(conn)["pid"]
    conn.drop("ping timeout")
    io.emit("after", 1)
    conn2 = FakeConn(io)
    connect(conn2, {"pid": pid})  # the official client sends no offset when it has none
    assert [e[:-1] for e in events(conn2)] == [["after", 1]]


async def test_a_slow_consumer_comes_back_for_what_it_missed() -> None:
    io, connected = recovering_server()
    conn = FakeConn(io)
    first = connect(conn)
    io.emit("queued", 1)
    conn.drop("slow consumer")
    io.emit("missed", 2)
    conn2 = FakeConn(io)
    again = connect(conn2, {"pid": first["pid"], "offset": events(conn)[-1][-1]})
    assert again["sid"] == first["sid"] and connected[-1].recovered is True
    assert [e[:-1] for e in events(conn2)] == [["missed", 2]]


@pytest.mark.parametrize("reason", ["client namespace disconnect", "parse error"])
async def test_deliberate_disconnections_are_not_recovered(reason: str) -> None:
    io, connected = recovering_server()
    conn = FakeConn(io)
    first = connect(conn)
    if reason == "client namespace disconnect":
        conn.feed("1")
    else:
        conn.drop(reason)
    conn2 = FakeConn(io)
    again = connect(conn2, {"pid": first["pid"]})
    assert again["sid"] != first["sid"] and again["pid"] != first["pid"]
    assert connected[-1].recovered is False


async def test_server_namespace_disconnect_is_not_recovered() -> None:
    io, connected = recovering_server()
    conn = FakeConn(io)
    first = connect(conn)
    connected[0].disconnect()
    assert connect(FakeConn(io), {"pid": first["pid"]})["sid"] != first["sid"]


async def test_a_session_is_restored_once() -> None:
    io, _ = recovering_server()
    conn = FakeConn(io)
    first = connect(conn)
    conn.drop("transport close")
    assert connect(FakeConn(io), {"pid": first["pid"]})["sid"] == first["sid"]
    assert connect(FakeConn(io), {"pid": first["pid"]})["sid"] != first["sid"]


@pytest.mark.parametrize(
    "auth",
    [{"pid": 7}, {"pid": "unknown"}, {"pid": None}, {"offset": "x"}, {"pid": "P", "offset": 3}],
)
async def test_bad_or_unknown_recovery_auth_gets_a_new_session(auth: dict[str, Any]) -> None:
    io, connected = recovering_server()
    conn = FakeConn(io)
    first = connect(conn)
    conn.drop("transport close")
    auth = {k: (first["pid"] if v == "P" else v) for k, v in auth.items()}
    again = connect(FakeConn(io), auth)
    assert again["sid"] != first["sid"]
    assert connected[-1].recovered is False


async def test_middlewares_are_skipped_for_a_recovered_socket_unless_asked() -> None:
    for skip in (True, False):
        io, connected = recovering_server(skip_middlewares=skip)
        calls: list[str] = []

        def middleware(socket: Socket, calls: list[str] = calls) -> None:
            calls.append(socket.id)
            if socket.recovered:
                raise ConnectionRefused("no recovery today")

        io.use(middleware)
        conn = FakeConn(io)
        first = connect(conn)
        conn.drop("transport close")
        conn2 = FakeConn(io)
        conn2.feed("0" + orjson.dumps({"pid": first["pid"]}).decode())
        reply = conn2.take()[0]
        if skip:
            assert calls == [first["sid"]]
            assert reply == "0" + orjson.dumps(first).decode()
        else:
            assert calls == [first["sid"], first["sid"]]
            assert reply == '4{"message":"no recovery today"}'
            assert len(connected) == 1


async def test_acks_and_volatile_packets_carry_no_offset() -> None:
    io, connected = recovering_server()
    conn = FakeConn(io)
    connect(conn)
    socket = connected[0]
    socket.volatile.emit("v", 1)
    io.volatile.emit("w", 2)
    assert events(conn) == [["v", 1], ["w", 2]]
    asking = socket.timeout(5).emit_with_ack("q")
    task = asyncio.ensure_future(asking)
    await settle()
    [payload] = conn.take()
    assert payload == '20["q"]'
    conn.feed('30["yes"]')
    assert await task == "yes"


async def test_a_disconnected_socket_emits_nothing_live() -> None:
    io, connected = recovering_server()
    conn = FakeConn(io)
    connect(conn)
    socket = connected[0]
    conn.drop("transport close")
    assert socket.emit("late") is False
    assert conn.take() == []


async def test_an_unencodable_emit_does_not_poison_the_store() -> None:
    # The store used to keep the packet before encoding it: the failed emit then failed again
    # while being replayed to the recovering socket, after it had joined its namespace and
    # rooms, leaving a ghost socket.
    io, connected = recovering_server()
    conn = FakeConn(io)
    first = connect(conn)
    socket = connected[0]
    conn.drop("transport close")
    with pytest.raises(TypeError):
        io.emit("broken", object())
    with pytest.raises(TypeError):
        socket.emit("broken too", {1, 2})
    io.emit("fine", 1)
    conn2 = FakeConn(io)
    again = connect(conn2, {"pid": first["pid"]})
    assert again["sid"] == first["sid"]
    assert [e[:-1] for e in events(conn2)] == [["fine", 1]]
    recovered = socket_of(io, first["sid"])
    assert recovered.recovered and recovered.connected
    assert list(io.of("/").sockets) == [first["sid"]]


async def test_a_dynamic_namespace_broadcast_gives_each_child_its_own_offset() -> None:
    # The parent used to hand one argument list to every child, and each child's recovery
    # appended its offset to it: clients got extra arguments, and recovery failed.
    io = Server(connection_state_recovery=True)
    parent = io.of(re.compile(r"^/team-\d+$"))
    conns = {}
    for name in ("/team-1", "/team-2", "/team-3"):
        conn = FakeConn(io)
        conn.feed(f"0{name},")
        conn.take()
        conns[name] = conn
    parent.emit("score", 7)
    for name, conn in conns.items():
        (payload,) = conn.take()
        assert isinstance(payload, str) and payload.startswith(f"2{name},"), payload
        data = orjson.loads(payload[len(name) + 2 :])
        assert data[:2] == ["score", 7] and len(data) == 3 and isinstance(data[2], str)
