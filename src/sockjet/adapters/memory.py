"""The in-memory adapter: the room index of one namespace and local broadcast delivery.

The default adapter, and the local half of every cluster adapter. The room index is two dicts,
``rooms`` (room -> socket ids) and ``sids`` (socket id -> rooms); a room that empties is deleted,
so memory returns to its baseline once everyone left.

A broadcast is encoded once into :class:`~sockjet.engine.io.Outgoing` objects, and the very same
objects are handed to each recipient's engine socket: the transports cache the frame they derive
from them, so a message to a thousand sockets is serialized and framed once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sockjet.engine.hooks import call_hooks
from sockjet.engine.io import Outgoing, send_packet
from sockjet.protocol.socketio import Packet
from sockjet.server.acks import BroadcastAckTracker
from sockjet.server.adapter import Adapter, SocketDetails
from sockjet.server.namespace import Namespace
from sockjet.server.recovery import RecoveryStore
from sockjet.server.socket import Socket
from sockjet.server.targets import BroadcastOptions, Room, SocketId

__all__ = ["MemoryAdapter"]


class MemoryAdapter(Adapter):
    """Rooms and broadcasts for the sockets of one namespace in this process."""

    recovery: RecoveryStore | None
    """The in-memory record of connection state recovery (when the server enables it)."""

    def __init__(self, nsp: Namespace) -> None:
        super().__init__(nsp)
        self.rooms: dict[Room, set[SocketId]] = {}
        self.sids: dict[SocketId, set[Room]] = {}
        server = nsp.server
        self._hooks = server.hooks
        self.serializer = server.serializer
        """How this namespace's packets are encoded (the server's serializer)."""
        options = server.connection_state_recovery
        self.recovery = None if options is None else RecoveryStore(options)

    # -- room index ---------------------------------------------------------------------------

    def add_all(self, sid: SocketId, rooms: Iterable[Room]) -> None:
        own = self.sids.get(sid)
        if own is None:
            own = self.sids[sid] = set()
        index = self.rooms
        if self._hooks.watching_rooms:
            self._add_all_observed(sid, own, rooms)
            return
        for room in rooms:
            own.add(room)
            members = index.get(room)
            if members is None:
                index[room] = {sid}
            else:
                members.add(sid)

    def _add_all_observed(self, sid: SocketId, own: set[Room], rooms: Iterable[Room]) -> None:
        hooks = self._hooks
        nsp = self.nsp
        index = self.rooms
        for room in rooms:
            if room in own:
                continue
            own.add(room)
            members = index.get(room)
            if members is None:
                index[room] = {sid}
                if hooks.room_created:
                    call_hooks(hooks.room_created, nsp, room)
            else:
                members.add(sid)
            if hooks.room_joined:
                call_hooks(hooks.room_joined, nsp, room, sid)

    def del_(self, sid: SocketId, room: Room) -> None:
        own = self.sids.get(sid)
        if own is None or room not in own:
            return
        own.discard(room)
        # A socket with no room left is forgotten too (it is back in no index at all).
        if not own:
            del self.sids[sid]
        self._leave(sid, room)

    def del_all(self, sid: SocketId) -> None:
        own = self.sids.pop(sid, None)
        if own is not None:
            for room in own:
                self._leave(sid, room)

    def _leave(self, sid: SocketId, room: Room) -> None:
        members = self.rooms.get(room)
        if members is None:
            return
        members.discard(sid)
        if not members:
            del self.rooms[room]
        hooks = self._hooks
        if hooks.watching_rooms:
            if hooks.room_left:
                call_hooks(hooks.room_left, self.nsp, room, sid)
            if not members and hooks.room_deleted:
                call_hooks(hooks.room_deleted, self.nsp, room)

    def socket_rooms(self, sid: SocketId) -> set[Room] | None:
        return self.sids.get(sid)

    def room_count(self) -> int:
        own = self.sids  # a socket's own room is named by its id
        return sum(1 for room in self.rooms if room not in own)

    async def sockets(self, rooms: Iterable[Room] = ()) -> set[SocketId]:
        """Ids of the local sockets in any of ``rooms`` (every socket when empty)."""
        return {s.id for s in self._select(BroadcastOptions(frozenset(rooms)))}

    # -- selection ----------------------------------------------------------------------------

    def _select(self, opts: BroadcastOptions) -> list[Socket]:
        """The connected local sockets ``opts`` selects, as a new list.

        A list, not a generator: delivering to a socket may close it (and so change the room
        sets) while the caller iterates.
        """
        sockets = self.nsp.sockets
        excluded: set[SocketId] = set()
        if opts.except_:
            index = self.rooms
            for room in opts.except_:
                members = index.get(room)
                if members:
                    excluded.update(members)
        rooms = opts.rooms
        if not rooms:
            if not excluded:
                return list(sockets.values())
            return [s for sid, s in sockets.items() if sid not in excluded]
        index = self.rooms
        if len(rooms) == 1:
            (room,) = rooms
            ids: Iterable[SocketId] = index.get(room, ())
        else:
            ids = set()
            for room in rooms:
                members = index.get(room)
                if members:
                    ids.update(members)
        get = sockets.get
        selected = []
        for sid in ids:
            if sid not in excluded:
                socket = get(sid)
                if socket is not None:
                    selected.append(socket)
        return selected

    def _encode(self, packet: Packet, opts: BroadcastOptions) -> list[Outgoing]:
        packet.nsp = self.nsp.name
        message = Outgoing.message
        compress = opts.flags.compress is not False
        return [message(p, compress) for p in self.serializer.encode(packet)]

    # -- delivery -----------------------------------------------------------------------------

    def broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        volatile = opts.flags.volatile
        recovery = self.recovery
        if recovery is not None and not volatile:
            # the offset the client will remember goes in first; only an encoded packet is kept
            recovery.stamp(packet.data)
            try:
                outgoing = self._encode(packet, opts)
            except Exception:
                packet.data.pop()
                raise
            recovery.record(packet.data, opts)
        else:
            outgoing = self._encode(packet, opts)
        selected = self._select(opts)
        if len(outgoing) == 1:
            message = outgoing[0]
            for socket in selected:
                socket.conn.send(message, volatile=volatile)
        else:
            for socket in selected:
                send_packet(socket.conn, outgoing, volatile)
        self._sent(packet, outgoing, len(selected))

    def _sent(self, packet: Packet, outgoing: list[Outgoing], recipients: int) -> None:
        """Count a packet queued for ``recipients`` local clients (once, not per recipient)."""
        size = sum(message.size for message in outgoing)
        if outgoing[0].data.__class__ is str:
            size -= 1  # the Engine.IO type its text form was given
        stats = self.nsp.stats
        stats.packets_sent += recipients
        stats.events_sent += recipients
        stats.bytes_sent += recipients * size
        sent = self._hooks.packet_sent
        if sent:
            call_hooks(sent, self.nsp, packet, recipients, size)

    def broadcast_with_ack(
        self,
        packet: Packet,
        opts: BroadcastOptions,
        on_client_count: Callable[[int], None],
        on_reply: Callable[[Any], None],
    ) -> None:
        # One id for every recipient: ids come from the namespace's counter, shared with the
        # sockets' own acks, so they never collide.
        ack_id = packet.id = self.nsp.next_ack_id()
        outgoing = self._encode(packet, opts)
        volatile = opts.flags.volatile
        tracker = BroadcastAckTracker(ack_id, on_reply)
        for socket in self._select(opts):
            if send_packet(socket.conn, outgoing, volatile):
                tracker.add(socket)
        on_client_count(tracker.count)
        tracker.arm(opts.flags.timeout)
        self._sent(packet, outgoing, tracker.count)

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Socket | SocketDetails]:
        return list(self._select(opts))

    def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        rooms = tuple(rooms)
        for socket in self._select(opts):
            socket.join(rooms)

    def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        rooms = tuple(rooms)
        for socket in self._select(opts):
            for room in rooms:
                socket.leave(room)

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        for socket in self._select(opts):
            socket.disconnect(close)

    def server_side_emit(self, packet: list[Any]) -> None:
        """No other server to reach: nothing to do."""
