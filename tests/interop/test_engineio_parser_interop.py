"""Our Engine.IO codec against the official npm engine.io-parser (v5), on a generated corpus.

One Node process serves the whole corpus: Node encodes every packet and payload (compared byte
for byte with ours) and decodes everything we encode (compared with the original packets).
"""

from __future__ import annotations

import base64
import random
from typing import Any

import pytest

from sockjet.errors import InvalidPacket
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

pytestmark = pytest.mark.node

MB = 1_000_000
SCRIPT = "engineio_parser.js"

# Node reports these types by name.
NAMES = {t: t.name.lower() for t in PacketType}
TYPES = {name: t for t, name in NAMES.items()}

SAMPLE_TEXTS = [
    "",
    "hello",
    "probe",
    "€",
    "€€€",
    "😀 astral chars are UTF-16 pairs in JS",
    "中文 ñ é ü",
    "\x00\x01\x1f\x7f",
    "b",
    "bAQIDBA==",
    "4",
    "0123456789",
    '2["chat",{"text":"hi","n":[1,2.5,null,true]}]',
    "line\u2028separator\u2029",
    "\ufeffbom",
    " leading space",
]


def _random_text(rng: random.Random, size: int) -> str:
    # ASCII, Latin-1, the rest of the BMP (no surrogates: JSON and UTF-8 cannot carry them)
    # and astral planes.
    ranges = [(0x20, 0x7E), (0x00, 0xFF), (0x100, 0xD7FF), (0xE000, 0xFFFD), (0x10000, 0x10FFFF)]
    out = []
    for _ in range(size):
        low, high = rng.choice(ranges)
        out.append(chr(rng.randint(low, high)))
    return "".join(out)


def _corpus() -> list[Packet]:
    rng = random.Random(20240601)
    packets = [Packet(t, text) for t in PacketType for text in SAMPLE_TEXTS]
    packets += [Packet(PacketType.MESSAGE, bytes(range(256)))]
    packets += [Packet(PacketType.MESSAGE, bytes([n] * n)) for n in (0, 1, 2, 3, 4, 5)]
    packets += [Packet(PacketType.MESSAGE, "x\x1ey")]  # fine in a frame, not in a payload
    for _ in range(300):
        packets.append(Packet(rng.choice(list(PacketType)), _random_text(rng, rng.randint(0, 60))))
    for _ in range(100):
        packets.append(Packet(PacketType.MESSAGE, rng.randbytes(rng.randint(0, 300))))
    packets.append(Packet(PacketType.MESSAGE, _random_text(rng, 20_000)))
    packets.append(Packet(PacketType.MESSAGE, rng.randbytes(50_000)))
    return packets


def _payloads(packets: list[Packet]) -> list[list[Packet]]:
    rng = random.Random(7)
    # The protocol assumes text data never holds the separator; Node does not escape it.
    usable = [p for p in packets if not (isinstance(p.data, str) and RECORD_SEPARATOR in p.data)]
    groups = [[p] for p in usable[:40]]
    i = 0
    while i < len(usable):
        size = rng.randint(2, 8)
        groups.append(usable[i : i + size])
        i += size
    return groups


def _to_json(packet: Packet) -> dict[str, str]:
    out = {"type": NAMES[packet.type]}
    if isinstance(packet.data, bytes):
        out["binary"] = base64.b64encode(packet.data).decode("ascii")
    elif packet.data:
        out["text"] = packet.data
    return out


def _from_json(item: dict[str, str]) -> Packet:
    packet_type = TYPES[item["type"]]  # KeyError for Node's {"type": "error"}
    if "binary" in item:
        return Packet(packet_type, base64.b64decode(item["binary"]))
    return Packet(packet_type, item.get("text", ""))


def _frame(encoded: str | bytes) -> dict[str, str]:
    if isinstance(encoded, str):
        return {"text": encoded}
    return {"binary": base64.b64encode(encoded).decode("ascii")}


def _unframe(frame: dict[str, str]) -> str | bytes:
    if "binary" in frame:
        return base64.b64decode(frame["binary"])
    return frame["text"]


