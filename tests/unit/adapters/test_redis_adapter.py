"""The Redis adapter's logic, with a fake bus: what it publishes, how it acts on what other
nodes publish, how its requests complete, time out and clean up."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from redis_fakes import FakeBus, FakeFactory
from server_fakes import FakeConn, settle, socket_of

from sockjet.adapters.redis import (
    RedisAdapter,
    RequestTimeout,
    ShardedRedisAdapter,
    redis_adapter,
)
from sockjet.adapters.redis_codec import pack, unpack
from sockjet.adapters.redis_protocols import ClassicProtocol, ShardedProtocol, SubscriptionKind
from sockjet.adapters.redis_requests import MalformedLog
from sockjet.server.acks import BroadcastAckTimeout
from sockjet.server.broadcast import RemoteSocket
from sockjet.server.server import Server
from sockjet.server.targets import BroadcastOptions

PATTERN = (SubscriptionKind.PATTERN, b"socket.io#/#*")
REQUESTS = (SubscriptionKind.CHANNEL, b"socket.io-request#/#")
RESPONSES = (SubscriptionKind.CHANNEL, b"socket.io-response#/#")
OTHER = ClassicProtocol("socket.io", "/", "other1")  # another node, to build its messages


def cluster(count: int | None = 1, **options: Any) -> tuple[Server, FakeBus, RedisAdapter]:
    bus = FakeBus(count)
    io = Server(adapter=FakeFactory(bus, **options))
    adapter = io.sockets.adapter
    assert isinstance(adapter, RedisAdapter)
    return io, bus, adapter


def client(io: Server, nsp: str = "/", *rooms: str) -> tuple[FakeConn, str]:
    conn = FakeConn(io)
    sid = conn.connect(nsp)
    if rooms:
        socket_of(io, sid, nsp).join(list(rooms))
    return conn, sid


def events(conn: FakeConn) -> list[Any]:
    """The EVENT payloads a fake client received (as JSON, attachments skipped)."""
    return [json.loads(t[t.index("[") :]) for t in conn.take() if isinstance(t, str)]


def request(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


# -- publishing ---------------------------------------------------------------------------------


async def test_broadcasts_are_published_then_delivered_locally() -> None:
    io, bus, adapter = cluster()
    conn, _sid = client(io, "/", "room-a")
    io.emit("hello", 1)
    io.to("room-a").emit("room", 2)
    io.local.emit("local", 3)
    published = bus.take()
    assert [channel for channel, _ in published] == [b"socket.io#/#", b"socket.io#/#room-a#"]
    assert unpack(published[0][1]) == [
        adapter.uid,
        {"type": 2, "data": ["hello", 1], "nsp": "/"},
        {"rooms": [], "except": [], "flags": {}},
    ]
    assert events(conn) == [["hello", 1], ["room", 2], ["local", 3]]
    # Values msgpack cannot carry fail the emit before anything is sent.
    with pytest.raises(TypeError):
        io.emit("bad", object())
    assert bus.take() == [] and events(conn) == []


async def test_connection_state_recovery_is_not_supported_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = FakeBus(1)
    with caplog.at_level(logging.WARNING, "sockjet.adapters.redis"):
        io = Server(adapter=FakeFactory(bus), connection_state_recovery=True)
    assert "does not support connection state recovery" in caplog.text
    assert io.sockets.adapter.recovery is None  # type: ignore[attr-defined]
    conn, _sid = client(io)
    io.emit("hello", 1)
    assert events(conn) == [["hello", 1]]  # no offset appended
    assert unpack(bus.take()[0][1])[1]["data"] == ["hello", 1]


async def test_room_operations_publish_and_apply_locally() -> None:
    io, bus, _ = cluster()
    _conn, sid = client(io)
    io.in_(sid).sockets_join(["x", "y"])
    assert socket_of(io, sid).rooms == {sid, "x", "y"}
    io.in_(sid).sockets_leave("x")
    assert socket_of(io, sid).rooms == {sid, "y"}
    io.local.sockets_join("z")
    io.server_side_emit("hello", 1)
    io.in_("y").disconnect_sockets()
    sent = [json.loads(payload) for _, payload in bus.take()]
    assert [(m["type"], sorted(m.get("rooms", [])), m.get("close")) for m in sent] == [
        (2, ["x", "y"], None),
        (3, ["x"], None),
        (6, [], None),
        (4, [], False),
    ]
    assert sent[2]["data"] == ["hello", 1]
    assert not socket_of_or_none(io, sid)


def socket_of_or_none(io: Server, sid: str) -> Any:
    return io.sockets.sockets.get(sid)


# -- receiving ----------------------------------------------------------------------------------


async def test_remote_broadcasts_reach_the_selected_local_sockets() -> None:
    io, bus, adapter = cluster()
    a, _sid_a = client(io, "/", "room-a")
    b, _sid_b = client(io, "/", "room-b")

    def deliver(data: list[Any], opts: BroadcastOptions, channel: bytes = b"socket.io#/#") -> None:
        _, payload = OTHER.broadcast(data, opts)
        bus.deliver(*PATTERN, channel, payload)

    deliver(["all", b"\x01"], BroadcastOptions())
    deliver(["a"], BroadcastOptions(frozenset({"room-a"})), b"socket.io#/#room-a#")
    deliver(["not-a"], BroadcastOptions(except_=frozenset({"room-a"})))
    # A one-room broadcast for a room this server lacks is skipped before decoding.
    bus.deliver(*PATTERN, b"socket.io#/#room-z#", b"garbage")
    # Our own broadcast coming back is ignored.
    own_channel, own = adapter.protocol.broadcast(["own"], BroadcastOptions())
    bus.deliver(*PATTERN, own_channel, own)
    got_a = a.take()
    assert got_a[0] == '51-["all",{"_placeholder":true,"num":0}]' and got_a[1] == b"\x01"
    assert [json.loads(t[t.index("[") :]) for t in got_a[2:]] == [["a"]]
    assert events(b) == [["all", {"_placeholder": True, "num": 0}], ["not-a"]]


async def test_emitter_messages_and_namespaces() -> None:
    io, bus, _ = cluster()
    chat = io.of("/chat")
    conn, _ = client(io, "/chat")
    emitter = pack(
        [
            "emitter",
            {"type": 2, "data": ["e", 1], "nsp": "/chat"},
            {"rooms": [], "flags": {}, "except": []},
        ]
    )
    bus.deliver(SubscriptionKind.PATTERN, b"socket.io#/chat#*", b"socket.io#/chat#", emitter)
    assert events(conn) == [["e", 1]]
    assert chat.adapter is not io.sockets.adapter


async def test_malformed_messages_are_logged_and_skipped(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    io, bus, _ = cluster(max_message_size=1000)
    conn, _ = client(io)
    caplog.set_level(logging.WARNING, "sockjet.adapters.redis")
    from sockjet.adapters import redis as module

    monkeypatch.setattr(module, "_malformed", MalformedLog(interval=0.0))
    bad = [
        (PATTERN, b"\xc1"),
        (PATTERN, pack(["x", {"type": 2, "data": ["connect"], "nsp": "/"}, {}])),
        (PATTERN, pack(["x", {"type": 1, "nsp": "/"}, {}])),
        (PATTERN, b"\x93" + b"\xa1x" * 1000),
        (REQUESTS, b'{"type":2,"opts":{"rooms":"x"},"rooms":[]}'),
        (REQUESTS, b"[1,2]"),
        (RESPONSES, b'{"sockets":[]}'),
    ]
    for key, payload in bad:
        bus.deliver(*key, key[1].rstrip(b"*"), payload)
    assert len([r for r in caplog.records if "malformed" in r.message]) == len(bad)
    assert events(conn) == [] and bus.take() == []
    # Still working.
    bus.deliver(*PATTERN, b"socket.io#/#", OTHER.broadcast(["fine"], BroadcastOptions())[1])
    assert events(conn) == [["fine"]]


def test_malformed_log_is_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    log = MalformedLog(interval=10.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, "sockjet.adapters.redis")
    for _ in range(5):
        log.warn("/", ValueError("bad"))
    assert len(caplog.records) == 1 and log.suppressed == 4
    now[0] += 10
    log.warn("/", ValueError("bad"))
    assert "4 more" in caplog.records[-1].message and log.suppressed == 0


async def test_remote_room_operations_apply_and_own_echoes_are_ignored() -> None:
    io, bus, adapter = cluster()
    conn, sid = client(io)
    target = BroadcastOptions(frozenset({sid}))
    bus.deliver(*REQUESTS, REQUESTS[1], OTHER.sockets_join(target, ["x", "y"])[1])
    assert socket_of(io, sid).rooms == {sid, "x", "y"}
    bus.deliver(
        *REQUESTS,
        REQUESTS[1],
        request({"type": 3, "opts": {"rooms": [sid], "except": []}, "rooms": ["x"]}),
    )
    assert socket_of(io, sid).rooms == {sid, "y"}
    # Our own request coming back from Redis changes nothing (it was applied when sent).
    _, own = adapter.protocol.sockets_join(target, ["own"])
    bus.deliver(*REQUESTS, REQUESTS[1], own)
    assert "own" not in socket_of(io, sid).rooms
    # Legacy one-socket forms are applied and answered.
    bus.deliver(
        *REQUESTS, REQUESTS[1], request({"requestId": "L1", "type": 2, "sid": sid, "room": "z"})
    )
    assert "z" in socket_of(io, sid).rooms
    assert json.loads(bus.take()[-1][1]) == {"requestId": "L1"}
    bus.deliver(
        *REQUESTS, REQUESTS[1], request({"requestId": "L2", "type": 3, "sid": sid, "room": "z"})
    )
    bus.deliver(
        *REQUESTS,
        REQUESTS[1],
        request({"requestId": "L3", "type": 2, "sid": "nobody", "room": "z"}),
    )
    assert "z" not in socket_of(io, sid).rooms and len(bus.take()) == 1
    bus.deliver(*REQUESTS, REQUESTS[1], request({"type": 4, "sid": sid, "close": False}))
    assert conn.take()[-1] == "1"  # DISCONNECT
    conn2, sid2 = client(io)
    bus.deliver(
        *REQUESTS,
        REQUESTS[1],
        request({"type": 4, "opts": {"rooms": [sid2], "except": []}, "close": True}),
    )
    assert conn2.close_reason is not None


async def test_answers_fetch_sockets_and_room_listings() -> None:
    io, bus, _ = cluster()
    _conn, sid = client(io, "/", "room-a")
    socket_of(io, sid).data["user"] = "ann"
    _, other = client(io)
    socket_of(io, other).data["bad"] = object()  # cannot travel: sent as null
    bus.deliver(
        *REQUESTS,
        REQUESTS[1],
        OTHER.fetch_sockets("F1", BroadcastOptions(frozenset({"room-a"})))[1],
    )
    bus.deliver(*REQUESTS, REQUESTS[1], OTHER.fetch_sockets("F2", BroadcastOptions())[1])
    bus.deliver(
        *REQUESTS, REQUESTS[1], request({"requestId": "S1", "type": 0, "rooms": ["room-a"]})
    )
    bus.deliver(*REQUESTS, REQUESTS[1], OTHER.all_rooms("R1")[1])
    (ch1, f1), (_, f2), (_, s1), (_, r1) = bus.take()
    assert ch1 == b"socket.io-response#/#"
    first = json.loads(f1)
    assert first["requestId"] == "F1" and [s["id"] for s in first["sockets"]] == [sid]
    assert first["sockets"][0]["data"] == {"user": "ann"}
    assert first["sockets"][0]["handshake"]["address"] == "10.1.2.3"
    datas = {s["id"]: s["data"] for s in json.loads(f2)["sockets"]}
    assert datas == {sid: {"user": "ann"}, other: None}
    assert json.loads(s1) == {"requestId": "S1", "sockets": [sid]}
    assert sorted(json.loads(r1)["rooms"]) == sorted([sid, other, "room-a"])


async def test_fetch_sockets_across_the_cluster() -> None:
    io, bus, adapter = cluster(count=3, request_timeout=5)
    _, sid = client(io)
    pending = asyncio.ensure_future(io.fetch_sockets())
    await settle()
    ((_channel, sent),) = bus.take()
    rid = json.loads(sent)["requestId"]
    remote = {
        "id": "remote-1",
        "handshake": {"auth": {"t": 1}},
        "rooms": ["remote-1", "r"],
        "data": {"n": 1},
    }
    answer = OTHER.respond_fetch(
        type("R", (), {"uid": adapter.uid, "request_id": rid})(), [remote, {"bad": 1}]
    )  # type: ignore[arg-type]
    bus.deliver(*RESPONSES, RESPONSES[1], answer[1])
    bus.deliver(*RESPONSES, RESPONSES[1], request({"requestId": "unknown", "sockets": []}))
    assert not pending.done()
    bus.deliver(*RESPONSES, RESPONSES[1], request({"requestId": rid, "sockets": "none"}))
    found = await pending
    assert [type(s).__name__ for s in found] == ["Socket", "RemoteSocket"]
    remote_socket = found[1]
    assert isinstance(remote_socket, RemoteSocket)
    assert remote_socket.rooms == {"remote-1", "r"} and remote_socket.data == {"n": 1}
    assert remote_socket.handshake.auth == {"t": 1}
    # A remote socket's operations go through the cluster.
    remote_socket.emit("hi")
    remote_socket.join("j")
    remote_socket.leave("j")
    remote_socket.disconnect()
    sent_channels = [channel for channel, _ in bus.take()]
    assert sent_channels == [b"socket.io#/#remote-1#"] + [b"socket.io-request#/#"] * 3
    assert adapter._requests == {}
    assert await io.local.fetch_sockets() == [socket_of(io, sid)]


async def test_requests_time_out_instead_of_hanging() -> None:
    io, _bus, adapter = cluster(count=2, request_timeout=0.05)
    with pytest.raises(RequestTimeout, match="fetch_sockets"):
        await io.fetch_sockets()
    with pytest.raises(RequestTimeout, match="all_rooms"):
        await adapter.all_rooms()
    with pytest.raises(BroadcastAckTimeout, match="only 0 responses received out of 1") as info:
        await io.server_side_emit_with_ack("ping")
    assert info.value.replies == []
    assert adapter._requests == {}


async def test_server_count_and_its_fallbacks() -> None:
    io, bus, adapter = cluster(count=3)
    assert await adapter.server_count() == 3
    bus.confirmed.clear()  # our subscription is not confirmed yet: we count ourselves
    assert await adapter.server_count() == 4
    bus.count = None  # Redis unreachable: this server acts alone
    assert await adapter.server_count() == 1
    assert await io.fetch_sockets() == []
    assert await io.server_side_emit_with_ack("x") == []


async def test_server_side_emit_with_answers() -> None:
    io, bus, _adapter = cluster(count=3)
    got: list[Any] = []

    @io.sockets.on_server_side("ping")
    def ping(value: Any) -> dict[str, Any]:
        got.append(value)
        return {"pong": value}

    async def slow(value: Any) -> str:
        return "slow"

    io.sockets.on_server_side("slow", slow)
    io.sockets.on_server_side("slow", lambda value: "second handlers do not answer")
    bus.deliver(*REQUESTS, REQUESTS[1], OTHER.server_side_emit(["ping", 1], None)[1])
    bus.deliver(*REQUESTS, REQUESTS[1], OTHER.server_side_emit(["ping", 2], "Q1")[1])
    bus.deliver(*REQUESTS, REQUESTS[1], OTHER.server_side_emit(["slow", 3], "Q2")[1])
    bus.deliver(*REQUESTS, REQUESTS[1], OTHER.server_side_emit(["nobody", 4], "Q3")[1])
    await settle()
    assert got == [1, 2]
    answers = [json.loads(payload) for _, payload in bus.take()]
    assert answers == [
        {"type": 6, "requestId": "Q1", "data": {"pong": 2}},
        {"type": 6, "requestId": "Q2", "data": "slow"},
    ]
    # Our own, with answers from two other servers.
    pending = asyncio.ensure_future(io.server_side_emit_with_ack("ping", 5))
    await settle()
    rid = json.loads(bus.take()[0][1])["requestId"]
    for value in ("a", "b"):
        bus.deliver(*RESPONSES, RESPONSES[1], request({"type": 6, "requestId": rid, "data": value}))
    assert await pending == ["a", "b"]
    with pytest.raises(ValueError):
        await io.server_side_emit_with_ack("connect")


async def test_remote_broadcast_with_ack_is_answered() -> None:
    io, bus, _ = cluster()
    a, _ = client(io, "/", "room-a")
    client(io, "/")
    bus.deliver(
        *REQUESTS,
        REQUESTS[1],
        OTHER.broadcast_with_ack("B1", ["ask", 1], BroadcastOptions(frozenset({"room-a"})))[1],
    )
    assert json.loads(bus.take()[0][1]) == {"type": 8, "requestId": "B1", "clientCount": 1}
    sent = a.take()[0]
    assert isinstance(sent, str) and sent.endswith('["ask",1]')
    ack_id = sent[1 : sent.index("[")]
    a.feed(f'3{ack_id}["yes","ignored"]')
    assert unpack(bus.take()[0][1]) == {"type": 9, "requestId": "B1", "packet": "yes"}
    # Every server reports its count, even with no client to reach.
    bus.deliver(
        *REQUESTS,
        REQUESTS[1],
        OTHER.broadcast_with_ack("B2", ["ask"], BroadcastOptions(frozenset({"nobody"})))[1],
    )
    assert json.loads(bus.take()[0][1])["clientCount"] == 0


async def test_broadcast_with_ack_across_the_cluster() -> None:
    io, bus, _adapter = cluster(count=2)
    a, _ = client(io)
    pending = asyncio.ensure_future(io.timeout(5).emit_with_ack("ask"))
    await settle()
    ((channel, sent),) = bus.take()
    request_sent = unpack(sent)
    assert channel == b"socket.io-request#/#" and request_sent["opts"]["flags"] == {"timeout": 5000}
    rid = request_sent["requestId"]
    a.feed('30["local"]')
    bus.deliver(*RESPONSES, RESPONSES[1], request({"type": 8, "requestId": rid, "clientCount": 2}))
    bus.deliver(*RESPONSES, RESPONSES[1], pack({"type": 9, "requestId": rid, "packet": "r1"}))
    bus.deliver(*RESPONSES, RESPONSES[1], request({"type": 8, "requestId": rid, "clientCount": -1}))
    assert not pending.done()
    bus.deliver(*RESPONSES, RESPONSES[1], pack({"type": 9, "requestId": rid, "packet": "r2"}))
    assert sorted(await pending) == ["local", "r1", "r2"]


async def test_broadcast_with_ack_without_timeout_gives_up_on_other_servers() -> None:
    io, bus, adapter = cluster(count=3, request_timeout=0.05)
    pending = asyncio.ensure_future(io.emit_with_ack("ask"))
    await settle()
    rid = unpack(bus.take()[0][1])["requestId"]
    bus.deliver(*RESPONSES, RESPONSES[1], request({"type": 8, "requestId": rid, "clientCount": 2}))
    bus.deliver(*RESPONSES, RESPONSES[1], pack({"type": 9, "requestId": rid, "packet": "only"}))
    assert await pending == ["only"]
    assert adapter._ack_requests == {}


async def test_close_fails_pending_requests_and_detaches() -> None:
    io, bus, adapter = cluster(count=2)
    pending = asyncio.ensure_future(io.fetch_sockets())
    ack = asyncio.ensure_future(io.timeout(5).emit_with_ack("ask"))
    await settle()
    await io.close()
    with pytest.raises(RequestTimeout, match="closed"):
        await pending
    assert bus.handlers == {} and adapter._ack_requests == {}
    assert await ack == []  # nobody local; the other server never answered
    await adapter.close()  # idempotent


async def test_adapter_before_start_acts_locally() -> None:
    factory = FakeFactory(FakeBus())
    io = Server(adapter=factory)
    adapter = io.sockets.adapter
    assert isinstance(adapter, RedisAdapter)
    await adapter.close()  # closes the bus it got in init()
    assert adapter._bus is None and factory.detached == [adapter]
    io.emit("x")
    assert await adapter.server_count() == 1
    assert await adapter.all_rooms() == set()
    with pytest.raises(RuntimeError, match="not started"):
        await adapter.wait_ready()


def test_factory_options() -> None:
    factory = redis_adapter("redis://h:1/0", key="k", request_timeout=2, sharded=True)
    assert factory.key == "k" and factory.request_timeout == 2 and factory.sharded
    with pytest.raises(ValueError):
        redis_adapter(request_timeout=0)
    with pytest.raises(ValueError):
        redis_adapter(subscription_mode="never")  # type: ignore[arg-type]


async def test_sharded_adapter_follows_room_channels() -> None:
    bus = FakeBus()
    io = Server(adapter=FakeFactory(bus, sharded=True))
    adapter = io.sockets.adapter
    assert isinstance(adapter, ShardedRedisAdapter) and isinstance(
        adapter.protocol, ShardedProtocol
    )
    conn, sid = client(io, "/", "room-a", "room-b")
    rooms = {
        key[1]
        for key in bus.handlers
        if key[1].count(b"#") == 3 and not key[1].endswith(adapter.uid.encode() + b"#")
    }
    assert rooms == {b"socket.io#/#room-a#", b"socket.io#/#room-b#"}  # not the socket's own room
    socket_of(io, sid).leave("room-a")
    assert (SubscriptionKind.SHARD, b"socket.io#/#room-a#") not in bus.handlers
    # A one-room broadcast arrives on the room channel.
    payload = ShardedProtocol("socket.io", "/", "0123456789abcdef").broadcast(
        ["r"], BroadcastOptions(frozenset({"room-b"}))
    )[1]
    bus.deliver(SubscriptionKind.SHARD, b"socket.io#/#room-b#", b"socket.io#/#room-b#", payload)
    assert events(conn) == [["r"]]
    conn.drop("transport close")
    assert (SubscriptionKind.SHARD, b"socket.io#/#room-b#") not in bus.handlers
    await io.close()
    assert bus.handlers == {}


def test_an_adapter_the_server_did_not_start_starts_on_first_use() -> None:
    bus = FakeBus()
    io = Server(adapter=FakeFactory(bus))  # no running loop: the server starts it later
    adapter = io.sockets.adapter
    assert isinstance(adapter, RedisAdapter) and adapter._bus is None

    async def main() -> None:
        io.emit("early")  # e.g. an ASGI app emitting before its first client
        assert [channel for channel, _ in bus.take()] == [b"socket.io#/#"]
        assert REQUESTS in bus.handlers
        io._start_adapters()  # what the server does later: nothing more
        await io.close()
        io.emit("late")
        assert bus.take() == []

    asyncio.run(main())


async def test_a_remote_broadcast_is_encoded_once_for_every_recipient() -> None:
    io, bus, _ = cluster()
    conns = [client(io)[0] for _ in range(3)]
    _, payload = OTHER.broadcast(["fan-out", {"n": 1}], BroadcastOptions())
    bus.deliver(*PATTERN, b"socket.io#/#", payload)
    first = conns[0].sent[0]
    assert all(len(c.sent) == 1 and c.sent[0] is first for c in conns)


async def test_server_side_emit_with_ack_without_a_cluster() -> None:
    io = Server()  # the memory adapter: there is no other server to answer
    assert await io.server_side_emit_with_ack("anyone") == []
    with pytest.raises(ValueError):
        await io.sockets.server_side_emit_with_ack("connection")


async def test_a_failing_server_side_handler_does_not_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    io, bus, _ = cluster()

    async def broken(value: Any) -> None:
        raise RuntimeError("broken")

    io.on_server_side("broken", broken)
    io.on_server_side("sync-broken", lambda value: 1 / 0)
    bus.deliver(*REQUESTS, REQUESTS[1], OTHER.server_side_emit(["broken", 1], "Q1")[1])
    bus.deliver(*REQUESTS, REQUESTS[1], OTHER.server_side_emit(["sync-broken", 1], "Q2")[1])
    await settle()
    assert bus.take() == []  # the requester times out, as with Node
    assert len([r for r in caplog.records if "failed" in r.message]) == 2
