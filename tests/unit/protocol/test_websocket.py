"""The WebSocket frame codec (sans I/O): masking, building, parsing, permessage-deflate."""

from __future__ import annotations

import os
import zlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.unit.serving.native_client import frame

from sockjet.errors import PayloadTooLarge, ProtocolError
from sockjet.protocol import websocket as ws
from sockjet.protocol.websocket import (
    DeflateParams,
    FrameError,
    FrameParser,
    MessageTooBig,
    accept_key,
    build_frame,
    close_frame,
    deflate_frame,
    negotiate_deflate,
    parse_close,
    unmask,
)

TEXT, BINARY, CLOSE, PING, PONG, CONT = 1, 2, 8, 9, 10, 0


def feed_all(parser: FrameParser, data: bytes, step: int | None = None) -> list[Any]:
    if step is None:
        return parser.feed(data)
    events: list[Any] = []
    for i in range(0, len(data), step):
        events.extend(parser.feed(data[i : i + step]))
    return events


# -- masking and building ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 2047, 2048, 2049, 70000])
def test_unmask_matches_the_definition(size: int) -> None:
    payload, mask = os.urandom(size), os.urandom(4)
    expected = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert unmask(payload, mask) == expected
    assert ws._apply_mask(payload, mask) == expected


def test_c_mask_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise ImportError(name)

    monkeypatch.setattr(ws.importlib, "import_module", missing)
    assert ws._load_c_mask() is unmask


@pytest.mark.parametrize(("size", "header"), [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)])
def test_build_frame_length_forms(size: int, header: int) -> None:
    built = build_frame(BINARY, b"x" * size)
    assert len(built) == header + size
    assert built[0] == 0x82
    parser_input = frame(BINARY, b"x" * size)  # the same length encoding, masked
    assert parser_input[1] & 0x7F == built[1]


def test_accept_key_rfc_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_close_frame_forms() -> None:
    assert close_frame(None) == b"\x88\x00"
    assert close_frame(1005) == b"\x88\x00"
    assert close_frame(1000, "ok") == b"\x88\x04\x03\xe8ok"
    long = close_frame(1001, "é" * 100)  # 200 bytes of reason: cut on a character boundary
    assert len(long) == 2 + 2 + 122
    assert parse_close(long[2:]) == (1001, "é" * 61)


def test_parse_close() -> None:
    assert parse_close(b"") == (1005, "")
    assert parse_close(b"\x0f\xa0x") == (4000, "x")
    for bad in (b"\x03", b"\x03\xe7", b"\x03\xee", b"\x07\xd0", b"\x13\x88"):
        with pytest.raises(FrameError) as info:
            parse_close(bad)
        assert info.value.code == 1002
    with pytest.raises(FrameError) as info:
        parse_close(b"\x03\xe8\xc3")
    assert info.value.code == 1007


# -- parsing ----------------------------------------------------------------------------------


MESSAGES = st.lists(
    st.one_of(st.text(max_size=300), st.binary(max_size=300)), min_size=1, max_size=8
)


@given(messages=MESSAGES, step=st.integers(min_value=1, max_value=64))
def test_parser_gives_the_same_messages_whole_or_in_pieces(
    messages: list[str | bytes], step: int
) -> None:
    data = b"".join(frame(TEXT if isinstance(m, str) else BINARY, m) for m in messages)
    expected = [(TEXT if isinstance(m, str) else BINARY, m) for m in messages]
    assert feed_all(FrameParser(1000), data) == expected
    assert feed_all(FrameParser(1000), data, step) == expected


@given(payload=st.binary(max_size=400), cuts=st.lists(st.integers(1, 50), max_size=6))
def test_fragmented_messages_assemble(payload: bytes, cuts: list[int]) -> None:
    pieces, rest = [], payload
    for cut in cuts:
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    data = frame(BINARY, pieces[0], fin=len(pieces) == 1)
    for i, piece in enumerate(pieces[1:], start=2):
        data += frame(CONT, piece, fin=i == len(pieces))
    assert feed_all(FrameParser(1000), data, 7) == [(BINARY, payload)]


@given(data=st.binary(max_size=200))
def test_garbage_raises_only_frame_errors(data: bytes) -> None:
    parser = FrameParser(100, max_fragments=4)
    try:
        for i in range(0, len(data), 5):
            parser.feed(data[i : i + 5])
    except FrameError as exc:
        assert exc.code in (1002, 1007, 1009)
        assert isinstance(exc, ProtocolError)


def test_control_frames_are_events() -> None:
    events = FrameParser(100).feed(
        frame(PING, b"a") + frame(PONG, b"b") + frame(CLOSE, b"\x03\xe8")
    )
    assert events == [(PING, b"a"), (PONG, b"b"), (CLOSE, b"\x03\xe8")]


def test_huge_declared_length_is_refused_from_the_header_alone() -> None:
    parser = FrameParser(1000)
    header = frame(BINARY, length=2**63 - 1)[:14]
    with pytest.raises(MessageTooBig) as info:
        parser.feed(header)
    assert info.value.code == 1009
    assert isinstance(info.value, PayloadTooLarge)


