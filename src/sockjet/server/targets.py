"""Who a broadcast reaches: rooms, socket ids, options and flags (plain data, no behaviour).

Shared by the broadcast operator, the adapters (the room index, the cluster messages) and
connection state recovery (which sessions a recorded packet was meant for).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "DEFAULT_FLAGS",
    "BroadcastFlags",
    "BroadcastOptions",
    "Room",
    "SocketId",
    "as_rooms",
]

Room = str
SocketId = str


def as_rooms(rooms: Room | Iterable[Room]) -> frozenset[Room]:
    """One room or several as a frozenset (a ``str`` is one room, not its characters)."""
    if isinstance(rooms, str):
        return frozenset((rooms,))
    return frozenset(rooms)


@dataclass(frozen=True, slots=True)
class BroadcastFlags:
    """Modifiers of one broadcast (Node's ``BroadcastFlags``)."""

    volatile: bool = False
    """Drop the packet for a recipient whose transport is not ready instead of queueing it."""
    compress: bool | None = None
    """Whether the packet may be compressed (``None``: the transport decides)."""
    local: bool = False
    """Reach only this server's sockets, not the rest of the cluster."""
    timeout: float | None = None
    """Seconds to wait for acknowledgements (broadcast with ack)."""


DEFAULT_FLAGS: Final = BroadcastFlags()


@dataclass(frozen=True, slots=True)
class BroadcastOptions:
    """Who a broadcast reaches: sockets in any of ``rooms`` (all when empty), minus any socket in
    one of ``except_``."""

    rooms: frozenset[Room] = frozenset()
    except_: frozenset[Room] = frozenset()
    flags: BroadcastFlags = field(default=DEFAULT_FLAGS)
