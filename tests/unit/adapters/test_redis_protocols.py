"""The classic and sharded wire protocols of @socket.io/redis-adapter 8.x, byte for byte.

Expected values are messages captured from Node servers (redis-cli MONITOR): what sockjet
publishes must be what Node publishes, and what Node publishes must decode to the right request.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sockjet.adapters.redis_codec import (
    ClusterRequest,
    ClusterResponse,
    RequestType,
    pack,
    unpack,
)
from sockjet.adapters.redis_protocols import (
    ClassicProtocol,
    Role,
    ShardedProtocol,
    SubscriptionKind,
    glob_escape,
)
from sockjet.errors import InvalidPacket
from sockjet.server.targets import BroadcastFlags, BroadcastOptions

SID = "pbM0rnSpDOcskq7KAAAB"  # 20 characters, like every socket id


def opts(
    rooms: tuple[str, ...] = (), except_: tuple[str, ...] = (), **flags: Any
) -> BroadcastOptions:
    return BroadcastOptions(frozenset(rooms), frozenset(except_), BroadcastFlags(**flags))


def classic(uid: str = "RT3Zgy", nsp: str = "/", **kw: Any) -> ClassicProtocol:
    return ClassicProtocol("socket.io", nsp, uid, **kw)


def sharded(uid: str = "a2843424dfb0bcd0", **kw: Any) -> ShardedProtocol:
    return ShardedProtocol("socket.io", "/", uid, **kw)


# -- classic: channels and subscriptions ----------------------------------------------------------


def test_classic_channels_as_node_subscribes() -> None:
    p = classic(uid="8f3zlp")
    assert p.subscriptions() == {
        (SubscriptionKind.PATTERN, b"socket.io#/#*"): Role.BROADCAST,
        (SubscriptionKind.CHANNEL, b"socket.io-request#/#"): Role.REQUEST,
        (SubscriptionKind.CHANNEL, b"socket.io-response#/#"): Role.RESPONSE,
        (SubscriptionKind.CHANNEL, b"socket.io-response#/#8f3zlp#"): Role.RESPONSE,
    }
    assert p.server_count_channel() == (SubscriptionKind.CHANNEL, b"socket.io-request#/#")
    admin = classic(uid="RFHnH6", nsp="/admin")
    assert (SubscriptionKind.PATTERN, b"socket.io#/admin#*") in admin.subscriptions()
    assert admin.broadcast_room(b"socket.io#/admin#room-a#") == b"room-a"
    assert admin.broadcast_room(b"socket.io#/admin#") == b""


def test_glob_characters_in_a_namespace_match_only_themselves() -> None:
    assert glob_escape(b"socket.io#/a*b?[c]\\#") == b"socket.io#/a\\*b\\?\\[c\\]\\\\#"
    pattern = classic(nsp="/ns*").subscriptions()
    assert (SubscriptionKind.PATTERN, b"socket.io#/ns\\*#*") in pattern


# -- classic: what sockjet publishes --------------------------------------------------------------


def test_classic_broadcasts_match_node() -> None:
    p = classic()

    def sent(data: list[Any], o: BroadcastOptions) -> tuple[bytes, Any]:
        channel, payload = p.broadcast(data, o)
        return channel, unpack(payload)

    packet = {"type": 2, "data": ["hello", "world", 1], "nsp": "/"}
    empty = {"rooms": [], "except": [], "flags": {}}
    assert sent(["hello", "world", 1], opts()) == (b"socket.io#/#", ["RT3Zgy", packet, empty])
    channel, value = sent(["to-room-a", {"x": 1}], opts(("room-a",)))
    assert channel == b"socket.io#/#room-a#"
    assert value[2] == {"rooms": ["room-a"], "except": [], "flags": {}}
    channel, value = sent(["multi-room"], opts(("room-a", "room-b")))
    assert channel == b"socket.io#/#" and sorted(value[2]["rooms"]) == ["room-a", "room-b"]
    _, value = sent(["vol"], opts(volatile=True, compress=False))
    assert value[2]["flags"] == {"volatile": True, "compress": False}
    admin = classic(uid="O275s4", nsp="/admin")
    channel, payload = admin.broadcast(["admin-hello", 42], opts())
    assert channel == b"socket.io#/admin#"
    assert unpack(payload)[1] == {"type": 2, "data": ["admin-hello", 42], "nsp": "/admin"}
    # Binary stays binary.
    _, payload = p.broadcast(["bin", b"\x01\x02\x03", {"nested": b"hi"}], opts())
    assert unpack(payload)[1]["data"] == ["bin", b"\x01\x02\x03", {"nested": b"hi"}]


def test_classic_requests_match_node_bytes() -> None:
    p = classic()
    request = b"socket.io-request#/#"
    assert p.fetch_sockets("A8Z4M4", opts()) == (
        request,
        b'{"uid":"RT3Zgy","requestId":"A8Z4M4","type":5,"opts":{"rooms":[],"except":[]}}',
    )
    assert p.server_side_emit(["ping-server", {"n": 1}], "C1QxnK") == (
        request,
        b'{"uid":"RT3Zgy","requestId":"C1QxnK","type":6,"data":["ping-server",{"n":1}]}',
    )
    assert p.server_side_emit(["notify-server", "fire-and-forget", 2], None) == (
        request,
        b'{"uid":"RT3Zgy","type":6,"data":["notify-server","fire-and-forget",2]}',
    )
    assert p.sockets_join(opts((SID,)), ["room-x", "room-y"]) == (
        request,
        b'{"uid":"RT3Zgy","type":2,"opts":{"rooms":["' + SID.encode() + b'"],"except":[]},'
        b'"rooms":["room-x","room-y"]}',
    )
    assert p.sockets_leave(opts((SID,)), ["room-x"]) == (
        request,
        b'{"uid":"RT3Zgy","type":3,"opts":{"rooms":["' + SID.encode() + b'"],"except":[]},'
        b'"rooms":["room-x"]}',
    )
    assert p.disconnect_sockets(opts(("room-kick",)), True) == (
        request,
        b'{"uid":"RT3Zgy","type":4,"opts":{"rooms":["room-kick"],"except":[]},"close":true}',
    )
    assert p.all_rooms("-Wx9PF") == (
        request,
        b'{"uid":"RT3Zgy","requestId":"-Wx9PF","type":1}',
    )
    channel, payload = p.broadcast_with_ack("zZaUOL", ["ask", "question?"], opts(timeout=1))
    assert channel == request
    assert payload == pack(
        {
            "uid": "RT3Zgy",
            "requestId": "zZaUOL",
            "type": 7,
            "packet": {"type": 2, "data": ["ask", "question?"], "nsp": "/"},
            "opts": {"rooms": [], "except": [], "flags": {"timeout": 1000}},
        }
    )


def test_classic_answers_match_node_bytes() -> None:
    p = classic(uid="s2node")
    asker = ClusterRequest(RequestType.REMOTE_FETCH, "RT3Zgy", "zZaUOL")
    response = b"socket.io-response#/#"
    assert p.respond_client_count(asker, 2) == (
        response,
        b'{"type":8,"requestId":"zZaUOL","clientCount":2}',
    )
    assert p.respond_ack(asker, "c2a-answer") == (
        response,
        pack({"type": 9, "requestId": "zZaUOL", "packet": "c2a-answer"}),
    )
    assert p.respond_server_side_emit(asker, {"from": "s2", "echo": {"n": 1}}) == (
        response,
        b'{"type":6,"requestId":"zZaUOL","data":{"from":"s2","echo":{"n":1}}}',
    )
    assert p.respond_rooms(asker, ["room-a"]) == (
        response,
        b'{"requestId":"zZaUOL","rooms":["room-a"]}',
    )
    assert p.respond_sockets(asker, [SID]) == (
        response,
        b'{"requestId":"zZaUOL","sockets":["' + SID.encode() + b'"]}',
    )
    assert p.respond_fetch(asker, [{"id": SID, "data": b"\x01"}])[1][:1] != b"{"  # binary
    assert p.respond_done(asker) == (response, b'{"requestId":"zZaUOL"}')
    assert p.respond_done(ClusterRequest(RequestType.REMOTE_JOIN, "x")) is None
    # publishOnSpecificResponseChannel: answers go to the requester's channel, except the
    # answers to a server-side emit, which Node always sends on the shared one.
    specific = classic(uid="s2node", specific_response_channel=True)
    assert specific.respond_client_count(asker, 0)[0] == b"socket.io-response#/#RT3Zgy#"
    assert specific.respond_server_side_emit(asker, 1)[0] == response


# -- classic: what Node publishes -----------------------------------------------------------------


def request(p: ClassicProtocol, value: Any) -> Any:
    payload = json.dumps(value, separators=(",", ":")).encode()
    return p.decode(Role.REQUEST, b"socket.io-request#/#", payload)


def test_classic_decodes_node_broadcasts() -> None:
    p = classic(uid="mine00")
    node = ["B3dw3C", {"type": 2, "data": ["hello", "world", 1], "nsp": "/"}, {}]
    node[2] = {"rooms": ["room-a"], "except": [SID], "flags": {"volatile": True}}
    got = p.decode(Role.BROADCAST, b"socket.io#/#room-a#", pack(node))
    assert got == ClusterRequest(
        RequestType.BROADCAST,
        "B3dw3C",
        None,
        opts(("room-a",), (SID,), volatile=True),
        node[1]["data"],
    )
    emitter = [
        "emitter",
        {"type": 2, "data": ["e"], "nsp": "/"},
        {"rooms": [], "flags": {}, "except": []},
    ]
    assert p.decode(Role.BROADCAST, b"socket.io#/#", pack(emitter)) == ClusterRequest(
        RequestType.BROADCAST, "emitter", None, opts(), ["e"]
    )
    own = ["mine00", {"type": 2, "data": ["e"], "nsp": "/"}, {}]
    assert p.decode(Role.BROADCAST, b"socket.io#/#", pack(own)) is None
    other_nsp = ["x", {"type": 2, "data": ["e"], "nsp": "/admin"}, {}]
    assert p.decode(Role.BROADCAST, b"socket.io#/#", pack(other_nsp)) is None
    for bad in (pack(["x", {"type": 2, "data": ["e"]}]), pack({"a": 1}), b'{"a":1}'):
        with pytest.raises(InvalidPacket):
            p.decode(Role.BROADCAST, b"socket.io#/#", bad)


def test_classic_decodes_node_requests() -> None:
    p = classic()
    o = {"rooms": [SID], "except": []}
    assert request(p, {"uid": "B3", "type": 2, "opts": o, "rooms": ["room-x"]}) == ClusterRequest(
        RequestType.REMOTE_JOIN, "B3", opts=opts((SID,)), rooms=("room-x",)
    )
    # The emitter's requests carry no uid.
    assert request(p, {"type": 3, "opts": o, "rooms": ["room-e"]}) == ClusterRequest(
        RequestType.REMOTE_LEAVE, None, opts=opts((SID,)), rooms=("room-e",)
    )
    assert request(p, {"type": 4, "opts": {"rooms": ["k"], "except": []}, "close": True}) == (
        ClusterRequest(RequestType.REMOTE_DISCONNECT, None, opts=opts(("k",)), close=True)
    )
    assert request(p, {"uid": "B3", "requestId": "A8", "type": 5, "opts": {}}) == ClusterRequest(
        RequestType.REMOTE_FETCH, "B3", "A8"
    )
    assert request(p, {"uid": "emitter", "type": 6, "data": ["ping", 1]}) == ClusterRequest(
        RequestType.SERVER_SIDE_EMIT, "emitter", data=["ping", 1]
    )
    assert request(p, {"uid": "B3", "requestId": "C1", "type": 6, "data": ["p"]}).request_id == "C1"
    assert request(p, {"requestId": "S0", "type": 0, "rooms": ["a"]}) == ClusterRequest(
        RequestType.SOCKETS, None, "S0", rooms=("a",)
    )
    assert request(p, {"uid": "B3", "requestId": "R1", "type": 1}) == ClusterRequest(
        RequestType.ALL_ROOMS, "B3", "R1"
    )
    ack = {
        "uid": "B3",
        "requestId": "zZ",
        "type": 7,
        "packet": {"type": 2, "data": ["ask", "q?"], "nsp": "/"},
        "opts": {"rooms": [], "except": [], "flags": {"timeout": 1000}},
    }
    got = p.decode(Role.REQUEST, b"socket.io-request#/#", pack(ack))
    assert got == ClusterRequest(
        RequestType.BROADCAST, "B3", "zZ", opts(timeout=1.0), ["ask", "q?"]
    )
    # Legacy one-socket forms (socket.io-redis 5.x).
    legacy = request(p, {"requestId": "L1", "type": 2, "sid": SID, "room": "r"})
    assert (legacy.sid, legacy.room, legacy.request_id) == (SID, "r", "L1")
    legacy = request(p, {"type": 4, "sid": SID, "close": True})
    assert (legacy.sid, legacy.close, legacy.request_id) == (SID, True, None)
    # Unknown types are ignored, as Node does.
    assert request(p, {"type": 42}) is None
    assert request(p, {"type": "5"}) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"type": 2, "opts": {"rooms": []}, "rooms": "room"},
        {"type": 2, "sid": 5, "room": "r"},
        {"type": 3, "sid": SID},
        {"type": 5, "requestId": "x", "opts": "all"},
        {"type": 5, "opts": {}},
        {"type": 6, "data": ["connect"]},
        {"type": 6, "data": "ev"},
        {"type": 0, "requestId": 1},
        {"type": 7, "requestId": "x", "packet": {"type": 0}, "opts": {}},
    ],
)
def test_classic_refuses_malformed_requests(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidPacket):
        request(classic(), bad)


def test_classic_decodes_answers() -> None:
    p = classic()

    def answer(value: Any, encode: Any = None) -> Any:
        payload = (encode or (lambda v: json.dumps(v).encode()))(value)
        return p.decode(Role.RESPONSE, b"socket.io-response#/#", payload)

    assert answer({"requestId": "A8", "sockets": []}) == ClusterResponse(
        "A8", None, {"requestId": "A8", "sockets": []}
    )
    assert answer({"type": 8, "requestId": "z", "clientCount": 2}).type is (
        RequestType.BROADCAST_CLIENT_COUNT
    )
    assert answer({"type": 9, "requestId": "z", "packet": b"x"}, pack).body["packet"] == b"x"
    assert answer({"type": 6, "requestId": "z", "data": 1}).type is RequestType.SERVER_SIDE_EMIT
    assert answer({"type": 3, "requestId": "z"}).type is None
    with pytest.raises(InvalidPacket):
        answer({"sockets": []})
    with pytest.raises(InvalidPacket):
        answer([1])


# -- sharded ------------------------------------------------------------------------------------


def test_sharded_channels() -> None:
    p = sharded(uid="526fe03787ce6e8b")
    assert p.subscriptions() == {
        (SubscriptionKind.SHARD, b"socket.io#/#"): Role.REQUEST,
        (SubscriptionKind.SHARD, b"socket.io#/#526fe03787ce6e8b#"): Role.RESPONSE,
    }
    assert p.server_count_channel() == (SubscriptionKind.SHARD, b"socket.io#/#")
    assert p.room_channel("room-a") == b"socket.io#/#room-a#"
    assert p.subscribes_to_room("room-a", False) and not p.subscribes_to_room(SID, True)
    assert sharded(subscription_mode="dynamic-private").subscribes_to_room(SID, True)
    assert not sharded(subscription_mode="static").subscribes_to_room("room-a", False)
    with pytest.raises(ValueError):
        sharded(subscription_mode="sometimes")  # type: ignore[arg-type]


def test_sharded_messages_match_node_bytes() -> None:
    p = sharded()
    base = b"socket.io#/#"
    assert p.broadcast(["hello", "world", 1], opts()) == (
        base,
        b'{"type":3,"data":{"packet":{"type":2,"data":["hello","world",1]},'
        b'"opts":{"rooms":[],"except":[],"flags":{}}},"uid":"a2843424dfb0bcd0","nsp":"/"}',
    )
    assert p.broadcast(["to-room-a"], opts(("room-a",)))[0] == b"socket.io#/#room-a#"
    assert p.broadcast(["to-sid"], opts((SID,)))[0] == base  # socket ids: the base channel
    assert sharded(subscription_mode="dynamic-private").broadcast(["x"], opts((SID,)))[0] == (
        b"socket.io#/#" + SID.encode() + b"#"
    )
    assert sharded(subscription_mode="static").broadcast(["x"], opts(("room-a",)))[0] == base
    channel, payload = p.broadcast(["bin", b"\x01"], opts())
    assert payload[:1] != b"{" and unpack(payload)["data"]["packet"]["data"] == ["bin", b"\x01"]
    assert p.fetch_sockets("a4e25527b7aba21a", opts()) == (
        base,
        b'{"type":7,"data":{"opts":{"rooms":[],"except":[],"flags":{}},'
        b'"requestId":"a4e25527b7aba21a"},"uid":"a2843424dfb0bcd0","nsp":"/"}',
    )
    assert p.server_side_emit(["ping-server", {"n": 1}], "8ae7") == (
        base,
        b'{"type":9,"data":{"requestId":"8ae7","packet":["ping-server",{"n":1}]},'
        b'"uid":"a2843424dfb0bcd0","nsp":"/"}',
    )
    assert p.server_side_emit(["n"], None)[1].startswith(b'{"type":9,"data":{"packet":["n"]}')
    assert p.sockets_join(opts((SID,)), ["room-x"])[1].startswith(
        b'{"type":4,"data":{"opts":{"rooms":["' + SID.encode() + b'"],"except":[],"flags":{}},'
        b'"rooms":["room-x"]}'
    )
    assert p.sockets_leave(opts(), ["r"])[1].startswith(b'{"type":5,')
    assert p.disconnect_sockets(opts(("room-kick",)), True)[1].startswith(
        b'{"type":6,"data":{"opts":{"rooms":["room-kick"],"except":[],"flags":{}},"close":true}'
    )
    channel, payload = p.broadcast_with_ack("13db", ["ask", "q?"], opts(timeout=1))
    assert channel == base and payload.startswith(
        b'{"type":3,"data":{"packet":{"type":2,"data":["ask","q?"]},"requestId":"13db",'
        b'"opts":{"rooms":[],"except":[],"flags":{"timeout":1000}}}'
    )
    assert p.all_rooms("x") is None


def test_sharded_answers_go_to_the_requester() -> None:
    p = sharded(uid="526fe03787ce6e8b")
    req = ClusterRequest(RequestType.REMOTE_FETCH, "a2843424dfb0bcd0", "13db")
    reply = b"socket.io#/#a2843424dfb0bcd0#"
    assert p.respond_client_count(req, 2) == (
        reply,
        b'{"type":11,"data":{"requestId":"13db","clientCount":2},'
        b'"uid":"526fe03787ce6e8b","nsp":"/"}',
    )
    assert p.respond_ack(req, "c2a-answer") == (
        reply,
        b'{"type":12,"data":{"requestId":"13db","packet":"c2a-answer"},'
        b'"uid":"526fe03787ce6e8b","nsp":"/"}',
    )
    assert p.respond_server_side_emit(req, {"from": "s2"})[1].startswith(
        b'{"type":10,"data":{"requestId":"13db","packet":{"from":"s2"}}'
    )
    assert p.respond_fetch(req, [])[1].startswith(b'{"type":8,"data":{"requestId":"13db"')
    assert p.respond_ack(ClusterRequest(RequestType.BROADCAST, None, "x"), 1) is None
    assert p.respond_rooms(req, []) is None and p.respond_sockets(req, []) is None
    assert p.respond_done(req) is None


def test_sharded_decodes_node_messages() -> None:
    p = sharded(uid="mine000000000000")

    def got(kind: int, data: Any, uid: str = "a2843424dfb0bcd0", nsp: str = "/") -> Any:
        message = {"type": kind, "data": data, "uid": uid, "nsp": nsp}
        return p.decode(Role.REQUEST, b"socket.io#/#", json.dumps(message).encode())

    o = {"rooms": [], "except": [], "flags": {}}
    assert got(3, {"packet": {"type": 2, "data": ["hi"]}, "opts": o}) == ClusterRequest(
        RequestType.BROADCAST, "a2843424dfb0bcd0", None, opts(), ["hi"]
    )
    with_ack = got(3, {"packet": {"type": 2, "data": ["q"]}, "requestId": "r", "opts": o})
    assert with_ack.request_id == "r"
    assert got(4, {"opts": o, "rooms": ["x"]}).rooms == ("x",)
    assert got(5, {"opts": o, "rooms": ["x"]}).type is RequestType.REMOTE_LEAVE
    assert got(6, {"opts": o, "close": True}).close is True
    assert got(7, {"opts": o, "requestId": "f"}).type is RequestType.REMOTE_FETCH
    assert got(9, {"packet": ["ping", 1], "requestId": "s"}).data == ["ping", 1]
    assert got(8, {"requestId": "f", "sockets": []}) == ClusterResponse("f", None, {"sockets": []})
    assert got(10, {"requestId": "s", "packet": 5}) == ClusterResponse(
        "s", RequestType.SERVER_SIDE_EMIT, {"data": 5}
    )
    assert got(11, {"requestId": "b", "clientCount": 1}).body == {"clientCount": 1}
    assert got(12, {"requestId": "b", "packet": "ok"}).type is RequestType.BROADCAST_ACK
    # Own messages, other namespaces, heartbeats and unknown types are not for us.
    assert (
        got(3, {"packet": {"type": 2, "data": ["hi"]}, "opts": o}, uid="mine000000000000") is None
    )
    assert got(3, {"packet": {"type": 2, "data": ["hi"]}, "opts": o}, nsp="/admin") is None
    assert got(2, None) is None and got(13, None) is None and got(99, {}) is None
    binary = pack(
        {
            "type": 3,
            "data": {"packet": {"type": 2, "data": ["b", b"\x01"]}, "opts": o},
            "uid": "x",
            "nsp": "/",
        }
    )
    assert p.decode(Role.REQUEST, b"socket.io#/#", binary).data == ["b", b"\x01"]
    for bad in ({"type": 3, "uid": "x", "nsp": "/"}, [1]):
        with pytest.raises(InvalidPacket):
            p.decode(Role.REQUEST, b"socket.io#/#", json.dumps(bad).encode())