def test_partial_frame_waits_without_reparsing() -> None:
    parser = FrameParser(100_000)
    data = frame(BINARY, b"y" * 70_000)
    assert parser.feed(data[:1]) == []
    assert parser.feed(data[1:9]) == []
    assert parser.feed(data[9:5000]) == []
    assert parser.feed(data[5000:]) == [(BINARY, b"y" * 70_000)]
    assert parser.feed(frame(TEXT, "next")) == [(TEXT, "next")]
    medium = frame(TEXT, "m" * 300)  # 16-bit length, its header cut short
    assert parser.feed(medium[:3]) == []
    assert parser.feed(medium[3:]) == [(TEXT, "m" * 300)]


def test_limits_exactly_at_max_payload() -> None:
    assert FrameParser(10).feed(frame(TEXT, "x" * 10)) == [(TEXT, "x" * 10)]
    with pytest.raises(MessageTooBig):
        FrameParser(10).feed(frame(TEXT, "x" * 11))
    parser = FrameParser(10)
    parser.feed(frame(TEXT, "x" * 5, fin=False))
    assert parser.feed(frame(CONT, "x" * 5)) == [(TEXT, "x" * 10)]
    parser.feed(frame(TEXT, "x" * 5, fin=False))
    with pytest.raises(MessageTooBig):
        parser.feed(frame(CONT, "x" * 6))


def test_fragment_count_is_bounded() -> None:
    parser = FrameParser(1000, max_fragments=3)
    parser.feed(frame(TEXT, "a", fin=False) + frame(CONT, "b", fin=False))
    with pytest.raises(MessageTooBig):
        parser.feed(frame(CONT, "c", fin=False))
    ok = FrameParser(1000, max_fragments=3)
    data = frame(TEXT, "a", fin=False) + frame(CONT, "b", fin=False) + frame(CONT, "c")
    assert ok.feed(data) == [(TEXT, "abc")]


def test_text_validated_after_assembly() -> None:
    parser = FrameParser(100)
    encoded = "é".encode()  # split inside the character: fine once whole
    data = frame(TEXT, encoded[:1], fin=False) + frame(CONT, encoded[1:])
    assert parser.feed(data) == [(TEXT, "é")]
    with pytest.raises(FrameError) as info:
        FrameParser(100).feed(frame(TEXT, encoded[:1], fin=False) + frame(CONT, b"x"))
    assert info.value.code == 1007


# -- permessage-deflate ------------------------------------------------------------------------


def compressed(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


@pytest.mark.parametrize(
    ("offer", "answer"),
    [
        ("permessage-deflate", "permessage-deflate; server_no_context_takeover"),
        (
            "permessage-deflate; client_no_context_takeover; client_max_window_bits=12",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        (
            'x-webkit-deflate-frame, permessage-deflate; server_max_window_bits="10"',
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
        ),
        (
            "permessage-deflate; foo, permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_no_context_takeover",
        ),
        ("permessage-deflate; server_max_window_bits=16", None),
        ("permessage-deflate; server_max_window_bits", None),
        ("permessage-deflate; client_max_window_bits=7", None),
        ("permessage-deflate; server_no_context_takeover=1", None),
        ("permessage-deflate; client_no_context_takeover; client_no_context_takeover", None),
        ("permessage-foo", None),
    ],
)
def test_negotiate_deflate(offer: str, answer: str | None) -> None:
    agreed = negotiate_deflate(offer)
    assert (agreed[0] if agreed else None) == answer


def test_deflate_with_and_without_context_takeover() -> None:
    # The client keeps its context: the second message refers back to the first.
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    first = (compressor.compress(b"repeat me " * 5) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    second = (compressor.compress(b"repeat me " * 5) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    parser = FrameParser(1000, deflate=DeflateParams(False, 15))
    data = frame(BINARY, first, rsv=0x40) + frame(BINARY, second, rsv=0x40)
    assert parser.feed(data) == [(BINARY, b"repeat me " * 5)] * 2
    # Without takeover each message stands alone; the parser resets between messages.
    fresh = FrameParser(1000, deflate=DeflateParams(True, 15))
    one = compressed("hé".encode())
    assert fresh.feed(frame(TEXT, one, rsv=0x40) * 2) == [(TEXT, "hé")] * 2
    # RSV1 on a continuation or a control frame is still a violation.
    with pytest.raises(FrameError):
        fresh.feed(frame(TEXT, one[:1], fin=False, rsv=0x40) + frame(CONT, one[1:], rsv=0x40))
    with pytest.raises(FrameError):
        FrameParser(1000, deflate=DeflateParams(True, 15)).feed(frame(PING, rsv=0x40))


def test_deflate_frame_round_trips() -> None:
    built = deflate_frame("hello " * 300, 15)
    assert built[0] == 0xC1
    parser = FrameParser(10_000, deflate=DeflateParams(False, 15))
    assert built[1] < 126  # it compresses to a short frame
    payload = built[2:]
    assert parser.feed(frame(TEXT, payload, rsv=0x40)) == [(TEXT, "hello " * 300)]
    assert deflate_frame(b"\x00" * 2000, 9)[0] == 0xC2


def test_negotiate_server_no_context_takeover_offer() -> None:
    agreed = negotiate_deflate("permessage-deflate; server_no_context_takeover")
    assert agreed is not None and agreed[0] == "permessage-deflate; server_no_context_takeover"
