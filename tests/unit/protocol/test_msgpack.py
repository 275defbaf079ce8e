"""The msgpack parser: notepack.io byte layouts, validation, limits, round trips, garbage."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sockjet.protocol.msgpack
from sockjet.errors import InvalidPacket
from sockjet.protocol.json import MAX_DEPTH
from sockjet.protocol.msgpack import MSGPACK_SERIALIZER, MsgpackDecoder, MsgpackSerializer
from sockjet.protocol.socketio import (
    CLIENT_RESERVED_EVENTS,
    MAX_ACK_ID,
    RESERVED_EVENTS,
    DecoderLimits,
    Packet,
    PacketType,
)

T = PacketType


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def decode(data: bytes) -> Packet:
    return MsgpackDecoder().feed(data)


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj)  # type: ignore[no-any-return]


TYPE, DATA, NSP, ID = "a4 74797065", "a4 64617461", "a3 6e7370", "a2 6964"
UNDEFINED = "d4 00 00"  # notepack.io's encoding of JavaScript undefined

# What notepack.io (npm socket.io-msgpack-parser 3.x) writes for the same packets.
GOLDEN: list[tuple[Packet, bytes]] = [
    (Packet(T.EVENT, "/", ["hello", 1]), h(f"83 {TYPE} 02 {DATA} 92 a5 68656c6c6f 01 {NSP} a1 2f")),
    (Packet(T.CONNECT, "/admin"), h(f"82 {TYPE} 00 {NSP} a6 2f61646d696e")),
    (
        Packet(T.CONNECT, "/", {"sid": "x"}),
        h(f"83 {TYPE} 00 {DATA} 81 a3 736964 a1 78 {NSP} a1 2f"),
    ),
    (Packet(T.DISCONNECT, "/"), h(f"82 {TYPE} 01 {NSP} a1 2f")),
    (Packet(T.ACK, "/", [], 5), h(f"84 {TYPE} 03 {DATA} 90 {ID} 05 {NSP} a1 2f")),
    (
        Packet(T.EVENT, "/", ["b", b"\x01\x02"], 300),
        h(f"84 {TYPE} 02 {DATA} 92 a1 62 c4 02 0102 {ID} cd 012c {NSP} a1 2f"),
    ),
    (Packet(T.CONNECT_ERROR, "/", "no"), h(f"83 {TYPE} 04 {DATA} a2 6e6f {NSP} a1 2f")),
]


@pytest.mark.parametrize(("packet", "encoded"), GOLDEN)
def test_golden_vectors_encode_byte_exact(packet: Packet, encoded: bytes) -> None:
    assert MSGPACK_SERIALIZER.encode(packet) == [encoded]


@pytest.mark.parametrize(("packet", "encoded"), GOLDEN)
def test_golden_vectors_decode(packet: Packet, encoded: bytes) -> None:
    assert decode(encoded) == packet


def test_binary_types_are_sent_as_plain_event_and_ack() -> None:
    assert MSGPACK_SERIALIZER.encode(Packet(T.BINARY_EVENT, "/", ["b", b"\x01\x02"], 300)) == [
        GOLDEN[5][1]
    ]
    (ack,) = MSGPACK_SERIALIZER.encode(Packet(T.BINARY_ACK, "/", [b"x"], 1))
    assert decode(ack) == Packet(T.ACK, "/", [b"x"], 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("encoded", "packet"),
    [
        # socket.io-client's CONNECT without auth: data is undefined
        (h(f"83 {TYPE} 00 {DATA} {UNDEFINED} {NSP} a1 2f"), Packet(T.CONNECT, "/")),
        # socket.io-client adds "options": ignored
        (
            h(
                f"84 {TYPE} 02 {DATA} 91 a1 78 a7 6f7074696f6e73 81 a8 636f6d7072657373 c3 {NSP} a1 2f"
            ),
            Packet(T.EVENT, "/", ["x"]),
        ),
        # undefined arguments and a Node ArrayBuffer (ext 0) argument
        (
            h(f"83 {TYPE} 02 {DATA} 93 a1 78 {UNDEFINED} c7 03 00 616263 {NSP} a1 2f"),
            Packet(T.EVENT, "/", ["x", None, b"abc"]),
        ),
        # an undefined id is no id
        (h(f"84 {TYPE} 03 {DATA} 90 {ID} {UNDEFINED} {NSP} a1 2f"), Packet(T.ACK, "/", [])),
        # a notepack Date (ext 0, 8 bytes) cannot be told from an 8-byte ArrayBuffer: raw bytes
        (
            h(f"83 {TYPE} 02 {DATA} 92 a1 78 d7 00 0000000100000000 {NSP} a1 2f"),
            Packet(T.EVENT, "/", ["x", b"\x00\x00\x00\x01\x00\x00\x00\x00"]),
        ),
        # the msgpack timestamp extension
        (
            h(f"83 {TYPE} 02 {DATA} 92 a1 78 d6 ff 00000001 {NSP} a1 2f"),
            Packet(
                T.EVENT, "/", ["x", datetime.datetime(1970, 1, 1, 0, 0, 1, tzinfo=datetime.UTC)]
            ),
        ),
        # a numeric event name; an empty-string namespace is still a string
        (pack({"type": 2, "data": [1.5], "nsp": ""}), Packet(T.EVENT, "", [1.5])),
        (
            pack({"type": 2, "data": ["a"], "nsp": "/", "id": MAX_ACK_ID}),
            Packet(T.EVENT, "/", ["a"], MAX_ACK_ID),
        ),
        (pack({"nsp": "/", "type": 0, "data": None}), Packet(T.CONNECT, "/")),
    ],
)
def test_decode_what_javascript_clients_send(encoded: bytes, packet: Packet) -> None:
    assert decode(encoded) == packet


@pytest.mark.parametrize(
    "obj",
    [
        [],
        None,
        "x",
        {},
        {"type": 2, "data": ["a"]},  # no nsp
        {"type": 2, "data": ["a"], "nsp": None},
        {"type": 2, "data": ["a"], "nsp": 1},
        {"data": ["a"], "nsp": "/"},  # no type
        {"type": "2", "data": ["a"], "nsp": "/"},
        {"type": True, "data": None, "nsp": "/"},
        {"type": 2.0, "data": ["a"], "nsp": "/"},
        {"type": 5, "data": ["a"], "nsp": "/"},  # no BINARY_ types in this parser
        {"type": 6, "data": [], "nsp": "/"},
        {"type": -1, "nsp": "/"},
        {"type": 2, "nsp": "/"},
        {"type": 2, "data": [], "nsp": "/"},
        {"type": 2, "data": {}, "nsp": "/"},
        {"type": 2, "data": [True], "nsp": "/"},
        {"type": 2, "data": [None], "nsp": "/"},
        {"type": 3, "nsp": "/"},
        {"type": 3, "data": {}, "nsp": "/"},
        {"type": 0, "data": [], "nsp": "/"},
        {"type": 0, "data": "x", "nsp": "/"},
        {"type": 1, "data": {}, "nsp": "/"},
        {"type": 4, "nsp": "/"},
        {"type": 4, "data": 1, "nsp": "/"},
        {"type": 2, "data": ["a"], "nsp": "/", "id": -1},
        {"type": 2, "data": ["a"], "nsp": "/", "id": MAX_ACK_ID + 1},
        {"type": 2, "data": ["a"], "nsp": "/", "id": "1"},
        {"type": 2, "data": ["a"], "nsp": "/", "id": 1.0},
        {"type": 2, "data": ["a"], "nsp": "/", "id": True},
    ],
)
def test_invalid_packets_are_refused(obj: Any) -> None:
    with pytest.raises(InvalidPacket):
        decode(pack(obj))


@pytest.mark.parametrize("name", sorted(RESERVED_EVENTS))
def test_reserved_event_names_are_refused(name: str) -> None:
    # stricter than socket.io-msgpack-parser, which checks only for an array
    with pytest.raises(InvalidPacket):
        decode(pack({"type": 2, "data": [name], "nsp": "/"}))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        h("c1"),  # never used
        h("82"),  # truncated map
        pack({"type": 1, "nsp": "/"}) + b"\x00",  # trailing bytes
        h("81 01 02"),  # integer map key
        h("81 a1 ff 02"),  # invalid UTF-8
        h("81 91 01 02"),  # unhashable key
        h("dd ffffffff"),  # an array longer than the message
        h(f"83 {TYPE} 02 {DATA} 92 a1 78 d4 05 00 {NSP} a1 2f"),  # ext type 5 refused
        h(f"83 {TYPE} 02 {DATA} 92 a1 78 c7 01 7f 00 {NSP} a1 2f"),  # ext type 127 refused
        h(f"83 {TYPE} 02 {DATA} 92 a1 78 d5 ff 0000 {NSP} a1 2f"),  # a malformed timestamp
        b"\x91" * 5000 + b"\xc0",  # deeper than msgpack's own stack
    ],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidPacket):
        decode(data)


@pytest.mark.parametrize("message", ['2["a"]', bytearray(b"\x82")])
def test_text_messages_and_bad_bytes_like_are_refused(message: Any) -> None:
    with pytest.raises(InvalidPacket):
        MsgpackDecoder().feed(message)


@pytest.mark.parametrize("wrap", [bytearray, memoryview])
def test_bytes_like_messages_are_accepted(wrap: Any) -> None:
    assert MsgpackDecoder().feed(wrap(GOLDEN[0][1])) == GOLDEN[0][0]


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    return ["ev", value]


def test_nesting_up_to_max_depth_is_accepted() -> None:
    data = nested(MAX_DEPTH)
    assert decode(pack({"type": 2, "data": data, "nsp": "/"})).data == data


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000])
def test_deeper_nesting_is_refused(depth: int) -> None:
    with pytest.raises(InvalidPacket, match="deeper"):
        decode(pack({"type": 2, "data": nested(depth), "nsp": "/"}))


def test_deep_nesting_in_a_large_message_is_refused() -> None:
    # Large messages skip the header count and are walked directly.
    data = [*nested(MAX_DEPTH + 1), "x" * 10_000]
    with pytest.raises(InvalidPacket, match="deeper"):
        decode(pack({"type": 2, "data": data, "nsp": "/"}))


@pytest.mark.parametrize(
    "data",
    [
        ["e", [[] for _ in range(MAX_DEPTH * 2)]],  # many containers, shallow: walked, accepted
        ["e", [[] for _ in range(MAX_DEPTH * 2)], "x" * 10_000],  # ... in a large message
        ["e", "\x90" * MAX_DEPTH * 2],  # header-like bytes inside a string
        ["e", b"\x91" * MAX_DEPTH * 2],  # ... and inside binary data
    ],
)
def test_many_container_headers_are_not_depth(data: list[Any]) -> None:
    assert decode(pack({"type": 2, "data": data, "nsp": "/"})).data == data


def test_a_recursion_error_while_checking_depth_is_an_invalid_packet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The walk recurses; a caller already deep in its own stack may hit the recursion limit.
    def exhausted(value: Any) -> bool:
        raise RecursionError

    monkeypatch.setattr(sockjet.protocol.msgpack, "depth_within", exhausted)
    encoded = pack({"type": 2, "data": ["e", [[] for _ in range(MAX_DEPTH)]], "nsp": "/"})
    with pytest.raises(InvalidPacket, match="deeper"):
        decode(encoded)


def test_serializer_shape() -> None:
    serializer = MsgpackSerializer()
    assert serializer.name == "msgpack"
    decoder = serializer.decoder(DecoderLimits(max_attachments=1))
    assert isinstance(decoder, MsgpackDecoder)
    assert decoder.feed(GOLDEN[0][1]) == GOLDEN[0][0]


def test_encode_refuses_what_msgpack_cannot_carry() -> None:
    with pytest.raises(TypeError):
        MSGPACK_SERIALIZER.encode(Packet(T.EVENT, "/", ["a", object()]))
    with pytest.raises(ValueError):
        MSGPACK_SERIALIZER.encode(Packet(T.EVENT, "/", ["a", datetime.datetime(2020, 1, 1)]))


# --- properties ------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.datetimes(timezones=st.just(datetime.UTC))
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
ack_ids = st.none() | st.integers(min_value=0, max_value=MAX_ACK_ID)
event_names = (
    st.text(max_size=20).filter(lambda s: s not in RESERVED_EVENTS)
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False)
)
plain_dicts = st.dictionaries(st.text(max_size=8), values, max_size=4)


@st.composite
def packets(draw: st.DrawFn) -> Packet:
    kind = draw(st.sampled_from(list(PacketType)))
    nsp = draw(st.text(max_size=10).map(lambda s: "/" + s))
    if kind in (T.EVENT, T.BINARY_EVENT):
        data = [draw(event_names), *draw(st.lists(values, max_size=4))]
        return Packet(kind, nsp, data, draw(ack_ids))
    if kind in (T.ACK, T.BINARY_ACK):
        return Packet(kind, nsp, draw(st.lists(values, max_size=4)), draw(ack_ids))
    if kind == T.CONNECT:
        return Packet(kind, nsp, draw(st.none() | plain_dicts))
    if kind == T.DISCONNECT:
        return Packet(kind, nsp)
    return Packet(kind, nsp, draw(st.text(max_size=20) | plain_dicts))


def normalized(packet: Packet) -> Packet:
    """``packet`` as the msgpack decoder returns it: never a BINARY_ type."""
    kind = {T.BINARY_EVENT: T.EVENT, T.BINARY_ACK: T.ACK}.get(packet.type, packet.type)
    return dataclasses.replace(packet, type=kind)


@given(packets())
def test_roundtrip(packet: Packet) -> None:
    (encoded,) = MSGPACK_SERIALIZER.encode(packet)
    assert encoded.__class__ is bytes
    assert decode(encoded) == normalized(packet)


@given(packets(), st.data())
def test_corrupted_packets_give_packets_or_invalid_packet(
    packet: Packet, data: st.DataObject
) -> None:
    (encoded,) = MSGPACK_SERIALIZER.encode(packet)
    raw = bytearray(encoded)  # type: ignore[arg-type]
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        result = decode(bytes(raw[:cut]))
    except InvalidPacket:
        return
    assert isinstance(result, Packet)


@given(st.binary(max_size=64))
def test_random_bytes_give_packets_or_invalid_packet(data: bytes) -> None:
    try:
        result = decode(data)
    except InvalidPacket:
        return
    assert isinstance(result, Packet)


def test_client_limits_take_the_error_event() -> None:
    wire = MSGPACK_SERIALIZER.encode(Packet(PacketType.EVENT, "/", ["error", 1]))[0]
    with pytest.raises(InvalidPacket):
        MSGPACK_SERIALIZER.decoder().feed(wire)
    client = DecoderLimits(reserved_events=CLIENT_RESERVED_EVENTS)
    assert MSGPACK_SERIALIZER.decoder(client).feed(wire) == Packet(
        PacketType.EVENT, "/", ["error", 1]
    )
