"""The bus between the workers of one host (``--workers N`` without ``--redis``).

:class:`LocalBus` is a :class:`~sockjet.adapters.bus.Bus`: what the Redis adapter does over
Redis pub/sub, :func:`local_bus_adapter` does over it with the same code and the same messages
(the sharded protocol's ``ClusterAdapter`` envelope, :mod:`sockjet.adapters.redis_protocols`):
broadcasts, rooms, ``fetch_sockets``, broadcast acks, ``server_side_emit`` and
``server_count`` work across the workers exactly as across Redis nodes.

A full mesh of Unix stream sockets, no broker: each worker listens on ``<run dir>/b-<id>.sock``
(bound by the supervisor before the worker starts) and connects to the workers that were
running when it started; the ones started later connect to it. So a message is one hop, and
no process relays the others' traffic.

On each link, frames ``length (4 bytes) + kind (1 byte) + body``, in order:

``H`` + worker id
    first, from each side; then ``S`` for each of its subscriptions, then ``R``: from then on
    this side knows the other's subscriptions (what :meth:`LocalBus.wait_subscribed` waits for).
``S`` / ``U`` + subscription kind + channel
    a subscription made or dropped (used to count the servers of a namespace).
``P`` + channel length (2 bytes) + channel + payload
    a message.

Every message goes to every peer, and each receiver keeps those of its subscriptions: a
worker that joined a room a moment ago gets the room's next broadcast even if the sender has
not learned of its subscription yet (a sender-side filter would lose it, the way a Redis
subscription not yet confirmed does). What that costs, a frame read and dropped by each worker
not in the room, is measured in docs/deployment.md. Frames to one peer are gathered and
written once per event-loop iteration. A peer that stops reading is sent nothing more once
``max_buffered`` bytes wait for it (messages are at most once, as on Redis), and a peer that
is gone (its link closed: it exited or was killed) no longer counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sockjet.adapters.bus import Bus, Handler, SubscriptionKey
from sockjet.adapters.redis import RedisAdapterFactory
from sockjet.adapters.redis_protocols import SubscriptionKind

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["LocalBus", "LocalBusAdapterFactory", "bus_path", "listen_bus", "local_bus_adapter"]

logger = logging.getLogger("sockjet.adapters.local_bus")

_LENGTH: Final = struct.Struct(">I")
_CHANNEL: Final = struct.Struct(">H")
_KINDS: Final = {SubscriptionKind.CHANNEL: b"c", SubscriptionKind.SHARD: b"s"}
_BY_CODE: Final = {code: kind for kind, code in _KINDS.items()}
_CONTROL_HIGH_WATER: Final = 1 << 30  # subscriptions are never dropped


def bus_path(run_dir: str | os.PathLike[str], wid: str) -> Path:
    """The bus socket of worker ``wid``."""
    return Path(run_dir) / f"b-{wid}.sock"


def listen_bus(path: str | os.PathLike[str]) -> socket.socket:
    """A listening Unix stream socket at ``path`` (bound by the supervisor)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(os.fspath(path))
        sock.listen(256)
    except OSError:
        sock.close()
        raise
    return sock


def _frame(kind: bytes, body: bytes) -> bytes:
    return _LENGTH.pack(len(body) + 1) + kind + body