# Validity probes: Node's decoder yields its error packet exactly where ours raises. Bad base64
# is left out on purpose: Node decodes it leniently, we refuse it (see engineio._base64_decode).
PROBE_FRAMES = ["", "7", "9", "x", "a4", " 4", "\x1e", "٤", "-1", "4", "6", "0{}", "b", "bAQID"]
PROBE_BODIES = ["", "\x1e", "4a\x1e", "\x1e4a", "4a\x1e\x1e4b", "4a\x1e7", "hello", "2\x1e3", "6"]


@pytest.fixture(scope="module")
def exchange(node_script: Any) -> dict[str, Any]:
    """Run the corpus through Node once; every test below reads this one exchange."""
    packets = _corpus()
    payloads = _payloads(packets)
    frames = [encode_packet(p) for p in packets] + [encode_packet(p, binary=False) for p in packets]
    bodies = [encode_payload(group) for group in payloads]
    request = {
        "packets": [_to_json(p) for p in packets],
        "payloads": [[_to_json(p) for p in group] for group in payloads],
        "frames": [_frame(f) for f in frames] + [{"text": probe} for probe in PROBE_FRAMES],
        "bodies": bodies + PROBE_BODIES,
    }
    response = node_script(SCRIPT, request)
    return {"packets": packets, "payloads": payloads, "bodies": bodies, "response": response}


def test_same_protocol_revision(exchange: dict[str, Any]) -> None:
    assert exchange["response"]["protocol"] == PROTOCOL_VERSION


def test_node_encodes_packets_as_we_do(exchange: dict[str, Any]) -> None:
    response = exchange["response"]
    for packet, frame, b64_frame in zip(
        exchange["packets"], response["encoded_binary"], response["encoded_base64"], strict=True
    ):
        assert _unframe(frame) == encode_packet(packet), packet
        assert _unframe(b64_frame) == encode_packet(packet, binary=False), packet
        assert decode_packet(_unframe(frame)) == packet
        assert decode_packet(_unframe(b64_frame)) == packet


def test_node_encodes_payloads_as_we_do(exchange: dict[str, Any]) -> None:
    for group, body in zip(exchange["payloads"], exchange["response"]["payloads"], strict=True):
        assert body == encode_payload(group)
        assert decode_payload(body, max_payload=MB) == group
        assert decode_payload(body.encode("utf-8"), max_payload=MB) == group


def test_node_decodes_our_packets(exchange: dict[str, Any]) -> None:
    packets = exchange["packets"]
    decoded = exchange["response"]["decoded_frames"]
    ours = decoded[: 2 * len(packets)]
    assert [_from_json(d) for d in ours] == packets + packets


def test_node_decodes_our_payloads(exchange: dict[str, Any]) -> None:
    payloads = exchange["payloads"]
    decoded = exchange["response"]["decoded_bodies"][: len(payloads)]
    assert [[_from_json(d) for d in body] for body in decoded] == payloads


def _we_refuse(decode: Any, data: str) -> bool:
    try:
        decode(data)
    except InvalidPacket:
        return True
    return False


def test_validity_agrees_on_frames(exchange: dict[str, Any]) -> None:
    node_results = exchange["response"]["decoded_frames"][-len(PROBE_FRAMES) :]
    for probe, result in zip(PROBE_FRAMES, node_results, strict=True):
        node_refuses = result["type"] == "error"
        assert _we_refuse(decode_packet, probe) == node_refuses, repr(probe)


def test_validity_agrees_on_bodies(exchange: dict[str, Any]) -> None:
    node_results = exchange["response"]["decoded_bodies"][-len(PROBE_BODIES) :]
    for probe, result in zip(PROBE_BODIES, node_results, strict=True):
        # Node decodes up to its first error packet; a body with one is refused here as a whole.
        node_refuses = any(item["type"] == "error" for item in result)
        ours = _we_refuse(lambda body: decode_payload(body, max_payload=MB), probe)
        assert ours == node_refuses, repr(probe)
