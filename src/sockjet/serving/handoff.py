"""Handing a connection over to the worker that holds its session (``--workers``).

Each worker of ``--workers N`` accepts connections from one listening socket, and any request
may land on any worker. A handshake or a WebSocket-only client stays where it landed. A polling
request (or the upgrade of a polling session) carries its session id, and the sid names the
worker that made it: its first :data:`WORKER_ID_LENGTH` characters are that worker's id
(:attr:`sockjet.engine.server.EngineServer.sid_prefix`). A worker whose
:class:`~sockjet.serving.http.HTTPProtocol` parses the headers of such a request for another
worker's session does not answer it: it hands the **connection** over to the owner, with no
HTTP proxy hop:

1. it stops reading the connection, and sends, on a Unix ``SOCK_SEQPACKET`` socket connected to
   the owner's handoff socket (``<run dir>/h-<id>.sock``), a duplicate of the connection's file
   descriptor (``SCM_RIGHTS``) with every byte it had read from that request on (the request
   head and whatever followed in the same reads);
2. once the owner's socket took the message, it closes its own descriptor, which leaves the
   TCP connection open (the owner holds the other one), and forgets the connection;
3. the owner makes a socket of the descriptor and serves it with a fresh ``HTTPProtocol`` that
   parses those bytes first (:meth:`sockjet.serving.native.NativeServer.adopt`): from then on
   the connection (and its next keep-alive requests) is the owner's.

The same path balances new sessions: the workers publish how many sessions each holds in a
table they all map (:class:`LoadTable`, ``<run dir>/load``), and a worker that holds more than
its share hands a handshake over to the one holding the fewest (so the kernel's uneven spread
of connections over the shared listening socket does not become an uneven spread of clients).

When the owner is gone (it crashed, or drained and exited, and its sessions with it) the
connection fails or is refused at once, and the request is answered where it landed: 400
``Session ID unknown``, as without workers, and the client starts a new session. TLS cannot be
handed over (its state lives in the process that did the handshake): ``--workers`` refuses
``ssl``; terminate TLS in front.

Wire format, one handoff: a first message ``b"F" + total length (4 bytes, big-endian) + data``
carrying the descriptor, then ``b"M" + data`` messages until ``total length`` bytes arrived
(data parts of at most :data:`PART` bytes).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import errno
import logging
import mmap
import os
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "LOAD_SLACK",
    "PART",
    "WORKER_ALPHABET",
    "WORKER_ID_LENGTH",
    "HandoffListener",
    "HandoffRouter",
    "HandoffStats",
    "LoadTable",
    "handoff_path",
    "listen_handoff",
]

logger = logging.getLogger("sockjet.serving.handoff")

WORKER_ID_LENGTH: Final = 2
"""Characters of a sid that name its worker (4,096 ids: a supervisor never reuses a live one)."""
WORKER_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
"""The characters of worker ids: base64url, the sids' own alphabet."""
SID_LENGTH: Final = 20
"""Every sid sockjet makes is 20 characters long."""
PART: Final = 60_000
"""Most data bytes in one message (well under the default Unix socket send buffer)."""
MAX_DATA: Final = 4 * 1024 * 1024
"""A handoff announcing more is refused (the sender reads at most a request head and a chunk)."""
SEND_TIMEOUT: Final = 5.0
"""A handoff the owner's socket does not take within this many seconds fails."""

LOAD_SLACK: Final = 0.05
"""A worker hands a handshake over when it holds more than the least loaded worker by this
share of its sessions (and by 2 at least): a little imbalance is cheaper than a handoff."""

_FIRST: Final = b"F"
_MORE: Final = b"M"
_HEADER: Final = struct.Struct(">cI")
_FD_SPACE: Final = socket.CMSG_SPACE(4 * 4)  # room for a few descriptors: extras are closed
_VALID: Final = frozenset(WORKER_ALPHABET)


def handoff_path(run_dir: str | os.PathLike[str], wid: str) -> Path:
    """The handoff socket of worker ``wid``."""
    return Path(run_dir) / f"h-{wid}.sock"


