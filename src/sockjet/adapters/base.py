"""The adapter contract: what every adapter (memory, Redis...) implements.

An adapter belongs to one namespace. It keeps the room index of that namespace's local sockets
and delivers broadcasts: the memory adapter to local sockets only, a cluster adapter also to the
other servers (and from them). The API mirrors Node's ``socket.io-adapter`` (``addAll``, ``del``,
``delAll``, ``broadcast``, ``broadcastWithAck``, ``fetchSockets``, ``addSockets``,
``delSockets``, ``disconnectSockets``, ``serverSideEmit``, ``serverCount``), so a Python cluster
adapter can speak to Node servers: it subclasses :class:`~sockjet.adapters.memory.MemoryAdapter`,
publishes what must reach other servers, and calls ``super()`` for the local part.

The server sees adapters through the structural :class:`sockjet.server.broadcast.Adapter`
protocol; this base class adds nothing at run time but the contract and its documentation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from sockjet.protocol.socketio import Packet
from sockjet.server.broadcast import BroadcastFlags, BroadcastOptions, Room, SocketDetails, SocketId
from sockjet.server.namespace import Namespace
from sockjet.server.recovery import RecoveryStore
from sockjet.server.socket import Socket

__all__ = [
    "BaseAdapter",
    "BroadcastFlags",
    "BroadcastOptions",
    "Room",
    "SocketDetails",
    "SocketId",
]


class BaseAdapter(ABC):
    """Abstract adapter of one namespace (``nsp``)."""

    recovery: RecoveryStore | None = None
    """Where packets and sessions are kept for connection state recovery; an adapter that
    leaves it None does not support recovery (sockets then always start afresh)."""

    def __init__(self, nsp: Namespace) -> None:
        self.nsp = nsp

    def init(self) -> Awaitable[None] | None:
        """Start: called once per namespace when the event loop runs (may be a coroutine)."""
        return None

    def close(self) -> Awaitable[None] | None:
        """Stop: called by ``Server.close()`` (may be a coroutine)."""
        return None

    @abstractmethod
    async def server_count(self) -> int:
        """How many servers share this namespace (1 for a single process)."""

    @abstractmethod
    def add_all(self, sid: SocketId, rooms: Iterable[Room]) -> None:
        """Add the local socket ``sid`` to ``rooms``."""

    @abstractmethod
    def del_(self, sid: SocketId, room: Room) -> None:
        """Remove the local socket ``sid`` from ``room``."""

    @abstractmethod
    def del_all(self, sid: SocketId) -> None:
        """Remove the local socket ``sid`` from all its rooms."""

    @abstractmethod
    def socket_rooms(self, sid: SocketId) -> set[Room] | None:
        """The rooms of the local socket ``sid`` (the adapter's own set), or None."""

    @abstractmethod
    def broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        """Deliver ``packet`` (an EVENT; its ``nsp`` is set here) to the selected sockets."""

    @abstractmethod
    def broadcast_with_ack(
        self,
        packet: Packet,
        opts: BroadcastOptions,
        on_client_count: Callable[[int], None],
        on_reply: Callable[[Any], None],
    ) -> None:
        """Deliver with an ack id; report the clients reached (once per server) and each reply."""

    @abstractmethod
    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Socket | SocketDetails]:
        """The selected sockets: local ``Socket`` objects and remote ``SocketDetails``."""

    @abstractmethod
    def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        """Make the selected sockets join ``rooms``."""

    @abstractmethod
    def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        """Make the selected sockets leave ``rooms``."""

    @abstractmethod
    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        """Disconnect the selected sockets; ``close`` closes their whole connection."""

    @abstractmethod
    def server_side_emit(self, packet: list[Any]) -> None:
        """Send ``[event, *args]`` to the other servers (the receivers' handlers registered
        with ``Namespace.on_server_side`` run); a no-op without a cluster."""
