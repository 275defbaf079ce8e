"""Our Socket.IO parsers against npm socket.io-parser and socket.io-msgpack-parser.

One Node process per test serves a generated corpus (every packet type, namespaces, ack ids,
unicode, nested binary): Node decodes what we encode, we decode what Node encodes, and the
encodings are compared byte for byte where both sides must agree.
"""

from __future__ import annotations

import base64
import dataclasses
import random
from collections.abc import Callable
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest

from sockjet.errors import ProtocolError
from sockjet.protocol.msgpack import MSGPACK_SERIALIZER
from sockjet.protocol.socketio import (
    JSON_SERIALIZER,
    PROTOCOL_VERSION,
    RESERVED_EVENTS,
    Packet,
    PacketType,
)

pytestmark = pytest.mark.node

# ``node_script(name, request) -> reply``: the fixture of tests/interop/conftest.py.
NodeScript = Callable[[str, Any], Any]

T = PacketType
SEED = 20240501
NAMESPACES = ["/", "/admin", "/a/b", "/ünï", "/😀", "/with space", "/q?x=1"]
ACK_IDS = [None, 0, 1, 42, 65_535, 2**32, 999_999_999_999_999]
STRINGS = [
    "",
    "hello",
    "é",
    "中文",
    "😀 astral",
    'quote " and \\ backslash',
    "\x00\x01\x1f\x7f",
    "line\u2028sep\u2029",
    "\ufeffbom",
    '{"_placeholder":true}',
    "[[[{{{",
    "-1",
    "x" * 300,
]
# Non-integral floats print alike in JavaScript and orjson; integral ones do not (100 / 100.0).
NUMBERS = [
    0,
    1,
    -1,
    127,
    128,
    -33,
    255,
    65_536,
    -(2**31),
    2**53 - 1,
    -(2**53) + 1,
    1.5,
    -0.25,
    3.14159,
]
KEYS = ["a", "b", "name", "é", "😀", "", "with space", "_placeholder_not", "nested"]


def random_value(rng: random.Random, depth: int, binary: bool) -> Any:
    roll = rng.random()
    if depth > 0 and roll < 0.2:
        return [random_value(rng, depth - 1, binary) for _ in range(rng.randint(0, 4))]
    if depth > 0 and roll < 0.4:
        return {
            rng.choice(KEYS): random_value(rng, depth - 1, binary) for _ in range(rng.randint(0, 4))
        }
    if binary and roll < 0.55:
        return rng.randbytes(rng.choice([0, 1, 4, 300]))
    return rng.choice([None, True, False, *STRINGS, *NUMBERS])


def random_packet(rng: random.Random, binary: bool = True) -> Packet:
    kind = rng.choice(list(PacketType))
    nsp = rng.choice(NAMESPACES)
    if kind in (T.EVENT, T.BINARY_EVENT):
        name = rng.choice([*(s for s in STRINGS if s not in RESERVED_EVENTS), "chat", 7, 1.5])
        args = [random_value(rng, 4, binary) for _ in range(rng.randint(0, 4))]
        return Packet(kind, nsp, [name, *args], rng.choice(ACK_IDS))
    if kind in (T.ACK, T.BINARY_ACK):
        args = [random_value(rng, 4, binary) for _ in range(rng.randint(0, 4))]
        return Packet(kind, nsp, args, rng.choice(ACK_IDS))
    if kind == T.CONNECT:
        auth = rng.choice([None, {"token": "123"}, {"sid": "oSO0OpakMV_3jnilAAAA", "pid": "p"}])
        return Packet(kind, nsp, auth)
    if kind == T.DISCONNECT:
        return Packet(kind, nsp)
    return Packet(
        kind,
        nsp,
        rng.choice(
            [
                "refused",
                {"message": "Not authorized"},
                {"message": "m", "data": {"code": 4, "why": "é"}},
            ]
        ),
    )


