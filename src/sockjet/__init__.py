"""sockjet: a fast Socket.IO server and asyncio client, wire-compatible with Socket.IO v4."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sockjet.errors import (
    AckTimeout,
    ConnectionRefused,
    HandshakeError,
    InvalidPacket,
    PayloadTooLarge,
    ProtocolError,
    SockjetError,
)

if TYPE_CHECKING:
    from sockjet.adapters.emitter import Emitter
    from sockjet.client import AsyncClient, ClientSocket, ConnectError
    from sockjet.server import (
        BroadcastAckTimeout,
        BroadcastOperator,
        ConnectionStateRecovery,
        Handshake,
        Namespace,
        RemoteSocket,
        Server,
        Socket,
        ack_requested,
    )
    from sockjet.serving.asgi import ASGIApp

# The runtime is imported on first use (PEP 562), so that ``import sockjet.protocol`` (the
# sans-I/O layer, the client) does not load the server, the engine and asyncio.
_LAZY: dict[str, str] = {
    "ASGIApp": "sockjet.serving.asgi",
    "AsyncClient": "sockjet.client",
    "BroadcastAckTimeout": "sockjet.server",
    "BroadcastOperator": "sockjet.server",
    "ClientSocket": "sockjet.client",
    "ConnectError": "sockjet.client",
    "ConnectionStateRecovery": "sockjet.server",
    "Emitter": "sockjet.adapters.emitter",
    "Handshake": "sockjet.server",
    "Namespace": "sockjet.server",
    "RemoteSocket": "sockjet.server",
    "Server": "sockjet.server",
    "Socket": "sockjet.server",
    "ack_requested": "sockjet.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sockjet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "ASGIApp",
    "AckTimeout",
    "AsyncClient",
    "BroadcastAckTimeout",
    "BroadcastOperator",
    "ClientSocket",
    "ConnectError",
    "ConnectionRefused",
    "ConnectionStateRecovery",
    "Emitter",
    "Handshake",
    "HandshakeError",
    "InvalidPacket",
    "Namespace",
    "PayloadTooLarge",
    "ProtocolError",
    "RemoteSocket",
    "Server",
    "Socket",
    "SockjetError",
    "__version__",
    "ack_requested",
]
