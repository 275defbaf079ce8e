"""Values between Redis cluster nodes: encodings (as notepack.io and Node write them) and the
strict checks applied to everything read from the broker."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from server_fakes import FakeConn, socket_of

from sockjet.adapters.redis_codec import (
    DEFAULT_OPTIONS,
    decode,
    describe_socket,
    details_from_wire,
    dumps_or_pack,
    event_data,
    event_packet,
    flags_from_wire,
    flags_to_wire,
    options_from_wire,
    options_to_wire,
    pack,
    request_id,
    rooms_from_wire,
    unpack,
)
from sockjet.errors import InvalidPacket
from sockjet.protocol.json import MAX_DEPTH
from sockjet.server.server import Server
from sockjet.server.targets import BroadcastFlags, BroadcastOptions

# io.emit("hello", "world", 1) from a Node server with uid "B3dw3C", captured from Redis.
NODE_HELLO = bytes.fromhex(
    "93a642336477334383a47479706502a46461746193a568656c6c6fa5776f726c6401a36e7370a12f"
    "83a5726f6f6d7390a665786365707490a5666c61677380"
)


def test_pack_is_byte_identical_to_notepack() -> None:
    value = [
        "B3dw3C",
        {"type": 2, "data": ["hello", "world", 1], "nsp": "/"},
        {"rooms": [], "except": [], "flags": {}},
    ]
    assert pack(value) == NODE_HELLO
    assert unpack(NODE_HELLO) == value
    # Binary is msgpack bin and reads back as bytes; aware datetimes use the timestamp ext.
    assert unpack(pack(["bin", b"\x01\x02\x03", {"nested": b"hi"}])) == [
        "bin",
        b"\x01\x02\x03",
        {"nested": b"hi"},
    ]
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert unpack(pack([when])) == [when]


def test_dumps_or_pack_prefers_compact_json() -> None:
    assert dumps_or_pack({"a": [1, "x"], "b": None}) == b'{"a":[1,"x"],"b":null}'
    binary = dumps_or_pack({"data": ["ev", b"\x00"]})
    assert binary[:1] != b"{" and unpack(binary) == {"data": ["ev", b"\x00"]}
    with pytest.raises(TypeError):
        dumps_or_pack({"x": object()})


def test_decode_sniffs_json_and_msgpack() -> None:
    assert decode(b'{"type":1}') == {"type": 1}
    assert decode(pack({"type": 1})) == {"type": 1}
    for garbage in (b"{nope", b"\xc1", b"", b"\x92\x01"):
        with pytest.raises(InvalidPacket):
            decode(garbage)


def test_unpack_refuses_extensions_depth_and_garbage() -> None:
    # notepack's undefined (ext 0, one byte) is None; an ArrayBuffer (ext 0) is bytes.
    assert unpack(b"\x92\xd4\x00\x00\xd5\x00\x01\x02") == [None, b"\x01\x02"]
    with pytest.raises(InvalidPacket, match="ext type 5"):
        unpack(msgpack.packb(msgpack.ExtType(5, b"x")))
    deep: Any = 1
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(InvalidPacket, match="deeper"):
        unpack(pack(deep))
    with pytest.raises(InvalidPacket, match="invalid msgpack"):
        unpack(b"\xdd\xff\xff\xff\xff")  # an array claiming 4 billion items


def test_flags_both_ways() -> None:
    assert flags_to_wire(BroadcastFlags()) == {}
    flags = BroadcastFlags(volatile=True, compress=False, local=True, timeout=1.5)
    assert flags_to_wire(flags) == {"volatile": True, "compress": False, "timeout": 1500}
    assert flags_from_wire(None) is DEFAULT_OPTIONS.flags
    assert flags_from_wire({}) is DEFAULT_OPTIONS.flags
    back = flags_from_wire({"volatile": True, "compress": False, "timeout": 1000, "local": True})
    assert back == BroadcastFlags(volatile=True, compress=False, timeout=1.0)
    # Odd values mean "not set"; a non-object is refused.
    assert flags_from_wire({"volatile": 1, "compress": "no", "timeout": -5}) == BroadcastFlags()
    with pytest.raises(InvalidPacket):
        flags_from_wire([1])


def test_options_both_ways() -> None:
    opts = BroadcastOptions(frozenset({"a"}), frozenset({"b"}), BroadcastFlags(volatile=True))
    wire = options_to_wire(opts)
    assert wire == {"rooms": ["a"], "except": ["b"], "flags": {"volatile": True}}
    assert options_to_wire(opts, flags=False) == {"rooms": ["a"], "except": ["b"]}
    assert options_from_wire(wire) == opts
    assert options_from_wire({"rooms": [], "except": [], "flags": {}}) is DEFAULT_OPTIONS
    assert options_from_wire({}) is DEFAULT_OPTIONS
    # Node rooms may be numbers: they are strings here (1 and 1.0 alike, as in JavaScript).
    assert rooms_from_wire([1, 2.0, 2.5, "x"]) == {"1", "2", "2.5", "x"}
    for bad in ("rooms", [None], [True], [[1]]):
        with pytest.raises(InvalidPacket):
            rooms_from_wire(bad)
    with pytest.raises(InvalidPacket):
        options_from_wire(["rooms"])


def test_event_data_refuses_what_a_client_could_not_send() -> None:
    assert event_data(["ev", 1]) == ["ev", 1]
    assert event_data([7]) == [7]
    for bad in ([], "ev", None, ["connect"], ["disconnect", 1], [None], [True], {"0": "ev"}):
        with pytest.raises(InvalidPacket):
            event_data(bad)


def test_event_packet_checks_type_and_namespace() -> None:
    assert event_packet({"type": 2, "data": ["ev"], "nsp": "/"}, "/") == ["ev"]
    assert event_packet({"type": 2, "data": ["ev"]}, "/") == ["ev"]  # no nsp: "/"
    assert event_packet({"type": 5, "data": ["ev", b"x"], "nsp": "/a"}, "/a") == ["ev", b"x"]
    assert event_packet({"type": 2, "data": ["ev"], "nsp": "/other"}, "/") is None
    for bad in (
        {"type": 1, "nsp": "/"},  # a DISCONNECT would disconnect every client
        {"type": 2, "data": "ev"},
        ["ev"],
    ):
        with pytest.raises(InvalidPacket):
            event_packet(bad, "/")


def test_request_id() -> None:
    assert request_id("abc") == "abc"
    for bad in (None, "", 5, ["x"]):
        with pytest.raises(InvalidPacket):
            request_id(bad)


async def test_socket_description_round_trip() -> None:
    io = Server()
    conn = FakeConn(io, origin="http://example.com")
    socket = socket_of(io, conn.connect(auth={"token": "t"}))
    socket.join("room-a")
    socket.data["user"] = "ann"
    described = describe_socket(socket)
    assert described["id"] == socket.id
    assert sorted(described["rooms"]) == sorted([socket.id, "room-a"])
    assert described["data"] == {"user": "ann"}
    shake = described["handshake"]
    assert shake["auth"] == {"token": "t"} and shake["xdomain"] is True
    assert set(shake) == {
        "headers",
        "query",
        "auth",
        "address",
        "url",
        "secure",
        "xdomain",
        "issued",
        "time",
    }
    details = details_from_wire(decode(dumps_or_pack(described)))
    assert details.id == socket.id and details.rooms == {socket.id, "room-a"}
    assert details.data == {"user": "ann"}
    assert details.handshake == socket.handshake


def test_details_from_node_and_from_garbage() -> None:
    node = {
        "id": "7AfhdoJb1pKazrBpAAAA",
        "handshake": {
            "headers": {"host": "x"},
            "time": "Thu Nov 26 2026 07:21:34 GMT+0000 (Coordinated Universal Time)",
            "address": "::ffff:127.0.0.1",
            "xdomain": False,
            "secure": False,
            "issued": 1795677694425,
            "url": "/socket.io/?EIO=4&transport=websocket",
            "query": {"EIO": "4"},
            "auth": {},
        },
        "rooms": ["7AfhdoJb1pKazrBpAAAA", "room-a"],
        "data": {"user": "s2-user-1"},
    }
    details = details_from_wire(node)
    assert details.handshake.issued == 1795677694425
    assert details.handshake.address == "::ffff:127.0.0.1"
    assert details.rooms == {"7AfhdoJb1pKazrBpAAAA", "room-a"}
    # Missing or odd parts become empty, never errors; a missing id is refused.
    sparse = details_from_wire({"id": "x", "handshake": "?", "rooms": "r", "data": 1})
    assert sparse.rooms == set() and sparse.handshake.headers == {} and sparse.data == 1
    assert sparse.handshake.issued == 0 and sparse.handshake.secure is False
    for bad in ({"rooms": []}, {"id": 5}, ["x"]):
        with pytest.raises(InvalidPacket):
            details_from_wire(bad)
