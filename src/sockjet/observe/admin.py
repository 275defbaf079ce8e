"""The official Socket.IO Admin UI (https://admin.socket.io) for a sockjet server.

``instrument(io, auth=...)`` does what Node's ``instrument(io, options)`` from
``@socket.io/admin-ui`` does (protocol of its version 0.5): the UI, a static page, connects its
official socket.io-client to an admin namespace (``/admin`` by default) of the server, and:

* on connection receives ``session`` (a session id, after a login with credentials: the UI sends
  it back as ``{"sessionId": ...}`` when it reconnects), ``config``
  (``{"supportedFeatures": [...]}``), in development mode ``all_sockets`` (every socket,
  serialized), then ``server_stats``;
* every ``stats_interval`` seconds receives ``server_stats``: ``serverId``, ``hostname``, ``pid``,
  ``uptime``, ``clientsCount``, ``pollingClientsCount``, ``namespaces`` (name, socketsCount)
  and ``aggregatedEvents``: counts of ``rawConnection``, ``rawDisconnection`` (with the reason
  as ``subType``), ``packetsIn``/``packetsOut`` and ``bytesIn``/``bytesOut`` of the Engine.IO
  connections since the last ``server_stats``, each stamped with a second;
* in development mode also receives, as they happen: ``socket_connected(socket, time)``,
  ``socket_updated({id, nsp, transport})`` (after an upgrade), ``socket_disconnected(nsp, id,
  reason, time)``, ``room_joined(nsp, room, id, time)``, ``room_left(nsp, room, id, time)``,
  ``event_received(nsp, id, [event, *args], time)`` and ``event_sent(nsp, id, [event, *args],
  time)`` (times are ISO 8601 strings, as JavaScript's ``Date`` serializes);
* unless ``readonly``, may send commands: ``emit(nsp, filter, event, *args)``, ``join(nsp,
  room, filter)``, ``leave(nsp, room, filter)`` and ``_disconnect(nsp, close, filter)``, where
  ``filter`` is a room (a socket id is a room too) or empty for every socket of ``nsp``.

Built on the server's public observation hooks only (``io.hooks``, ``io.engine.hooks``) and
its public API: nothing is patched, and a server that is not instrumented pays nothing. The hooks
keep names and ids, never a socket.
"""

from __future__ import annotations

import asyncio
import hmac
import importlib
import logging
import os
import re
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from inspect import isawaitable
from socket import gethostname
from types import ModuleType
from typing import Any, Final, Literal

from sockjet.engine.io import EngineSocket
from sockjet.errors import ConnectionRefused
from sockjet.server.broadcast import BroadcastOperator, RemoteSocket
from sockjet.server.namespace import Namespace
from sockjet.server.server import Server
from sockjet.server.socket import Socket

__all__ = ["AdminAuth", "Instrumentation", "instrument"]

logger = logging.getLogger("sockjet.admin")

AdminAuth = Literal[False] | Mapping[str, Any] | Callable[[dict[str, Any]], bool | Awaitable[bool]]
"""``False`` (no authentication), ``{"type": "basic", "username": ..., "password": <bcrypt
hash>}``, or ``fn(auth) -> bool`` (or awaitable) given the CONNECT ``auth`` object."""

_COMMAND_FEATURES: Final = ("EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT")
_AGGREGATED_EVENTS: Final = "AGGREGATED_EVENTS"
_ALL_EVENTS: Final = "ALL_EVENTS"
_INVALID_CREDENTIALS: Final = "invalid credentials"  # the UI recognizes this exact message
_BCRYPT_HASH: Final = re.compile(r"\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}")
_BCRYPT_MAX_BYTES: Final = 72  # bcrypt only ever hashes the first 72 bytes of a password
_SESSION_TTL: Final = 86_400.0  # seconds, as the Node package's Redis store
_MAX_SESSIONS: Final = 10_000
_MAX_DATA_DEPTH: Final = 16

_instrumented: weakref.WeakSet[Server] = weakref.WeakSet()


