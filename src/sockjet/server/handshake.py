"""How a client connected: :class:`Handshake` (Node's ``socket.handshake``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sockjet.engine.io import HTTPRequest

__all__ = ["Handshake"]


@dataclass(slots=True)
class Handshake:
    """How the client connected: the details of the Engine.IO handshake request, plus the
    ``auth`` object of the Socket.IO CONNECT packet (Node's ``socket.handshake``)."""

    headers: dict[str, str]
    """Header names lower-cased."""
    query: dict[str, str]
    auth: dict[str, Any]
    address: str
    """The client's IP address, as the serving layer saw it."""
    url: str
    secure: bool
    xdomain: bool
    """Whether the request carried an ``Origin`` header (cross-domain)."""
    issued: int
    """Milliseconds since the epoch when the socket was created."""
    time: str
    """``issued`` as an ISO 8601 string."""

    @classmethod
    def from_request(cls, request: HTTPRequest, auth: dict[str, Any], issued: int) -> Handshake:
        remote = request.remote_addr
        return cls(
            headers=request.headers,
            query=request.query,
            auth=auth,
            address=remote[0] if remote else "",
            url=request.url,
            secure=request.secure,
            xdomain="origin" in request.headers,
            issued=issued,
            time=datetime.fromtimestamp(issued / 1000, UTC).isoformat(),
        )

    def to_dict(self) -> dict[str, Any]:
        """The handshake as Node spells it (for cluster messages)."""
        return {
            "headers": self.headers,
            "query": self.query,
            "auth": self.auth,
            "address": self.address,
            "url": self.url,
            "secure": self.secure,
            "xdomain": self.xdomain,
            "issued": self.issued,
            "time": self.time,
        }
