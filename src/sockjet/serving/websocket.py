"""WebSocket for the native server: one asyncio protocol per accepted socket, and the flusher.

Framing is :mod:`sockjet.protocol.websocket` (sans I/O). Outbound, every frame is built once per
:class:`~sockjet.engine.io.Outgoing` (cached in ``ws_frame``) and everything queued for one
connection during one event-loop iteration leaves in a single ``transport.write`` (see
:class:`Flusher`). A connection holds its queued frames itself and hands them to the transport only
while the transport accepts more (``pause_writing`` / ``resume_writing``), at most 64 KiB per write:
a large burst, or a broadcast to many slow clients, is then held once (the frames are shared), not
copied into every transport's buffer.

Inbound, ``pause_reading()`` stops reading the socket; messages already parsed from the last read
are held, in order, and delivered on ``resume_reading()``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, cast

from sockjet.protocol.websocket import (
    COMPRESS_THRESHOLD,
    SHORT_TEXT_HEADERS,
    CloseCode,
    DeflateParams,
    Event,
    FrameError,
    FrameParser,
    Opcode,
    build_frame,
    close_frame,
    data_frame,
    deflate_frame,
    parse_close,
)

if TYPE_CHECKING:
    from sockjet.engine.io import Outgoing, WebSocketHandler

__all__ = ["WRITE_CHUNK", "Flusher", "WebSocketProtocol"]

logger = logging.getLogger("sockjet.serving")

WRITE_CHUNK: Final = 64 * 1024
"""Most bytes handed to the transport in one write (the transport's default high-water mark):
what a connection copies of a shared frame is bounded by this, not by the frame's size."""


# --------------------------------------------------------------------------------------------
# The connection.


class Flusher:
    """Writes each dirty connection's queued frames once per event-loop iteration.

    One ``call_soon`` per iteration for the whole server (not one per connection): a broadcast
    to a thousand sockets queues a thousand frames and costs one callback and one write each.
    Also holds the per-iteration cache of compressed broadcast frames.
    """

    __slots__ = ("_deflated", "_dirty", "_loop", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[WebSocketProtocol] = []
        self._scheduled = False
        self._deflated: dict[tuple[Outgoing, int], bytes] = {}

    def mark(self, conn: WebSocketProtocol) -> None:
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def deflated(self, message: Outgoing, window_bits: int) -> bytes:
        """The compressed frame of ``message``, built once per iteration for all connections."""
        key = (message, window_bits)
        frame = self._deflated.get(key)
        if frame is None:
            frame = self._deflated[key] = deflate_frame(message.data, window_bits)
        return frame

    def _flush(self) -> None:
        self._scheduled = False
        dirty = self._dirty
        self._dirty = []
        self._deflated.clear()
        for conn in dirty:
            try:
                conn.flush()
            except Exception:
                # one broken connection must not keep the others' frames from going out
                logger.exception("writing to a WebSocket failed; dropping that connection")
                conn.abort()


_OPEN: Final = 0
_CLOSING: Final = 1  # we sent a close frame and wait for the peer's
_CLOSED: Final = 2


class WebSocketProtocol(asyncio.Protocol):
    """One accepted WebSocket: the engine's :class:`~sockjet.engine.io.WebSocketConnection`.

    ``handler.on_close(code, reason)`` is called exactly once: with the peer's close code when
    it sent a close frame (1005 if it gave none), with the code we closed with when the peer
    broke the protocol (1002, 1007, 1009, 1011), or with None when the connection dropped or the
    peer never answered our close frame.
    """

    __slots__ = (
        "_close_timeout",
        "_compress_bits",
        "_drain_level",
        "_flusher",
        "_handler",
        "_head",
        "_held",
        "_notified",
        "_on_lost",
        "_out",
        "_out_size",
        "_parser",
        "_pending_pong",
        "_plain",
        "_read_paused",
        "_state",
        "_timer",
        "_transport",
        "_writing_paused",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        parser: FrameParser,
        flusher: Flusher,
        *,
        close_timeout: float,
        deflate: DeflateParams | None = None,
        on_lost: Callable[[WebSocketProtocol], None] | None = None,
        handshake: bytes = b"",
    ) -> None:
        """``handshake``: the HTTP 101 response, queued ahead of every frame so that it leaves
        in the same write as the first ones (the Engine.IO OPEN packet): one syscall per new
        connection less, and a client reads its handshake and OPEN at once."""
        self._transport = transport
        self._parser = parser
        self._flusher = flusher
        self._close_timeout = close_timeout
        # Outbound compression needs a window zlib can produce (9-15); 8 means "don't compress".
        bits = deflate.server_max_window_bits if deflate else 0
        self._compress_bits = bits if bits >= 9 else 0
        self._on_lost = on_lost
        self._handler: WebSocketHandler | None = None
        # a list, not a deque: an idle connection's empty list costs 56 bytes, a deque ~600
        self._out: list[bytes] = []
        self._out_size = 0  # bytes of _out not yet written (the first frame minus _head)
        self._head = 0  # bytes of _out[0] already written
        self._drain_level: int | None = None  # watch_drain's level, while armed
        self._read_paused = False
        self._held: list[Event] | None = None  # parsed while paused, delivered on resume
        self._state = _OPEN
        self._timer: asyncio.TimerHandle | None = None
        self._writing_paused = False
        self._plain = True  # open, writable, no frame half-written, no drain watched
        self._pending_pong: bytes | None = None
        self._notified = False
        if handshake:
            self._queue(handshake)

    def start(self, handler: WebSocketHandler, data: bytes = b"") -> None:
        """Attach the engine's handler, process bytes that arrived with the handshake, then
        read (the HTTP protocol paused reading for the switch), unless the handler paused."""
        self._handler = handler
        if data:
            self.data_received(data)
        if not self._read_paused and self._state != _CLOSED:
            self._transport.resume_reading()

    # -- WebSocketConnection --------------------------------------------------------------

    def send(self, message: Outgoing) -> None:
        """Queue one message; it leaves with everything else queued in this loop iteration."""
        if self._state != _OPEN:
            return
        frame = message.ws_frame
        if self._compress_bits and message.compress and len(message.data) >= COMPRESS_THRESHOLD:
            frame = self._flusher.deflated(message, self._compress_bits)
        elif frame is None:
            data = message.data
            if data.__class__ is str and message.size < 126:
                # data_frame(), inline for a short text packet (an ack, a chat line)
                frame = SHORT_TEXT_HEADERS[message.size] + data.encode()
            else:
                frame = data_frame(data)
            message.ws_frame = frame
        if not self._out:
            self._flusher.mark(self)
        self._out.append(frame)
        self._out_size += len(frame)

    @property
    def buffered_amount(self) -> int:
        """Bytes queued here plus bytes the transport has not handed to the kernel yet."""
        if self._state == _CLOSED:
            return self._out_size
        return self._out_size + self._transport.get_write_buffer_size()

    def watch_drain(self, level: int) -> None:
        """Call the handler's ``on_drain()`` after a write leaves at most ``level`` buffered
        (or nothing queued here while the transport takes more)."""
        self._drain_level = level
        self._plain = False
        self._flusher.mark(self)  # checked at the next flush even if nothing else is written

    def pause_reading(self) -> None:
        """Stop reading the socket; what was already parsed is held (see the module docs)."""
        if not self._read_paused:
            self._read_paused = True
            if self._state != _CLOSED:
                self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Deliver the held messages, then read the socket again (unless paused again)."""
        if not self._read_paused:
            return
        self._read_paused = False
        held, self._held = self._held, None
        if held:
            self._dispatch(held)
        if not self._read_paused and self._state != _CLOSED:
            self._transport.resume_reading()

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Send a close frame after what is queued, then wait for the peer's. Idempotent."""
        if self._state != _OPEN:
            return
        self._state = _CLOSING
        self._queue(close_frame(code, reason))
        self._timer = asyncio.get_running_loop().call_later(
            self._close_timeout, self._finish, None, ""
        )

    def shutdown(self) -> None:
        """Server shutdown: close with 1001 "going away"."""
        self.close(CloseCode.GOING_AWAY, "going away")

    def fail(self, code: int, reason: str) -> None:
        """Close at once with ``code`` (a protocol violation or an internal error)."""
        self._fail(code, reason)

    def abort(self) -> None:
        """Drop the TCP connection without a close handshake; what is queued is discarded."""
        self._out.clear()
        self._out_size = self._head = 0
        self._transport.abort()

    # -- writing --------------------------------------------------------------------------

    def _queue(self, frame: bytes) -> None:
        if not self._out:
            self._flusher.mark(self)
        self._out.append(frame)
        self._out_size += len(frame)

    def flush(self) -> None:
        """Hand what is queued to the transport: in one write when it is small (the usual
        case), else in chunks for as long as the transport takes them."""
        out = self._out
        if out and self._plain and self._out_size <= WRITE_CHUNK:
            # the fan-out hot path: one write per connection per loop iteration
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()
            self._out_size = 0
            return
        if out and self._state != _CLOSED and not self._writing_paused:
            self._write_chunks()
        if self._drain_level is not None:
            self._check_drain()

    def _replain(self) -> None:
        self._plain = (
            self._state != _CLOSED
            and not self._writing_paused
            and not self._head
            and self._drain_level is None
        )

    def _write_chunks(self) -> None:
        out = self._out
        write = self._transport.write
        taken = 0  # frames of out written completely, deleted from it at the end
        # write() may pause us (pause_writing) or, if the connection breaks, empty out
        while taken < len(out) and not self._writing_paused:
            first = out[taken]
            head = self._head
            left = len(first) - head
            if left > WRITE_CHUNK:
                end = head + WRITE_CHUNK
                self._head = end
                self._out_size -= WRITE_CHUNK
                write(memoryview(first)[head:end])
                continue
            taken += 1
            self._head = 0
            parts: list[bytes | memoryview] = [memoryview(first)[head:] if head else first]
            size = left
            while taken < len(out) and size + len(out[taken]) <= WRITE_CHUNK:
                frame = out[taken]
                taken += 1
                parts.append(frame)
                size += len(frame)
            self._out_size -= size
            write(parts[0] if len(parts) == 1 else b"".join(parts))
        del out[:taken]
        self._replain()

    def _check_drain(self) -> None:
        level = self._drain_level
        if level is None or self._state == _CLOSED:
            return
        if self.buffered_amount <= level or (not self._out and not self._writing_paused):
            self._drain_level = None
            self._replain()
            handler = self._handler
            if handler is not None:
                try:
                    handler.on_drain()
                except Exception:
                    logger.exception("WebSocket drain handler failed")

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._plain = False

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._replain()
        pong = self._pending_pong
        if pong is not None:
            self._pending_pong = None
            self._queue(pong)
        self.flush()

    # -- reading --------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._state == _CLOSED:
            return
        try:
            events = self._parser.feed(data)
        except FrameError as exc:
            self._fail(exc.code, exc.reason)
            return
        if events:
            self._dispatch(events)

    def _dispatch(self, events: list[Event]) -> None:
        """Hand parsed messages and control frames on, in order, until reading is paused."""
        handler = self._handler
        assert handler is not None
        try:
            for index, (opcode, payload) in enumerate(events):
                if self._read_paused:
                    held = self._held
                    self._held = events[index:] if held is None else held + events[index:]
                    return
                if opcode <= Opcode.BINARY:
                    if self._state == _OPEN:
                        handler.on_message(payload)
                elif opcode == Opcode.PING:
                    self._pong(cast("bytes", payload))
                elif opcode == Opcode.CLOSE:
                    self._on_close_frame(cast("bytes", payload))
                    return
        except Exception:
            logger.exception("WebSocket handler failed")
            self._fail(CloseCode.INTERNAL_ERROR, "internal error")

    def _pong(self, payload: bytes) -> None:
        # O(1) and no timer: answered in the next flush; while the peer does not read, only the
        # latest pong is kept (RFC 6455 5.5.3 allows answering only the most recent ping).
        if self._state != _OPEN:
            return
        frame = build_frame(Opcode.PONG, payload)
        if self._writing_paused:
            self._pending_pong = frame
        else:
            self._queue(frame)

    def _on_close_frame(self, payload: bytes) -> None:
        try:
            code, reason = parse_close(payload)
        except FrameError as exc:
            self._fail(exc.code, exc.reason)
            return
        if self._state == _OPEN:
            self._queue(close_frame(code))  # echo the code, as RFC 6455 5.5.1 suggests
        self._finish(code, reason)

    def _fail(self, code: int, reason: str) -> None:
        """Close at once for a protocol violation (RFC 6455 7.1.7)."""
        if self._state == _OPEN:
            self._queue(close_frame(code, reason))
        self._finish(code, reason)

    def _finish(self, code: int | None, reason: str) -> None:
        """Write what is queued, close the TCP connection (the server closes first), notify.

        What the transport would not take is still written when it is small (a close frame
        behind a few messages); a large backlog is given up: the connection is ending.
        """
        if self._state == _CLOSED:
            return
        self.flush()
        out = self._out
        if out and self._out_size <= 4 * WRITE_CHUNK:
            head = self._head
            self._transport.write(b"".join([memoryview(out[0])[head:], *out[1:]]))
        out.clear()
        self._out_size = self._head = 0
        self._state = _CLOSED
        self._plain = False
        if self._timer is not None:
            self._timer.cancel()
        transport = self._transport
        transport.close()
        if transport.get_write_buffer_size():
            # A peer that never reads must not keep the socket forever.
            self._timer = asyncio.get_running_loop().call_later(
                self._close_timeout, transport.abort
            )
        self._notify(code, reason)

    def _notify(self, code: int | None, reason: str) -> None:
        if self._notified or self._handler is None:
            return
        self._notified = True
        try:
            self._handler.on_close(code, reason)
        except Exception:
            logger.exception("WebSocket on_close handler failed")

    def eof_received(self) -> bool | None:
        return None  # a half-close without a close frame is a drop: let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self._state = _CLOSED
        self._plain = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._out.clear()
        self._out_size = self._head = 0
        self._pending_pong = None
        self._held = None
        if self._on_lost is not None:
            self._on_lost(self)
        self._notify(None, "")
