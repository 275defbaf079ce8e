"""The errors the client reports: why a connection or a namespace could not be established."""

from __future__ import annotations

from typing import Any

from sockjet.errors import SockjetError

__all__ = ["ConnectError", "TransportError"]


class ConnectError(SockjetError, ConnectionError):
    """What ``connect_error`` handlers receive, and what ``await client.connect()`` raises.

    Either the server refused the namespace (a middleware said no, an unknown namespace):
    ``message`` and ``data`` are what it sent, as ``err.message`` and ``err.data`` in the JS
    client. Or the connection could not be made: ``message`` is the JS client's word for it
    (``"timeout"``, ``"xhr poll error"``, ``"websocket error"``...), ``description`` says more
    and ``__cause__`` holds the underlying exception, if any.
    """

    def __init__(self, message: str, data: Any = None, *, description: str | None = None) -> None:
        super().__init__(message if description is None else f"{message}: {description}")
        self.message = message
        self.data = data
        self.description = description


class TransportError(ConnectError):
    """An HTTP request or a WebSocket failed, or the server's bytes could not be decoded."""