def listen_handoff(path: str | os.PathLike[str]) -> socket.socket:
    """A listening ``SOCK_SEQPACKET`` Unix socket at ``path`` (the supervisor binds it before
    the worker starts, so that it exists as soon as the worker's sids do)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.bind(os.fspath(path))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


class LoadTable:
    """How many sessions each worker holds, in a file every worker maps (``<run dir>/load``):
    one signed 64-bit slot per worker id, -1 for a worker that takes no new session (not
    started, draining, gone). Made by the supervisor (:meth:`create`); writes are single
    aligned words, so readers see a value or the next, never a torn one."""

    SLOTS: Final = len(WORKER_ALPHABET) ** 2
    _SLOT: Final = struct.Struct("=q")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        with open(path, "r+b") as file:
            self._map = mmap.mmap(file.fileno(), self.SLOTS * 8)
        self._view = memoryview(self._map).cast("q")

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> LoadTable:
        with open(path, "wb") as file:
            file.write(cls._SLOT.pack(-1) * cls.SLOTS)
        return cls(path)

    @staticmethod
    def index(wid: str) -> int:
        return WORKER_ALPHABET.index(wid[0]) * len(WORKER_ALPHABET) + WORKER_ALPHABET.index(wid[1])

    def set(self, wid: str, sessions: int) -> None:
        self._view[self.index(wid)] = sessions

    def get(self, wid: str) -> int:
        return int(self._view[self.index(wid)])

    def close(self) -> None:
        self._view.release()
        self._map.close()


@dataclass(slots=True)
class HandoffStats:
    """What one worker's handoffs did (reported by the supervisor when it stops)."""

    sent: int = 0
    """Connections handed over to the worker holding their session."""
    failed: int = 0
    """Handoffs that could not be made (the owner was gone): answered here instead."""
    adopted: int = 0
    """Connections other workers handed over to this one."""
    balanced: int = 0
    """Of those sent, handshakes sent to a worker holding fewer sessions."""
    refused: int = 0
    """Handoffs received that were malformed or arrived while closing."""


# -- the sending side ---------------------------------------------------------------------------


class _Pending:
    __slots__ = ("done", "fd", "messages", "timer")

    def __init__(self, fd: int, messages: list[bytes], done: Callable[[bool], None]) -> None:
        self.fd = fd
        self.messages = messages
        self.done = done
        self.timer: asyncio.TimerHandle | None = None


class _Link:
    """One connected ``SOCK_SEQPACKET`` socket to one owner; handoffs go out in order."""

    __slots__ = ("_loop", "_on_dead", "_queue", "_sock", "_writing")

    def __init__(
        self, sock: socket.socket, loop: asyncio.AbstractEventLoop, on_dead: Callable[[], None]
    ) -> None:
        self._sock = sock
        self._loop = loop
        self._on_dead = on_dead
        self._queue: deque[_Pending] = deque()
        self._writing = False

    def send(self, fd: int, messages: list[bytes], done: Callable[[bool], None]) -> None:
        """Send ``messages``, the first with ``fd`` (borrowed: duplicated only when the send
        has to wait for room in the owner's socket), then call ``done``."""
        first = 0
        if not self._queue:
            sock = self._sock
            try:
                for message in messages:
                    if first == 0:
                        fds = array.array("i", [fd])
                        sock.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
                    else:
                        sock.send(message)
                    first += 1
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                logger.debug("handoff link lost: %s", exc)
                self.close()
                done(False)
                return
            else:
                done(True)  # the common case: at once, no timer, no duplicate
                return
        try:
            owned = os.dup(fd) if first == 0 else -1
        except OSError as exc:  # out of descriptors
            logger.warning("cannot hand a connection over: %s", exc)
            done(False)
            return
        pending = _Pending(owned, messages[first:], done)
        self._queue.append(pending)
        pending.timer = self._loop.call_later(SEND_TIMEOUT, self._expire, pending)
        if not self._writing:
            self._flush()

    def _expire(self, pending: _Pending) -> None:
        pending.timer = None
        if pending in self._queue:
            logger.warning("a handoff was not taken within %ss: answering here", SEND_TIMEOUT)
            self.close()

    def _flush(self) -> None:
        queue = self._queue
        sock = self._sock
        while queue:
            pending = queue[0]
            while pending.messages:
                message = pending.messages[0]
                try:
                    if pending.fd >= 0:
                        fds = array.array("i", [pending.fd])
                        sock.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
                        os.close(pending.fd)  # the message in flight holds the connection now
                        pending.fd = -1
                    else:
                        sock.send(message)
                except (BlockingIOError, InterruptedError):
                    if not self._writing:
                        self._writing = True
                        self._loop.add_writer(sock.fileno(), self._flush)
                    return
                except OSError as exc:
                    logger.debug("handoff link lost: %s", exc)
                    self.close()
                    return
                pending.messages.pop(0)
            queue.popleft()
            if pending.timer is not None:
                pending.timer.cancel()
            pending.done(True)
        if self._writing:
            self._writing = False
            self._loop.remove_writer(sock.fileno())

    def close(self) -> None:
        """Fail what is queued (each request is then answered where it landed)."""
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._sock.fileno())
        self._sock.close()
        self._on_dead()
        queue, self._queue = self._queue, deque()
        for pending in queue:
            if pending.timer is not None:
                pending.timer.cancel()
            if pending.fd >= 0:
                os.close(pending.fd)
            pending.done(False)