def instrument(
    io: Server,
    *,
    auth: AdminAuth,
    namespace_name: str = "/admin",
    readonly: bool = False,
    server_id: str | None = None,
    mode: Literal["development", "production"] = "development",
    stats_interval: float = 2.0,
) -> Instrumentation:
    """Let the Socket.IO Admin UI connect to ``io`` (Node's ``instrument(io, options)``).

    ``auth`` is required, as in Node: ``False`` to allow anyone (only behind a trusted network),
    ``{"type": "basic", "username": "admin", "password": "$2b$10$..."}`` with a bcrypt hash of
    the password (needs the ``bcrypt`` package: ``pip install "sockjet[admin]"``), or a function
    of the client's CONNECT ``auth`` object. ``readonly`` refuses every command (emit, join,
    leave, disconnect). ``mode="production"`` sends only the configuration and the periodic
    statistics (no socket list, no per-socket events), which costs far less on a busy server.
    ``server_id`` tells the servers of a cluster apart in the UI (default: the host name).

    The statistics timer starts with the event loop and stops on ``await io.close()`` (or
    :meth:`Instrumentation.close`). Raises :class:`ValueError` for invalid options,
    :class:`ImportError` when basic authentication is asked for without bcrypt installed and
    :class:`RuntimeError` when ``io`` is already instrumented.
    """
    if mode not in ("development", "production"):
        raise ValueError(f'mode must be "development" or "production", not {mode!r}')
    if not stats_interval > 0:
        raise ValueError(f"stats_interval must be positive, not {stats_interval!r}")
    check = _auth_check(auth)
    if io in _instrumented:
        raise RuntimeError("this server is already instrumented for the admin UI")
    if io.closed:
        raise RuntimeError("this server is closed")
    instrumentation = Instrumentation(
        io,
        io.of(namespace_name),
        check=check,
        readonly=readonly,
        server_id=server_id or gethostname(),
        development=mode == "development",
        stats_interval=stats_interval,
    )
    _instrumented.add(io)
    return instrumentation


# -- authentication ---------------------------------------------------------------------------

Check = Callable[[dict[str, Any]], Awaitable[bool]]


def _auth_check(auth: Any) -> Check | None:
    if auth is False:
        logger.warning("admin UI authentication is disabled: anyone can connect")
        return None
    if callable(auth):
        return partial(_custom_check, auth)
    if not isinstance(auth, Mapping):
        raise ValueError('auth must be False, {"type": "basic", ...} or a function')
    if auth.get("type") != "basic":
        raise ValueError(f'unsupported auth type {auth.get("type")!r}: only "basic" exists')
    username, hashed = auth.get("username"), auth.get("password")
    if not isinstance(username, str) or not username:
        raise ValueError("basic auth needs a non-empty username")
    if not isinstance(hashed, str) or not _BCRYPT_HASH.fullmatch(hashed):
        raise ValueError("the password of basic auth must be a bcrypt hash ($2b$...)")
    return partial(_basic_check, _import_bcrypt(), username.encode(), hashed.encode())


def _import_bcrypt() -> ModuleType:
    try:
        return importlib.import_module("bcrypt")
    except ImportError as exc:
        raise ImportError(
            "basic authentication of the admin UI checks passwords with bcrypt, which is not "
            'installed: pip install "sockjet[admin]" (or pip install bcrypt)'
        ) from exc


async def _basic_check(
    bcrypt: ModuleType, username: bytes, hashed: bytes, credentials: dict[str, Any]
) -> bool:
    user, password = credentials.get("username"), credentials.get("password")
    if not isinstance(user, str) or not isinstance(password, str):
        return False
    try:
        # Hashing takes tens of milliseconds: off the event loop. It runs whatever the username,
        # so the answer's timing does not tell whether the username was right.
        matched = await asyncio.to_thread(
            bcrypt.checkpw, password.encode()[:_BCRYPT_MAX_BYTES], hashed
        )
    except ValueError:
        return False
    return hmac.compare_digest(user.encode(), username) and bool(matched)


async def _custom_check(
    check: Callable[[dict[str, Any]], Any], credentials: dict[str, Any]
) -> bool:
    result = check(credentials)
    if isawaitable(result):
        result = await result
    return bool(result)


