"""Broadcasts: recipients of every operator variant, encode-once, acks, remote-style operations."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from server_fakes import FakeConn, settle, socket_of

from sockjet.server.acks import BroadcastAckTimeout
from sockjet.server.adapter import SocketDetails
from sockjet.server.broadcast import BroadcastOperator, RemoteSocket
from sockjet.server.server import Server
from sockjet.server.socket import Handshake, Socket


class Room:
    """Three clients: a in rooms r1, r2; b in r2; c in none."""

    def __init__(self, io: Server, nsp: str = "/") -> None:
        self.io = io
        self.conns = {name: FakeConn(io) for name in "abc"}
        self.sockets = {name: socket_of(io, c.connect(nsp), nsp) for name, c in self.conns.items()}
        self.sockets["a"].join(["r1", "r2"])
        self.sockets["b"].join("r2")

    def got(self, wire: str = '2["ev"]') -> str:
        """Which clients received ``wire`` (and nothing else)."""
        names = []
        for name, conn in self.conns.items():
            taken = conn.take()
            if taken:
                assert taken == [wire], (name, taken)
                names.append(name)
        return "".join(names)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (lambda io: io, "abc"),
        (lambda io: io.to("r1"), "a"),
        (lambda io: io.in_("r2"), "ab"),
        (lambda io: io.to(["r1", "r2"]), "ab"),  # a socket in both rooms gets one copy
        (lambda io: io.to("r1").to("r2"), "ab"),
        (lambda io: io.except_("r1"), "bc"),
        (lambda io: io.to("r2").except_("r1"), "b"),
        (lambda io: io.except_(["r1", "r2"]), "c"),
        (lambda io: io.to("nobody"), ""),
        (lambda io: io.local, "abc"),
        (lambda io: io.compress(False), "abc"),
        (lambda io: io.sockets, "abc"),
    ],
)
async def test_recipients(target: Any, expected: str) -> None:
    io = Server()
    room = Room(io)
    target(io).emit("ev")
    assert room.got() == expected


async def test_broadcast_from_a_socket_excludes_the_sender() -> None:
    io = Server()
    room = Room(io)
    a = room.sockets["a"]
    a.broadcast.emit("ev")
    assert room.got() == "bc"
    a.to("r2").emit("ev")
    assert room.got() == "b"
    a.in_("r1").emit("ev")
    assert room.got() == ""
    a.except_("r2").emit("ev")
    assert room.got() == "c"
    a.local.emit("ev")
    assert room.got() == "bc"
    room.sockets["c"].to("r1").emit("ev")
    assert room.got() == "a"
    a.volatile.to("r2").emit("ev")
    assert room.got() == "b"
    a.timeout(1).broadcast.emit("ev")
    assert room.got() == "bc"
    a.volatile.except_("nobody").emit("ev")
    assert room.got() == "bc"


async def test_emit_to_a_socket_id_room() -> None:
    io = Server()
    room = Room(io)
    io.to(room.sockets["b"].id).emit("ev")
    assert room.got() == "b"


async def test_broadcast_encodes_once_and_shares_the_outgoing_objects() -> None:
    io = Server()
    room = Room(io)
    io.emit("ev", {"big": "x" * 100})
    messages = [conn.sent[0] for conn in room.conns.values()]
    assert all(m is messages[0] for m in messages)
    for conn in room.conns.values():
        conn.sent.clear()
    io.emit("bin", b"\x01", b"\x02")
    parts = [list(conn.sent) for conn in room.conns.values()]
    assert len(parts[0]) == 3
    for other in parts[1:]:
        assert all(x is y for x, y in zip(parts[0], other, strict=True))


async def test_compress_false_marks_every_outgoing_message() -> None:
    io = Server()
    room = Room(io)
    a = room.sockets["a"]
    io.emit("plain")
    io.compress(False).emit("raw", b"\x01")
    a.compress(False).emit("mine")
    a.compress(False).to("r2").emit("theirs")
    sent = room.conns["a"].sent
    assert [m.compress for m in sent] == [True, False, False, False]
    assert [m.compress for m in room.conns["b"].sent] == [True, False, False, False]


async def test_volatile_broadcast_skips_unwritable_clients() -> None:
    io = Server()
    room = Room(io)
    room.conns["b"].writable = False
    io.volatile.emit("ev")
    assert room.got() == "ac"
    io.volatile.emit("bin", b"\x01")
    taken = room.conns["a"].take()
    assert taken == ['51-["bin",{"_placeholder":true,"num":0}]', b"\x01"]
    assert room.conns["b"].take() == []


async def test_operator_is_immutable() -> None:
    io = Server()
    base = io.to("r1")
    wider = base.to("r2").except_("x").volatile.timeout(3).compress(True)
    assert base.rooms == {"r1"} and base.except_rooms == frozenset()
    assert not base.flags.volatile and base.flags.timeout is None
    assert wider.rooms == {"r1", "r2"} and wider.except_rooms == {"x"}
    assert wider.flags.volatile and wider.flags.timeout == 3 and wider.flags.compress is True
    assert "r1" in repr(base)
    with pytest.raises(ValueError, match="reserved"):
        base.emit("connect")


async def test_namespaces_are_separate() -> None:
    io = Server()
    io.of("/chat")
    conn = FakeConn(io)
    main = socket_of(io, conn.connect())
    chat = socket_of(io, conn.connect("/chat"), "/chat")
    main.join("r")
    chat.join("r")
    io.to("r").emit("ev")
    io.of("/chat").to("r").emit("ev")
    io.of("/chat").send("hi")
    assert conn.take() == ['2["ev"]', '2/chat,["ev"]', '2/chat,["message","hi"]']


async def test_broadcast_ack_gathers_every_reply() -> None:
    io = Server()
    room = Room(io)
    pending = asyncio.ensure_future(io.timeout(1).emit_with_ack("poll", 1))
    await settle()
    wires = {name: conn.take() for name, conn in room.conns.items()}
    assert wires["a"] == wires["b"] == wires["c"] == ['20["poll",1]']
    room.conns["a"].feed('30["A"]')
    room.conns["a"].feed('30["again"]')  # a second answer is ignored
    room.conns["b"].feed("30[1,2]")
    room.conns["c"].feed("30[]")
    assert sorted(map(repr, await pending)) == sorted(map(repr, ["A", (1, 2), None]))
    assert all(s.pending_acks == 0 for s in room.sockets.values())


async def test_broadcast_ack_timeout_carries_the_replies_and_cleans_up() -> None:
    io = Server()
    room = Room(io)
    pending = asyncio.ensure_future(io.to("r2").timeout(0.02).emit_with_ack("poll"))
    await settle()
    room.conns["a"].feed('30["yes"]')
    with pytest.raises(BroadcastAckTimeout) as caught:
        await pending
    assert caught.value.replies == ["yes"]
    # the adapter's tracker was armed first with the same delay: it has expired already
    assert all(s.pending_acks == 0 for s in room.sockets.values())


async def test_broadcast_ack_counts_a_departed_recipient_as_done() -> None:
    io = Server()
    room = Room(io)
    pending = asyncio.ensure_future(io.emit_with_ack("poll"))  # no timeout
    await settle()
    room.conns["a"].feed('30["a"]')
    room.conns["b"].drop("transport close")
    room.conns["c"].feed('30["c"]')
    assert await pending == ["a", "c"]


async def test_broadcast_ack_without_recipients_returns_at_once() -> None:
    io = Server()
    assert await io.to("empty").emit_with_ack("poll") == []
    assert await io.of("/x").emit_with_ack("poll") == []


async def test_socket_broadcast_ack_excludes_sender() -> None:
    io = Server()
    room = Room(io)
    pending = asyncio.ensure_future(room.sockets["a"].timeout(1).broadcast.emit_with_ack("q"))
    await settle()
    assert room.conns["a"].take() == []
    room.conns["b"].feed("30[2]")
    room.conns["c"].feed("30[3]")
    assert sorted(await pending) == [2, 3]


async def test_parent_namespace_broadcast_ack_and_operations() -> None:
    import re

    io = Server()
    dyn = io.of(re.compile(r"^/d\d$"))
    one, two = FakeConn(io), FakeConn(io)
    s1 = socket_of(io, one.connect("/d1"), "/d1")
    s2 = socket_of(io, two.connect("/d2"), "/d2")
    pending = asyncio.ensure_future(dyn.timeout(1).emit_with_ack("q"))
    await settle()
    assert one.take() == ['2/d1,0["q"]'] and two.take() == ['2/d2,0["q"]']
    one.feed("3/d1,0[1]")
    two.feed("3/d2,0[2]")
    assert sorted(await pending) == [1, 2]
    assert {s.id for s in await dyn.fetch_sockets()} == {s1.id, s2.id}
    dyn.sockets_join("all")
    assert "all" in s1.rooms and "all" in s2.rooms
    dyn.to("all").emit("x")
    assert one.take() == ['2/d1,["x"]'] and two.take() == ['2/d2,["x"]']
    dyn.sockets_leave("all")
    assert "all" not in s1.rooms
    dyn.server_side_emit("ignored")
    dyn.disconnect_sockets()
    assert one.take() == ["1/d1,"] and two.take() == ["1/d2,"]
    assert set(io.namespaces) == {"/"}


async def test_fetch_sockets_and_remote_operations() -> None:
    io = Server()
    room = Room(io)
    found = await io.in_("r2").fetch_sockets()
    assert {s.id for s in found} == {room.sockets["a"].id, room.sockets["b"].id}
    assert all(isinstance(s, Socket) for s in found)  # local sockets are the real objects
    assert len(await io.fetch_sockets()) == 3
    io.in_("r1").sockets_join(["x", "y"])
    assert {"x", "y"} <= room.sockets["a"].rooms
    io.sockets_join("everyone")
    assert all("everyone" in s.rooms for s in room.sockets.values())
    io.in_("r2").sockets_leave("everyone")
    assert "everyone" not in room.sockets["b"].rooms
    io.sockets_leave("x")
    assert "x" not in room.sockets["a"].rooms
    io.except_("r2").disconnect_sockets()
    assert room.conns["c"].take() == ["1"]
    assert not room.sockets["c"].connected and room.sockets["a"].connected
    io.in_("r1").disconnect_sockets(close=True)
    assert room.conns["a"].close_reason == "forced server close"
    io.disconnect_sockets()
    assert io.sockets.sockets == {}


async def test_remote_socket_uses_the_adapter() -> None:
    io = Server()
    conn = FakeConn(io)
    local = socket_of(io, conn.connect())
    handshake = local.handshake
    remote = RemoteSocket(
        io.sockets.adapter, SocketDetails(local.id, handshake, {local.id}, {"k": 1})
    )
    assert repr(remote).startswith("RemoteSocket(")
    assert remote.handshake is handshake and remote.data == {"k": 1}
    remote.emit("hi", 1)
    assert conn.take() == ['2["hi",1]']
    remote.join("r")
    assert "r" in local.rooms
    remote.leave("r")
    assert "r" not in local.rooms
    pending = asyncio.ensure_future(remote.timeout(1).emit_with_ack("q"))
    await settle()
    assert conn.take() == ['20["q"]']
    conn.feed('30["ok"]')
    assert await pending == "ok"
    remote.disconnect()
    assert conn.take() == ["1"]
    gone = RemoteSocket(io.sockets.adapter, SocketDetails("nobody", handshake, set(), None))
    from sockjet import AckTimeout

    with pytest.raises(AckTimeout):
        await gone.emit_with_ack("q")


async def test_fetch_sockets_wraps_remote_details() -> None:
    io = Server()
    details = SocketDetails(
        "remote-1",
        Handshake({}, {}, {}, "1.2.3.4", "/", False, False, 0, "1970-01-01T00:00:00+00:00"),
        {"remote-1", "r"},
        {"user": "x"},
    )

    class ClusterAdapter:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def fetch_sockets(self, opts: Any) -> list[Any]:
            return [*await self.inner.fetch_sockets(opts), details]

    operator = BroadcastOperator(ClusterAdapter(io.sockets.adapter))  # type: ignore[arg-type]
    (remote,) = await operator.fetch_sockets()
    assert isinstance(remote, RemoteSocket)
    assert remote.id == "remote-1" and remote.rooms == {"remote-1", "r"}


async def test_server_side_emit_is_a_local_no_op_and_dispatches_incoming() -> None:
    io = Server()
    got: list[tuple[Any, ...]] = []
    io.on_server_side("hello", lambda *args: got.append(args))

    async def async_handler(*args: Any) -> None:
        got.append(("async", *args))

    io.sockets.on_server_side("hello", async_handler)
    io.sockets.on_server_side("boom")(lambda: 1 / 0)
    io.server_side_emit("hello", 1)  # nobody else to reach
    assert got == []
    io.sockets.receive_server_side_emit(["hello", 1, 2])
    io.sockets.receive_server_side_emit(["boom"])
    io.sockets.receive_server_side_emit([])  # malformed input from the bus is ignored
    io.sockets.receive_server_side_emit([5])
    await settle()
    assert got == [(1, 2), ("async", 1, 2)]
    with pytest.raises(ValueError, match="reserved"):
        io.server_side_emit("connection")
    with pytest.raises(ValueError, match="reserved"):
        io.server_side_emit("disconnect")
