"""The native server's per-connection HTTP and WebSocket limits (see :mod:`sockjet.serving.native`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_LIMITS", "NativeLimits"]


@dataclass(frozen=True, slots=True)
class NativeLimits:
    """Per-connection limits of the native server. Bodies and WebSocket messages are capped by
    the engine's ``max_payload`` (413 / close 1009), not here."""

    max_url_size: int = 8 * 1024
    """Longest request target (path and query), in bytes: 414 past it."""
    max_header_line: int = 8 * 1024
    """Longest header (name and value), in bytes: 431 past it."""
    max_header_size: int = 16 * 1024
    """Request line and headers together, in bytes: 431 past it."""
    max_headers: int = 100
    """Most header lines in a request: 431 past it."""
    header_timeout: float = 10.0
    """Seconds from a request's first byte (or from the connection's opening) until its headers
    are complete: 408 and close (a silent close if no byte came at all)."""
    body_timeout: float = 30.0
    """Seconds from the end of the headers until the body is complete: 408 and close."""
    keepalive_timeout: float = 5.0
    """Seconds an idle keep-alive connection stays open between requests."""
    max_pipelined: int = 32
    """Requests queued on one connection (awaiting their turn) before reading pauses."""
    max_ws_fragments: int = 1024
    """Most frames one WebSocket message may be split into: 1009 past it."""
    close_timeout: float = 5.0
    """Seconds to wait for the peer's WebSocket close frame, or for a closing connection's
    last bytes to be read, before dropping it."""
    shutdown_timeout: float = 5.0
    """Seconds :meth:`NativeServer.close` waits for connections to finish before aborting them."""


DEFAULT_LIMITS: Final = NativeLimits()