class _Sessions:
    """Session ids given to the UI after a login, so a reload does not ask for the password."""

    __slots__ = ("_expiry",)

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}

    def valid(self, session: Any) -> bool:
        if not isinstance(session, str):
            return False
        expiry = self._expiry.get(session)
        if expiry is None:
            return False
        if expiry < time.monotonic():
            del self._expiry[session]
            return False
        return True

    def create(self) -> str:
        expiry = self._expiry
        now = time.monotonic()
        if len(expiry) >= _MAX_SESSIONS:
            for session, until in list(expiry.items()):
                if until < now:
                    del expiry[session]
            while len(expiry) >= _MAX_SESSIONS:  # the oldest logins go first
                del expiry[next(iter(expiry))]
        session = secrets.token_urlsafe(16)
        expiry[session] = now + _SESSION_TTL
        return session


# -- aggregated events ------------------------------------------------------------------------


class _EventBuffer:
    """Counts of engine events, drained by each ``server_stats``.

    Connections and disconnections are counted per second, as Node does. Packets and bytes, one
    count per message, are plain counters stamped with the second they are drained in: cheaper
    on every send, and the UI sums them by 10 seconds anyway.
    """

    __slots__ = ("_counts", "bytes_in", "bytes_out", "packets_in", "packets_out", "stopped")

    def __init__(self) -> None:
        self._counts: dict[tuple[int, str, str | None], int] = {}
        self.packets_in = self.bytes_in = self.packets_out = self.bytes_out = 0
        self.stopped = False  # sessions opened while instrumented outlive the instrumentation

    def push(self, kind: str, sub: str | None = None) -> None:
        if self.stopped:
            return
        key = (int(time.time()) * 1000, kind, sub)
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1

    def drain(self) -> list[dict[str, Any]]:
        counts, self._counts = self._counts, {}
        drained: list[dict[str, Any]] = []
        for (timestamp, kind, sub), count in counts.items():
            item: dict[str, Any] = {"timestamp": timestamp, "type": kind, "count": count}
            if sub is not None:
                item["subType"] = sub
            drained.append(item)
        now = int(time.time()) * 1000
        for kind, count in (
            ("packetsIn", self.packets_in),
            ("bytesIn", self.bytes_in),
            ("packetsOut", self.packets_out),
            ("bytesOut", self.bytes_out),
        ):
            if count:
                drained.append({"timestamp": now, "type": kind, "count": count})
        self.packets_in = self.bytes_in = self.packets_out = self.bytes_out = 0
        return drained


# -- serialization ----------------------------------------------------------------------------