class _Peer(asyncio.Protocol):
    """One link to another worker."""

    def __init__(self, bus: LocalBus) -> None:
        self.bus = bus
        self.wid: str | None = None
        self.subs: set[SubscriptionKey] = set()
        self.synced = False
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._out: list[bytes] = []
        self._out_size = 0
        self.dropped = 0
        self.lost = asyncio.get_running_loop().create_future()

    # -- the link ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        bus = self.bus
        self.queue(_frame(b"H", bus.wid.encode()), control=True)
        for key in bus._wanted:
            self.queue(_subscription(b"S", key), control=True)
        self.queue(_frame(b"R", b""), control=True)
        bus._peers.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.bus._lost(self)
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        limit = self.bus.max_message_size
        at = 0
        end = len(buffer)
        try:
            while end - at >= 4:
                (size,) = _LENGTH.unpack_from(buffer, at)
                if size == 0 or size > limit:
                    raise ValueError(f"a frame of {size} bytes")
                if end - at - 4 < size:
                    break
                start = at + 4
                self._on_frame(buffer[start : start + 1], buffer, start + 1, start + size)
                at = start + size
        except (ValueError, KeyError, struct.error, UnicodeDecodeError) as exc:
            logger.warning("bad frame from worker %s (%s): closing the link", self.wid, exc)
            if self.transport is not None:
                self.transport.abort()
            return
        del buffer[:at]

    def _on_frame(self, kind: bytes | bytearray, buffer: bytearray, at: int, end: int) -> None:
        bus = self.bus
        if kind == b"P":
            (length,) = _CHANNEL.unpack_from(buffer, at)
            channel = bytes(buffer[at + 2 : at + 2 + length])
            handler = bus._handlers.get(channel)
            if handler is not None:
                payload = bytes(buffer[at + 2 + length : end])
                try:
                    handler(channel, payload)
                except Exception:
                    logger.exception("handling a message from worker %s failed", self.wid)
        elif kind == b"S":
            self.subs.add((_BY_CODE[bytes(buffer[at : at + 1])], bytes(buffer[at + 1 : end])))
        elif kind == b"U":
            self.subs.discard((_BY_CODE[bytes(buffer[at : at + 1])], bytes(buffer[at + 1 : end])))
        elif kind == b"H":
            self.wid = bytes(buffer[at:end]).decode("ascii")
        elif kind == b"R":
            self.synced = True
            bus._synced(self)
        else:
            raise ValueError(f"unknown frame kind {bytes(kind)!r}")

    # -- sending -------------------------------------------------------------------------------

    def queue(self, frame: bytes, *, control: bool = False) -> None:
        transport = self.transport
        if transport is None:
            return
        limit = _CONTROL_HIGH_WATER if control else self.bus.max_buffered
        if self._out_size + transport.get_write_buffer_size() > limit:
            self.dropped += 1
            if self.dropped == 1:
                logger.warning("worker %s does not keep up: dropping its messages", self.wid)
            return
        if self.dropped:
            logger.info("worker %s keeps up again (%d messages dropped)", self.wid, self.dropped)
            self.dropped = 0
        if not self._out:
            self.bus._schedule(self)
        self._out.append(frame)
        self._out_size += len(frame)

    def flush(self) -> None:
        out, self._out = self._out, []
        self._out_size = 0
        transport = self.transport
        if transport is not None and out:
            transport.write(out[0] if len(out) == 1 else b"".join(out))

    def close(self) -> None:
        if self.transport is not None:
            self.flush()
            self.transport.close()


def _subscription(kind: bytes, key: SubscriptionKey) -> bytes:
    return _frame(kind, _KINDS[key[0]] + key[1])


