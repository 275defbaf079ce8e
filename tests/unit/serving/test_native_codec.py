"""The native server's WebSocket codec (sans-I/O) and its protocol object, without sockets."""

from __future__ import annotations

import asyncio
import os
import zlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from native_client import frame

from sockjet.engine.io import Outgoing
from sockjet.errors import PayloadTooLarge, ProtocolError
from sockjet.serving import websocket as ws
from sockjet.serving.websocket import (
    WRITE_CHUNK,
    DeflateParams,
    Flusher,
    FrameError,
    FrameParser,
    MessageTooBig,
    WebSocketProtocol,
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


# -- the protocol object -----------------------------------------------------------------------


class SpyTransport(asyncio.Transport):
    """Records writes; its buffer size is whatever the test says."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.written = asyncio.Event()
        self.buffered = 0
        self.closed = False
        self.aborted = asyncio.Event()
        self.reading = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))
        self.written.set()

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted.set()

    def is_closing(self) -> bool:
        return self.closed


class Recorder:
    def __init__(self) -> None:
        self.messages: list[str | bytes] = []
        self.closes: list[tuple[int | None, str]] = []
        self.drains = 0

    def on_message(self, data: str | bytes) -> None:
        self.messages.append(data)

    def on_close(self, code: int | None, reason: str) -> None:
        self.closes.append((code, reason))

    def on_drain(self) -> None:
        self.drains += 1


def make(deflate: DeflateParams | None = None) -> tuple[WebSocketProtocol, SpyTransport, Recorder]:
    transport = SpyTransport()
    lost: list[WebSocketProtocol] = []
    conn = WebSocketProtocol(
        transport,
        FrameParser(1000, deflate=deflate),
        Flusher(asyncio.get_running_loop()),
        close_timeout=0.05,
        deflate=deflate,
        on_lost=lost.append,
    )
    recorder = Recorder()
    conn.start(recorder)
    return conn, transport, recorder


async def test_sends_in_one_iteration_coalesce_into_one_write() -> None:
    conn, transport, _ = make()
    conn.send(Outgoing("a"))
    conn.send(Outgoing(b"b"))
    assert conn.buffered_amount == 6
    transport.buffered = 10
    assert conn.buffered_amount == 16
    await transport.written.wait()
    assert transport.writes == [b"\x81\x01a\x82\x01b"]
    assert conn.buffered_amount == 10


async def test_connections_flush_in_one_callback_per_iteration() -> None:
    flusher = Flusher(asyncio.get_running_loop())
    transports = [SpyTransport() for _ in range(3)]
    message = Outgoing("tick")
    for transport in transports:
        conn = WebSocketProtocol(transport, FrameParser(10), flusher, close_timeout=1)
        conn.start(Recorder())
        conn.send(message)
    await transports[-1].written.wait()
    assert [t.writes for t in transports] == [[b"\x81\x04tick"]] * 3
    assert message.ws_frame == b"\x81\x04tick"


class PausingTransport(SpyTransport):
    """Takes ``room`` bytes, then pauses its protocol (as asyncio's transports do past their
    high-water mark) until the test calls ``drain()``."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = room
        self.protocol: WebSocketProtocol | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        super().write(data)
        self.buffered += len(data)
        if self.buffered > self.room and self.protocol is not None:
            self.protocol.pause_writing()

    def drain(self) -> None:
        self.buffered = 0
        assert self.protocol is not None
        self.protocol.resume_writing()


def make_pausing(room: int) -> tuple[WebSocketProtocol, PausingTransport, Recorder]:
    transport = PausingTransport(room)
    conn = WebSocketProtocol(
        transport, FrameParser(1000), Flusher(asyncio.get_running_loop()), close_timeout=0.05
    )
    transport.protocol = conn
    recorder = Recorder()
    conn.start(recorder)
    return conn, transport, recorder


async def test_a_large_burst_is_written_in_chunks_while_the_transport_takes_them() -> None:
    conn, transport, _ = make_pausing(room=WRITE_CHUNK)
    big = Outgoing(b"x" * (5 * WRITE_CHUNK))  # one 320 KiB frame
    conn.send(big)
    conn.send(Outgoing("after"))
    await transport.written.wait()
    await asyncio.sleep(0)
    # it took two chunks, then paused us: the rest stays with us, shared, not copied
    assert [len(w) for w in transport.writes] == [WRITE_CHUNK, WRITE_CHUNK]
    total = len(big.ws_frame or b"") + len(b"\x81\x05after")
    assert conn.buffered_amount == total  # what we hold plus what the transport holds
    while conn.buffered_amount > transport.buffered:
        transport.drain()
    assert b"".join(transport.writes) == (big.ws_frame or b"") + b"\x81\x05after"
    assert max(len(w) for w in transport.writes) <= WRITE_CHUNK


async def test_watch_drain_reports_once_the_queue_is_down_to_the_level() -> None:
    conn, transport, recorder = make_pausing(room=WRITE_CHUNK)
    for _ in range(8):
        conn.send(Outgoing(b"y" * 40_000))
    await transport.written.wait()
    conn.watch_drain(100_000)
    await asyncio.sleep(0)
    assert recorder.drains == 0
    while recorder.drains == 0:
        transport.drain()
    assert conn.buffered_amount <= 100_000
    transport.drain()
    assert recorder.drains == 1  # once per watch


async def test_watch_drain_with_nothing_queued_reports_at_the_next_flush() -> None:
    conn, _, recorder = make()
    conn.watch_drain(0)
    assert recorder.drains == 0  # never from inside the call
    await asyncio.sleep(0)
    assert recorder.drains == 1


async def test_paused_reading_holds_parsed_messages_in_order() -> None:
    conn, transport, recorder = make()
    assert transport.reading
    conn.data_received(frame(TEXT, b"a"))

    def pause_on_b(data: str | bytes) -> None:
        recorder.messages.append(data)
        if data == "b":
            conn.pause_reading()

    recorder.on_message = pause_on_b  # type: ignore[method-assign]
    conn.data_received(
        frame(TEXT, b"b") + frame(TEXT, b"c") + frame(PING, b"p") + frame(TEXT, b"d")
    )
    assert recorder.messages == ["a", "b"] and not transport.reading
    await asyncio.sleep(0)
    assert transport.writes == []  # the ping behind "c" waits too: order is kept
    conn.resume_reading()
    assert recorder.messages == ["a", "b", "c", "d"] and transport.reading
    await transport.written.wait()
    assert transport.writes == [b"\x8a\x01p"]


async def test_resume_after_a_close_frame_was_held_closes() -> None:
    conn, _transport, recorder = make()
    conn.pause_reading()
    conn.data_received(frame(TEXT, b"late") + frame(CLOSE, b"\x03\xe8"))
    assert recorder.messages == [] and recorder.closes == []
    conn.resume_reading()
    assert recorder.messages == ["late"] and recorder.closes == [(1000, "")]


async def test_abort_discards_what_is_queued() -> None:
    conn, transport, _ = make()
    conn.send(Outgoing("never"))
    conn.abort()
    assert transport.aborted.is_set() and conn.buffered_amount == 0
    await asyncio.sleep(0)
    assert transport.writes == []


async def test_one_failing_connection_does_not_keep_the_others_from_writing() -> None:
    class Broken(SpyTransport):
        def write(self, data: bytes | bytearray | memoryview) -> None:
            raise RuntimeError("broken transport")

    flusher = Flusher(asyncio.get_running_loop())
    transports = [SpyTransport(), Broken(), SpyTransport()]
    message = Outgoing("tick")
    for transport in transports:
        conn = WebSocketProtocol(transport, FrameParser(10), flusher, close_timeout=1)
        conn.start(Recorder())
        conn.send(message)
    await transports[-1].written.wait()
    assert transports[0].writes == transports[2].writes == [b"\x81\x04tick"]
    assert transports[1].aborted.is_set()


async def test_pongs_while_writing_is_paused_keep_only_the_latest() -> None:
    conn, transport, _ = make()
    conn.pause_writing()
    for i in range(100):
        conn.data_received(frame(PING, b"%d" % i))
    await asyncio.sleep(0)
    assert transport.writes == []
    conn.resume_writing()
    await transport.written.wait()
    assert transport.writes == [b"\x8a\x0299"]
    conn.resume_writing()  # nothing pending: nothing written
    await asyncio.sleep(0)
    assert len(transport.writes) == 1


async def test_close_is_idempotent_and_drops_later_sends() -> None:
    conn, transport, recorder = make()
    conn.close(1000, "done")
    conn.close(1001, "again")
    conn.send(Outgoing("late"))
    await transport.written.wait()
    assert transport.writes == [b"\x88\x06\x03\xe8done"]
    conn.data_received(frame(TEXT, "ignored while closing") + frame(PING))
    conn.data_received(frame(CLOSE, b"\x03\xe8"))
    assert transport.closed
    assert recorder.messages == []
    assert recorder.closes == [(1000, "")]
    conn.connection_lost(None)
    assert recorder.closes == [(1000, "")]  # exactly once
    conn.data_received(frame(TEXT, "after"))
    assert recorder.messages == []
    assert conn.buffered_amount == 0


async def test_unread_close_is_aborted_after_close_timeout() -> None:
    conn, transport, recorder = make()
    transport.buffered = 1 << 20  # the peer stopped reading
    conn.data_received(frame(TEXT, "x", masked=False))
    assert transport.closed and recorder.closes == [(1002, "client frame is not masked")]
    await asyncio.wait_for(transport.aborted.wait(), 5)  # after close_timeout (0.05 s)
    conn.abort()


async def test_on_close_handler_errors_are_contained(caplog: pytest.LogCaptureFixture) -> None:
    conn, _, recorder = make()

    def broken(code: int | None, reason: str) -> None:
        raise RuntimeError("engine bug")

    recorder.on_close = broken  # type: ignore[method-assign]
    conn.connection_lost(None)
    assert "on_close handler failed" in caplog.text


async def test_compressed_send_uses_the_per_iteration_cache() -> None:
    conn, transport, _ = make(DeflateParams(False, 15))
    big = Outgoing("z" * 2000)
    conn.send(big)
    conn.send(Outgoing("small"))
    await transport.written.wait()
    (written,) = transport.writes
    assert written[0] == 0xC1 and written.endswith(b"\x81\x05small")
    assert big.ws_frame is None  # the uncompressed cache stays for other connections
    narrow, narrow_transport, _ = make(DeflateParams(False, 8))
    narrow.send(big)  # window 8: zlib cannot produce it, so never compressed
    await narrow_transport.written.wait()
    assert narrow_transport.writes[0][0] == 0x81


async def test_violation_while_closing_and_repeated_finish() -> None:
    conn, transport, recorder = make()
    conn.close(1000)
    conn.data_received(frame(TEXT, "x", masked=False))  # no second close frame: just close
    await asyncio.sleep(0)
    assert transport.closed and recorder.closes == [(1002, "client frame is not masked")]
    conn._finish(None, "")  # already closed: no-op
    assert recorder.closes == [(1002, "client frame is not masked")]
    bare = WebSocketProtocol(
        SpyTransport(), FrameParser(10), Flusher(asyncio.get_running_loop()), close_timeout=1
    )
    bare.connection_lost(None)  # no handler yet, no on_lost: nothing to notify


def test_negotiate_server_no_context_takeover_offer() -> None:
    agreed = negotiate_deflate("permessage-deflate; server_no_context_takeover")
    assert agreed is not None and agreed[0] == "permessage-deflate; server_no_context_takeover"
