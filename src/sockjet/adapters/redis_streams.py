"""The Redis Streams adapter: a cluster whose broadcasts are recorded in a Redis stream, so that
connection state recovery works on every server (Node's ``@socket.io/redis-streams-adapter``
0.3.x, wire-compatible: sockjet and Node servers form one cluster)::

    from sockjet.adapters.redis_streams import redis_streams_adapter

    io = sockjet.Server(
        adapter=redis_streams_adapter("redis://127.0.0.1:6379/0"),
        connection_state_recovery=True,
    )

Everything the other Redis adapters do across servers works here too (broadcasts with rooms and
``except_``, ``fetch_sockets`` and remote sockets, ``sockets_join``/``sockets_leave``,
``disconnect_sockets``, ``server_side_emit`` with acks, broadcast acks, ``server_count``), and
a client that reconnects to *any* server of the cluster, Node ones included, gets back its id,
rooms, ``socket.data`` and the packets it missed.

The wire (:class:`StreamsProtocol`, the :mod:`~sockjet.adapters.cluster_envelope` messages):

* ``XADD <stream> MAXLEN ~ <max_len> * uid <uid> nsp <nsp> type <3|4|5|6> data <data>`` for
  broadcasts (without ack), ``sockets_join``, ``sockets_leave`` and ``disconnect_sockets``:
  ``data`` is the message's JSON, or ``base64(msgpack)`` when it holds binary. Every server
  reads the stream (``XREAD``); the entry id is the offset a recovering client sends back.
* pub/sub (``PUBLISH``, or ``SPUBLISH`` with ``sharded_pubsub``) of msgpack envelopes for the
  rest: broadcasts with ack, ``fetch_sockets``, ``server_side_emit`` on ``P#N#``, answers on
  the requester's ``P#N#<uid>#``. ``PUBSUB NUMSUB P#N#`` counts the servers.
* session records ``SET <prefix><pid> base64(msgpack({sid, pid, rooms, data, ...})) PX <ms>``.

Recovery across servers (:class:`StreamsRecovery`), and how it goes further than Node's:

* With recovery on, a server delivers broadcasts to its own clients **in stream order**, as it
  reads them back from the stream (its own included), each with its entry id as last argument:
  the offset a client remembers is always the newest it has, so a recovery replays exactly what
  came after it (Node delivers its own broadcasts before reading the others', so a client's last
  offset may be older than a packet it already has).
* A session's record is written while the socket is connected and kept up to date (on connect,
  on join and leave, every ``session_refresh`` seconds with its ``data``, and on
  :meth:`StreamsRecovery.save`), with a TTL; Node writes it only when its server sees the
  disconnect, so a killed server loses its sessions. The record names the server holding the
  session: a restore that finds it held by a live server (a client back on another server
  before its old one noticed it left) asks that server to hand it over, which disconnects the
  old socket and writes the final record at once; a restore on the server itself does the same
  locally. A dead holder does not answer (nobody receives the request) and is not waited for.
* Restoring takes the packets after the client's offset from the last ``recent_packets`` this
  server delivered (or reads the stream, up to where its reader stands, for older ones), and
  keeps what the reader delivers from then on until the socket is connected: no packet is missed
  or sent twice while the restore runs, however far the reader is behind or ahead.
* Each ``XADD`` is handed to the socket the moment it is issued
  (:class:`~sockjet.adapters.redis_streams_io.EntryWriter`): a broadcast is on its way to Redis
  before anything its handler sends afterwards, an ack included.

Bounds: the stream is trimmed to about ``max_len`` entries (``MAXLEN ~``): a client recovers if
it was away less than ``max_disconnection_duration`` *and* fewer than ``max_len`` entries were
added meanwhile (or its server still keeps them, ``recent_packets``). Records expire
``max_disconnection_duration`` after their last write (a live one is rewritten every
``session_refresh`` seconds, so a killed server's sessions stay recoverable for at least
``max_disconnection_duration - session_refresh``). What waits for Redis is bounded by
``max_queued_messages``. docs/deployment.md has the whole story.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
import secrets
import time
import weakref
from bisect import bisect_right
from collections import deque
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from sockjet.adapters import cluster_envelope as envelope
from sockjet.adapters.bus import Bus
from sockjet.adapters.cluster_envelope import MessageType
from sockjet.adapters.memory import MemoryAdapter
from sockjet.adapters.redis import RedisAdapter, RedisAdapterFactory
from sockjet.adapters.redis_codec import (
    ClusterRequest,
    ClusterResponse,
    RequestType,
    pack,
    rooms_from_wire,
    unpack,
)
from sockjet.adapters.redis_protocols import Outbound, RedisProtocol, Role, SubscriptionKind
from sockjet.adapters.redis_requests import MalformedLog
from sockjet.adapters.redis_streams_io import (
    CommandWriter,
    Connect,
    EntryId,
    EntryWriter,
    StreamReader,
    entries_of,
    entry_key,
    report_lost,
)
from sockjet.engine.io import send_packet
from sockjet.errors import InvalidPacket
from sockjet.protocol.json import DUMPS_OPTIONS, loads
from sockjet.protocol.socketio import Packet, PacketType
from sockjet.server.namespace import Namespace
from sockjet.server.recovery import ConnectionStateRecovery, PersistedSession, RestoredSession
from sockjet.server.socket import Socket
from sockjet.server.targets import BroadcastOptions, Room, SocketId

if TYPE_CHECKING:
    from sockjet.server.server import Server

__all__ = [
    "SessionRecord",
    "StreamsAdapter",
    "StreamsAdapterFactory",
    "StreamsProtocol",
    "StreamsRecovery",
    "hash_code",
    "redis_streams_adapter",
    "stream_of",
]

logger = logging.getLogger("sockjet.adapters.redis")

_malformed = MalformedLog()

_ENCODE_ERRORS: Final = (TypeError, ValueError, OverflowError)
_OFFSET: Final = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
"""A stream entry id, as a recovering client sends it (Node's check, with a length bound)."""
_MAY_HOLD_BINARY: Final = frozenset(
    {
        MessageType.BROADCAST,
        MessageType.FETCH_SOCKETS_RESPONSE,
        MessageType.SERVER_SIDE_EMIT,
        MessageType.SERVER_SIDE_EMIT_RESPONSE,
        MessageType.BROADCAST_ACK,
    }
)
_HANDOVER: Final = 100
"""sockjet's own pub/sub message (never sent to a Node server: only to a sockjet server's
private channel): "a client of yours is back here: disconnect it and write its record"."""
_HANDOVER_DONE: Final = 101
_FLUSH_CHUNK: Final = 1000  # session records written per loop iteration
_RECENT: Final = 10_000  # ids of this server's latest broadcasts kept, per stream


def hash_code(text: str) -> int:
    """Java's ``String.hashCode`` as JavaScript computes it (over UTF-16 code units, int32)."""
    h = 0
    units = text.encode("utf-16-le")
    for i in range(0, len(units), 2):
        h = (h * 31 + (units[i] | units[i + 1] << 8)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def stream_of(stream_name: str, nsp: str, stream_count: int) -> str:
    """The stream of namespace ``nsp``: ``stream_name``, or with several streams
    ``<stream_name>-<hashCode(nsp) % count>`` (JavaScript's ``%``: the index may be negative)."""
    if stream_count == 1:
        return stream_name
    h = hash_code(nsp)
    index = h % stream_count if h >= 0 else -(-h % stream_count)
    return f"{stream_name}-{index}"


def _included(rooms: set[Room] | frozenset[Room], opts: BroadcastOptions) -> bool:
    """Whether a socket in ``rooms`` was among a broadcast's recipients (Node's
    ``shouldIncludePacket``)."""
    included = not opts.rooms or not rooms.isdisjoint(opts.rooms)
    return included and rooms.isdisjoint(opts.except_)


# -- the wire ------------------------------------------------------------------------------------


class StreamsProtocol(RedisProtocol):
    """``@socket.io/redis-streams-adapter`` 0.3.x for one namespace: stream entries and msgpack
    pub/sub envelopes (see the module docs). Nothing here does I/O."""

    def __init__(
        self,
        channel_prefix: str,
        nsp: str,
        uid: str,
        *,
        stream: str,
        max_len: int = 10_000,
        sharded_pubsub: bool = False,
        only_plaintext: bool = False,
    ) -> None:
        super().__init__(channel_prefix, nsp, uid)
        self.sharded = sharded_pubsub
        self.stream = stream.encode()
        self.own_response_channel = self.private_channel(uid)
        self._kind = SubscriptionKind.SHARD if sharded_pubsub else SubscriptionKind.CHANNEL
        self._xadd: tuple[Any, ...] = ("XADD", self.stream, b"MAXLEN", b"~", b"%d" % max_len, b"*")
        self._head = (b"uid", uid.encode(), b"nsp", nsp.encode(), b"type")
        self._plaintext = only_plaintext

    def private_channel(self, uid: str) -> bytes:
        """``P#N#<uid>#``: where the server ``uid`` receives answers (and handovers)."""
        return self.channel + uid.encode() + b"#"

    def subscriptions(self) -> dict[tuple[SubscriptionKind, bytes], Role]:
        return {
            (self._kind, self.channel): Role.REQUEST,
            (self._kind, self.own_response_channel): Role.RESPONSE,
        }

    def server_count_channel(self) -> tuple[SubscriptionKind, bytes]:
        return self._kind, self.channel

    # -- stream entries -------------------------------------------------------------------------

    def entry(self, body: envelope.Body, uid: str | None = None) -> tuple[Any, ...]:
        """The ``XADD`` command of one message: fields uid, nsp, type (a decimal string), data
        (JSON, or base64 msgpack when it holds binary, as Node writes them)."""
        kind, data = body
        try:
            text = orjson.dumps(data, option=DUMPS_OPTIONS)
        except TypeError:
            if self._plaintext or kind not in _MAY_HOLD_BINARY:
                raise
            text = base64.b64encode(pack(data))
        head = self._head if uid is None else (b"uid", uid.encode(), *self._head[2:])
        return (*self._xadd, *head, b"%d" % kind.value, b"data", text)

    def decode_entry(self, fields: dict[bytes, bytes]) -> tuple[Any, envelope.Received]:
        """``(uid, message)`` of a stream entry of this namespace (the message is None for a type
        not acted on); raises only :class:`~sockjet.errors.InvalidPacket`."""
        uid = fields.get(b"uid")
        sender = uid.decode("utf-8", "replace") if uid is not None else None
        raw_type = fields.get(b"type", b"")
        if not raw_type.isdigit() or len(raw_type) > 3:
            return sender, None
        kind = int(raw_type)
        if kind < MessageType.BROADCAST or kind > MessageType.BROADCAST_ACK:
            return sender, None
        return sender, envelope.decode_body(kind, sender, decode_data(fields.get(b"data")))

    # -- pub/sub (msgpack envelopes) ------------------------------------------------------------

    def _publish(self, body: envelope.Body) -> Outbound:
        return self.channel, pack(envelope.envelope(body, self.uid, self.nsp))

    def broadcast(self, data: list[Any], opts: BroadcastOptions) -> Outbound:
        # What the stream carries, in pub/sub form (the adapter writes broadcasts to the stream).
        return self._publish(envelope.broadcast(data, opts))

    def broadcast_with_ack(self, rid: str, data: list[Any], opts: BroadcastOptions) -> Outbound:
        return self._publish(envelope.broadcast_with_ack(rid, data, opts))

    def sockets_join(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> Outbound:
        return self._publish(envelope.sockets_join(opts, rooms))

    def sockets_leave(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> Outbound:
        return self._publish(envelope.sockets_leave(opts, rooms))

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> Outbound:
        return self._publish(envelope.disconnect_sockets(opts, close))

    def fetch_sockets(self, rid: str, opts: BroadcastOptions) -> Outbound:
        return self._publish(envelope.fetch_sockets(rid, opts))

    def server_side_emit(self, data: list[Any], rid: str | None) -> Outbound:
        return self._publish(envelope.server_side_emit(data, rid))

    def _answer(self, req: ClusterRequest, body: envelope.Body) -> Outbound | None:
        if req.uid.__class__ is not str:
            return None  # nowhere to answer
        return self.private_channel(str(req.uid)), pack(envelope.envelope(body, self.uid, self.nsp))

    def respond_fetch(self, req: ClusterRequest, sockets: list[dict[str, Any]]) -> Outbound | None:
        return self._answer(req, envelope.respond_fetch(req, sockets))

    def respond_server_side_emit(self, req: ClusterRequest, value: Any) -> Outbound | None:
        return self._answer(req, envelope.respond_server_side_emit(req, value))

    def respond_client_count(self, req: ClusterRequest, count: int) -> Outbound | None:
        return self._answer(req, envelope.respond_client_count(req, count))

    def respond_ack(self, req: ClusterRequest, value: Any) -> Outbound | None:
        return self._answer(req, envelope.respond_ack(req, value))

    def handover(self, rid: str, pid: str, sid: str, deadline_ms: int) -> bytes:
        body = {"requestId": rid, "pid": pid, "sid": sid, "deadline": deadline_ms}
        return pack({"type": _HANDOVER, "data": body, "uid": self.uid, "nsp": self.nsp})

    def handover_done(self, rid: str) -> bytes:
        body = {"requestId": rid}
        return pack({"type": _HANDOVER_DONE, "data": body, "uid": self.uid, "nsp": self.nsp})

    def decode(self, role: Role, channel: bytes, payload: bytes) -> envelope.Received:
        # Always msgpack on pub/sub: Node drops anything else too.
        return envelope.decode(unpack(payload), self.uid, self.nsp)


def decode_data(value: bytes | None) -> Any:
    """A stream entry's ``data``: JSON if it starts with ``{``, else base64 of msgpack."""
    if value is None:
        return None
    if value[:1] == b"{":
        return loads(value)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPacket("stream data is neither JSON nor base64") from None
    return unpack(raw)


# -- session records ---------------------------------------------------------------------------


@dataclass(slots=True)
class SessionRecord:
    """A session as kept in Redis: Node's ``{sid, pid, rooms, data}``, plus (sockjet's
    records) the server holding it while connected and its position when it connected."""

    sid: SocketId
    pid: str
    rooms: list[Room]
    data: Any
    holder: str | None = None
    since: str | None = None

    def encode(self) -> bytes:
        """base64(msgpack), as Node stores it (Node ignores the ``sockjet`` key)."""
        value: dict[str, Any] = {
            "sid": self.sid,
            "pid": self.pid,
            "rooms": self.rooms,
            "data": self.data,
        }
        extra: dict[str, Any] = {}
        if self.holder is not None:
            extra["node"] = self.holder
        if self.since is not None:
            extra["since"] = self.since
        if extra:
            value["sockjet"] = extra
        try:
            packed = pack(value)
        except _ENCODE_ERRORS as exc:
            logger.warning("socket %s: data cannot be kept for recovery (%s)", self.sid, exc)
            value["data"] = None
            packed = pack(value)
        return base64.b64encode(packed)

    @classmethod
    def decode(cls, raw: bytes) -> SessionRecord:
        """Raises only :class:`~sockjet.errors.InvalidPacket`."""
        try:
            packed = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidPacket("a session record must be base64") from None
        value = unpack(packed)
        if value.__class__ is not dict:
            raise InvalidPacket("a session record must be a map")
        sid, pid = value.get("sid"), value.get("pid")
        if sid.__class__ is not str or pid.__class__ is not str:
            raise InvalidPacket("a session record needs sid and pid")
        rooms = value.get("rooms")
        extra = value.get("sockjet")
        holder = since = None
        if extra.__class__ is dict:
            node, position = extra.get("node"), extra.get("since")
            holder = node if node.__class__ is str else None
            since = position if position.__class__ is str else None
        return cls(
            sid,
            pid,
            sorted(rooms_from_wire(rooms)) if rooms.__class__ is list else [sid],
            value.get("data"),
            holder,
            since,
        )


# -- recovery across servers -------------------------------------------------------------------


@dataclass(slots=True)
class _Capture:
    """What this server delivers, while a socket's session is being restored, that the socket
    will need (it is not connected yet)."""

    rooms: frozenset[Room]
    after: EntryId
    missed: list[list[Any]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    full: bool = False


class StreamsRecovery:
    """Connection state recovery for one namespace of a :class:`StreamsAdapter`: sessions in
    Redis, missed packets from the stream (see the module docs). Implements
    :class:`~sockjet.server.adapter.SessionRecovery`."""

    def __init__(self, adapter: StreamsAdapter, options: ConnectionStateRecovery) -> None:
        self._adapter = adapter
        self.options = options
        factory = adapter._factory
        self._prefix = factory.session_key_prefix
        self._ttl_ms = max(1, round(options.max_disconnection_duration * 1000))
        self._refresh = factory.session_refresh or min(options.max_disconnection_duration / 4, 30.0)
        self._page = max(factory.read_count, 100)
        self._pids: dict[SocketId, str] = {}  # connected sockets with a live record
        self._dirty: set[SocketId] = set()
        self._flushing: asyncio.Handle | None = None
        self._refresher: asyncio.TimerHandle | None = None
        self._persisted: set[SocketId] = set()  # closing with a final record written
        self._persisting: dict[str, asyncio.Future[Any]] = {}  # pid -> its final SET
        self._taken: set[str] = set()  # pids handed over too late: neither persist nor delete
        self._captures: dict[SocketId, _Capture] = {}
        self._skips: dict[SocketId, EntryId] = {}
        # The last recorded packets this server delivered, oldest first (keys and items side by
        # side, from _head on): restores are served from here without reading the stream.
        self._recent_max = factory.recent_packets
        self._keys: list[EntryId] = []
        self._items: list[tuple[list[Any], BroadcastOptions]] = []
        self._head = 0
        self._floor: EntryId | None = None  # every packet after it is kept (None: the origin)

    # -- SessionRecovery --------------------------------------------------------------------------

    @property
    def position(self) -> str | None:
        """The last entry this server delivered (its stream reader's position)."""
        reader = self._adapter._reader
        if reader is None or reader.position is None:
            return None
        return reader.position.decode()

    def persist(self, session: PersistedSession) -> None:
        """The socket disconnected for a recoverable reason: its final record, with the TTL."""
        self._dirty.discard(session.sid)
        if session.pid in self._taken:
            self._taken.discard(session.pid)
            self._pids.pop(session.sid, None)  # its record is another server's now
            return
        since = session.since if isinstance(session.since, str) else None
        record = SessionRecord(
            session.sid, session.pid, list(session.rooms), session.data, None, since
        )
        writer = self._adapter._writer()
        if writer is None:
            return
        self._persisted.add(session.sid)
        future = writer.send_waiting(self._set(session.pid, record), "session")
        self._persisting[session.pid] = future
        future.add_done_callback(lambda _: self._persisting.pop(session.pid, None))

    def restore(self, pid: str, offset: str | None) -> asyncio.Future[RestoredSession | None]:
        return asyncio.ensure_future(self._restore(pid, offset))

    def save(self, socket: Socket) -> None:
        """Write ``socket``'s record now (its rooms and ``socket.data``): after a change of
        ``data`` that must survive even the sudden death of this server."""
        if socket.id in self._pids:
            self._mark(socket.id)

    # -- live records -----------------------------------------------------------------------------

    def _set(self, pid: str, record: SessionRecord) -> tuple[Any, ...]:
        return ("SET", (self._prefix + pid).encode(), record.encode(), b"PX", b"%d" % self._ttl_ms)

    def connected(self, socket: Socket) -> None:
        """A socket connected (new or restored): its record is written, and kept."""
        sid = socket.id
        capture = self._captures.pop(sid, None)
        if capture is not None:
            self._end_capture(sid, capture)
        pid = socket._pid
        if pid is None:
            return
        self._pids[sid] = pid
        self._mark(sid)
        if self._refresher is None:
            self._refresher = asyncio.get_running_loop().call_later(
                self._refresh, self._refresh_all
            )

    def changed(self, sid: SocketId) -> None:
        if sid in self._pids:
            self._mark(sid)

    def closed(self, sid: SocketId) -> None:
        """A socket left (its rooms are gone): without a final record, its record goes."""
        pid = self._pids.pop(sid, None)
        self._dirty.discard(sid)
        self._skips.pop(sid, None)
        if sid in self._persisted:
            self._persisted.discard(sid)
            return
        if pid is None or pid in self._taken:
            self._taken.discard(pid or "")
            return
        writer = self._adapter._writer()
        if writer is not None:
            writer.send(("DEL", (self._prefix + pid).encode()), "session")

    def _mark(self, sid: SocketId) -> None:
        self._dirty.add(sid)
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = None
        writer = self._adapter._writer()
        dirty = self._dirty
        if writer is None:
            dirty.clear()
            return
        adapter = self._adapter
        sockets = adapter.nsp.sockets
        holder = adapter.uid
        for _ in range(min(len(dirty), _FLUSH_CHUNK)):
            sid = dirty.pop()
            socket = sockets.get(sid)
            pid = self._pids.get(sid)
            if socket is None or pid is None or not socket.connected:
                continue
            rooms = sorted(adapter.sids.get(sid, ()))
            since = socket._since if isinstance(socket._since, str) else None
            record = SessionRecord(sid, pid, rooms, socket._data, holder, since)
            writer.send(self._set(pid, record), "session")
        if dirty:
            self._flushing = asyncio.get_running_loop().call_soon(self._flush)

    def _refresh_all(self) -> None:
        self._refresher = None
        if not self._pids:
            return
        for sid in self._pids:
            self._mark(sid)
        self._refresher = asyncio.get_running_loop().call_later(self._refresh, self._refresh_all)

    def close(self) -> None:
        for handle in (self._flushing, self._refresher):
            if handle is not None:
                handle.cancel()
        self._flushing = self._refresher = None
        for capture in self._captures.values():
            if capture.timer is not None:
                capture.timer.cancel()
        self._captures.clear()

    # -- restoring ----------------------------------------------------------------------------------

    async def _take(self, pid: str) -> SessionRecord | None:
        raw = await self._adapter._command("GETDEL", (self._prefix + pid).encode())
        if raw is None:
            return None
        try:
            return SessionRecord.decode(raw)
        except InvalidPacket as exc:
            _malformed.warn(self._adapter.nsp.name, exc)
            return None

    async def _restore(self, pid: str, offset: str | None) -> RestoredSession | None:
        if offset is not None and not _OFFSET.fullmatch(offset):
            return None
        adapter = self._adapter
        record = await self._take(pid)
        if record is None:
            return None
        if record.holder is not None and await adapter._hand_over(record.holder, pid, record.sid):
            again = await self._take(pid)  # the final record the holder just wrote
            if again is not None:
                record = again
        since = offset if offset is not None else record.since
        reader = adapter._reader
        if since is None or not _OFFSET.fullmatch(since) or reader is None:
            return None
        upto = reader.position
        if upto is None:
            return None
        sid = record.sid
        rooms = frozenset(record.rooms)
        # From now on what this server delivers is kept for the socket; what it delivered
        # before is in its memory or read from the stream up to where its reader stood, so every
        # packet after `since` is in one list or the other.
        since_key = entry_key(since)
        capture = _Capture(rooms, since_key)
        previous = self._captures.pop(sid, None)
        if previous is not None and previous.timer is not None:
            previous.timer.cancel()
        self._captures[sid] = capture
        older = self._kept_after(since_key, rooms, reader)
        if older is None:  # from before what memory holds: read the stream
            try:
                if not await self._offset_known(since):
                    self._drop_capture(sid, capture)
                    return None
                older = await self._read_missed(since, upto, rooms)
            except BaseException:
                self._drop_capture(sid, capture)
                raise
        if older is None or capture.full or self._captures.get(sid) is not capture:
            self._drop_capture(sid, capture)
            return None
        capture.missed[:0] = older
        # Dropped if the socket never connects (the client left, a middleware refused it).
        delay = adapter.nsp.server._hook_timeout + 5.0
        capture.timer = asyncio.get_running_loop().call_later(
            delay, self._drop_capture, sid, capture
        )
        return RestoredSession(sid, pid, record.rooms, record.data, capture.missed)

    def _kept_after(
        self, since: EntryId, rooms: frozenset[Room], reader: StreamReader
    ) -> list[list[Any]] | None:
        """The packets for ``rooms`` after ``since`` from memory, or None when memory does not
        reach back that far."""
        floor = self._floor
        if floor is None:
            if reader.origin is None:
                return None
            floor = entry_key(reader.origin)
        if since < floor:
            return None
        start = bisect_right(self._keys, since, lo=self._head)
        return [data for data, opts in self._items[start:] if _included(rooms, opts)]

    def _drop_capture(self, sid: SocketId, capture: _Capture) -> None:
        if self._captures.get(sid) is capture:
            del self._captures[sid]
        if capture.timer is not None:
            capture.timer.cancel()
            capture.timer = None

    def _end_capture(self, sid: SocketId, capture: _Capture) -> None:
        if capture.timer is not None:
            capture.timer.cancel()
        if capture.full:
            logger.error("socket %s recovered but may have missed packets (too many)", sid)
        reader = self._adapter._reader
        position = reader.position if reader is not None else None
        if position is not None and entry_key(position) < capture.after:
            # This server's reader is behind the client's offset: what it delivers up to the
            # offset, the client has already.
            self._skips[sid] = capture.after

    async def _offset_known(self, since: str) -> bool:
        """Whether the stream still holds the entry ``since`` (not trimmed away)."""
        adapter = self._adapter
        stream = adapter.protocol.stream
        if entry_key(since) == (0, 0):
            # The stream was empty when the socket connected: fine unless it was trimmed since.
            try:
                info = await adapter._command("XINFO", "STREAM", stream)
            except ResponseError:
                return True  # no stream: nothing was trimmed
            if not info:
                return True
            if isinstance(info, list):
                it = iter(info)
                info = dict(zip(it, it, strict=False))
            info = {k.decode() if isinstance(k, bytes) else k: v for k, v in info.items()}
            added, length = info.get("entries-added"), info.get("length")
            return added is None or length is None or int(added) <= int(length)
        reply = await adapter._command("XRANGE", stream, since, since)
        return bool(reply)

    async def _read_missed(
        self, since: str, upto: bytes, rooms: frozenset[Room]
    ) -> list[list[Any]] | None:
        """What the stream holds for ``rooms`` in (since, upto], oldest first (None: too
        much)."""
        adapter = self._adapter
        protocol = adapter.protocol
        nsp = adapter.nsp.name.encode()
        limit = self.options.max_packets
        out: list[list[Any]] = []
        start = b"(" + since.encode()
        end = upto
        if entry_key(since) >= entry_key(upto):
            return out
        while True:
            reply = await adapter._command(
                "XRANGE", protocol.stream, start, end, "COUNT", self._page
            )
            entries = list(entries_of(reply))
            for entry_id, fields in entries:
                if fields.get(b"nsp") != nsp or fields.get(b"type") != b"3":
                    continue
                try:
                    _, message = protocol.decode_entry(fields)
                except InvalidPacket as exc:
                    _malformed.warn(adapter.nsp.name, exc)
                    continue
                if (
                    not isinstance(message, ClusterRequest)
                    or message.request_id is not None
                    or message.data is None
                ):
                    continue
                opts = message.opts
                if opts.flags.volatile or not _included(rooms, opts):
                    continue
                message.data.append(entry_id.decode())
                out.append(message.data)
                if len(out) > limit:
                    return None
            if len(entries) < self._page:
                return out
            start = b"(" + entries[-1][0]

    # -- what the adapter delivers while restores run -----------------------------------------------

    def delivered(self, key: EntryId, data: list[Any], opts: BroadcastOptions) -> BroadcastOptions:
        """A recorded packet is delivered: sessions being restored keep it if it was meant
        for them; sockets that have it already are left out (the returned options)."""
        if self._captures:
            limit = self.options.max_packets
            for capture in self._captures.values():
                if key > capture.after and _included(capture.rooms, opts) and not capture.full:
                    capture.missed.append(data)
                    if len(capture.missed) > limit:
                        capture.full = True
        keys = self._keys
        keys.append(key)
        self._items.append((data, opts))
        if len(keys) - self._head > self._recent_max:
            self._floor = keys[self._head]
            self._head += 1
            if self._head > 4096 and self._head * 2 > len(keys):
                del keys[: self._head]
                del self._items[: self._head]
                self._head = 0
        skips = self._skips
        if not skips:
            return opts
        skipped = [sid for sid, upto in skips.items() if key <= upto]
        for sid in [sid for sid, upto in skips.items() if key >= upto]:
            del skips[sid]
        if not skipped:
            return opts
        return replace(opts, except_=opts.except_.union(skipped))


# -- the adapter ---------------------------------------------------------------------------------


class StreamsAdapter(RedisAdapter):
    """The adapter of one namespace in a Redis Streams cluster (see the module docs)."""

    protocol: StreamsProtocol
    recovery: StreamsRecovery | None  # type: ignore[assignment]
    _factory: StreamsAdapterFactory

    def __init__(self, nsp: Namespace, factory: StreamsAdapterFactory) -> None:
        self._hub: StreamsHub | None = None
        self._reader: StreamReader | None = None
        self._handovers: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        super().__init__(nsp, factory)
        self._uid_bytes = self.uid.encode()

    def _setup_recovery(self) -> None:
        options = self.nsp.server.connection_state_recovery
        self.recovery = None if options is None else StreamsRecovery(self, options)

    @property
    def ordered(self) -> bool:
        """Whether this server delivers broadcasts as it reads them from the stream (with
        recovery on: offsets then follow the stream's order)."""
        return self.recovery is not None

    # -- plumbing -----------------------------------------------------------------------------------

    def init(self) -> None:
        started = self._bus is None and not self._closed
        super().init()
        if started and self._bus is not None:
            hub = self._hub = self._factory._hub_for(self)
            reader = self._reader = hub.join(self)
            if self.recovery is not None and reader.position is not None:
                # a namespace made after the reader started: it has what comes from now on
                self.recovery._floor = entry_key(reader.position)

    def _writer(self) -> CommandWriter | None:
        if self._hub is None:
            self._live()
        hub = self._hub
        return None if hub is None else hub.writer

    async def _command(self, *args: Any) -> Any:
        hub = self._hub
        if hub is None:
            raise ConnectionError("the adapter is not started")
        return await hub.client.execute_command(*args)

    async def wait_ready(self) -> None:
        """Wait until the subscriptions are confirmed and the stream reader started."""
        await super().wait_ready()
        reader = self._reader
        if reader is not None:
            await reader.started.wait()

    async def close(self) -> None:
        if self.recovery is not None:
            self.recovery.close()
        for future in self._handovers.values():
            if not future.done():
                future.cancel()
        self._handovers.clear()
        hub, self._hub = self._hub, None
        self._reader = None
        if hub is not None:
            hub.leave(self)
        await super().close()

    # -- the room index (the records follow it) ----------------------------------------------------

    def add_all(self, sid: SocketId, rooms: Iterable[Room]) -> None:
        recovery = self.recovery
        if recovery is None:
            super().add_all(sid, rooms)
            return
        new = sid not in self.sids
        super().add_all(sid, rooms)
        if new:
            socket = self.nsp.sockets.get(sid)
            if socket is not None:
                recovery.connected(socket)
        else:
            recovery.changed(sid)

    def del_(self, sid: SocketId, room: Room) -> None:
        super().del_(sid, room)
        if self.recovery is not None:
            self.recovery.changed(sid)

    def del_all(self, sid: SocketId) -> None:
        super().del_all(sid)
        if self.recovery is not None:
            self.recovery.closed(sid)

    # -- what this server sends ----------------------------------------------------------------------

    def _deliver(self, packet: Packet, opts: BroadcastOptions) -> None:
        """Deliver to this server's sockets (the memory adapter's delivery, no recording)."""
        outgoing = self._encode(packet, opts)
        volatile = opts.flags.volatile
        if len(outgoing) == 1:
            message = outgoing[0]
            for socket in self._select(opts):
                socket.conn.send(message, volatile=volatile)
        else:
            for socket in self._select(opts):
                send_packet(socket.conn, outgoing, volatile)

    def _xadd(self, body: envelope.Body, kind: str) -> bool:
        if self._hub is None:
            self._live()
        hub = self._hub
        if hub is None:
            return False
        entry = self.protocol.entry(body)  # raises for what cannot travel, before any send
        hub.entries(self.protocol.stream).send(entry, kind)
        return True

    @property
    def lost(self) -> dict[str, int]:
        """What this server wrote to Redis that may be lost, by kind (``"broadcast"``,
        ``"operation"``, ``"session"``): it was on its way when a connection failed, Redis lost
        it (restarted without its data), or it was dropped because too much waited for Redis.
        Each is logged when it happens."""
        hub = self._hub
        return {} if hub is None else hub.lost

    async def flush(self, grace: float = 5.0) -> bool:
        """Wait until everything this server wrote so far reached Redis (its broadcasts are
        recorded, its session records written); False after ``grace`` seconds."""
        hub = self._hub
        return True if hub is None else await hub.flush(grace)

    def broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        if opts.flags.local:
            self._deliver(packet, opts)
            return
        # Recorded first (a value that cannot travel raises before anything is sent), then
        # delivered: here at once, or with recovery as this server reads it back, in order.
        if not self._xadd(envelope.broadcast(packet.data, opts), "broadcast") or not self.ordered:
            self._deliver(packet, opts)

    def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        rooms = tuple(rooms)
        if not opts.flags.local:
            self._xadd(envelope.sockets_join(opts, rooms), "operation")
        MemoryAdapter.add_sockets(self, opts, rooms)

    def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        rooms = tuple(rooms)
        if not opts.flags.local:
            self._xadd(envelope.sockets_leave(opts, rooms), "operation")
        MemoryAdapter.del_sockets(self, opts, rooms)

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        if not opts.flags.local:
            self._xadd(envelope.disconnect_sockets(opts, close), "operation")
        MemoryAdapter.disconnect_sockets(self, opts, close)

    # -- what this server receives -----------------------------------------------------------------

    def _on_entry(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        """One entry of the stream, for this namespace (the reader's order)."""
        own = fields.get(b"uid") == self._uid_bytes
        if own and not (self.ordered and fields.get(b"type") == b"3"):
            return  # an operation of ours: applied when it was sent
        data = fields.get(b"data")
        if data is not None and len(data) > self._max_message_size:
            _malformed.warn(self.nsp.name, InvalidPacket(f"{len(data)} bytes: too large"))
            return
        try:
            _, message = self.protocol.decode_entry(fields)
        except InvalidPacket as exc:
            _malformed.warn(self.nsp.name, exc)
            return
        if not isinstance(message, ClusterRequest):
            return
        if message.type is RequestType.BROADCAST:
            if message.request_id is None and message.data is not None:
                self._deliver_entry(entry_id, message.data, message.opts)
        elif message.type in _OPERATIONS:
            self._on_request(message)

    def _deliver_entry(self, entry_id: bytes, data: list[Any], opts: BroadcastOptions) -> None:
        recovery = self.recovery
        if recovery is not None and not opts.flags.volatile:
            data.append(entry_id.decode())  # the offset the client remembers
            opts = recovery.delivered(entry_key(entry_id), data, opts)
        try:
            self._deliver(Packet(PacketType.EVENT, self.nsp.name, data), opts)
        except Exception:
            logger.exception("a broadcast from the stream cannot be delivered")

    def _on_request(self, req: ClusterRequest) -> None:
        if req.type is RequestType.BROADCAST and req.request_id is None:
            # Only the stream carries these in this protocol; a stray one is still delivered.
            if req.uid != self.uid and req.data is not None:
                self._deliver(Packet(PacketType.EVENT, self.nsp.name, req.data), req.opts)
            return
        super()._on_request(req)

    def _on_message(self, role: Role, channel: bytes, payload: bytes) -> None:
        if len(payload) > self._max_message_size:
            _malformed.warn(self.nsp.name, InvalidPacket(f"{len(payload)} bytes: too large"))
            return
        try:
            obj = unpack(payload)
            kind = obj.get("type") if obj.__class__ is dict else None
            if kind in (_HANDOVER, _HANDOVER_DONE):
                self._on_handover(kind, obj)
                return
            message = envelope.decode(obj, self.uid, self.nsp.name)
        except InvalidPacket as exc:
            _malformed.warn(self.nsp.name, exc)
            return
        if isinstance(message, ClusterResponse):
            self._on_response(message)
        elif message is not None:
            self._on_request(message)

    # -- handing a session over -----------------------------------------------------------------

    async def _hand_over(self, holder: str, pid: str, sid: SocketId) -> bool:
        """Ask the server ``holder`` to give up the session ``pid`` (disconnect its socket and
        write its final record); True once it did, False when it is gone or too slow."""
        timeout = self._factory.handover_timeout
        if holder == self.uid:
            return await self._give_up_session(pid, sid, False)
        hub = self._hub
        if hub is None:
            return False
        rid = secrets.token_hex(8)
        deadline = int((time.time() + timeout) * 1000)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._handovers[rid] = future
        try:
            async with asyncio.timeout(timeout):
                receivers = await hub.publish_counted(
                    self.protocol.private_channel(holder),
                    self.protocol.handover(rid, pid, sid, deadline),
                )
                if not receivers:
                    return False  # that server is gone: its record is all there is
                await future
        except TimeoutError:
            logger.warning("server %s did not hand session %s over in time", holder, sid)
            return False
        except Exception as exc:
            logger.warning("asking server %s for session %s failed: %s", holder, sid, exc)
            return False
        finally:
            self._handovers.pop(rid, None)
        return True

    def _on_handover(self, kind: Any, obj: dict[str, Any]) -> None:
        data = obj.get("data")
        if data.__class__ is not dict or data.get("requestId").__class__ is not str:
            raise InvalidPacket("a handover needs a requestId")
        rid = data["requestId"]
        if kind == _HANDOVER_DONE:
            future = self._handovers.get(rid)
            if future is not None and not future.done():
                future.set_result(None)
            return
        pid, sid, requester = data.get("pid"), data.get("sid"), obj.get("uid")
        if pid.__class__ is not str or sid.__class__ is not str or requester.__class__ is not str:
            raise InvalidPacket("a handover needs pid, sid and uid")
        deadline = data.get("deadline")
        late = deadline.__class__ is int and deadline < time.time() * 1000
        self._spawn(self._answer_handover(rid, pid, sid, requester, late))

    async def _answer_handover(
        self, rid: str, pid: str, sid: SocketId, requester: str, late: bool
    ) -> None:
        if await self._give_up_session(pid, sid, late):
            self._publish(
                (self.protocol.private_channel(requester), self.protocol.handover_done(rid))
            )

    async def _give_up_session(self, pid: str, sid: SocketId, taken: bool) -> bool:
        """Disconnect the local socket of session ``pid`` (a recoverable disconnection: its
        final record is written), and wait until what this server writes of it reached Redis.
        ``taken``: another server took the session already (the request came too late): write
        nothing, answer nothing."""
        recovery = self.recovery
        writer = self._writer()
        if recovery is None or writer is None:
            return False
        socket = self.nsp.sockets.get(sid)
        if socket is not None and socket._pid == pid and socket.connected:
            if taken:
                recovery._taken.add(pid)
            client = socket.client
            client.conn.close("transport close")
            client.on_close("transport close")
        if taken:
            return False
        waiting = recovery._persisting.get(pid) or writer.barrier()
        try:
            async with asyncio.timeout(self._factory.handover_timeout):
                await asyncio.shield(waiting)
        except Exception:
            return False
        return True

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


_OPERATIONS: Final = frozenset(
    {RequestType.REMOTE_JOIN, RequestType.REMOTE_LEAVE, RequestType.REMOTE_DISCONNECT}
)


class StreamsHub:
    """What one server's streams adapters share: the command client, the pub/sub bus, and per
    stream a reader and an entry writer (see :mod:`sockjet.adapters.redis_streams_io`)."""

    def __init__(self, factory: StreamsAdapterFactory, client: Any, owned: bool, bus: Bus) -> None:
        self.client = client
        self._owned = owned
        self.bus = bus
        self.writer = CommandWriter(
            client, max_queued=factory.max_queued_messages, max_delay=factory.reconnect_max_delay
        )
        """Session records (and what must follow them), in order."""
        self._factory = factory
        self.readers: dict[bytes, StreamReader] = {}
        self._entries: dict[bytes, EntryWriter | CommandWriter] = {}
        self._recent: dict[bytes, deque[EntryId]] = {}
        self._routes: dict[bytes, dict[bytes, StreamsAdapter]] = {}
        self._publish_command = "SPUBLISH" if factory.sharded_pubsub else "PUBLISH"

    def join(self, adapter: StreamsAdapter) -> StreamReader:
        stream = adapter.protocol.stream
        self._routes.setdefault(stream, {})[adapter.nsp.name.encode()] = adapter
        reader = self.readers.get(stream)
        if reader is None:
            factory = self._factory
            reader = self.readers[stream] = StreamReader(
                self.client,
                stream,
                partial(self._dispatch, self._routes[stream]),
                connect=self._connector(stream),
                count=factory.read_count,
                block=factory.block_time,
                timeout=factory.request_timeout,
                max_delay=factory.reconnect_max_delay,
                max_message_size=factory.max_message_size,
                on_gap=partial(self._gap, stream),
            )
            reader.start()
        return reader

    def leave(self, adapter: StreamsAdapter) -> None:
        routes = self._routes.get(adapter.protocol.stream)
        if routes is not None:
            routes.pop(adapter.nsp.name.encode(), None)

    @staticmethod
    def _dispatch(
        routes: dict[bytes, StreamsAdapter], entry_id: bytes, fields: dict[bytes, bytes]
    ) -> None:
        nsp = fields.get(b"nsp")
        if nsp is None:
            return
        adapter = routes.get(nsp)
        if adapter is not None:
            adapter._on_entry(entry_id, fields)

    # -- writing entries ----------------------------------------------------------------------------

    def entries(self, stream: bytes) -> EntryWriter | CommandWriter:
        """The writer of ``stream``'s entries: a connection of its own (to the node that holds
        the stream, on a cluster), or the command writer for clients that cannot give one."""
        writer = self._entries.get(stream)
        if writer is None:
            factory = self._factory
            connect = self._connector(stream)
            if connect is None:
                writer = self.writer
            else:
                writer = EntryWriter(
                    connect,
                    on_recorded=partial(self._recorded, stream),
                    max_queued=factory.max_queued_messages,
                    max_delay=factory.reconnect_max_delay,
                )
            self._entries[stream] = writer
        return writer

    def _connector(self, stream: bytes) -> Connect | None:
        client = self.client
        pool = getattr(client, "connection_pool", None)
        if pool is not None and hasattr(pool, "make_connection"):

            async def connect() -> Any:
                connection = pool.make_connection()
                await connection.connect()
                return _usable(connection)

            return connect
        if hasattr(client, "get_node_from_key") and hasattr(client, "nodes_manager"):
            first = True

            async def connect_cluster() -> Any:
                nonlocal first
                if first:
                    await client.initialize()
                    first = False
                else:  # it may have moved: ask the cluster again
                    await client.nodes_manager.initialize()
                node = client.get_node_from_key(stream.decode())
                connection = node.connection_class(**node.connection_kwargs)
                await connection.connect()
                return _usable(connection)

            return connect_cluster
        return None

    def _recorded(self, stream: bytes, entry_id: bytes, kind: str) -> None:
        if kind == "broadcast":
            recent = self._recent.get(stream)
            if recent is None:
                recent = self._recent[stream] = deque(maxlen=_RECENT)
            recent.append(entry_key(entry_id))

    def _gap(self, stream: bytes, position: bytes) -> None:
        """The stream lost entries after ``position``: ours among them are lost."""
        after = entry_key(position)
        recent = self._recent.get(stream, ())
        lost = sum(1 for key in recent if key > after)
        writer = self._entries.get(stream)
        if lost and writer is not None:
            why = f"Redis no longer holds stream {stream.decode()!r} after {position.decode()}"
            report_lost({"broadcast": lost}, writer.lost, why)

    @property
    def lost(self) -> dict[str, int]:
        """What may be lost (on its way when a connection failed) or was dropped (too much
        waited for Redis), by kind, over every writer."""
        total: dict[str, int] = {}
        for writer in {self.writer, *self._entries.values()}:
            for counts in (writer.lost, writer.dropped):
                for kind, n in counts.items():
                    if kind != "barrier":
                        total[kind] = total.get(kind, 0) + n
        return total

    async def flush(self, grace: float) -> bool:
        """Wait until everything written so far reached Redis (False after ``grace`` s)."""
        done = True
        for writer in {self.writer, *self._entries.values()}:
            done = await writer.flush(grace) and done
        return done

    async def publish_counted(self, channel: bytes, payload: bytes) -> int:
        """PUBLISH (SPUBLISH) now, returning how many servers received it."""
        count = await self.client.execute_command(self._publish_command, channel, payload)
        return int(count or 0)

    async def close(self) -> None:
        grace = min(self._factory.request_timeout, 2.0)
        for writer in self._entries.values():
            if writer is not self.writer:
                await writer.close(grace)
        await self.writer.close(grace)
        for reader in self.readers.values():
            await reader.close()
        self.readers.clear()
        await self.bus.close()
        if self._owned:
            with contextlib.suppress(Exception):
                await self.client.aclose()


def _usable(connection: Any) -> Any:
    """A redis-py connection whose streams the entry writer can use directly."""
    if not isinstance(getattr(connection, "_reader", None), asyncio.StreamReader):
        raise ConnectionError("this Redis connection cannot be written to directly")
    return connection


class StreamsAdapterFactory(RedisAdapterFactory):
    """What :func:`redis_streams_adapter` returns: ``Server(adapter=...)`` calls it with each
    namespace. One :class:`StreamsHub` per server it serves."""

    def __init__(
        self,
        redis: str | Redis = "redis://127.0.0.1:6379/0",
        *,
        stream_name: str = "socket.io",
        stream_count: int = 1,
        channel_prefix: str = "socket.io",
        sharded_pubsub: bool = False,
        max_len: int = 10_000,
        read_count: int = 100,
        block_time: float = 2.0,
        session_key_prefix: str = "sio:session:",
        only_plaintext: bool = False,
        request_timeout: float = 5.0,
        handover_timeout: float = 1.0,
        session_refresh: float | None = None,
        recent_packets: int = 10_000,
        max_queued_messages: int = 100_000,
        max_message_size: int = 64 * 1024 * 1024,
        reconnect_max_delay: float = 5.0,
        health_interval: float = 15.0,
        cluster: bool = False,
    ) -> None:
        super().__init__(
            redis,
            key=channel_prefix,
            request_timeout=request_timeout,
            sharded=sharded_pubsub,
            max_queued_messages=max_queued_messages,
            max_message_size=max_message_size,
            reconnect_max_delay=reconnect_max_delay,
            health_interval=health_interval,
            cluster=cluster,
        )
        if stream_count < 1:
            raise ValueError("stream_count must be at least 1")
        if max_len < 1 or read_count < 1:
            raise ValueError("max_len and read_count must be positive")
        if block_time <= 0 or handover_timeout <= 0:
            raise ValueError("block_time and handover_timeout must be positive")
        if session_refresh is not None and session_refresh <= 0:
            raise ValueError("session_refresh must be positive")
        if recent_packets < 0:
            raise ValueError("recent_packets cannot be negative")
        self.stream_name = stream_name
        self.stream_count = stream_count
        self.sharded_pubsub = sharded_pubsub
        self.max_len = max_len
        self.read_count = read_count
        self.block_time = block_time
        self.session_key_prefix = session_key_prefix
        self.only_plaintext = only_plaintext
        self.handover_timeout = handover_timeout
        self.session_refresh = session_refresh
        self.recent_packets = recent_packets
        self._hubs: weakref.WeakKeyDictionary[Server, StreamsHub] = weakref.WeakKeyDictionary()

    def __call__(self, nsp: Namespace) -> StreamsAdapter:
        return StreamsAdapter(nsp, self)

    def _new_uid(self) -> str:
        return secrets.token_hex(8)  # as Node's ClusterAdapter makes them

    def _new_request_id(self) -> str:
        return secrets.token_hex(8)

    def _protocol(self, nsp: str, uid: str) -> StreamsProtocol:
        return StreamsProtocol(
            self.key,
            nsp,
            uid,
            stream=stream_of(self.stream_name, nsp, self.stream_count),
            max_len=self.max_len,
            sharded_pubsub=self.sharded_pubsub,
            only_plaintext=self.only_plaintext,
        )

    def _hub_for(self, adapter: RedisAdapter) -> StreamsHub:
        hub = self._hubs.get(adapter.nsp.server)
        assert hub is not None, "the adapter attaches first"
        return hub

    def _attach(self, adapter: RedisAdapter) -> Bus:
        server = adapter.nsp.server
        hub = self._hubs.get(server)
        if hub is None:
            client, owned = self._client()
            bus = self._bus_class(client)(
                client,
                owns_client=False,
                sharded=self.sharded,
                request_timeout=self.request_timeout,
                max_queued=self.max_queued_messages,
                max_delay=self.reconnect_max_delay,
                health_interval=self.health_interval,
                max_message_size=self.max_message_size,
            )
            hub = self._hubs[server] = StreamsHub(self, client, owned, bus)
            self._members[bus] = set()
        self._members[hub.bus].add(adapter)
        return hub.bus

    async def _detach(self, adapter: RedisAdapter, bus: Bus) -> None:
        members = self._members.get(bus)
        if members is None:
            return
        members.discard(adapter)
        if not members:
            del self._members[bus]
            server = adapter.nsp.server
            hub = self._hubs.pop(server, None)
            if hub is not None:
                await hub.close()


def redis_streams_adapter(
    redis: str | Redis = "redis://127.0.0.1:6379/0",
    *,
    stream_name: str = "socket.io",
    stream_count: int = 1,
    channel_prefix: str = "socket.io",
    sharded_pubsub: bool = False,
    max_len: int = 10_000,
    read_count: int = 100,
    block_time: float = 2.0,
    session_key_prefix: str = "sio:session:",
    only_plaintext: bool = False,
    request_timeout: float = 5.0,
    handover_timeout: float = 1.0,
    session_refresh: float | None = None,
    recent_packets: int = 10_000,
    max_queued_messages: int = 100_000,
    max_message_size: int = 64 * 1024 * 1024,
    reconnect_max_delay: float = 5.0,
    health_interval: float = 15.0,
    cluster: bool = False,
) -> StreamsAdapterFactory:
    """The Redis Streams adapter for ``sockjet.Server(adapter=...)`` (see the module docs).

    ``redis`` is a URL or a ``redis.asyncio.Redis`` client (shared, not closed by sockjet; its
    ``socket_timeout`` must then exceed ``block_time``). The options of Node's ``createAdapter``
    (``streamName``, ``streamCount``, ``channelPrefix``, ``useShardedPubSub``, ``maxLen``,
    ``readCount``, ``sessionKeyPrefix``, ``onlyPlaintext``) must match the Node servers' when
    they share the cluster. ``block_time`` (seconds) is how long one ``XREAD`` waits (it only
    bounds how often an idle reader asks again). ``request_timeout`` bounds every request to the
    other servers; ``handover_timeout`` how long a restore waits for a live server to give a
    session up; ``session_refresh`` (seconds; default a quarter of
    ``max_disconnection_duration``, at most 30) how often live session records are rewritten;
    ``recent_packets``: how many of the last recorded packets each namespace keeps in memory, to
    restore sessions without reading the stream (older ones are read from it).
    ``max_queued_messages``, ``max_message_size``, ``reconnect_max_delay``,
    ``health_interval`` and ``cluster`` as in :func:`~sockjet.adapters.redis.redis_adapter`; on
    a Redis Cluster use ``sharded_pubsub=True`` (see :mod:`sockjet.adapters.redis_cluster`).
    """
    return StreamsAdapterFactory(
        redis,
        stream_name=stream_name,
        stream_count=stream_count,
        channel_prefix=channel_prefix,
        sharded_pubsub=sharded_pubsub,
        max_len=max_len,
        read_count=read_count,
        block_time=block_time,
        session_key_prefix=session_key_prefix,
        only_plaintext=only_plaintext,
        request_timeout=request_timeout,
        handover_timeout=handover_timeout,
        session_refresh=session_refresh,
        recent_packets=recent_packets,
        max_queued_messages=max_queued_messages,
        max_message_size=max_message_size,
        reconnect_max_delay=reconnect_max_delay,
        health_interval=health_interval,
        cluster=cluster,
    )