def _messages(data: bytes) -> list[bytes]:
    first = _HEADER.pack(_FIRST, len(data)) + data[:PART]
    rest = [_MORE + data[at : at + PART] for at in range(PART, len(data), PART)]
    return [first, *rest]


class HandoffRouter:
    """The :class:`~sockjet.serving.http.Handoff` of one worker: which sids are another
    worker's, and the links to hand their connections over (made on first use)."""

    def __init__(
        self,
        wid: str,
        run_dir: str | os.PathLike[str],
        *,
        load: LoadTable | None = None,
        sessions: Callable[[], int] | None = None,
        peers: Callable[[], list[str]] | None = None,
    ) -> None:
        """``load``, ``sessions`` (this worker's count now) and ``peers`` (the ids of the
        other workers serving) turn session balancing on (:meth:`balance`)."""
        if len(wid) != WORKER_ID_LENGTH or not set(wid) <= _VALID:
            raise ValueError(f"a worker id is {WORKER_ID_LENGTH} base64url characters: {wid!r}")
        self.wid = wid
        self.run_dir = Path(run_dir)
        self.stats = HandoffStats()
        self._links: dict[str, _Link] = {}
        self.load = load
        self._sessions = sessions
        self._peers = peers
        self.serving = False
        """Whether this worker takes new sessions (published in the load table)."""

    def publish_load(self) -> None:
        """Write this worker's session count (-1 when not serving) to the load table."""
        if self.load is not None:
            count = self._sessions() if self._sessions is not None and self.serving else -1
            self.load.set(self.wid, count)

    def balance(self) -> str | None:
        """The worker that should take a new session: the least loaded of the others that
        serve when this one does not (it drains), else one with fewer when this one holds
        more than its share (see :data:`LOAD_SLACK`); None: here."""
        load, sessions, peers = self.load, self._sessions, self._peers
        if load is None or sessions is None or peers is None:
            return None
        if not self.serving:
            counts = [(load.get(wid), wid) for wid in peers()]
            open_counts = [(count, wid) for count, wid in counts if count >= 0]
            if not open_counts:
                return None
            taken, taker = min(open_counts)
            load.set(taker, taken + 1)  # until it says so itself
            self.stats.balanced += 1
            return taker
        mine = sessions()
        load.set(self.wid, mine)
        best, fewest = None, mine - max(2, int(mine * LOAD_SLACK))
        for wid in peers():
            count = load.get(wid)
            if 0 <= count < fewest:
                best, fewest = wid, count
        if best is not None:
            load.set(best, fewest + 1)  # until it says so itself: the next one may go elsewhere
            self.stats.balanced += 1
        return best

    def owner(self, sid: str) -> str | None:
        """The id of the worker holding ``sid`` when it is another one, else None."""
        if len(sid) != SID_LENGTH or sid.startswith(self.wid):
            return None
        wid = sid[:WORKER_ID_LENGTH]
        return wid if wid[0] in _VALID and wid[1] in _VALID else None

    def hand_over(
        self,
        owner: object,
        transport: asyncio.Transport,
        data: bytes,
        done: Callable[[bool], None],
    ) -> None:
        """See :class:`~sockjet.serving.http.Handoff`."""
        assert isinstance(owner, str)

        def finished(ok: bool) -> None:
            if ok:
                self.stats.sent += 1
            else:
                self.stats.failed += 1
            done(ok)

        sock = transport.get_extra_info("socket")
        link = self._link(owner)
        if sock is None or link is None:
            finished(False)
            return
        link.send(sock.fileno(), _messages(data), finished)

    def _link(self, wid: str) -> _Link | None:
        link = self._links.get(wid)
        if link is not None:
            return link
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.setblocking(False)
        try:
            sock.connect(os.fspath(handoff_path(self.run_dir, wid)))
        except OSError as exc:
            sock.close()
            if exc.errno not in (errno.ENOENT, errno.ECONNREFUSED):
                logger.warning("cannot reach worker %s: %s", wid, exc)
            return None  # gone (or never was)
        link = self._links[wid] = _Link(
            sock, asyncio.get_running_loop(), lambda: self._forget(wid, link)
        )
        return link

    def _forget(self, wid: str, link: _Link | None) -> None:
        if self._links.get(wid) is link:
            del self._links[wid]

    def close(self) -> None:
        """Close the links (what is queued is answered locally)."""
        for link in list(self._links.values()):
            link.close()
        self._links.clear()


