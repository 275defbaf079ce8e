"""RESP (the Redis protocol, versions 2 and 3), as much as a subscribed connection needs.

The subscriber connection receives a stream of push messages (``message``, ``pmessage``,
``smessage``, subscription confirmations, ``pong``). Reading them through redis-py's generic
reply machinery costs tens of microseconds per message; this sans-I/O reader parses a whole
chunk of the stream at once, so a burst of messages costs one ``read`` and a few ``find``
calls each. Commands are packed by :func:`pack_command`.

:class:`RespReader` raises :class:`RespProtocolError` for bytes that are not RESP or for a
value over its size limit (the connection is then dropped and made again), never anything else.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["RespError", "RespProtocolError", "RespReader", "pack_command"]

_MAX_LINE: Final = 64 * 1024  # a header or simple-string line; longer means garbage
_MAX_DEPTH: Final = 8  # pub/sub messages nest one level


class RespProtocolError(Exception):
    """The stream is not valid RESP (or holds a value over the reader's limit)."""


class RespError:
    """An error reply (``-ERR ...``), returned as a value: the caller decides."""

    __slots__ = ("message",)

    def __init__(self, message: bytes) -> None:
        self.message = message.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"RespError({self.message!r})"


class _Incomplete(Exception):
    """The buffer ends inside a value."""


def pack_command(*parts: bytes) -> bytes:
    """A command as RESP: an array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n" % len(part))
        out.append(part)
        out.append(b"\r\n")
    return b"".join(out)


class RespReader:
    """Incremental RESP2/RESP3 parser: :meth:`feed` bytes, take the complete values.

    Values: bulk and simple strings are ``bytes``, integers ``int``, arrays, sets and pushes
    ``list``, maps ``dict``, nulls ``None``, error replies :class:`RespError`.
    """

    __slots__ = ("_buffer", "_max_bulk")

    def __init__(self, max_bulk: int = 512 * 1024 * 1024) -> None:
        self._buffer = bytearray()
        self._max_bulk = max_bulk

    @property
    def buffered(self) -> int:
        """Bytes received and not parsed yet (the start of an incomplete value)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Any]:
        """Add ``data``; returns every value it completes, in order."""
        buffer = self._buffer
        buffer += data
        values: list[Any] = []
        pos = 0
        end = len(buffer)
        try:
            while pos < end:
                value, pos = self._parse(buffer, pos, 0)
                values.append(value)
        except _Incomplete:
            pass
        if pos:
            del buffer[:pos]
        return values

    def _flat(self, buffer: bytearray, pos: int) -> tuple[list[bytes], int] | None:
        """An array of bulk strings (every pub/sub message), parsed in one go; None for any
        other shape (the general parser then takes it)."""
        find = buffer.find
        end = find(b"\r\n", pos)
        if end < 0:
            return None
        try:
            count = int(buffer[pos + 1 : end])
        except ValueError:
            return None
        if not 0 < count <= 8:
            return None
        pos = end + 2
        items = []
        limit = self._max_bulk
        for _ in range(count):
            if pos >= len(buffer) or buffer[pos] != _BULK:
                return None
            end = find(b"\r\n", pos)
            if end < 0:
                return None
            try:
                size = int(buffer[pos + 1 : end])
            except ValueError:
                return None
            if not 0 <= size <= limit:
                return None
            pos = end + 2
            end = pos + size
            if len(buffer) < end + 2:
                raise _Incomplete
            items.append(bytes(buffer[pos:end]))
            pos = end + 2
        return items, pos

    def _line(self, buffer: bytearray, pos: int) -> tuple[bytes, int]:
        end = buffer.find(b"\r\n", pos)
        if end < 0:
            if len(buffer) - pos > _MAX_LINE:
                raise RespProtocolError("RESP line too long")
            raise _Incomplete
        return bytes(buffer[pos + 1 : end]), end + 2

    def _parse(self, buffer: bytearray, pos: int, depth: int) -> tuple[Any, int]:
        if pos >= len(buffer):
            raise _Incomplete
        kind = buffer[pos]
        if kind in (_PUSH, _ARRAY):  # the hot path: a push message
            flat = self._flat(buffer, pos)
            if flat is not None:
                return flat
        if depth > _MAX_DEPTH:
            raise RespProtocolError("RESP nested too deep")
        kind = buffer[pos]
        line, pos = self._line(buffer, pos)
        if kind in _AGGREGATES:
            count = _int(line)
            if count < 0:
                return None, pos
            items: list[Any] = []
            if kind in (_MAP, _ATTRIBUTE):  # key, value pairs
                count *= 2
            for _ in range(count):
                item, pos = self._parse(buffer, pos, depth + 1)
                items.append(item)
            if kind == _MAP:
                return dict(zip(items[::2], items[1::2], strict=True)), pos
            if kind == _ATTRIBUTE:  # metadata about the next value: skip it
                return self._parse(buffer, pos, depth)
            return items, pos
        if kind in _BULKS:
            size = _int(line)
            if size < 0:
                return None, pos
            if size > self._max_bulk:
                raise RespProtocolError(f"RESP value of {size} bytes over the limit")
            end = pos + size
            if len(buffer) < end + 2:
                raise _Incomplete
            if buffer[end : end + 2] != b"\r\n":
                raise RespProtocolError("RESP bulk string not terminated")
            value = bytes(buffer[pos:end])
            return (value[4:] if kind == _VERBATIM else value), end + 2
        if kind == _SIMPLE:
            return line, pos
        if kind in (_INTEGER, _BIG_NUMBER):
            return _int(line), pos
        if kind == _ERROR:
            return RespError(line), pos
        if kind == _BLOB_ERROR:
            size = _int(line)
            end = pos + size
            if size < 0 or size > _MAX_LINE:
                raise RespProtocolError("invalid RESP error")
            if len(buffer) < end + 2:
                raise _Incomplete
            return RespError(bytes(buffer[pos:end])), end + 2
        if kind == _NULL:
            return None, pos
        if kind == _BOOLEAN:
            return line == b"t", pos
        if kind == _DOUBLE:
            try:
                return float(line), pos
            except ValueError:
                raise RespProtocolError("invalid RESP double") from None
        raise RespProtocolError(f"unknown RESP type {chr(kind)!r}")


def _int(line: bytes) -> int:
    try:
        return int(line)
    except ValueError:
        raise RespProtocolError("invalid RESP integer") from None


_ARRAY, _PUSH, _SET, _MAP, _ATTRIBUTE = b"*>~%|"
_AGGREGATES: Final = frozenset((_ARRAY, _PUSH, _SET, _MAP, _ATTRIBUTE))
_BULK, _VERBATIM = b"$="
_BULKS: Final = frozenset((_BULK, _VERBATIM))
_SIMPLE, _ERROR, _INTEGER, _NULL, _BOOLEAN, _DOUBLE, _BIG_NUMBER, _BLOB_ERROR = b"+-:_#,(!"
