"""The default Socket.IO parser: golden vectors, every validation rule, limits, round trips."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sockjet.errors import InvalidPacket, PayloadTooLarge, ProtocolError
from sockjet.protocol import json as sjson
from sockjet.protocol.socketio import (
    CLIENT_RESERVED_EVENTS,
    DEFAULT_LIMITS,
    JSON_SERIALIZER,
    MAX_ACK_ID,
    PROTOCOL_VERSION,
    RESERVED_EVENTS,
    DecoderLimits,
    JSONDecoder,
    JSONSerializer,
    Packet,
    PacketType,
    encode_event,
    payload_is_valid,
)

T = PacketType
PH0 = '{"_placeholder":true,"num":0}'
PH1 = '{"_placeholder":true,"num":1}'


def decode_all(messages: list[str | bytes], limits: DecoderLimits = DEFAULT_LIMITS) -> Packet:
    """Feed every message to a fresh decoder; the last one must complete a packet."""
    decoder = JSON_SERIALIZER.decoder(limits)
    for message in messages[:-1]:
        assert decoder.feed(message) is None
    packet = decoder.feed(messages[-1])
    assert packet is not None
    assert not decoder.awaiting_attachments
    return packet


# --- golden vectors: socket.io-protocol v5 (docs/socket.io-protocol/v5-current.md) ----------

GOLDEN: list[tuple[Packet, list[str | bytes]]] = [
    (Packet(T.CONNECT), ["0"]),
    (
        Packet(T.CONNECT, "/admin", {"sid": "oSO0OpakMV_3jnilAAAA"}),
        ['0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}'],
    ),
    (Packet(T.CONNECT, "/admin", {"token": "123"}), ['0/admin,{"token":"123"}']),
    (
        Packet(T.CONNECT_ERROR, "/", {"message": "Not authorized"}),
        ['4{"message":"Not authorized"}'],
    ),
    (Packet(T.EVENT, "/", ["foo"]), ['2["foo"]']),
    (Packet(T.EVENT, "/admin", ["bar"]), ['2/admin,["bar"]']),
    (Packet(T.EVENT, "/", ["hey", "Jude"]), ['2["hey","Jude"]']),
    (
        Packet(T.BINARY_EVENT, "/", ["baz", b"\x01\x02\x03\x04"]),
        [f'51-["baz",{PH0}]', b"\x01\x02\x03\x04"],
    ),
    (
        Packet(T.BINARY_EVENT, "/admin", ["baz", b"\x01\x02", b"\x03\x04"]),
        [f'52-/admin,["baz",{PH0},{PH1}]', b"\x01\x02", b"\x03\x04"],
    ),
    (Packet(T.BINARY_EVENT, "/", ["hello", b"\xff"]), [f'51-["hello",{PH0}]', b"\xff"]),
    (Packet(T.EVENT, "/", ["foo"], 12), ['212["foo"]']),
    (
        Packet(T.EVENT, "/admin", ["project:delete", 123], 456),
        ['2/admin,456["project:delete",123]'],
    ),
    (Packet(T.ACK, "/admin", ["bar"], 13), ['3/admin,13["bar"]']),
    (Packet(T.ACK, "/admin", [], 456), ["3/admin,456[]"]),
    (
        Packet(T.BINARY_ACK, "/", ["bar", b"\x01\x02\x03\x04"], 15),
        [f'61-15["bar",{PH0}]', b"\x01\x02\x03\x04"],
    ),
    (Packet(T.BINARY_ACK, "/admin", [b"\x00"], 1), [f"61-/admin,1[{PH0}]", b"\x00"]),
    (Packet(T.DISCONNECT), ["1"]),
    (Packet(T.DISCONNECT, "/admin"), ["1/admin,"]),
]


@pytest.mark.parametrize(("packet", "encoded"), GOLDEN)
def test_golden_vectors_encode_byte_exact(packet: Packet, encoded: list[str | bytes]) -> None:
    assert JSON_SERIALIZER.encode(packet) == encoded


@pytest.mark.parametrize(("packet", "encoded"), GOLDEN)
def test_golden_vectors_decode(packet: Packet, encoded: list[str | bytes]) -> None:
    assert decode_all(encoded) == packet


def test_engine_io_framing_of_the_spec_examples() -> None:
    # The spec shows packets inside Engine.IO "message" packets (prefix "4").
    assert "4" + str(JSON_SERIALIZER.encode(Packet(T.EVENT, "/", ["foo"]))[0]) == '42["foo"]'
    assert "4" + str(JSON_SERIALIZER.encode(Packet(T.CONNECT_ERROR, "/", {"message": "x"}))[0]) == (
        '44{"message":"x"}'
    )


@pytest.mark.parametrize(
    ("text", "packet"),
    [
        ("0/admin,", Packet(T.CONNECT, "/admin")),
        ("0/admin", Packet(T.CONNECT, "/admin")),  # the namespace may run to the end
        ("0/,", Packet(T.CONNECT, "/")),
        ('2/admin,1["tellme"]', Packet(T.EVENT, "/admin", ["tellme"], 1)),
        ("2007[1]", Packet(T.EVENT, "/", [1], 7)),  # leading zeros, numeric event name
        ("2[1.5,null]", Packet(T.EVENT, "/", [1.5, None])),
        ('2["é😀",{"a":[1,{"b":"c"}]}]', Packet(T.EVENT, "/", ["é😀", {"a": [1, {"b": "c"}]}])),
        ('2/ünï,["x"]', Packet(T.EVENT, "/ünï", ["x"])),
        ('4"refused"', Packet(T.CONNECT_ERROR, "/", "refused")),
        (
            '4/a,{"message":"m","data":{"x":1}}',
            Packet(T.CONNECT_ERROR, "/a", {"message": "m", "data": {"x": 1}}),
        ),
        ("01", Packet(T.CONNECT, "/", None, 1)),  # an id on CONNECT is tolerated, as in JS
        # Number.MAX_SAFE_INTEGER, the largest ack id a JavaScript client can send exactly
        ('29007199254740991["a"]', Packet(T.EVENT, "/", ["a"], MAX_ACK_ID)),
        ("2" + "9" * 15 + '["a"]', Packet(T.EVENT, "/", ["a"], 10**15 - 1)),
        ('2 ["a"] ', Packet(T.EVENT, "/", ["a"])),  # JSON whitespace
        (
            '2["a",{"_placeholder":true,"num":0}]',
            Packet(T.EVENT, "/", ["a", {"_placeholder": True, "num": 0}]),
        ),
    ],
)
def test_decode_edge_cases(text: str, packet: Packet) -> None:
    assert decode_all([text]) == packet


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "7",
        "9[]",
        "a",
        " 2[]",
        "-1",
        "\u0662[]",  # a non-ASCII digit is no packet type
        # payload required / shape per type
        "2",
        "2/a,",
        "21",
        "3",
        "3/a,1",
        "4",
        "44",
        "2[]",
        "2{}",
        '2"x"',
        "2null",
        "2[true]",
        "2[null]",
        '2[["a"]]',
        '2[{"a":1}]',
        "3{}",
        '3"a"',
        "3null",
        "0[]",
        '0"x"',
        "0null",
        "0true",
        "1{}",
        "1null",
        "1[]",
        "4[]",
        "4null",
        "41.5",
        # JSON
        '2["a"',
        '2["a"]x',
        "2['a']",
        '2["a"]\x00',
        '2["\\ud800"]',
        "2[" + "1" * 400 + "]",
        "2" + "[" * 200 + '"a"' + "]" * 200,
        # ack ids
        '29007199254740992["a"]',  # 2**53: over what a JavaScript number counts exactly
        "2" + "1" * 17 + '["a"]',
        "2" + "9" * 100_000 + '["a"]',
        '2\u0661\u0662["a"]',  # Arabic-Indic digits are no ack id
        # attachment counts
        '5-["a"]',
        '50-["a"]',
        '5x-["a"]',
        '5+1-["a"]',
        '5 1-["a"]',
        '5\u0661-["a"]',
        '51["a"]',
        "5" + "1" * 7 + '-["a"]',
        "5",
        "51-",
        "61-",
        "51-/a,",
        f"51-[{PH0}]",  # the event name cannot be binary
        '51-["a"',
    ],
)
def test_invalid_text_packets_are_refused(text: str) -> None:
    decoder = JSONDecoder()
    with pytest.raises(InvalidPacket):
        decoder.feed(text)
    assert not decoder.awaiting_attachments


@pytest.mark.parametrize("name", sorted(RESERVED_EVENTS))
def test_reserved_event_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidPacket):
        JSONDecoder().feed("2" + sjson.dumps([name, 1]))
    with pytest.raises(InvalidPacket):
        JSONDecoder().feed(f"51-{sjson.dumps([name])[:-1]},{PH0}]")


def test_reserved_events_are_the_documented_set() -> None:
    assert {
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
        "error",
    } == RESERVED_EVENTS
    assert PROTOCOL_VERSION == 5


def test_reserved_names_are_fine_as_arguments_and_in_acks() -> None:
    assert decode_all(['2["chat","connect"]']).data == ["chat", "connect"]
    assert decode_all(['31["disconnect"]']).data == ["disconnect"]


@pytest.mark.parametrize(
    ("packet_type", "data", "valid"),
    [
        (0, None, True),
        (0, {}, True),
        (0, [], False),
        (1, None, True),
        (1, {}, False),
        (2, ["a"], True),
        (2, [1], True),
        (2, [1.5], True),
        (2, [True], False),
        (2, [], False),
        (2, None, False),
        (2, ["error"], False),
        (3, [], True),
        (3, None, False),
        (4, "m", True),
        (4, {"message": "m"}, True),
        (4, None, False),
        (4, 1, False),
        (5, ["a", b"x"], True),
        (6, [b"x"], True),
        (7, ["a"], False),
        (-1, None, False),
    ],
)
def test_payload_is_valid(packet_type: int, data: Any, valid: bool) -> None:
    assert payload_is_valid(packet_type, data) is valid


# --- binary attachments ----------------------------------------------------------------------


def test_attachments_fed_one_by_one() -> None:
    decoder = JSONDecoder()
    assert decoder.feed(f'52-/a,9["up",{{"k":[{PH1}]}},{PH0},{PH0}]') is None
    assert decoder.awaiting_attachments
    assert decoder.feed(b"zero") is None
    assert decoder.awaiting_attachments
    packet = decoder.feed(b"one")
    assert packet == Packet(T.BINARY_EVENT, "/a", ["up", {"k": [b"one"]}, b"zero", b"zero"], 9)
    assert not decoder.awaiting_attachments


@pytest.mark.parametrize("chunk", [bytearray(b"ab"), memoryview(b"ab")])
def test_bytes_like_attachments_become_bytes(chunk: bytearray | memoryview) -> None:
    decoder = JSONDecoder()
    decoder.feed(f'51-["a",{PH0}]')
    packet = decoder.feed(chunk)  # type: ignore[arg-type]
    assert packet is not None
    assert packet.data[1].__class__ is bytes
    assert packet.data[1] == b"ab"


@pytest.mark.parametrize(
    "placeholder",
    [
        '{"_placeholder":true,"num":1}',  # num == count
        '{"_placeholder":true,"num":-1}',  # must not index from the end
        '{"_placeholder":true,"num":true}',  # bool is not int
        '{"_placeholder":true,"num":0.0}',
        '{"_placeholder":true,"num":"0"}',
        '{"_placeholder":true,"num":null}',
        '{"_placeholder":true}',
        '{"_placeholder":true,"num":0,"x":1}',
        '{"num":0,"_placeholder":true,"extra":[]}',
    ],
)
@pytest.mark.parametrize("where", ["top", "list", "dict"])
def test_bad_placeholders_are_refused(placeholder: str, where: str) -> None:
    wrapped = {
        "top": placeholder,
        "list": f"[[{placeholder}]]",
        "dict": f'{{"a":{{"b":{placeholder}}}}}',
    }
    decoder = JSONDecoder()
    assert decoder.feed(f'51-["a",{wrapped[where]}]') is None
    with pytest.raises(InvalidPacket):
        decoder.feed(b"x")
    assert not decoder.awaiting_attachments


@pytest.mark.parametrize(
    "lookalike",
    [{"_placeholder": False, "num": 0}, {"_placeholder": 1, "num": 0}, {"num": 0}],
)
def test_placeholder_lookalikes_are_ordinary_objects(lookalike: dict[str, Any]) -> None:
    text = "51-" + sjson.dumps(["a", lookalike, {"_placeholder": True, "num": 0}])
    assert decode_all([text, b"x"]).data == ["a", lookalike, b"x"]


def test_placeholders_in_plain_packets_are_left_alone() -> None:
    assert decode_all([f"3[{PH0}]"]).data == [{"_placeholder": True, "num": 0}]


def test_unreferenced_attachments_are_dropped() -> None:
    assert decode_all(['62-1["a"]', b"x", b"y"]) == Packet(T.BINARY_ACK, "/", ["a"], 1)


def test_attachment_count_is_capped_before_anything_is_buffered() -> None:
    decoder = JSONDecoder(DecoderLimits(max_attachments=2))
    with pytest.raises(PayloadTooLarge):
        decoder.feed(f'53-["a",{PH0}]')
    assert not decoder.awaiting_attachments
    with pytest.raises(InvalidPacket):  # nothing pending, so the attachment is a violation
        decoder.feed(b"x")
    with pytest.raises(PayloadTooLarge):
        JSONDecoder().feed(f'511-["a",{PH0}]')  # default cap: 10
    assert decode_all([f'52-["a",{PH0}]', b"1", b"2"], DecoderLimits(max_attachments=2)).data == [
        "a",
        b"1",
    ]


def test_pending_attachment_bytes_are_capped() -> None:
    limits = DecoderLimits(max_buffered_bytes=10)
    decoder = JSONDecoder(limits)
    decoder.feed(f'53-["a",{PH0}]')
    assert decoder.feed(b"123456") is None
    with pytest.raises(PayloadTooLarge):
        decoder.feed(b"12345")
    assert not decoder.awaiting_attachments
    # the decoder holds nothing afterwards and exactly the limit is fine
    assert decode_all([f'52-["a",{PH0}]', b"12345", b"67890"], limits).data == ["a", b"12345"]


def test_text_while_reconstructing_is_a_violation() -> None:
    decoder = JSONDecoder()
    decoder.feed(f'51-["a",{PH0}]')
    with pytest.raises(InvalidPacket, match="attachments are due"):
        decoder.feed('2["b"]')
    assert not decoder.awaiting_attachments
    assert decoder.feed('2["b"]') == Packet(T.EVENT, "/", ["b"])


def test_binary_without_a_pending_packet_is_a_violation() -> None:
    with pytest.raises(InvalidPacket, match="no binary packet"):
        JSONDecoder().feed(b"\x00")


def test_non_bytes_attachment_is_a_violation() -> None:
    decoder = JSONDecoder()
    decoder.feed(f'51-["a",{PH0}]')
    with pytest.raises(InvalidPacket):
        decoder.feed(42)  # type: ignore[arg-type]
    assert not decoder.awaiting_attachments


def test_reset_drops_a_partial_packet() -> None:
    decoder = JSONDecoder()
    decoder.feed(f'52-["a",{PH0}]')
    decoder.feed(b"1")
    decoder.reset()
    assert not decoder.awaiting_attachments
    with pytest.raises(InvalidPacket):
        decoder.feed(b"2")


def test_a_recursion_error_while_reconstructing_is_an_invalid_packet() -> None:
    decoder = JSONDecoder()
    depth = 100
    decoder.feed("51-" + '["a",' + "[" * depth + PH0 + "]" * depth + "]")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + 30)
    try:
        with pytest.raises(InvalidPacket, match="nested"):
            decoder.feed(b"x")
    finally:
        sys.setrecursionlimit(limit)


def _stack_depth() -> int:
    frame: Any = sys._getframe()
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


def test_decoder_limits_defaults() -> None:
    assert DecoderLimits() == DEFAULT_LIMITS
    assert DEFAULT_LIMITS.max_attachments == 10
    assert DEFAULT_LIMITS.max_buffered_bytes == 1_000_000
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_LIMITS.max_attachments = 1  # type: ignore[misc]


def test_serializer_builds_independent_decoders() -> None:
    serializer = JSONSerializer()
    assert serializer.name == "json"
    first, second = serializer.decoder(), serializer.decoder(DecoderLimits(max_attachments=1))
    first.feed(f'51-["a",{PH0}]')
    assert not second.awaiting_attachments
    with pytest.raises(PayloadTooLarge):
        second.feed(f'52-["a",{PH0}]')


# --- encoder ---------------------------------------------------------------------------------


@pytest.mark.parametrize("nsp", ["admin", "", "/a,b", ","])
def test_invalid_namespaces_are_not_encoded(nsp: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        JSON_SERIALIZER.encode(Packet(T.EVENT, nsp, ["a"]))
    with pytest.raises(ValueError, match="namespace"):
        encode_event(nsp, "a", [])


@pytest.mark.parametrize("ack_id", [-1, True, 1.0])
def test_invalid_ack_ids_are_not_encoded(ack_id: Any) -> None:
    with pytest.raises(ValueError, match="ack id"):
        JSON_SERIALIZER.encode(Packet(T.ACK, "/", [], ack_id))
    with pytest.raises(ValueError, match="ack id"):
        encode_event("/", "a", [b"x"], ack_id)


@pytest.mark.parametrize(
    ("packet", "encoded"),
    [
        (Packet(T.EVENT, "/", None), ["2"]),
        (Packet(T.BINARY_EVENT, "/", ["a", 1]), ['2["a",1]']),  # no bytes: a plain EVENT
        (Packet(T.BINARY_ACK, "/x", None, 3), ["3/x,3"]),
        (Packet(T.EVENT, "/", ("a", 1)), ['2["a",1]']),
        (Packet(T.EVENT, "/", ("a", (b"1",))), [f'51-["a",[{PH0}]]', b"1"]),
        (
            Packet(T.ACK, "/", [bytearray(b"1"), memoryview(b"2")], 0),
            [f"62-0[{PH0},{PH1}]", b"1", b"2"],
        ),
        (Packet(T.EVENT, "/", ["a", {1: b"x"}]), [f'51-["a",{{"1":{PH0}}}]', b"x"]),
        (Packet(T.CONNECT, "/", {"sid": "x"}, None), ['0{"sid":"x"}']),
        (Packet(T.CONNECT_ERROR, "/", "nope"), ['4"nope"']),
    ],
)
def test_encode_edge_cases(packet: Packet, encoded: list[str | bytes]) -> None:
    result = JSON_SERIALIZER.encode(packet)
    assert result == encoded
    assert all(m.__class__ in (str, bytes) for m in result)


def test_unserializable_data_raises_type_error() -> None:
    with pytest.raises(TypeError):
        JSON_SERIALIZER.encode(Packet(T.EVENT, "/", ["a", object()]))
    with pytest.raises(TypeError):
        JSON_SERIALIZER.encode(Packet(T.EVENT, "/", ["a", object(), b"x"]))
    with pytest.raises(TypeError):
        encode_event("/", "a", [object()])


def test_circular_data_raises_instead_of_crashing() -> None:
    loop: list[Any] = ["a"]
    loop.append(loop)
    with pytest.raises(TypeError):  # no bytes found: orjson's own error
        JSON_SERIALIZER.encode(Packet(T.EVENT, "/", loop))
    loop_with_bytes: list[Any] = ["a", b"x"]
    loop_with_bytes.append(loop_with_bytes)
    with pytest.raises(ValueError, match="circular"):
        JSON_SERIALIZER.encode(Packet(T.EVENT, "/", loop_with_bytes))


def test_encode_does_not_mutate_the_data() -> None:
    data = ["a", {"k": [b"x"]}, (b"y",)]
    JSON_SERIALIZER.encode(Packet(T.EVENT, "/", data))
    assert data == ["a", {"k": [b"x"]}, (b"y",)]


@pytest.mark.parametrize(
    ("args", "nsp", "ack_id"),
    [
        ([], "/", None),
        (["x", 1], "/chat", 7),
        ([b"\x00", {"a": [b"1"]}], "/", 0),
        ([None], "/n", None),
    ],
)
def test_encode_event_matches_the_serializer(args: list[Any], nsp: str, ack_id: int | None) -> None:
    expected = JSON_SERIALIZER.encode(Packet(T.EVENT, nsp, ["ev", *args], ack_id))
    assert encode_event(nsp, "ev", args, ack_id) == expected


# --- properties ------------------------------------------------------------------------------

namespaces = st.just("/") | st.text(
    st.characters(codec="utf-8", exclude_characters=","), max_size=10
).map(lambda s: "/" + s)
ack_ids = st.none() | st.integers(min_value=0, max_value=MAX_ACK_ID)
keys = st.text(max_size=8).filter(lambda k: k != "_placeholder")
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)


def values(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4)
        ),
        max_leaves=12,
    )


json_values = values(scalars)
binary_values = values(scalars | st.binary(max_size=20))
event_names = (
    st.text(max_size=20).filter(lambda s: s not in RESERVED_EVENTS)
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
)


@st.composite
def packets(draw: st.DrawFn) -> Packet:
    kind = draw(st.sampled_from(list(PacketType)))
    nsp = draw(namespaces)
    if kind in (T.EVENT, T.BINARY_EVENT):
        data = [draw(event_names), *draw(st.lists(binary_values, max_size=4))]
        return Packet(kind, nsp, data, draw(ack_ids))
    if kind in (T.ACK, T.BINARY_ACK):
        return Packet(kind, nsp, draw(st.lists(binary_values, max_size=4)), draw(ack_ids))
    if kind == T.CONNECT:
        return Packet(kind, nsp, draw(st.none() | st.dictionaries(keys, json_values, max_size=4)))
    if kind == T.DISCONNECT:
        return Packet(kind, nsp)
    return Packet(
        kind, nsp, draw(st.text(max_size=20) | st.dictionaries(keys, json_values, max_size=4))
    )


def has_bytes(value: Any) -> bool:
    if isinstance(value, bytes):
        return True
    if isinstance(value, list):
        return any(has_bytes(v) for v in value)
    if isinstance(value, dict):
        return any(has_bytes(v) for v in value.values())
    return False


def normalized(packet: Packet) -> Packet:
    """``packet`` as the decoder returns it: BINARY_ types exactly when the data holds bytes."""
    kind = packet.type
    if kind in (T.EVENT, T.BINARY_EVENT):
        kind = T.BINARY_EVENT if has_bytes(packet.data) else T.EVENT
    elif kind in (T.ACK, T.BINARY_ACK):
        kind = T.BINARY_ACK if has_bytes(packet.data) else T.ACK
    return dataclasses.replace(packet, type=kind)


ROOMY: Final = DecoderLimits(max_attachments=10_000, max_buffered_bytes=1 << 30)


@given(packets())
def test_roundtrip(packet: Packet) -> None:
    encoded = JSON_SERIALIZER.encode(packet)
    assert encoded[0].__class__ is str
    assert all(m.__class__ is bytes for m in encoded[1:])
    # The property is about the codec, not the limits: generated data may hold more than the
    # default 10 attachments (that limit has its own tests).
    assert decode_all(encoded, ROOMY) == normalized(packet)


@given(
    namespaces,
    event_names.filter(lambda n: isinstance(n, str)),
    st.lists(binary_values, max_size=4),
    ack_ids,
)
def test_encode_event_is_the_serializer_fast_path(
    nsp: str, event: str, args: list[Any], ack_id: int | None
) -> None:
    expected = JSON_SERIALIZER.encode(Packet(T.EVENT, nsp, [event, *args], ack_id))
    assert encode_event(nsp, event, args, ack_id) == expected


garbage_messages = st.lists(
    st.text(max_size=40)
    | st.binary(max_size=40)
    | st.from_regex(r"\A[0-6]([0-9]{0,2}-)?(/[a-z,]{0,4})?[0-9]{0,3}(\[.{0,20}\]|\{.{0,20}\})?\Z")
    | st.builds(
        lambda n, data: f"5{n}-" + sjson.dumps(data),
        st.integers(min_value=0, max_value=12),
        st.lists(
            st.text(max_size=3)
            | st.fixed_dictionaries(
                {
                    "_placeholder": st.booleans() | st.integers(-1, 2),
                    "num": st.integers(-2, 3) | st.booleans(),
                },
                optional={"x": st.integers(-1, 1)},
            ),
            max_size=4,
        ),
    ),
    max_size=8,
)


@given(garbage_messages)
def test_garbage_gives_packets_or_protocol_errors(messages: list[str | bytes]) -> None:
    decoder = JSONDecoder(DecoderLimits(max_attachments=5, max_buffered_bytes=64))
    for message in messages:
        try:
            result = decoder.feed(message)
        except ProtocolError:
            continue
        assert result is None or isinstance(result, Packet)


def test_client_limits_take_the_error_event_that_servers_refuse() -> None:
    # A Node server may emit "error" to its clients; a client must never reach the server's
    # own "error" handlers. So only the server's decoder refuses it.
    wire = '2["error","oops"]'
    with pytest.raises(InvalidPacket):
        JSON_SERIALIZER.decoder().feed(wire)
    client = DecoderLimits(reserved_events=CLIENT_RESERVED_EVENTS)
    packet = JSON_SERIALIZER.decoder(client).feed(wire)
    assert packet == Packet(PacketType.EVENT, "/", ["error", "oops"])
    with pytest.raises(InvalidPacket):
        JSON_SERIALIZER.decoder(client).feed('2["connect"]')