# -- the receiving side -------------------------------------------------------------------------


class _Incoming:
    """One peer's connection to our handoff socket, reassembling its handoffs."""

    __slots__ = ("_fd", "_listener", "_loop", "_need", "_parts", "_sock")

    def __init__(self, sock: socket.socket, listener: HandoffListener) -> None:
        self._sock = sock
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        self._fd = -1
        self._need = 0
        self._parts: list[bytes] = []
        self._loop.add_reader(sock.fileno(), self._read)

    def _read(self) -> None:
        sock = self._sock
        while True:
            try:
                message, ancdata, flags, _ = sock.recvmsg(
                    PART + _HEADER.size, _FD_SPACE, socket.MSG_CMSG_CLOEXEC
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close()
                return
            fds = _received_fds(ancdata)
            if not message:
                for fd in fds:
                    os.close(fd)
                self.close()  # the peer closed
                return
            self._on_message(message, fds, bool(flags & socket.MSG_CTRUNC))

    def _on_message(self, message: bytes, fds: list[int], truncated: bool) -> None:
        kind = message[:1]
        if kind == _FIRST and len(fds) == 1 and not truncated and self._fd < 0:
            (_, total) = _HEADER.unpack_from(message)
            data = message[_HEADER.size :]
            if total <= MAX_DATA and len(data) <= total:
                self._fd, self._need, self._parts = fds[0], total - len(data), [data]
                self._complete()
                return
        elif kind == _MORE and not fds and self._fd >= 0 and len(message) - 1 <= self._need:
            self._parts.append(message[1:])
            self._need -= len(message) - 1
            self._complete()
            return
        for fd in fds:
            os.close(fd)
        self._listener.stats.refused += 1
        logger.warning("malformed handoff from another worker: closing its link")
        self.close()

    def _complete(self) -> None:
        if self._need:
            return
        fd, self._fd = self._fd, -1
        data = b"".join(self._parts)
        self._parts = []
        self._listener._adopt(fd, data)

    def close(self) -> None:
        sock = self._sock
        if sock.fileno() >= 0:
            self._loop.remove_reader(sock.fileno())
            sock.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._listener._incoming.discard(self)


def _received_fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            received = array.array("i")
            received.frombytes(payload[: len(payload) - len(payload) % received.itemsize])
            fds.extend(received)
    return fds


class HandoffListener:
    """Accepts the other workers' links on this worker's handoff socket and gives each
    connection they hand over to ``adopt(sock, data)``
    (:meth:`~sockjet.serving.native.NativeServer.adopt`)."""

    def __init__(
        self,
        sock: socket.socket,
        adopt: Callable[[socket.socket, bytes], Awaitable[None]],
        stats: HandoffStats | None = None,
    ) -> None:
        self._sock = sock
        self._adopt_with = adopt
        self.stats = stats if stats is not None else HandoffStats()
        self._incoming: set[_Incoming] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.warning("handoff socket: %s", exc)
                return
            conn.setblocking(False)
            self._incoming.add(_Incoming(conn, self))

    def _adopt(self, fd: int, data: bytes) -> None:
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            os.close(fd)
            self.stats.refused += 1
            return
        if sock.type != socket.SOCK_STREAM:
            sock.close()
            self.stats.refused += 1
            return
        sock.setblocking(False)
        self.stats.adopted += 1
        task = self._loop.create_task(self._serve(sock, data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, sock: socket.socket, data: bytes) -> None:
        try:
            await self._adopt_with(sock, data)
        except Exception:
            logger.exception("cannot serve a connection handed over")
            sock.close()

    def close(self) -> None:
        """Stop taking handoffs (links close; a peer then answers its requests itself)."""
        if self._sock.fileno() >= 0:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
        for incoming in list(self._incoming):
            incoming.close()
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            self._incoming.clear()
