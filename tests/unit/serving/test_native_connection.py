"""The native server's WebSocket protocol object (frames queued, flushed, paused), without sockets."""

from __future__ import annotations

import asyncio

import pytest
from native_client import frame

from sockjet.engine.io import Outgoing
from sockjet.protocol.websocket import DeflateParams, FrameParser
from sockjet.serving.websocket import WRITE_CHUNK, Flusher, WebSocketProtocol

TEXT, BINARY, CLOSE, PING, PONG, CONT = 1, 2, 8, 9, 10, 0


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


async def test_the_handshake_leaves_with_the_first_frames() -> None:
    transport = SpyTransport()
    flusher = Flusher(asyncio.get_running_loop())
    response = b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
    conn = WebSocketProtocol(
        transport, FrameParser(10), flusher, close_timeout=1, handshake=response
    )
    conn.start(Recorder())
    conn.send(Outgoing("0{}"))
    await transport.written.wait()
    assert transport.writes == [response + b"\x81\x030{}"]


async def test_the_handshake_leaves_alone_when_nothing_follows() -> None:
    transport = SpyTransport()
    response = b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
    conn = WebSocketProtocol(
        transport,
        FrameParser(10),
        Flusher(asyncio.get_running_loop()),
        close_timeout=1,
        handshake=response,
    )
    conn.start(Recorder())
    await transport.written.wait()
    assert transport.writes == [response]


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