class LocalBus:
    """The bus of one worker: its subscriptions, and a link to every other worker.

    ``sock`` is this worker's listening bus socket; ``peers`` the bus sockets of the workers
    running when it started (it connects to each). Start it with :meth:`start` in the event
    loop; :meth:`stop` closes the links. :meth:`close` (what the adapter factory calls when
    its last namespace closes) only drops the subscriptions.
    """

    def __init__(
        self,
        wid: str,
        sock: socket.socket | None,
        peers: Sequence[str | os.PathLike[str]] = (),
        *,
        max_message_size: int = 64 * 1024 * 1024,
        max_buffered: int = 64 * 1024 * 1024,
    ) -> None:
        self.wid = wid
        self.max_message_size = max_message_size
        self.max_buffered = max_buffered
        self._sock = sock
        self._peer_paths = [os.fspath(p) for p in peers]
        self._wanted: dict[SubscriptionKey, Handler] = {}
        self._handlers: dict[bytes, Handler] = {}
        self._peers: set[_Peer] = set()
        self._waiting: set[_Peer] = set()
        self._ready = asyncio.Event()
        self._dirty: list[_Peer] = []
        self._flushing = False
        self._server: asyncio.Server | None = None
        self._stopped = False
        self._changed = asyncio.Event()
        self.published = 0
        """Messages published (each sent to every peer)."""

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self, connect_timeout: float = 5.0) -> None:
        """Listen for the workers started later, connect to the running ones."""
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            self._server = await loop.create_unix_server(lambda: _Peer(self), sock=self._sock)
        for path in self._peer_paths:
            try:
                async with asyncio.timeout(connect_timeout):
                    _, peer = await loop.create_unix_connection(lambda: _Peer(self), path)
            except (OSError, TimeoutError) as exc:
                logger.debug("worker at %s is gone: %s", path, exc)
                continue
            if not peer.synced and peer.transport is not None:
                self._waiting.add(peer)
        if not self._waiting:
            self._ready.set()

    @property
    def peers(self) -> list[str]:
        """The ids of the workers linked now."""
        return sorted(p.wid for p in self._peers if p.wid is not None)

    async def wait_peers(self, count: int) -> None:
        """Wait until exactly ``count`` peers are linked and synced (no timeout here)."""
        while sum(1 for p in self._peers if p.synced) != count:
            await self._changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _synced(self, peer: _Peer) -> None:
        self._waiting.discard(peer)
        if not self._waiting:
            self._ready.set()
        self._notify()

    def _lost(self, peer: _Peer) -> None:
        self._peers.discard(peer)
        self._synced(peer)
        if peer.wid is not None and not self._stopped:
            logger.info("worker %s left the bus", peer.wid)

    async def stop(self) -> None:
        """Close the links and the listening socket (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        if self._server is not None:
            self._server.close()
        peers = list(self._peers)
        for peer in peers:
            peer.close()
        if peers:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await asyncio.gather(*(p.lost for p in peers))
        self._ready.set()

    # -- the Bus protocol --------------------------------------------------------------------------

    def subscribe(self, key: SubscriptionKey, handler: Handler) -> None:
        if key[0] not in _KINDS:
            raise ValueError(f"the local bus has no {key[0].name} subscriptions")
        new = key not in self._wanted
        self._wanted[key] = handler
        self._handlers[key[1]] = handler
        if new:
            frame = _subscription(b"S", key)
            for peer in self._peers:
                peer.queue(frame, control=True)

    def unsubscribe(self, key: SubscriptionKey) -> None:
        if self._wanted.pop(key, None) is None:
            return
        if not any(k[1] == key[1] for k in self._wanted):
            self._handlers.pop(key[1], None)
        frame = _subscription(b"U", key)
        for peer in self._peers:
            peer.queue(frame, control=True)

    def is_subscribed(self, key: SubscriptionKey) -> bool:
        return key in self._wanted

    async def wait_subscribed(self, keys: Iterable[SubscriptionKey]) -> None:
        """Wait until the links to the workers running at start are up both ways: they then
        know this worker's subscriptions, and it knows theirs."""
        await self._ready.wait()

    def publish(self, channel: bytes, payload: bytes) -> None:
        if not self._peers:
            return
        self.published += 1
        frame = _frame(b"P", _CHANNEL.pack(len(channel)) + channel + payload)
        for peer in self._peers:
            peer.queue(frame)

    async def count_subscribers(self, key: SubscriptionKey) -> int | None:
        count = 1 if key in self._wanted else 0
        return count + sum(1 for peer in self._peers if key in peer.subs)

    async def close(self) -> None:
        for key in list(self._wanted):
            self.unsubscribe(key)

    # -- batching ----------------------------------------------------------------------------------

    def _schedule(self, peer: _Peer) -> None:
        self._dirty.append(peer)
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = False
        dirty, self._dirty = self._dirty, []
        for peer in dirty:
            peer.flush()


if TYPE_CHECKING:
    _IS_A_BUS: type[Bus] = LocalBus


class LocalBusAdapterFactory(RedisAdapterFactory):
    """The Redis adapter (sharded protocol, dynamic room channels) over a :class:`LocalBus`."""

    def __init__(self, bus: LocalBus, *, request_timeout: float = 5.0, key: str = "socket.io"):
        super().__init__(
            "local",
            key=key,
            request_timeout=request_timeout,
            sharded=True,
            subscription_mode="dynamic",
        )
        self.bus = bus

    def _open_bus(self) -> Bus:
        return self.bus


def local_bus_adapter(bus: LocalBus, *, request_timeout: float = 5.0) -> LocalBusAdapterFactory:
    """The adapter factory for ``sockjet.Server(adapter=...)`` in a worker of ``--workers``
    (the supervisor's worker runtime makes the bus)."""
    return LocalBusAdapterFactory(bus, request_timeout=request_timeout)