def corpus(binary: bool = True, size: int = 400) -> list[Packet]:
    rng = random.Random(SEED)
    fixed = [
        Packet(T.CONNECT),
        Packet(T.CONNECT, "/admin", {"token": "123"}),
        Packet(T.DISCONNECT, "/admin"),
        Packet(T.EVENT, "/", ["hello", b"\x01\x02\x03\x04"]),
        Packet(T.EVENT, "/admin", ["baz", b"\x01\x02", {"deep": [[{"x": b"\x03\x04"}]]}], 456),
        Packet(T.ACK, "/admin", [], 456),
        Packet(T.ACK, "/", [b"", [b"a", {"b": b"c"}]], 0),
        Packet(T.CONNECT_ERROR, "/", {"message": "Not authorized"}),
    ]
    if not binary:
        fixed = [p for p in fixed if not has_bytes(p.data)]
    return fixed + [random_packet(rng, binary) for _ in range(size)]


# --- value conversions shared with the Node scripts ----------------------------------------


def to_wire(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$binary": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return [to_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    return value


def from_wire(value: Any) -> Any:
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    if isinstance(value, dict):
        if "$binary" in value:
            return base64.b64decode(value["$binary"])
        if "$undefined" in value:
            return None
        return {k: from_wire(v) for k, v in value.items()}
    return value


def packet_to_wire(packet: Packet) -> dict[str, Any]:
    """Key order type, data, id, nsp: Node's own order for the packets its server sends."""
    out: dict[str, Any] = {"type": int(packet.type)}
    if packet.data is not None:
        out["data"] = to_wire(packet.data)
    if packet.id is not None:
        out["id"] = packet.id
    out["nsp"] = packet.nsp
    return out


def packet_from_wire(obj: dict[str, Any]) -> Packet:
    return Packet(T(obj["type"]), obj["nsp"], from_wire(obj.get("data")), obj.get("id"))


def frames_to_wire(messages: list[str | bytes]) -> list[dict[str, str]]:
    return [
        {"text": m} if isinstance(m, str) else {"binary": base64.b64encode(m).decode()}
        for m in messages
    ]


def frames_from_wire(frames: list[dict[str, str]]) -> list[str | bytes]:
    return [f["text"] if "text" in f else base64.b64decode(f["binary"]) for f in frames]


def has_bytes(value: Any) -> bool:
    if isinstance(value, bytes):
        return True
    if isinstance(value, list):
        return any(has_bytes(v) for v in value)
    if isinstance(value, dict):
        return any(has_bytes(v) for v in value.values())
    return False


def plain_type(packet: Packet) -> Packet:
    """EVENT/ACK in place of BINARY_ types: how socket.io-parser 4.2.7 and msgpack report them."""
    kind = {T.BINARY_EVENT: T.EVENT, T.BINARY_ACK: T.ACK}.get(packet.type, packet.type)
    return dataclasses.replace(packet, type=kind)


def ours_decoded(packet: Packet) -> Packet:
    """``packet`` as our JSON decoder returns it: BINARY_ types exactly when data holds bytes."""
    plain = plain_type(packet)
    if plain.type in (T.EVENT, T.ACK) and has_bytes(plain.data):
        return dataclasses.replace(plain, type=T(plain.type + 3))
    return plain


def json_decode(messages: list[str | bytes]) -> Packet:
    decoder = JSON_SERIALIZER.decoder()
    for message in messages[:-1]:
        assert decoder.feed(message) is None
    packet = decoder.feed(messages[-1])
    assert packet is not None
    return packet


# --- default (JSON) parser -------------------------------------------------------------------


def test_json_parser_both_ways(node_script: NodeScript) -> None:
    packets = corpus()
    ours = [JSON_SERIALIZER.encode(p) for p in packets]
    reply = node_script(
        "socketio_parser.js",
        {
            # Node's encoder picks BINARY_ types itself, from EVENT/ACK only.
            "encode": [packet_to_wire(plain_type(p)) for p in packets],
            "decode": [frames_to_wire(m) for m in ours],
        },
    )
    assert reply["protocol"] == PROTOCOL_VERSION
    for packet, mine, theirs, decoded in zip(
        packets, ours, reply["encoded"], reply["decoded"], strict=True
    ):
        # Node decodes what we encode ...
        assert "packet" in decoded, (packet, mine, decoded)
        assert decoded["count"] == 1
        assert packet_from_wire(decoded["packet"]) == plain_type(packet)
        # ... we decode what Node encodes ...
        node_messages = frames_from_wire(theirs)
        assert json_decode(node_messages) == ours_decoded(packet)
        # ... and the bytes are the same.
        assert node_messages == mine


def test_json_parser_values_that_print_differently(node_script: NodeScript) -> None:
    # Integral floats, exponents and integer-like keys are not printed alike by JavaScript and
    # orjson, yet each side must decode the other's text to the same values.
    data: list[Any] = [
        "x",
        100.0,
        1e21,
        1e-7,
        -0.0,
        2.5e-300,
        {"2": "two", "b": 1, "1": "one"},
        [1e300, -1.7976931348623157e308],
    ]
    packet = Packet(T.EVENT, "/", data, 3)
    ours = JSON_SERIALIZER.encode(packet)
    reply = node_script(
        "socketio_parser.js",
        {"encode": [packet_to_wire(packet)], "decode": [frames_to_wire(ours)]},
    )
    assert packet_from_wire(reply["decoded"][0]["packet"]) == packet
    assert json_decode(frames_from_wire(reply["encoded"][0])) == packet


# Garbage both parsers refuse; text frames, then bytes, fed to one fresh decoder per case.
REFUSED_BY_BOTH: list[list[str | bytes]] = [
    ["7"],
    ["2{}"],
    ['2"x"'],
    ["2[true]"],
    ["2[]"],
    ['2["connect"]'],
    ['2["disconnecting"]'],
    ['2["a"'],
    ["3{}"],
    ["0[]"],
    ['0"x"'],
    ["1{}"],
    ["4[]"],
    ['50-["a"]'],
    ['5x-["a"]'],
    ['511-["a"]'],
    ['51-["a",{"_placeholder":true,"num":-1}]', b"x"],
    ['51-["a",{"_placeholder":true,"num":1}]', b"x"],
    ['51-["a",{"_placeholder":true,"num":"0"}]', b"x"],
    ['52-["a"]', b"x", '2["b"]'],
    [b"x"],
]
# Stricter than socket.io-parser (docs/security.md): Node accepts these, we refuse them.
REFUSED_BY_US_ONLY: list[list[str | bytes]] = [
    [""],  # Node reads an empty string as CONNECT "/"
    ["2"],  # EVENT without payload
    ["3"],  # ACK without payload
    ['2["error"]'],
    ["2" + "1" * 20 + '["a"]'],  # a 20-digit ack id
    ["2" + "[" * 200 + '"a"' + "]" * 200],  # deeper than MAX_DEPTH
    ['51-["a",{"_placeholder":true,"num":0,"x":1}]', b"x"],
    ['51-["a",{"_placeholder":true,"num":true}]', b"x"],
]


def test_refusals_compared_with_socket_io_parser(node_script: NodeScript) -> None:
    cases = REFUSED_BY_BOTH + REFUSED_BY_US_ONLY
    reply = node_script("socketio_parser.js", {"decode": [frames_to_wire(c) for c in cases]})
    for case, theirs in zip(cases, reply["decoded"], strict=True):
        decoder = JSON_SERIALIZER.decoder()
        with pytest.raises(ProtocolError):
            for message in case:
                decoder.feed(message)
        if case in REFUSED_BY_BOTH:
            assert "error" in theirs, (case, theirs)


# --- msgpack parser --------------------------------------------------------------------------


def test_msgpack_parser_both_ways(node_script: NodeScript) -> None:
    packets = corpus()
    ours = [MSGPACK_SERIALIZER.encode(p)[0] for p in packets]
    reply = node_script(
        "msgpack_parser.js",
        {
            "encode": [packet_to_wire(plain_type(p)) for p in packets],
            "decode": [base64.b64encode(m).decode() for m in ours],  # type: ignore[arg-type]
        },
    )
    assert reply["protocol"] == PROTOCOL_VERSION
    decoder = MSGPACK_SERIALIZER.decoder()
    for packet, mine, theirs, decoded in zip(
        packets, ours, reply["encoded"], reply["decoded"], strict=True
    ):
        assert "packet" in decoded, (packet, decoded)
        assert packet_from_wire(decoded["packet"]) == plain_type(packet)
        node_bytes = base64.b64decode(theirs)
        assert decoder.feed(node_bytes) == plain_type(packet)
        assert node_bytes == mine


def test_msgpack_decodes_what_javascript_clients_send(node_script: NodeScript) -> None:
    # Shaped like socket.io-client's packets: CONNECT with data undefined, "options" on events,
    # typed arrays (notepack ext type 0) and undefined arguments.
    sent: list[tuple[dict[str, Any], Packet]] = [
        ({"type": 0, "data": {"$undefined": True}, "nsp": "/"}, Packet(T.CONNECT, "/")),
        (
            {"type": 0, "data": {"token": "t"}, "nsp": "/admin"},
            Packet(T.CONNECT, "/admin", {"token": "t"}),
        ),
        (
            {"type": 2, "data": ["chat", "hi"], "options": {"compress": True}, "id": 3, "nsp": "/"},
            Packet(T.EVENT, "/", ["chat", "hi"], 3),
        ),
        (
            {"type": 2, "data": ["up", {"$arraybuffer": "AAEC"}, {"$undefined": True}], "nsp": "/"},
            Packet(T.EVENT, "/", ["up", b"\x00\x01\x02", None]),
        ),
        (
            {"type": 3, "data": [{"$binary": "/w=="}], "id": 7, "nsp": "/x"},
            Packet(T.ACK, "/x", [b"\xff"], 7),
        ),
        ({"type": 1, "nsp": "/admin"}, Packet(T.DISCONNECT, "/admin")),
    ]
    reply = node_script("msgpack_parser.js", {"encode": [obj for obj, _ in sent]})
    decoder = MSGPACK_SERIALIZER.decoder()
    for (_, expected), encoded in zip(sent, reply["encoded"], strict=True):
        assert decoder.feed(base64.b64decode(encoded)) == expected


def test_msgpack_refusals_compared_with_socket_io_msgpack_parser(node_script: NodeScript) -> None:
    refused_by_both = [
        msgpack.packb([]),
        msgpack.packb({"type": 5, "data": ["a"], "nsp": "/"}),
        msgpack.packb({"type": 2, "data": ["a"]}),
        msgpack.packb({"type": 2, "data": {}, "nsp": "/"}),
        msgpack.packb({"type": 0, "data": [], "nsp": "/"}),
        msgpack.packb({"type": 2, "data": ["a"], "nsp": "/", "id": "1"}),
        msgpack.packb({"type": 1, "nsp": "/"}) + b"\x00",
    ]
    refused_by_us_only = [
        msgpack.packb({"type": 2, "data": ["connect"], "nsp": "/"}),  # reserved name
        msgpack.packb({"type": 2, "data": [], "nsp": "/"}),  # no event name
        msgpack.packb({"type": 2, "data": ["a"], "nsp": "/", "id": -1}),
    ]
    cases = refused_by_both + refused_by_us_only
    reply = node_script(
        "msgpack_parser.js", {"decode": [base64.b64encode(c).decode() for c in cases]}
    )
    for case, theirs in zip(cases, reply["decoded"], strict=True):
        with pytest.raises(ProtocolError):
            MSGPACK_SERIALIZER.decoder().feed(case)
        if case in refused_by_both:
            assert "error" in theirs, (case, theirs)
