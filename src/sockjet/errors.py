"""One exception hierarchy for everything sockjet raises on purpose.

Parsers raise only :class:`ProtocolError` (or a subclass); the runtime maps each one, in one
place, to closing the one connection at fault. Nothing else may escape a parser.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AckTimeout",
    "ConnectionRefused",
    "HandshakeError",
    "InvalidPacket",
    "PayloadTooLarge",
    "ProtocolError",
    "SockjetError",
]


class SockjetError(Exception):
    """Base class of every error sockjet raises on purpose."""


class ProtocolError(SockjetError):
    """The peer sent bytes that break the Engine.IO or Socket.IO protocol.

    The connection that sent them is closed (Socket.IO reason ``"parse error"``);
    every other connection is unaffected.
    """


class InvalidPacket(ProtocolError):
    """A packet that cannot be parsed or is not allowed where it arrived."""


class PayloadTooLarge(ProtocolError):
    """A payload, message, attachment set or decompressed frame over its configured limit."""


class HandshakeError(SockjetError):
    """An Engine.IO request refused with one of the protocol's error codes (0-5).

    ``status`` is the HTTP status to answer with (400, or 403 for code 4 "Forbidden").
    """

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class ConnectionRefused(SockjetError):
    """Raise from a connection middleware or ``connection`` handler to refuse a client.

    The client receives a CONNECT_ERROR packet whose payload is
    ``{"message": message, "data": data}`` (``data`` omitted when ``None``), exactly
    as Node's socket.io sends for ``next(err)`` with ``err.data`` set.
    """

    def __init__(self, message: str = "Connection refused", data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class AckTimeout(SockjetError, TimeoutError):
    """An acknowledgement did not arrive within the requested timeout."""
