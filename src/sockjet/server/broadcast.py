"""The broadcast operator (``io.to("room").emit(...)``) and remote sockets.

A :class:`BroadcastOperator` is immutable: ``to``/``in_``/``except_``/``volatile``/``local``/
``compress``/``timeout`` return new operators, so one can be kept and reused. Its ``emit`` builds
the packet once and hands it to the namespace's adapter, which encodes it once and writes the same
:class:`~sockjet.engine.io.Outgoing` objects to every recipient (no task, no copy per recipient).

The adapter contract it drives is :mod:`sockjet.server.adapter`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sockjet.errors import AckTimeout
from sockjet.protocol.socketio import Packet, PacketType, check_event_name
from sockjet.server.acks import BroadcastAckTimeout, ReplyCollector
from sockjet.server.adapter import Adapter, SocketDetails
from sockjet.server.targets import DEFAULT_FLAGS, BroadcastFlags, BroadcastOptions, Room, as_rooms

if TYPE_CHECKING:
    from sockjet.server.socket import Socket

__all__ = ["BroadcastOperator", "RemoteSocket"]


class BroadcastOperator:
    """Targets a set of sockets of one namespace (rooms, exceptions, flags); immutable."""

    __slots__ = ("_adapter", "_except", "_flags", "_rooms", "_single")

    def __init__(
        self,
        adapter: Adapter,
        rooms: frozenset[Room] = frozenset(),
        except_rooms: frozenset[Room] = frozenset(),
        flags: BroadcastFlags = DEFAULT_FLAGS,
        *,
        expect_single: bool = False,
    ) -> None:
        self._adapter = adapter
        self._rooms = rooms
        self._except = except_rooms
        self._flags = flags
        self._single = expect_single

    def _with(
        self,
        rooms: frozenset[Room] | None = None,
        except_rooms: frozenset[Room] | None = None,
        flags: BroadcastFlags | None = None,
    ) -> BroadcastOperator:
        return BroadcastOperator(
            self._adapter,
            self._rooms if rooms is None else rooms,
            self._except if except_rooms is None else except_rooms,
            self._flags if flags is None else flags,
            expect_single=self._single,
        )

    @property
    def rooms(self) -> frozenset[Room]:
        """The targeted rooms (empty: every socket of the namespace)."""
        return self._rooms

    @property
    def except_rooms(self) -> frozenset[Room]:
        """Sockets in any of these rooms are left out."""
        return self._except

    @property
    def flags(self) -> BroadcastFlags:
        return self._flags

    def to(self, room: Room | Iterable[Room]) -> BroadcastOperator:
        """Also target ``room`` (or rooms): a socket in several targeted rooms gets one copy."""
        return self._with(rooms=self._rooms | as_rooms(room))

    def in_(self, room: Room | Iterable[Room]) -> BroadcastOperator:
        """Same as :meth:`to`."""
        return self.to(room)

    def except_(self, room: Room | Iterable[Room]) -> BroadcastOperator:
        """Leave out the sockets in ``room`` (or rooms)."""
        return self._with(except_rooms=self._except | as_rooms(room))

    @property
    def volatile(self) -> BroadcastOperator:
        """Drop the packet for clients that are not ready to receive it (e.g. mid-poll)."""
        return self._with(flags=replace(self._flags, volatile=True))

    @property
    def local(self) -> BroadcastOperator:
        """Only reach sockets connected to this server (not the rest of the cluster)."""
        return self._with(flags=replace(self._flags, local=True))

    def compress(self, compress: bool) -> BroadcastOperator:
        """Whether the packet may be compressed."""
        return self._with(flags=replace(self._flags, compress=compress))

    def timeout(self, seconds: float) -> BroadcastOperator:
        """Wait at most ``seconds`` for acknowledgements (see :meth:`emit_with_ack`)."""
        return self._with(flags=replace(self._flags, timeout=seconds))

    def _options(self) -> BroadcastOptions:
        return BroadcastOptions(self._rooms, self._except, self._flags)

    def emit(self, event: str, *args: Any) -> None:
        """Send an event to every targeted socket (queued; returns at once).

        Raises :class:`ValueError` for a reserved event name (``"disconnect"``...).
        """
        check_event_name(event)
        self._adapter.broadcast(Packet(PacketType.EVENT, "/", [event, *args]), self._options())

    def send(self, *args: Any) -> None:
        """Emit a ``"message"`` event."""
        self.emit("message", *args)

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """Emit and wait for every targeted client's acknowledgement.

        Returns one value per client (each as :func:`~sockjet.server.acks.ack_value` maps the
        ack arguments: none -> ``None``, one -> it, several -> a tuple). Without
        :meth:`timeout` it waits until every client answered or disconnected; with one, it
        raises :class:`~sockjet.server.acks.BroadcastAckTimeout` (an
        :class:`~sockjet.errors.AckTimeout`) whose ``replies`` holds the answers received.
        """
        check_event_name(event)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        servers = 1 if self._flags.local else await self._adapter.server_count()
        collector = ReplyCollector(future, servers)
        self._adapter.broadcast_with_ack(
            Packet(PacketType.EVENT, "/", [event, *args]),
            self._options(),
            collector.on_client_count,
            collector.on_reply,
        )
        collector.check()  # nothing to wait for when no server reaches anyone
        timeout = self._flags.timeout
        try:
            if timeout is None:
                return await future
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise BroadcastAckTimeout(
                f"not every client acknowledged within {timeout}s", list(collector.replies)
            ) from None

    async def fetch_sockets(self) -> list[Socket | RemoteSocket]:
        """The targeted sockets: :class:`~sockjet.server.socket.Socket` objects for local
        ones, :class:`RemoteSocket` for those on other servers of the cluster."""
        found = await self._adapter.fetch_sockets(self._options())
        adapter = self._adapter
        return [RemoteSocket(adapter, s) if isinstance(s, SocketDetails) else s for s in found]

    def sockets_join(self, room: Room | Iterable[Room]) -> None:
        """Make the targeted sockets join ``room`` (or rooms)."""
        self._adapter.add_sockets(self._options(), as_rooms(room))

    def sockets_leave(self, room: Room | Iterable[Room]) -> None:
        """Make the targeted sockets leave ``room`` (or rooms)."""
        self._adapter.del_sockets(self._options(), as_rooms(room))

    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect the targeted sockets ("server namespace disconnect"); ``close=True``
        closes their whole connection."""
        self._adapter.disconnect_sockets(self._options(), close)

    def __repr__(self) -> str:
        return (
            f"BroadcastOperator(rooms={sorted(self._rooms)}, "
            f"except={sorted(self._except)}, flags={self._flags})"
        )


