"""The Socket.IO Admin UI support (``sockjet.observe.admin.instrument``), against fake engine
sessions: authentication, what admin sockets receive, the commands they send, and teardown."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import bcrypt
import orjson
import pytest
from tests.unit.engine.engine_fakes import FakeConnection
from tests.unit.server.server_fakes import FakeConn, socket_of

from sockjet import ConnectionRefused
from sockjet.adapters.memory import MemoryAdapter
from sockjet.engine.io import HTTPRequest, Outgoing
from sockjet.observe.admin import Instrumentation, instrument
from sockjet.server.server import Server
from sockjet.server.socket import Socket

ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
COMMANDS = ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"]
PASSWORD = "s3cret"
HASHED = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()  # cheapest cost: fast
BASIC = {"type": "basic", "username": "admin", "password": HASHED}

Received = tuple[int, str, Any]  # (packet type, namespace, data)


def parse(payload: str) -> Received:
    """A text Socket.IO packet: its type, namespace and JSON data."""
    kind, rest, nsp = int(payload[0]), payload[1:], "/"
    if rest.startswith("/"):
        nsp, _, rest = rest.partition(",")
    rest = rest.lstrip("0123456789")  # an ack id
    return kind, nsp, orjson.loads(rest) if rest else None


class Peer(FakeConn):
    """A FakeConn whose packets can be awaited."""

    def __init__(self, io: Server, **options: Any) -> None:
        self.inbox: list[Received] = []
        self._arrived = asyncio.Event()
        super().__init__(io, **options)

    def send(self, message: Outgoing, *, volatile: bool = False) -> bool:
        if not super().send(message, volatile=volatile):
            return False
        if isinstance(message.data, str):
            self.inbox.append(parse(message.data[1:]))
            self._arrived.set()
        return True

    async def wait_for(self, match: Callable[[Received], bool]) -> Received:
        async with asyncio.timeout(3):
            while True:
                for index, packet in enumerate(self.inbox):
                    if match(packet):
                        return self.inbox.pop(index)
                self._arrived.clear()
                await self._arrived.wait()

    async def open(self, nsp: str = "/admin", auth: Any = None) -> str:
        """CONNECT and wait for the answer: the socket id, or ConnectionRefused."""
        prefix = "0" if nsp == "/" else f"0{nsp},"
        self.feed(prefix + (orjson.dumps(auth).decode() if auth is not None else ""))
        kind, _, data = await self.wait_for(lambda p: p[0] in (0, 4) and p[1] == nsp)
        if kind == 4:
            raise ConnectionRefused(data["message"])
        return str(data["sid"])

    async def event(self, name: str, nsp: str = "/admin") -> list[Any]:
        """The args of the next ``name`` event received on ``nsp``."""
        _, _, data = await self.wait_for(lambda p: p[0] == 2 and p[1] == nsp and p[2][0] == name)
        return list(data[1:])

    def pending(self, name: str, nsp: str = "/admin") -> int:
        return sum(1 for p in self.inbox if p[0] == 2 and p[1] == nsp and p[2][0] == name)

    def command(self, *args: Any) -> None:
        self.feed("2/admin," + orjson.dumps(list(args)).decode())


async def open_admin(io: Server, auth: Any = None) -> Peer:
    """An admin socket, past what it receives on connection (its own socket_connected and
    room_joined, config, all_sockets, server_stats)."""
    admin = Peer(io)
    await admin.open(auth=auth)
    await admin.event("server_stats")
    admin.inbox.clear()
    return admin


@pytest.fixture
async def servers() -> AsyncIterator[list[Server]]:
    """Servers made by a test, closed after it (which also stops their statistics timer)."""
    made: list[Server] = []
    yield made
    for io in made:
        await io.close()


def make(servers: list[Server], **options: Any) -> tuple[Server, Instrumentation]:
    io = Server(adapter=options.pop("adapter", None))
    servers.append(io)
    options.setdefault("auth", False)
    return io, instrument(io, **options)


# -- authentication ---------------------------------------------------------------------------


async def test_basic_auth_accepts_the_password_and_issues_a_session(
    servers: list[Server],
) -> None:
    io, inst = make(servers, auth=BASIC)
    admin = Peer(io)
    await admin.open(auth={"username": "admin", "password": PASSWORD})
    (session,) = await admin.event("session")
    assert isinstance(session, str) and len(session) >= 16
    assert await admin.event("config") == [{"supportedFeatures": [*COMMANDS, *inst.features[-2:]]}]
    # The UI reconnects with only the session id (after a reload): no password, no new session.
    again = Peer(io)
    await again.open(auth={"sessionId": session})
    await again.event("config")
    assert again.pending("session") == 0


@pytest.mark.parametrize(
    "auth",
    [
        None,
        {"username": "admin", "password": "wrong"},
        {"username": "root", "password": PASSWORD},
        {"username": "admin"},
        {"username": "admin", "password": 42},
        {"username": "admin", "password": PASSWORD * 30},  # over bcrypt's 72 bytes
        {"sessionId": "made-up"},
    ],
)
async def test_basic_auth_refuses_bad_credentials(servers: list[Server], auth: Any) -> None:
    io, _ = make(servers, auth=BASIC)
    seen: list[str] = []
    io.of("/admin").on("connection", lambda s: seen.append(s.id))
    admin = Peer(io)
    with pytest.raises(ConnectionRefused, match=r"^invalid credentials$"):
        await admin.open(auth=auth)
    assert seen == [] and not io.of("/admin").sockets


async def test_custom_auth_function(servers: list[Server]) -> None:
    async def check(auth: dict[str, Any]) -> bool:
        await asyncio.sleep(0)
        return auth.get("token") == "letmein"

    io, _ = make(servers, auth=check)
    with pytest.raises(ConnectionRefused):
        await Peer(io).open(auth={"token": "nope"})
    admin = Peer(io)
    await admin.open(auth={"token": "letmein"})
    (session,) = await admin.event("session")
    await Peer(io).open(auth={"sessionId": session})


async def test_auth_false_needs_no_credentials_and_gives_no_session(
    servers: list[Server],
) -> None:
    io, _ = make(servers, auth=False)
    admin = Peer(io)
    await admin.open()
    await admin.event("config")
    assert admin.pending("session") == 0


def test_invalid_options_are_refused() -> None:
    io = Server()
    with pytest.raises(TypeError):
        instrument(io)  # type: ignore[call-arg]  # auth is required, as in Node
    with pytest.raises(ValueError, match="bcrypt hash"):
        instrument(io, auth={"type": "basic", "username": "admin", "password": "changeit"})
    with pytest.raises(ValueError, match="auth type"):
        instrument(io, auth={"type": "digest", "username": "a", "password": HASHED})
    with pytest.raises(ValueError, match="username"):
        instrument(io, auth={"type": "basic", "password": HASHED})
    with pytest.raises(ValueError, match="mode"):
        instrument(io, auth=False, mode="staging")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stats_interval"):
        instrument(io, auth=False, stats_interval=0)
    instrument(io, auth=False)
    with pytest.raises(RuntimeError, match="already instrumented"):
        instrument(io, auth=False)


def test_basic_auth_without_bcrypt_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "bcrypt", None)  # import bcrypt now raises ImportError
    with pytest.raises(ImportError, match=r"sockjet\[admin\]"):
        instrument(Server(), auth=BASIC)


# -- what admin sockets receive ---------------------------------------------------------------


def check_serialized(item: dict[str, Any], socket: Socket, conn: FakeConn) -> None:
    assert item == {
        "id": socket.id,
        "clientId": conn.sid[:12],
        "transport": conn.transport,
        "nsp": socket.nsp.name,
        "data": item["data"],
        "handshake": {
            "address": "10.1.2.3",
            "headers": {"host": "localhost:5000"},
            "query": {"EIO": "4", "transport": "websocket", "foo": "bar"},
            "issued": socket.handshake.issued,
            "secure": False,
            "time": socket.handshake.time,
            "url": "/socket.io/?EIO=4&transport=websocket&foo=bar",
            "xdomain": False,
        },
        "rooms": item["rooms"],
    }
    assert sorted(item["rooms"]) == sorted(socket.rooms)


async def test_config_all_sockets_and_server_stats_on_connection(servers: list[Server]) -> None:
    io, inst = make(servers, server_id="node-7")

    @io.use
    def login(socket: Socket) -> None:
        socket.data.update(user="alice", since={1, 2}, obj=object())

    user = Peer(io)
    uid = await user.open("/", {"token": "not serialized"})
    socket_of(io, uid).join("lobby")
    admin = Peer(io)
    aid = await admin.open()
    assert await admin.event("config") == [{"supportedFeatures": [*COMMANDS, *inst.features[-2:]]}]
    assert inst.features[-2:] == ("AGGREGATED_EVENTS", "ALL_EVENTS")
    (sockets,) = await admin.event("all_sockets")
    by_id = {item["id"]: item for item in sockets}
    assert set(by_id) == {uid, aid}
    check_serialized(by_id[uid], socket_of(io, uid), user)
    check_serialized(by_id[aid], socket_of(io, aid, "/admin"), admin)
    data = by_id[uid]["data"]
    assert data["user"] == "alice" and data["since"] == [1, 2]
    assert data["obj"].startswith("<object object")  # what no serializer takes becomes its repr
    assert sorted(by_id[uid]["rooms"]) == sorted([uid, "lobby"])
    (stats,) = await admin.event("server_stats")
    assert stats["serverId"] == "node-7"
    assert isinstance(stats["hostname"], str) and isinstance(stats["pid"], int)
    assert stats["uptime"] > 0
    assert stats["clientsCount"] == io.engine.clients_count
    assert stats["pollingClientsCount"] == 0
    assert stats["aggregatedEvents"] == []
    assert stats["namespaces"] == [
        {"name": "/", "socketsCount": 1},
        {"name": "/admin", "socketsCount": 1},
    ]


async def test_live_events_in_development_mode(servers: list[Server]) -> None:
    io, _ = make(servers)
    admin = await open_admin(io)

    @io.on("hello")
    def hello(socket: Socket, name: str) -> None:
        socket.emit("greeting", f"hi {name}")

    @io.on("enter")
    def enter(socket: Socket, room: str) -> None:
        socket.join(room)
        socket.join(room)  # already in: no second room_joined

    @io.on("exit")
    def exit_(socket: Socket, room: str) -> None:
        socket.leave(room)
        socket.leave(room)  # no longer in: no second room_left

    user = Peer(io)
    uid = await user.open("/")
    nsp, room, sid, when = await admin.event("room_joined")
    assert (nsp, room, sid) == ("/", uid, uid) and ISO_TIME.fullmatch(when)
    serialized, when = await admin.event("socket_connected")
    check_serialized(serialized, socket_of(io, uid), user)
    assert serialized["rooms"] == [uid] and ISO_TIME.fullmatch(when)

    user.feed('2["hello","bob"]')
    assert (await admin.event("event_received"))[:3] == ["/", uid, ["hello", "bob"]]
    assert (await admin.event("event_sent"))[:3] == ["/", uid, ["greeting", "hi bob"]]
    user.feed('2["enter","lobby"]', '2["exit","lobby"]')
    assert (await admin.event("room_joined"))[:3] == ["/", "lobby", uid]
    assert (await admin.event("room_left"))[:3] == ["/", "lobby", uid]
    await admin.event("event_received")
    await admin.event("event_received")
    assert admin.pending("room_joined") == admin.pending("room_left") == 0

    user.feed("1")  # the client leaves the namespace
    assert (await admin.event("room_left"))[:3] == ["/", uid, uid]
    nsp, sid, reason, when = await admin.event("socket_disconnected")
    assert (nsp, sid, reason) == ("/", uid, "client namespace disconnect")
    assert ISO_TIME.fullmatch(when)
    # The admin namespace's own traffic is not reported as events.
    assert admin.pending("event_received") == admin.pending("event_sent") == 0


async def test_dynamic_namespaces_are_watched_once(servers: list[Server]) -> None:
    io, _ = make(servers)
    admin = await open_admin(io)
    io.of(re.compile(r"^/room-\d+$"))
    first, second = Peer(io), Peer(io)
    one = await first.open("/room-1")
    two = await second.open("/room-2")
    for nsp, sid in (("/room-1", one), ("/room-2", two)):
        serialized, _ = await admin.event("socket_connected")
        assert (serialized["nsp"], serialized["id"]) == (nsp, sid)
    assert admin.pending("socket_connected") == 0
    second.feed('2/room-2,["ping"]')
    assert (await admin.event("event_received"))[:3] == ["/room-2", two, ["ping"]]
    assert admin.pending("event_received") == 0


class EngineUser:
    """A client of a real Engine.IO session (the engine's hooks fire), over a fake WebSocket."""

    def __init__(self, io: Server, sid: str | None = None) -> None:
        query = {"EIO": "4", "transport": "websocket", **({"sid": sid} if sid else {})}
        request = HTTPRequest("GET", "/socket.io/", query, {"host": "localhost"})
        self.conn = FakeConnection()
        self.handler = io.engine.open_websocket(request, self.conn)

    def feed(self, *messages: str) -> None:
        for message in messages:
            self.handler.on_message(message)

    def socket_id(self) -> str:
        for message in self.conn.sent:
            data = message.data
            if isinstance(data, str) and data.startswith("40{"):
                sid: str = orjson.loads(data[2:])["sid"]
                return sid
        raise AssertionError(f"no CONNECT reply in {self.conn.data}")


async def test_upgrade_is_reported_and_nothing_kept_after_disconnect(
    servers: list[Server],
) -> None:
    io, inst = make(servers, stats_interval=0.02)
    admin = await open_admin(io)
    # a polling session, through the engine itself
    opened = await io.engine.handle_request(
        HTTPRequest("GET", "/socket.io/", {"EIO": "4", "transport": "polling"}, {"host": "x"})
    )
    sid = orjson.loads(opened.body[1:])["sid"]
    post = HTTPRequest(
        "POST",
        "/socket.io/",
        {"EIO": "4", "transport": "polling", "sid": sid},
        {"host": "x", "content-type": "text/plain"},
        body=b"40",
    )
    assert (await io.engine.handle_request(post)).status == 200
    serialized, _ = await admin.event("socket_connected")
    assert serialized["transport"] == "polling"
    probe = EngineUser(io, sid)  # the client upgrades
    probe.feed("2probe", "5")
    assert await admin.event("socket_updated") == [
        {"id": serialized["id"], "nsp": "/", "transport": "websocket"}
    ]
    assert sid in inst._by_client  # the socket, known by its engine session...
    probe.handler.on_close(None, "")
    await admin.event("socket_disconnected")
    assert sid not in inst._by_client  # ...forgotten with it


async def test_server_stats_count_engine_traffic(servers: list[Server]) -> None:
    io, _ = make(servers, stats_interval=0.02)
    admin = Peer(io)
    await admin.open()
    user = EngineUser(io)
    fed = ["0", '2["hello","wörld"]', '2["x"]']
    user.feed(*("4" + message for message in fed))
    user.handler.on_close(None, "")  # the connection dropped
    totals: dict[tuple[str, str | None], int] = {}
    while totals.get(("rawDisconnection", "transport close")) is None:
        (stats,) = await admin.event("server_stats")
        for item in stats["aggregatedEvents"]:
            assert item["timestamp"] % 1000 == 0 and item["count"] > 0
            key = (item["type"], item.get("subType"))
            totals[key] = totals.get(key, 0) + item["count"]
    assert totals[("rawConnection", None)] == 1  # the user's session (the admin's is a fake)
    # The admin's own CONNECT may have been counted before it could receive statistics.
    assert totals[("packetsIn", None)] in (3, 4)
    user_bytes = sum(len(m.encode()) for m in fed)
    assert totals[("bytesIn", None)] in (user_bytes, user_bytes + len("0/admin,"))
    assert totals[("packetsOut", None)] >= 1  # the user's CONNECT reply at least
    assert totals[("bytesOut", None)] >= len('0{"sid":""}') + 20


async def test_production_mode_sends_only_config_and_statistics(servers: list[Server]) -> None:
    io, inst = make(servers, mode="production")
    admin = Peer(io)
    await admin.open()
    assert await admin.event("config") == [{"supportedFeatures": [*COMMANDS, "AGGREGATED_EVENTS"]}]
    (stats,) = await admin.event("server_stats")
    assert stats["namespaces"] == [
        {"name": "/", "socketsCount": 0},
        {"name": "/admin", "socketsCount": 1},
    ]
    user = Peer(io)
    await user.open("/")
    user.feed('2["hello"]', "1")
    kinds = {p[2][0] for p in admin.inbox if p[0] == 2}
    assert kinds.isdisjoint(
        {"all_sockets", "socket_connected", "room_joined", "event_received", "room_left"}
    )
    assert "socket_disconnected" not in kinds
    assert inst._on_connect not in io.sockets._connection_handlers


async def test_cluster_adapter_gets_all_sockets_through_fetch_sockets(
    servers: list[Server],
) -> None:
    fetched: list[str] = []

    class ClusterLike(MemoryAdapter):
        cluster = True

        async def fetch_sockets(self, opts: Any) -> Any:
            fetched.append(self.nsp.name)
            return await super().fetch_sockets(opts)

        async def server_side_emit_with_ack(self, packet: list[Any]) -> list[Any]:
            return []

    io, _ = make(servers, adapter=ClusterLike)
    user = Peer(io)
    uid = await user.open("/")
    admin = Peer(io)
    await admin.open()
    (sockets,) = await admin.event("all_sockets")
    assert uid in {item["id"] for item in sockets}
    assert sorted(fetched) == ["/", "/admin"]
    await admin.event("server_stats")


# -- commands ---------------------------------------------------------------------------------


async def test_commands_join_leave_emit_and_disconnect(servers: list[Server]) -> None:
    io, _ = make(servers)
    admin = await open_admin(io)
    alice, bob = Peer(io), Peer(io)
    aid, bid = await alice.open("/"), await bob.open("/")
    admin.inbox.clear()  # their connections

    admin.command("join", "/", "vip", aid)
    assert socket_of(io, aid).rooms == {aid, "vip"}
    assert (await admin.event("room_joined"))[:3] == ["/", "vip", aid]
    admin.command("join", "/", "everyone")  # MJOIN: no filter, every socket
    assert "everyone" in socket_of(io, aid).rooms and "everyone" in socket_of(io, bid).rooms
    admin.command("leave", "/", "vip", aid)
    assert socket_of(io, aid).rooms == {aid, "everyone"}
    admin.command("leave", "/", "everyone")  # MLEAVE
    assert socket_of(io, bid).rooms == {bid}

    admin.command("emit", "/", bid, "news", 1, {"a": 2})
    assert await bob.event("news", "/") == [1, {"a": 2}]
    admin.command("emit", "/", "", "all")
    assert await alice.event("all", "/") == [] and await bob.event("all", "/") == []

    admin.command("_disconnect", "/", False, aid)
    assert await alice.wait_for(lambda p: p[:2] == (1, "/"))
    assert aid not in io.sockets.sockets and alice.close_reason is None
    nsp, sid, reason, _ = await admin.event("socket_disconnected")
    assert (nsp, sid, reason) == ("/", aid, "server namespace disconnect")
    admin.command("_disconnect", "/", True, bid)  # close: the whole connection
    assert bob.close_reason == "forced server close"

    # Malformed or unknown targets are ignored; no namespace is created.
    admin.command("join", "/nowhere", "x")
    admin.command("join", "/", 42)
    admin.command("emit", "/", None, "disconnect")
    admin.command("_disconnect")
    assert "/nowhere" not in io.namespaces
    assert admin.close_reason is None and io.of("/admin").sockets


async def test_readonly_mode_refuses_every_command(servers: list[Server]) -> None:
    io, inst = make(servers, readonly=True)
    admin = Peer(io)
    await admin.open()
    assert await admin.event("config") == [
        {"supportedFeatures": ["AGGREGATED_EVENTS", "ALL_EVENTS"]}
    ]
    user = Peer(io)
    uid = await user.open("/")
    admin.command("join", "/", "vip", uid)
    admin.command("leave", "/", uid, uid)
    admin.command("emit", "/", uid, "news")
    admin.command("_disconnect", "/", True, uid)
    socket = socket_of(io, uid)
    assert socket.connected and socket.rooms == {uid}
    assert user.close_reason is None and user.pending("news", "/") == 0
    assert inst.features == ("AGGREGATED_EVENTS", "ALL_EVENTS")


# -- teardown ---------------------------------------------------------------------------------


async def test_close_stops_the_timer_and_removes_every_hook() -> None:
    io = Server()
    inst = instrument(io, auth=False, stats_interval=0.01)
    assert inst.stats_running
    assert io.hooks.socket_connected and io.engine.hooks.session_opened
    admin = Peer(io)
    await admin.open()
    await io.close()
    assert inst.closed and not inst.stats_running
    # The server is left as a server never instrumented: every hook list is empty again.
    for hooks in (io.hooks, io.engine.hooks):
        assert all(not getattr(hooks, name) for name in hooks.__slots__), hooks


async def test_explicit_close_disconnects_admins_and_allows_instrumenting_again(
    servers: list[Server],
) -> None:
    io, inst = make(servers, auth=BASIC)
    admin = Peer(io)
    await admin.open(auth={"username": "admin", "password": PASSWORD})
    inst.close()
    assert await admin.wait_for(lambda p: p[:2] == (1, "/admin"))
    assert not inst.stats_running and not io.of("/admin").sockets
    again = instrument(io, auth=False)
    fresh = Peer(io)
    await fresh.open()  # the old credentials check is gone with the old instrumentation
    assert await fresh.event("config") == [{"supportedFeatures": list(again.features)}]


def test_timer_waits_for_the_event_loop() -> None:
    io = Server()
    inst = instrument(io, auth=False)  # like a module-level instrument() before io.run()
    assert not inst.stats_running

    async def main() -> None:
        io.start()  # what serve(), run() and the ASGI lifespan do
        assert inst.stats_running
        await io.close()
        assert not inst.stats_running

    asyncio.run(main())
