"""The asyncio Socket.IO client: :class:`AsyncClient` (see docs/client.md).

Layers, as in the JS client: :mod:`~sockjet.client.transports` (polling, WebSocket, on
aiohttp), :mod:`~sockjet.client.engine` (Engine.IO: handshake, heartbeat watchdog, upgrade),
:mod:`~sockjet.client.manager` (one connection, reconnection, namespaces multiplexed),
:mod:`~sockjet.client.socket` (one namespace: acks, buffers, retries) and
:mod:`~sockjet.client.client` (the API).
"""

from __future__ import annotations

from sockjet.client.client import MANAGER_EVENTS, AsyncClient
from sockjet.client.errors import ConnectError, TransportError
from sockjet.client.socket import ClientSocket

__all__ = ["MANAGER_EVENTS", "AsyncClient", "ClientSocket", "ConnectError", "TransportError"]