def _now() -> str:
    """The time as JavaScript's ``Date`` serializes it: ``2024-05-01T12:00:00.000Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` reduced to what any serializer can send (``socket.data`` is free-form)."""
    if value is None or isinstance(value, str | int | float | bytes):
        return value
    if depth < _MAX_DATA_DEPTH:
        if isinstance(value, Mapping):
            return {str(k): _plain(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [_plain(v, depth + 1) for v in value]
    return repr(value)


def _serialize(socket: Socket | RemoteSocket, nsp: str) -> dict[str, Any]:
    """A socket as the UI expects it (Node's ``SerializedSocket``)."""
    handshake = socket.handshake
    headers = handshake.headers
    if isinstance(socket, Socket):
        # Only a prefix of the Engine.IO session id: the whole id would let whoever reads it
        # send and receive as that client over HTTP long-polling.
        client_id = socket.client.id[:12]
        transport: str | None = socket.transport
        data = socket.data
    else:  # on another server of the cluster: its engine session is unknown here
        client_id = socket.id[:12]
        transport = None
        data = socket.data
    serialized: dict[str, Any] = {
        "id": socket.id,
        "clientId": client_id,
        "nsp": nsp,
        "data": _plain(data),
        "handshake": {
            "address": headers.get("cf-connecting-ip")
            or headers.get("x-forwarded-for")
            or handshake.address,
            "headers": headers,
            "query": handshake.query,
            "issued": handshake.issued,
            "secure": handshake.secure,
            "time": handshake.time,
            "url": handshake.url,
            "xdomain": handshake.xdomain,
            # not the auth: it may hold the client's credentials
        },
        "rooms": list(socket.rooms),
    }
    if transport is not None:
        serialized["transport"] = transport
    return serialized


def _process_start() -> float | None:
    """When this process started (epoch seconds), from /proc where there is one."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as uptime:
            since_boot = float(uptime.read().split()[0])
        started_after_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return time.time() - (since_boot - started_after_boot)


# -- the instrumentation ----------------------------------------------------------------------


class Instrumentation:
    """What :func:`instrument` installed on a server; :meth:`close` removes it all."""

    def __init__(
        self,
        io: Server,
        namespace: Namespace,
        *,
        check: Check | None,
        readonly: bool,
        server_id: str,
        development: bool,
        stats_interval: float,
    ) -> None:
        self.io = io
        self.namespace = namespace
        """The admin namespace."""
        features = [] if readonly else list(_COMMAND_FEATURES)
        features.append(_AGGREGATED_EVENTS)
        if development:
            features.append(_ALL_EVENTS)
        self.features: tuple[str, ...] = tuple(features)
        """The ``supportedFeatures`` sent in ``config``."""
        self._check = check
        self._sessions = _Sessions() if check is not None else None
        self._development = development
        self._interval = stats_interval
        self._base_stats = {"serverId": server_id, "hostname": gethostname(), "pid": os.getpid()}
        self._started = _process_start() or time.time()
        self._events = _EventBuffer()
        # A cluster adapter forwards what this server emits to the admins of the other
        # servers; alone, nothing is worth building while no admin is connected here.
        self._clustered = namespace.adapter.cluster
        self._by_client: dict[str, set[tuple[str, str]]] = {}  # engine sid -> (nsp, socket id)
        self._traffic: list[int] | None = None  # the namespaces' counters at the last tick
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

        if check is not None:
            namespace.use(self._authenticate)
        namespace.on("connection", self._on_admin_connection)
        if not readonly:
            namespace.on("emit", self._command_emit)
            namespace.on("join", self._command_join)
            namespace.on("leave", self._command_leave)
            namespace.on("_disconnect", self._command_disconnect)
        engine_hooks, hooks = io.engine.hooks, io.hooks
        engine_hooks.on_session_opened(self._on_session_opened)
        engine_hooks.on_session_closed(self._on_session_closed)
        hooks.on_server_closing(self._on_server_closing)
        hooks.on_server_started(self._on_server_started)
        if development:
            engine_hooks.on_session_upgraded(self._on_upgraded)
            hooks.on_socket_connected(self._on_connect)
            hooks.on_socket_disconnected(self._on_disconnect)
            hooks.on_room_joined(self._on_room_joined)
            hooks.on_room_left(self._on_room_left)
        self._start()

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def stats_running(self) -> bool:
        """Whether the ``server_stats`` timer is scheduled."""
        return self._timer is not None

    def _start(self) -> None:
        if self._timer is not None or self._closed:
            return
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # instrumented before the loop runs: starts with the first session
            return
        self._tick()

    def _tick(self) -> None:
        self._timer = None
        loop = self._loop
        if self._closed or loop is None or self.io.engine.closed:
            return
        self._timer = loop.call_later(self._interval, self._tick)
        self._count_traffic()
        aggregated = self._events.drain()  # drained even when nobody listens: stays bounded
        if self._audience():
            self._emit("server_stats", self._stats(aggregated))

    def close(self) -> None:
        """Stop the statistics and remove every hook; connected admin sockets are disconnected.
        Called when the server closes; the server may then be instrumented again."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        io = self.io
        engine_hooks: tuple[Callable[..., None], ...] = (
            self._on_session_opened,
            self._on_session_closed,
            self._on_upgraded,
        )
        for engine_hook in engine_hooks:
            io.engine.hooks.remove(engine_hook)
        server_hooks: tuple[Callable[..., None], ...] = (
            self._on_server_closing,
            self._on_server_started,
            self._on_connect,
            self._on_disconnect,
            self._on_room_joined,
            self._on_room_left,
        )
        for server_hook in server_hooks:
            io.hooks.remove(server_hook)
        admin = self.namespace
        admin.off("connection", self._on_admin_connection)
        for event, command in (
            ("emit", self._command_emit),
            ("join", self._command_join),
            ("leave", self._command_leave),
            ("_disconnect", self._command_disconnect),
        ):
            admin.off(event, command)
        if admin.sockets:
            admin.disconnect_sockets()
        self._by_client.clear()
        self._events.stopped = True
        _instrumented.discard(io)

    def _count_traffic(self) -> None:
        """Packets and bytes since the last tick: read from the namespaces' own counters, so
        the Admin UI costs nothing per packet."""
        totals = [0, 0, 0, 0]
        for nsp in self.io.namespaces.values():
            stats = nsp.stats
            totals[0] += stats.packets_received
            totals[1] += stats.bytes_received
            totals[2] += stats.packets_sent
            totals[3] += stats.bytes_sent
        last = self._traffic
        self._traffic = totals
        if last is None:
            return  # the first reading: only what follows counts
        events = self._events
        # a namespace removed since (an emptied dynamic child) takes its counts with it
        events.packets_in += max(0, totals[0] - last[0])
        events.bytes_in += max(0, totals[1] - last[1])
        events.packets_out += max(0, totals[2] - last[2])
        events.bytes_out += max(0, totals[3] - last[3])

    def _on_server_closing(self, server: Server) -> None:
        self.close()

    def _on_server_started(self, server: Server) -> None:
        self._start()

    # -- what the hooks tell ------------------------------------------------------------------

    def _on_session_opened(self, conn: EngineSocket) -> None:
        self._events.push("rawConnection")
        if self._timer is None:
            self._start()

    def _on_session_closed(self, conn: EngineSocket, reason: str) -> None:
        self._events.push("rawDisconnection", reason)

    def _on_upgraded(self, conn: EngineSocket, transport: str) -> None:
        sockets = self._by_client.get(conn.sid)
        if sockets and self._audience():
            for name, sid in list(sockets):
                self._emit("socket_updated", {"id": sid, "nsp": name, "transport": transport})

    def _on_connect(self, socket: Socket) -> None:
        nsp = socket.nsp
        name = nsp.name
        self._by_client.setdefault(socket.client.id, set()).add((name, socket.id))
        if nsp is not self.namespace:
            socket.on_any(partial(self._on_event, "event_received", name, socket.id))
            socket.on_any_outgoing(partial(self._on_event, "event_sent", name, socket.id))
        if self._audience():
            self._emit("socket_connected", _serialize(socket, name), _now())

    def _on_disconnect(self, socket: Socket, reason: str) -> None:
        name = socket.nsp.name
        client = socket.client.id
        sockets = self._by_client.get(client)
        if sockets is not None:
            sockets.discard((name, socket.id))
            if not sockets:
                del self._by_client[client]
        if self._audience():
            self._emit("socket_disconnected", name, socket.id, reason, _now())

    def _on_room_joined(self, nsp: Namespace, room: str, sid: str) -> None:
        if self._audience():
            self._emit("room_joined", nsp.name, room, sid, _now())

    def _on_room_left(self, nsp: Namespace, room: str, sid: str) -> None:
        if self._audience():
            self._emit("room_left", nsp.name, room, sid, _now())

    def _on_event(self, kind: str, nsp: str, sid: str, event: str, *args: Any) -> None:
        if not self._closed and self._audience():
            self._emit(kind, nsp, sid, [event, *args], _now())

    # -- admin sockets ------------------------------------------------------------------------

    async def _authenticate(self, socket: Socket) -> None:
        check, sessions = self._check, self._sessions
        if check is None or sessions is None or self._closed:
            return  # (a closed instrumentation's middleware stays, and lets everyone through)
        auth = socket.handshake.auth
        if sessions.valid(auth.get("sessionId")):
            return
        try:
            accepted = await check(auth)
        except Exception:
            logger.exception("admin UI authentication failed")
            accepted = False
        if not accepted:
            raise ConnectionRefused(_INVALID_CREDENTIALS)

    def _on_admin_connection(self, socket: Socket) -> Awaitable[None] | None:
        if self._closed:
            return None
        sessions = self._sessions
        if sessions is not None and not sessions.valid(socket.handshake.auth.get("sessionId")):
            socket.emit("session", sessions.create())
        socket.emit("config", {"supportedFeatures": list(self.features)})
        if self._development and self._clustered:
            return self._send_all_sockets(socket)  # asks the other servers: in a task
        if self._development:
            socket.emit("all_sockets", self._local_sockets())
        socket.emit("server_stats", self._stats([]))  # the dashboard fills at once
        return None

    def _local_sockets(self) -> list[dict[str, Any]]:
        return [
            _serialize(socket, nsp.name)
            for nsp in self.io.namespaces.values()
            for socket in list(nsp.sockets.values())
        ]

    async def _send_all_sockets(self, socket: Socket) -> None:
        nsps = list(self.io.namespaces.values())
        found = await asyncio.gather(*(nsp.fetch_sockets() for nsp in nsps), return_exceptions=True)
        serialized: list[dict[str, Any]] = []
        for nsp, sockets in zip(nsps, found, strict=True):
            if isinstance(sockets, BaseException):
                logger.warning("could not fetch the sockets of %s: %r", nsp.name, sockets)
                sockets = list(nsp.sockets.values())
            serialized.extend(_serialize(s, nsp.name) for s in sockets)
        socket.emit("all_sockets", serialized)
        socket.emit("server_stats", self._stats([]))

    def _target(self, nsp: Any, room: Any) -> BroadcastOperator | None:
        """The sockets a command acts on: those of ``nsp`` in ``room`` (all when empty). An
        unknown namespace is not created."""
        namespace = self.io.namespaces.get(nsp) if isinstance(nsp, str) else None
        if namespace is None or self._closed:
            return None
        every = BroadcastOperator(namespace.adapter)
        if room is None or room == "":
            return every
        return every.to(room) if isinstance(room, str) else None

    def _command_emit(
        self, socket: Socket, nsp: Any = None, room: Any = None, event: Any = None, *args: Any
    ) -> None:
        target = self._target(nsp, room)
        if target is not None and isinstance(event, str):
            try:
                target.emit(event, *args)
            except ValueError:  # a reserved event name
                logger.debug("admin UI emit of %r refused", event)

    def _command_join(self, socket: Socket, nsp: Any = None, room: Any = None, *rest: Any) -> None:
        target = self._target(nsp, rest[0] if rest else None)
        if target is not None and isinstance(room, str):
            target.sockets_join(room)

    def _command_leave(self, socket: Socket, nsp: Any = None, room: Any = None, *rest: Any) -> None:
        target = self._target(nsp, rest[0] if rest else None)
        if target is not None and isinstance(room, str):
            target.sockets_leave(room)

    def _command_disconnect(
        self, socket: Socket, nsp: Any = None, close: Any = False, *rest: Any
    ) -> None:
        target = self._target(nsp, rest[0] if rest else None)
        if target is not None:
            target.disconnect_sockets(bool(close))

    # -- emitting to the admins ---------------------------------------------------------------

    def _audience(self) -> bool:
        return self._clustered or bool(self.namespace.sockets)

    def _emit(self, event: str, *args: Any) -> None:
        try:
            self.namespace.emit(event, *args)
        except Exception:  # e.g. a value the serializer cannot encode: never the app's problem
            logger.exception("could not send %r to the admin UI", event)

    def _stats(self, aggregated: list[dict[str, Any]]) -> dict[str, Any]:
        io = self.io
        engine = io.engine
        polling = 0
        for session in list(engine.sessions.values()):
            if session.transport == "polling":
                polling += 1
        return {
            **self._base_stats,
            "uptime": time.time() - self._started,
            "clientsCount": engine.clients_count,
            "pollingClientsCount": polling,
            "aggregatedEvents": aggregated,
            "namespaces": [
                {"name": nsp.name, "socketsCount": len(nsp.sockets)}
                for nsp in io.namespaces.values()
            ],
        }
