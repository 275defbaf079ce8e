"""What a transport needs from the session that owns it: a small interface, so that transports
never import the session (as engine.io's transports never see their socket).

:class:`~sockjet.engine.session.Session` implements it. A transport reports to its owner (a
message arrived, the connection closed, its queue drained) and asks it (may this packet be
queued? should this poll wait?); the rules themselves live in the session and its state machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Protocol, TypeVar

from sockjet.protocol.engineio import Packet
from sockjet.protocol.session import SessionMachine

__all__ = ["TransportOwner"]

T = TypeVar("T")


class TransportOwner(Protocol):
    """The session a transport belongs to."""

    machine: SessionMachine
    """The session's state machine (transports read its phase and close reason)."""

    @property
    def active(self) -> object:
        """The transport packets travel on now (compared by identity)."""
        ...

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def max_payload(self) -> int: ...

    @property
    def http_compression(self) -> bool: ...

    @property
    def max_packets_per_poll(self) -> int | None: ...

    @property
    def is_open(self) -> bool: ...

    # -- outbound -----------------------------------------------------------------------------

    def admit(self, buffered: int, size: int, volatile: bool) -> bool:
        """May a packet that takes the queue past the high-water mark be queued?"""
        ...

    def dropped_volatile(self) -> None:
        """A volatile packet was dropped (the transport was not writable)."""

    def drained(self, transport: object) -> None:
        """``transport``'s queue fell to the level last watched."""

    # -- inbound ------------------------------------------------------------------------------

    def deliver(self, data: str | bytes) -> None:
        """A MESSAGE payload for the session's handler."""

    def websocket_message(self, transport: object, data: str | bytes) -> None:
        """Anything but a MESSAGE on a WebSocket (control packets, probes)."""

    def websocket_closed(self, transport: object, error: bool = False) -> None:
        """A WebSocket of the session went away; ``error``: over a protocol violation."""

    async def receive_posted(self, packets: list[Packet]) -> bool:
        """A polling POST's packets; False when the session ended while they waited."""
        ...

    async def until_ended(self, pending: Awaitable[T]) -> T | None:
        """``pending``'s result, or None if the session ended first."""
        ...

    # -- polling ------------------------------------------------------------------------------

    def poll_should_wait(self) -> bool:
        """Whether a GET with nothing to answer should wait."""
        ...

    def close_delivered(self) -> None:
        """A GET carried the CLOSE packet."""

    def fail(self, reason: str) -> None:
        """Close the session now."""
