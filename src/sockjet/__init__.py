"""sockjet: a fast Socket.IO server and asyncio client, wire-compatible with Socket.IO v4."""

from __future__ import annotations

from sockjet.errors import (
    AckTimeout,
    ConnectionRefused,
    HandshakeError,
    InvalidPacket,
    PayloadTooLarge,
    ProtocolError,
    SockjetError,
)

__version__ = "0.1.0"

__all__ = [
    "AckTimeout",
    "ConnectionRefused",
    "HandshakeError",
    "InvalidPacket",
    "PayloadTooLarge",
    "ProtocolError",
    "SockjetError",
    "__version__",
]