class RemoteSocket:
    """A socket of another server of the cluster, as ``fetch_sockets()`` returns it.

    Offers the same operations as a local socket, carried out through the adapter.
    """

    __slots__ = ("_operator", "data", "handshake", "id", "rooms")

    def __init__(self, adapter: Adapter, details: SocketDetails) -> None:
        self.id = details.id
        self.handshake = details.handshake
        self.rooms = details.rooms
        self.data = details.data
        self._operator = BroadcastOperator(adapter, frozenset((details.id,)), expect_single=True)

    def emit(self, event: str, *args: Any) -> None:
        """Send an event to this socket."""
        self._operator.emit(event, *args)

    def timeout(self, seconds: float) -> RemoteSocket:
        """This socket with a time limit for :meth:`emit_with_ack`."""
        timed = RemoteSocket.__new__(RemoteSocket)
        timed.id, timed.handshake, timed.rooms, timed.data = (
            self.id,
            self.handshake,
            self.rooms,
            self.data,
        )
        timed._operator = self._operator.timeout(seconds)
        return timed

    async def emit_with_ack(self, event: str, *args: Any) -> Any:
        """Send an event and wait for the acknowledgement (its value, as for a local socket).

        Raises :class:`~sockjet.errors.AckTimeout` when no answer comes (in time).
        """
        replies = await self._operator.emit_with_ack(event, *args)
        if not replies:
            raise AckTimeout("the socket did not answer")
        return replies[0]

    def join(self, room: Room | Iterable[Room]) -> None:
        self._operator.sockets_join(room)

    def leave(self, room: Room) -> None:
        self._operator.sockets_leave(room)

    def disconnect(self, close: bool = False) -> None:
        self._operator.disconnect_sockets(close)

    def __repr__(self) -> str:
        return f"RemoteSocket(id={self.id!r})"
