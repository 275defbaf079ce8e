"""Connecting to namespaces: CONNECT replies, auth, middleware refusals, dynamic namespaces."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import orjson
import pytest
from server_fakes import FakeConn, settle, socket_of

from sockjet import ConnectionRefused
from sockjet.server.server import Server
from sockjet.server.socket import Socket


async def test_connect_default_namespace_replies_with_socket_id() -> None:
    io = Server()
    seen: list[Socket] = []
    io.on("connection", seen.append)
    conn = FakeConn(io)
    conn.feed("0")
    (reply,) = conn.take()
    assert isinstance(reply, str) and reply.startswith("0{")
    sid = orjson.loads(reply[1:])["sid"]
    socket = socket_of(io, sid)
    assert seen == [socket]
    assert socket.id == sid != conn.sid
    assert socket.connected and socket.rooms == {sid}
    assert socket.nsp is io.sockets and socket.client is conn.client
    assert socket.transport == "websocket"
    assert len(sid) == 20


async def test_connect_custom_namespace_and_connect_alias() -> None:
    io = Server()
    admin = io.of("admin")  # the leading slash is implied
    assert admin is io.of("/admin") and admin.name == "/admin"
    seen: list[str] = []
    admin.on("connect", lambda s: seen.append(s.id))
    conn = FakeConn(io)
    conn.feed("0/admin,")
    (reply,) = conn.take()
    assert isinstance(reply, str)
    assert reply.startswith('0/admin,{"sid":"')
    sid = orjson.loads(reply[len("0/admin,") :])["sid"]
    assert seen == [sid]
    assert conn.client.sockets["/admin"].id == sid


async def test_one_client_joins_several_namespaces() -> None:
    io = Server()
    io.of("/a")
    conn = FakeConn(io)
    main = conn.connect()
    other = conn.connect("/a")
    assert main != other
    assert set(conn.client.sockets) == {"/", "/a"}


async def test_handshake_details() -> None:
    io = Server()
    conn = FakeConn(io, origin="http://example.com")
    sid = conn.connect(auth={"token": 1})
    handshake = socket_of(io, sid).handshake
    assert handshake.auth == {"token": 1}
    assert handshake.query["foo"] == "bar"
    assert handshake.headers["origin"] == "http://example.com"
    assert handshake.address == "10.1.2.3"
    assert handshake.xdomain is True and handshake.secure is False
    assert handshake.url.startswith("/socket.io/?EIO=4")
    assert isinstance(handshake.issued, int) and handshake.time.startswith("20")
    assert handshake.to_dict()["auth"] == {"token": 1}
    assert socket_of(io, sid).request is conn.request


async def test_connect_without_auth_gives_empty_auth() -> None:
    io = Server()
    conn = FakeConn(io)
    sid = conn.connect()
    assert socket_of(io, sid).handshake.auth == {}


@pytest.mark.parametrize(
    ("error", "payload"),
    [
        (
            ConnectionRefused("not authorized", {"code": 42}),
            {"message": "not authorized", "data": {"code": 42}},
        ),
        (ConnectionRefused("nope"), {"message": "nope"}),
    ],
)
async def test_middleware_refusal_sends_connect_error(
    error: ConnectionRefused, payload: dict[str, Any]
) -> None:
    io = Server()
    connected: list[Socket] = []
    io.on("connection", connected.append)

    @io.use
    def refuse(socket: Socket) -> None:
        socket.join("lobby")  # joined rooms are left again on refusal
        raise error

    conn = FakeConn(io)
    conn.feed('0{"token":"bad"}')
    (reply,) = conn.take()
    assert isinstance(reply, str) and reply.startswith("4{")
    assert orjson.loads(reply[1:]) == payload
    assert conn.close_reason is None  # the connection stays open
    assert connected == [] and io.sockets.sockets == {}
    assert io.sockets.adapter.rooms == {}  # type: ignore[attr-defined]
    # the client may try again once the middleware lets it in
    io.sockets._middlewares.clear()
    conn.connect()
    assert len(connected) == 1


async def test_middleware_refusal_in_custom_namespace_is_exact() -> None:
    io = Server()

    @io.of("/admin").use
    async def refuse(socket: Socket) -> None:
        await asyncio.sleep(0)
        raise ConnectionRefused("admins only", {"role": socket.handshake.auth.get("role")})

    conn = FakeConn(io)
    conn.feed('0/admin,{"role":"guest"}')
    await settle()
    assert conn.take() == ['4/admin,{"message":"admins only","data":{"role":"guest"}}']


async def test_middleware_unexpected_error_is_logged_not_leaked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    io = Server()
    io.use(lambda socket: 1 / 0)
    conn = FakeConn(io)
    with caplog.at_level(logging.ERROR, "sockjet.server"):
        conn.feed("0")
    assert conn.take() == ['4{"message":"Internal server error"}']
    assert "ZeroDivisionError" in caplog.text


async def test_async_middlewares_run_in_order_then_connect() -> None:
    io = Server()
    order: list[str] = []

    @io.use
    async def first(socket: Socket) -> None:
        await asyncio.sleep(0)
        order.append("first")
        socket.data["user"] = socket.handshake.auth["user"]

    @io.use
    def second(socket: Socket) -> None:
        order.append("second")

    @io.use
    async def third(socket: Socket) -> None:
        order.append("third")

    connected = asyncio.Event()
    io.on("connection", lambda s: connected.set())
    conn = FakeConn(io)
    conn.feed('0{"user":"ann"}')
    await asyncio.wait_for(connected.wait(), 1)
    assert order == ["first", "second", "third"]
    (reply,) = conn.take()
    assert isinstance(reply, str)
    sid = orjson.loads(reply[1:])["sid"]
    assert socket_of(io, sid).data == {"user": "ann"}


async def test_client_leaving_during_middleware_leaves_nothing() -> None:
    io = Server()
    release = asyncio.Event()

    @io.use
    async def slow(socket: Socket) -> None:
        socket.join("room")
        await release.wait()

    conn = FakeConn(io)
    conn.feed("0")
    await settle()
    conn.drop("transport close")
    release.set()
    await settle()
    assert conn.take() == []
    assert io.sockets.sockets == {}
    assert io.sockets.adapter.rooms == {}  # type: ignore[attr-defined]


async def test_connection_handler_refusing_disconnects_the_socket() -> None:
    io = Server()
    reasons: list[str] = []
    io.on("disconnect", lambda socket, reason: reasons.append(reason))

    @io.on("connection")
    async def refuse(socket: Socket) -> None:
        raise ConnectionRefused("too late")

    conn = FakeConn(io)
    conn.feed("0")
    await settle()
    replies = conn.take()
    assert replies[0].startswith("0{")  # type: ignore[union-attr]
    assert replies[1:] == ["1"]
    assert reasons == ["server namespace disconnect"]
    assert io.sockets.sockets == {}


async def test_unknown_namespace_is_refused_and_connection_stays_open() -> None:
    io = Server()
    conn = FakeConn(io)
    conn.feed("0/nope,")
    assert conn.take() == ['4/nope,{"message":"Invalid namespace"}']
    assert conn.close_reason is None
    assert "/nope" not in io.namespaces
    conn.connect()  # still usable


async def test_dynamic_namespace_by_regex() -> None:
    io = Server()
    dyn = io.of(re.compile(r"^/dyn-\d+$"))
    assert io.of(dyn.matcher) is dyn  # type: ignore[attr-defined]
    names: list[str] = []
    dyn.on("connection", lambda socket: names.append(socket.nsp.name))
    dyn.on("ping", lambda socket: "pong")
    conn = FakeConn(io)
    sid = conn.connect("/dyn-1")
    assert names == ["/dyn-1"]
    child = io.namespaces["/dyn-1"]
    assert child.parent is dyn and child in dyn.children  # type: ignore[attr-defined]
    conn.feed('2/dyn-1,5["ping"]')
    assert conn.take() == ['3/dyn-1,5["pong"]']
    dyn.emit("news", 1)  # the parent reaches every child
    assert conn.take() == ['2/dyn-1,["news",1]']
    conn.feed("0/dyn-x,")
    assert conn.take() == ['4/dyn-x,{"message":"Invalid namespace"}']
    # the child disappears with its last socket
    socket_of(io, sid, "/dyn-1").disconnect()
    assert "/dyn-1" not in io.namespaces and not dyn.children  # type: ignore[attr-defined]


async def test_dynamic_namespace_by_callable_sync_and_async() -> None:
    io = Server()
    calls: list[tuple[str, dict[str, Any]]] = []

    def sync_matcher(name: str, auth: dict[str, Any]) -> bool:
        calls.append((name, auth))
        return name.startswith("/s-")

    async def async_matcher(name: str, auth: dict[str, Any]) -> bool:
        await asyncio.sleep(0)
        return auth.get("ok") is True

    io.of(sync_matcher)
    io.of(async_matcher)
    conn = FakeConn(io)
    conn.connect("/s-1", auth={"a": 1})
    assert calls == [("/s-1", {"a": 1})]
    conn.feed('0/t-1,{"ok":true}')
    await settle()
    (reply,) = conn.take()
    assert isinstance(reply, str) and reply.startswith('0/t-1,{"sid":')
    conn.feed('0/t-2,{"ok":false}')
    await settle()
    assert conn.take() == ['4/t-2,{"message":"Invalid namespace"}']


async def test_dynamic_child_refused_by_middleware_is_removed() -> None:
    io = Server()
    dyn = io.of(lambda name, auth: True)

    @dyn.use
    def refuse(socket: Socket) -> None:
        raise ConnectionRefused("no")

    conn = FakeConn(io)
    for n in range(5):
        conn.feed(f"0/made-up-{n},")
    assert len(conn.take()) == 5
    assert set(io.namespaces) == {"/"}  # names clients make up do not accumulate


async def test_failing_matcher_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    io = Server()

    def broken(name: str, auth: dict[str, Any]) -> bool:
        raise RuntimeError("bug")

    io.of(broken)
    conn = FakeConn(io)
    with caplog.at_level(logging.ERROR, "sockjet.server"):
        conn.feed("0/x,")
    assert conn.take() == ['4/x,{"message":"Invalid namespace"}']
    assert "bug" in caplog.text


async def test_connect_timeout_closes_a_client_that_joins_nothing() -> None:
    io = Server(connect_timeout=0.02)
    conn = FakeConn(io)
    await asyncio.wait_for(conn.closed.wait(), 1)
    assert conn.close_reason == "forced server close"


async def test_connect_timeout_spares_a_client_that_joined() -> None:
    io = Server(connect_timeout=0.02)
    idle = FakeConn(io)
    joined = FakeConn(io)
    joined.connect()
    await asyncio.wait_for(idle.closed.wait(), 1)
    assert joined.close_reason is None
    assert joined.client._connect_timer is None


async def test_unknown_namespace_does_not_stop_connect_timeout() -> None:
    io = Server(connect_timeout=0.02)
    conn = FakeConn(io)
    conn.feed("0/nope,")
    await asyncio.wait_for(conn.closed.wait(), 1)
    assert conn.close_reason == "forced server close"


async def test_msgpack_serializer_connects() -> None:
    import msgpack

    io = Server(serializer="msgpack")
    conn = FakeConn(io)
    conn.feed(msgpack.packb({"type": 0, "nsp": "/", "data": {"t": 1}}))
    (reply,) = conn.take()
    assert isinstance(reply, bytes)
    decoded = msgpack.unpackb(reply)
    assert decoded["type"] == 0 and decoded["nsp"] == "/"
    sid = decoded["data"]["sid"]
    socket = socket_of(io, sid)
    assert socket.handshake.auth == {"t": 1}
    socket.emit("hi", 1)
    (event,) = conn.take()
    assert isinstance(event, bytes)
    assert msgpack.unpackb(event) == {"type": 2, "nsp": "/", "data": ["hi", 1]}


def test_unknown_serializer_is_refused() -> None:
    with pytest.raises(ValueError, match="serializer"):
        Server(serializer="yaml")  # type: ignore[arg-type]


def test_of_refuses_other_types() -> None:
    with pytest.raises(TypeError):
        Server().of(42)  # type: ignore[arg-type]
