"""The adapter contract: what the server needs from an adapter, and what an adapter may offer.

An adapter belongs to one namespace. It keeps the room index of that namespace's local sockets and
delivers its broadcasts: the memory adapter (:mod:`sockjet.adapters.memory`, the default) to the
local sockets, a cluster adapter (:mod:`sockjet.adapters.redis`...) also to and from the other
servers. The API mirrors Node's ``socket.io-adapter`` (``addAll``, ``del``, ``delAll``,
``broadcast``, ``broadcastWithAck``, ``fetchSockets``, ``addSockets``, ``delSockets``,
``disconnectSockets``, ``serverSideEmit``, ``serverCount``), so that a Python cluster adapter can
speak to Node servers.

Optional abilities are declared here, with what an adapter that lacks them does, so the server
never looks them up by name:

* **connection state recovery**: :attr:`Adapter.recovery` is the namespace's
  :class:`SessionRecovery`, or None when the adapter cannot recover sessions (sockets then
  always start afresh);
* **other servers**: :attr:`Adapter.cluster` says whether there may be any;
  :meth:`Adapter.server_count`, :meth:`Adapter.server_side_emit` and
  :meth:`Adapter.server_side_emit_with_ack` default to a server alone.

Data flows one way: the server hands a packet to its namespace's adapter, which encodes it once
and gives the same :class:`~sockjet.engine.io.Outgoing` objects to each recipient's engine
connection.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from sockjet.protocol.socketio import Packet
from sockjet.server.handshake import Handshake
from sockjet.server.recovery import ConnectionStateRecovery, PersistedSession, RestoredSession
from sockjet.server.targets import BroadcastOptions, Room, SocketId

if TYPE_CHECKING:
    from sockjet.server.namespace import Namespace
    from sockjet.server.socket import Socket

__all__ = ["Adapter", "AdapterFactory", "SessionRecovery", "SocketDetails"]


@dataclass(slots=True)
class SocketDetails:
    """A socket as another server of the cluster describes it (``fetch_sockets``)."""

    id: SocketId
    handshake: Handshake
    rooms: set[Room]
    data: Any


class SessionRecovery(Protocol):
    """Where one namespace keeps what connection state recovery needs (the ability an adapter
    offers through :attr:`Adapter.recovery`): disconnected sessions and the packets they miss.

    The memory adapter's is :class:`~sockjet.server.recovery.RecoveryStore`; a cluster adapter
    keeps them where every server can find them.
    """

    @property
    def options(self) -> ConnectionStateRecovery:
        """The server's ``connection_state_recovery`` options."""
        ...

    @property
    def position(self) -> Any:
        """Where the record stands now: a socket that connects keeps it, to recover from there
        when it comes back without an offset."""
        ...

    def persist(self, session: PersistedSession) -> None:
        """Keep the session of a socket that disconnected for a recoverable reason."""

    def restore(
        self, pid: str, offset: str | None
    ) -> RestoredSession | Awaitable[RestoredSession | None] | None:
        """The session ``pid`` with what it missed after ``offset`` (None: unknown, expired, or
        not fully recoverable). A session is restored at most once."""
        ...


class Adapter(ABC):
    """The adapter of one namespace (``nsp``): its room index and its broadcasts.

    Implementations subclass it (or :class:`~sockjet.adapters.memory.MemoryAdapter`, which
    implements everything for local sockets). Methods that may talk to other servers are
    ``async``; the room index of local sockets is always updated synchronously.
    """

    recovery: SessionRecovery | None = None
    """Connection state recovery for this namespace, or None: not supported (see the module)."""

    cluster: ClassVar[bool] = False
    """Whether other servers may share this namespace (a cluster adapter)."""

    def __init__(self, nsp: Namespace) -> None:
        self.nsp = nsp

    def init(self) -> Awaitable[None] | None:
        """Start (subscribe, connect...): called once per namespace when the event loop runs."""
        return None

    def close(self) -> Awaitable[None] | None:
        """Stop: called by ``Server.close()``."""
        return None

    async def server_count(self) -> int:
        """How many servers share this namespace (this one included)."""
        return 1

    # -- the room index of local sockets ------------------------------------------------------

    @abstractmethod
    def add_all(self, sid: SocketId, rooms: Iterable[Room]) -> None:
        """Add the local socket ``sid`` to ``rooms``."""

    @abstractmethod
    def del_(self, sid: SocketId, room: Room) -> None:
        """Remove the local socket ``sid`` from ``room``."""

    @abstractmethod
    def del_all(self, sid: SocketId) -> None:
        """Remove the local socket ``sid`` from every room (it disconnected)."""

    @abstractmethod
    def socket_rooms(self, sid: SocketId) -> set[Room] | None:
        """The rooms of the local socket ``sid`` (the adapter's own set: do not mutate)."""

    @abstractmethod
    def room_count(self) -> int:
        """How many rooms have local sockets (each socket's own room not counted)."""

    # -- what reaches sockets, here and on the other servers ------------------------------------

    @abstractmethod
    def broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        """Deliver ``packet`` (an EVENT; its ``nsp`` is set here) to the sockets ``opts``
        selects, encoded once."""

    @abstractmethod
    def broadcast_with_ack(
        self,
        packet: Packet,
        opts: BroadcastOptions,
        on_client_count: Callable[[int], None],
        on_reply: Callable[[Any], None],
    ) -> None:
        """Deliver with an ack id: each server reports how many clients it reached with
        ``on_client_count`` (once), then each reply goes to ``on_reply``."""

    @abstractmethod
    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Socket | SocketDetails]:
        """The sockets ``opts`` selects: local :class:`Socket` objects, remote details."""

    @abstractmethod
    def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        """Make the selected sockets join ``rooms``."""

    @abstractmethod
    def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        """Make the selected sockets leave ``rooms``."""

    @abstractmethod
    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        """Disconnect the selected sockets (``close``: their whole connection)."""

    # -- the other servers --------------------------------------------------------------------

    def server_side_emit(self, packet: list[Any]) -> None:
        """Send ``[event, *args]`` to the other servers (their ``on_server_side`` handlers);
        nothing to do for a server alone."""
        return None

    async def server_side_emit_with_ack(self, packet: list[Any]) -> list[Any]:
        """Send ``[event, *args]`` to the other servers and gather one answer per server:
        none for a server alone."""
        return []


AdapterFactory = Callable[["Namespace"], Adapter]
"""What ``Server(adapter=...)`` takes: called with each namespace, returns its adapter."""
