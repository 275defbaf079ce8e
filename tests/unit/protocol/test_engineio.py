"""Engine.IO v4 packet and payload codec: spec vectors, refusals, properties."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sockjet.errors import InvalidPacket, PayloadTooLarge, ProtocolError
from sockjet.protocol.engineio import (
    PROTOCOL_VERSION,
    RECORD_SEPARATOR,
    Packet,
    PacketType,
    decode_packet,
    decode_payload,
    encode_packet,
    encode_payload,
)

MB = 1_000_000
MESSAGE = PacketType.MESSAGE


def test_constants() -> None:
    assert PROTOCOL_VERSION == 4
    assert RECORD_SEPARATOR == "\x1e"
    assert [(t.name, int(t)) for t in PacketType] == [
        ("OPEN", 0),
        ("CLOSE", 1),
        ("PING", 2),
        ("PONG", 3),
        ("MESSAGE", 4),
        ("UPGRADE", 5),
        ("NOOP", 6),
    ]


# --- golden vectors (engine.io-protocol README, v4, and engine.io-parser's changelog) ---

WS_VECTORS: list[tuple[Packet, str | bytes]] = [
    (Packet(MESSAGE, "hello"), "4hello"),
    (Packet(MESSAGE, "€"), "4€"),
    (Packet(MESSAGE), "4"),
    (Packet(PacketType.PING, "probe"), "2probe"),
    (Packet(PacketType.PONG, "probe"), "3probe"),
    (Packet(PacketType.PING), "2"),
    (Packet(PacketType.PONG), "3"),
    (Packet(PacketType.UPGRADE), "5"),
    (Packet(PacketType.NOOP), "6"),
    (Packet(PacketType.CLOSE), "1"),
    (Packet(PacketType.OPEN, '{"sid":"x"}'), '0{"sid":"x"}'),
    (Packet(MESSAGE, b"\x01\x02\x03\x04"), b"\x01\x02\x03\x04"),
    (Packet(MESSAGE, b""), b""),
]


@pytest.mark.parametrize(("packet", "wire"), WS_VECTORS)
def test_websocket_form_vectors(packet: Packet, wire: str | bytes) -> None:
    encoded = encode_packet(packet)
    assert encoded == wire
    assert type(encoded) is type(wire)
    assert decode_packet(wire) == packet


PAYLOAD_VECTORS: list[tuple[list[Packet], str]] = [
    (
        [Packet(MESSAGE, "hello"), Packet(PacketType.PING), Packet(MESSAGE, "world")],
        "4hello\x1e2\x1e4world",
    ),
    ([Packet(MESSAGE, "hello"), Packet(MESSAGE, b"\x01\x02\x03\x04")], "4hello\x1ebAQIDBA=="),
    ([Packet(MESSAGE, "hello"), Packet(MESSAGE, "€")], "4hello\x1e4€"),
    ([Packet(MESSAGE, "hello"), Packet(MESSAGE, "€€€")], "4hello\x1e4€€€"),
    ([Packet(MESSAGE, "hello"), Packet(MESSAGE, b"\x01\x02\x03")], "4hello\x1ebAQID"),
    ([Packet(PacketType.PING, "probe"), Packet(MESSAGE, "test"), Packet(PacketType.CLOSE)],
     "2probe\x1e4test\x1e1"),
    ([Packet(MESSAGE, b"")], "b"),
    ([Packet(PacketType.NOOP)], "6"),
]  # fmt: skip


@pytest.mark.parametrize(("packets", "body"), PAYLOAD_VECTORS)
def test_payload_vectors(packets: list[Packet], body: str) -> None:
    assert encode_payload(packets) == body
    assert encode_payload(iter(packets)) == body
    assert decode_payload(body, max_payload=MB) == packets
    assert decode_payload(body.encode(), max_payload=MB) == packets


def test_binary_over_websocket_as_base64() -> None:
    # b64=1 clients, and clients with forceBase64, use "b" + base64 in text frames.
    packet = Packet(MESSAGE, b"\x01\x02\x03\x04")
    assert encode_packet(packet, binary=False) == "bAQIDBA=="
    assert decode_packet("bAQIDBA==") == packet
    assert decode_packet("b") == Packet(MESSAGE, b"")
    # text packets are unaffected by binary=False
    assert encode_packet(Packet(MESSAGE, "hi"), binary=False) == "4hi"


def test_binary_frames_of_any_buffer_type_decode_to_bytes() -> None:
    for frame in (bytearray(b"\x00\xff"), memoryview(b"\x00\xff")):
        packet = decode_packet(frame)  # type: ignore[arg-type]
        assert packet == Packet(MESSAGE, b"\x00\xff")
        assert type(packet.data) is bytes


def test_text_that_looks_binary_stays_text() -> None:
    assert decode_packet("4bAQID") == Packet(MESSAGE, "bAQID")
    assert decode_payload("4b\x1e44", max_payload=MB) == [
        Packet(MESSAGE, "b"),
        Packet(MESSAGE, "4"),
    ]


def test_decoded_packets_are_ordinary_frozen_packets() -> None:
    for packet in (decode_packet("4x"), decode_payload("4x", max_payload=10)[0]):
        expected = Packet(MESSAGE, "x")
        assert packet == expected
        assert hash(packet) == hash(expected)
        assert type(packet) is Packet
        assert packet.type is MESSAGE
        with pytest.raises(dataclasses.FrozenInstanceError):
            packet.data = "y"  # type: ignore[misc]
    assert decode_packet(b"x") == Packet(MESSAGE, b"x")


def test_bare_control_packets_are_shared() -> None:
    assert decode_packet("2") is decode_packet("2")
    assert decode_payload("3\x1e3", max_payload=10)[0] is decode_packet("3")


def test_binary_data_only_on_message_packets() -> None:
    bad = Packet(PacketType.PING, b"\x01")
    with pytest.raises(ValueError, match="MESSAGE"):
        encode_packet(bad)
    with pytest.raises(ValueError, match="MESSAGE"):
        encode_packet(bad, binary=False)
    with pytest.raises(ValueError, match="MESSAGE"):
        encode_payload([Packet(MESSAGE, "ok"), bad])


def test_empty_payload_encodes_to_empty_string() -> None:
    assert encode_payload([]) == ""


# --- refusals ---

BAD_PACKETS: list[Any] = [
    "",
    "7",
    "9hello",
    "x",
    "a4",
    " 4",
    "\x1e",
    "-1",
    "٤hello",  # an Arabic-Indic four is not "4"
    "b!!!!",
    "bAQ",  # missing padding
    "bAQIDBA",
    "bAQIDBA===",
    "bAQ==AQ==",
    "b€€€€",
    "bAQ ID",
    None,
    42,
    ["4hello"],
]


@pytest.mark.parametrize("data", BAD_PACKETS)
def test_decode_packet_refuses_garbage(data: Any) -> None:
    with pytest.raises(InvalidPacket):
        decode_packet(data)


def test_refusal_message_does_not_echo_the_packet() -> None:
    with pytest.raises(InvalidPacket, match=r"^empty packet$"):
        decode_packet("")
    with pytest.raises(InvalidPacket) as info:
        decode_packet("x" + "secret" * 1000)
    assert "secret" not in str(info.value)


BAD_PAYLOADS: list[str | bytes] = [
    "",
    b"",
    "\x1e",
    "4a\x1e",  # trailing separator: Node decodes an empty packet -> parse error
    "\x1e4a",
    "4a\x1e\x1e4b",
    "4a\x1e7",
    "4a\x1eb!!",
    "4a\x1ebAQ",
    "hello",
    b"\xff",
    b"4\xc3",  # truncated UTF-8
    b"4\xed\xa0\x80",  # an encoded surrogate is not UTF-8
    b"4a\x1e4\xc0\xaf",  # overlong encoding
]


@pytest.mark.parametrize("body", BAD_PAYLOADS)
def test_decode_payload_refuses_garbage(body: str | bytes) -> None:
    with pytest.raises(InvalidPacket):
        decode_payload(body, max_payload=MB)


# --- max_payload ---


def test_max_payload_counts_bytes() -> None:
    body = "4" + "a" * 9
    assert decode_payload(body, max_payload=10) == [Packet(MESSAGE, "a" * 9)]
    assert decode_payload(body.encode(), max_payload=10) == [Packet(MESSAGE, "a" * 9)]
    for over in (body + "a", (body + "a").encode()):
        with pytest.raises(PayloadTooLarge):
            decode_payload(over, max_payload=10)


def test_max_payload_counts_utf8_bytes_of_text() -> None:
    fits = "4€€€"  # 4 characters, 10 bytes
    assert decode_payload(fits, max_payload=10) == [Packet(MESSAGE, "€€€")]
    with pytest.raises(PayloadTooLarge):
        decode_payload(fits, max_payload=9)
    with pytest.raises(PayloadTooLarge):
        decode_payload(fits.encode(), max_payload=9)
    # far under the limit even at 4 bytes a character: no need to count
    assert decode_payload("4€", max_payload=100) == [Packet(MESSAGE, "€")]
    # ASCII near the limit: characters are bytes
    assert decode_payload("4aaa", max_payload=4) == [Packet(MESSAGE, "aaa")]


def test_max_payload_is_checked_before_decoding() -> None:
    # over the limit and invalid: the size wins, nothing is decoded
    with pytest.raises(PayloadTooLarge):
        decode_payload(b"\xff" * 11, max_payload=10)
    with pytest.raises(PayloadTooLarge):
        decode_payload("x" * 11, max_payload=10)


def test_payload_of_many_tiny_packets() -> None:
    body = "\x1e".join(["6"] * 400_000)
    packets = decode_payload(body.encode(), max_payload=MB)
    assert len(packets) == 400_000
    assert all(p is packets[0] for p in packets)


# --- properties ---

texts = st.text()
text_packets = st.builds(Packet, st.sampled_from(PacketType), texts)
binary_packets = st.builds(Packet, st.just(MESSAGE), st.binary())
packets = text_packets | binary_packets
# A payload's text never contains the separator (the protocol assumes it, Node does not escape).
payload_text_packets = st.builds(
    Packet,
    st.sampled_from(PacketType),
    st.text(st.characters(codec="utf-8", exclude_characters="\x1e")),
)
payload_packets = st.lists(payload_text_packets | binary_packets, min_size=1, max_size=20)


@given(packets)
def test_websocket_form_round_trips(packet: Packet) -> None:
    assert decode_packet(encode_packet(packet)) == packet
    assert decode_packet(encode_packet(packet, binary=False)) == packet


@given(payload_packets)
def test_payload_round_trips(packet_list: list[Packet]) -> None:
    body = encode_payload(packet_list)
    size = len(body.encode())
    assert decode_payload(body, max_payload=size) == packet_list
    assert decode_payload(body.encode(), max_payload=size) == packet_list


@given(payload_packets)
def test_max_payload_enforced(packet_list: list[Packet]) -> None:
    body = encode_payload(packet_list)
    size = len(body.encode())
    with pytest.raises(PayloadTooLarge):
        decode_payload(body, max_payload=size - 1)
    with pytest.raises(PayloadTooLarge):
        decode_payload(body.encode(), max_payload=size - 1)


# Arbitrary input, biased towards the characters the codec cares about.
any_chars = st.characters(exclude_categories=())  # surrogates included
interesting = st.sampled_from("0123456789b\x1eAQID=+/ é€\x00")
fuzz_text = st.text(any_chars) | st.text(interesting) | st.text(interesting | any_chars)
fuzz_bytes = st.binary() | fuzz_text.map(lambda s: s.encode("utf-8", "surrogatepass"))


@given(fuzz_text | fuzz_bytes, st.integers(min_value=0, max_value=200))
def test_decode_payload_raises_only_protocol_errors(body: str | bytes, max_payload: int) -> None:
    try:
        result = decode_payload(body, max_payload=max_payload)
    except ProtocolError:
        return
    assert result
    assert all(isinstance(p, Packet) for p in result)
    assert all(isinstance(p.data, str) or p.type is MESSAGE for p in result)


@given(fuzz_text | fuzz_bytes)
def test_decode_packet_raises_only_protocol_errors(data: str | bytes) -> None:
    try:
        packet = decode_packet(data)
    except ProtocolError:
        return
    assert isinstance(packet, Packet)
    # whatever decodes re-encodes to an equivalent packet
    assert decode_packet(encode_packet(packet)) == packet
