"""``sockjet.AsyncClient``: the asyncio Socket.IO client.

One client is one :class:`~sockjet.client.manager.Manager` (one Engine.IO connection, with
reconnection) and one :class:`~sockjet.client.socket.ClientSocket` per namespace, multiplexed on
it, as in the JS client (``io(url)`` and ``manager.socket(nsp)``). The client's methods act on
the namespace ``"/"`` unless given ``namespace=``; ``client.socket("/chat")`` is the namespace's
own socket, with the same methods.
"""

from __future__ import annotations

import asyncio
import functools
import random as _random
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final, TypeVar, overload
from urllib.parse import parse_qsl, urlsplit

import aiohttp

from sockjet.client.clock import Clock, LoopClock
from sockjet.client.errors import ConnectError
from sockjet.client.handlers import Handler, HandlerRunner
from sockjet.client.manager import Manager, ManagerState
from sockjet.client.socket import Auth, ClientSocket
from sockjet.client.transports import HTTPOptions, HTTPTransports, TransportFactory
from sockjet.errors import AckTimeout
from sockjet.protocol.serializers import SerializerOption, resolve_serializer
from sockjet.protocol.socketio import CLIENT_RESERVED_EVENTS, DecoderLimits

__all__ = ["MANAGER_EVENTS", "TRANSPORTS", "AsyncClient"]

H = TypeVar("H", bound=Handler)

MANAGER_EVENTS: Final = frozenset(
    {"reconnect_attempt", "reconnect", "reconnect_error", "reconnect_failed"}
)
"""Events of the connection rather than of a namespace (``socket.io.on(...)`` in JS)."""

TRANSPORTS: Final = ("polling", "websocket")

DRAIN_LEVEL: Final = 64 * 1024
"""What :meth:`AsyncClient.drain` lets stay queued (keeps the connection busy meanwhile)."""

_SCHEMES: Final = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_MAX_ATTACHMENTS: Final = 1000


def _split_url(url: str) -> tuple[str, str, dict[str, str]]:
    """``url`` -> (``scheme://host:port``, namespace from the path, query parameters)."""
    parts = urlsplit(url)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"invalid URL {url!r}: expected http(s)://host[:port][/namespace]")
    namespace = parts.path.rstrip("/") or "/"
    return f"{scheme}://{parts.netloc}", namespace, dict(parse_qsl(parts.query))


class AsyncClient:
    """A Socket.IO client for asyncio, at parity with the JS ``socket.io-client`` 4.x.

    Reconnection (on by default, as in JS): after a lost connection, wait
    ``reconnection_delay`` seconds doubling up to ``reconnection_delay_max``, each delay
    randomized by ±``randomization_factor``, for ``reconnection_attempts`` attempts
    (None: forever). ``timeout`` bounds each connection attempt (seconds; None: no limit).

    Delivery: events emitted while disconnected are buffered and sent in order once
    reconnected. ``retries`` > 0 makes every emit wait for an acknowledgement and resend it when
    none comes within ``ack_timeout`` (or the connection drops), up to ``retries`` times.

    ``serializer``: ``"json"`` (default) or ``"msgpack"``, as the server's. ``max_payload``:
    the largest message or polling body accepted from the server (bytes). ``http_session``: an
    ``aiohttp.ClientSession`` to use (it is not closed by the client); by default the client
    opens its own at :meth:`connect` and closes it at the end. ``ssl``: aiohttp's ``ssl``
    argument. ``clock``, ``random`` and ``transport_factory`` replace time, the jitter's
    randomness and the transports, for tests.
    """

    __slots__ = (
        "_clock",
        "_done_waiters",
        "_finalizer",
        "_http_session",
        "_manager",
        "_manager_handlers",
        "_owned_session",
        "_random",
        "_runner",
        "_sockets",
        "_ssl",
        "_transport_factory",
        "_waiter",
        "_waiting_for",
        "ack_timeout",
        "max_payload",
        "randomization_factor",
        "reconnection",
        "reconnection_attempts",
        "reconnection_delay",
        "reconnection_delay_max",
        "retries",
        "serializer",
        "timeout",
    )

    def __init__(
        self,
        *,
        reconnection: bool = True,
        reconnection_attempts: int | None = None,
        reconnection_delay: float = 1.0,
        reconnection_delay_max: float = 5.0,
        randomization_factor: float = 0.5,
        timeout: float | None = 20.0,
        retries: int = 0,
        ack_timeout: float | None = None,
        serializer: SerializerOption = "json",
        max_payload: int = 100_000_000,
        http_session: aiohttp.ClientSession | None = None,
        ssl: Any = True,
        clock: Clock | None = None,
        random: Callable[[], float] = _random.random,
        transport_factory: Callable[[HTTPOptions], TransportFactory] | None = None,
    ) -> None:
        if reconnection_attempts is not None and reconnection_attempts < 0:
            raise ValueError("reconnection_attempts must be None or at least 0")
        if reconnection_delay < 0 or reconnection_delay_max < 0:
            raise ValueError("reconnection delays cannot be negative")
        if not 0 <= randomization_factor <= 1:
            raise ValueError("randomization_factor must be between 0 and 1")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be None or above 0")
        if retries < 0:
            raise ValueError("retries cannot be negative")
        if ack_timeout is not None and ack_timeout <= 0:
            raise ValueError("ack_timeout must be None or above 0")
        if max_payload <= 0:
            raise ValueError("max_payload must be above 0")
        self.reconnection = reconnection
        self.reconnection_attempts = reconnection_attempts
        self.reconnection_delay = reconnection_delay
        self.reconnection_delay_max = reconnection_delay_max
        self.randomization_factor = randomization_factor
        self.timeout = timeout
        self.retries = retries
        self.ack_timeout = ack_timeout
        self.serializer = resolve_serializer(serializer)
        self.max_payload = max_payload
        self._http_session = http_session
        self._ssl = ssl
        self._clock: Clock = clock if clock is not None else LoopClock()
        self._random = random
        self._transport_factory = transport_factory
        self._runner = HandlerRunner()
        self._sockets: dict[str, ClientSocket] = {}
        self._manager_handlers: dict[str, list[Handler]] = {}
        self._manager: Manager | None = None
        self._finalizer: asyncio.Future[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._waiting_for: tuple[ClientSocket, ...] = ()
        self._done_waiters: list[asyncio.Future[None]] = []
        self._owned_session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<AsyncClient {state} sid={self.sid} transport={self.transport}>"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    # -- state --------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether every namespace this client joined is connected."""
        manager = self._manager
        if manager is None or manager.state is not ManagerState.OPEN:
            return False
        active = [socket for socket in manager.sockets.values() if socket.active]
        return bool(active) and all(socket.connected for socket in active)

    @property
    def sid(self) -> str | None:
        """The socket id of the namespace ``"/"`` (``client.socket(nsp).id`` for others)."""
        socket = self._sockets.get("/")
        return socket.id if socket is not None else None

    @property
    def recovered(self) -> bool:
        """Whether the namespace ``"/"`` recovered its session at its last reconnection
        (``client.socket(nsp).recovered`` for others); see
        :attr:`ClientSocket.recovered <sockjet.client.socket.ClientSocket.recovered>`."""
        socket = self._sockets.get("/")
        return socket.recovered if socket is not None else False

    @property
    def transport(self) -> str | None:
        """``"polling"`` or ``"websocket"`` while connected, else None."""
        manager = self._manager
        engine = manager.engine if manager is not None else None
        if engine is None or engine.transport is None or manager is None:
            return None
        if manager.state is not ManagerState.OPEN:
            return None
        return engine.transport.name

    @property
    def buffered_amount(self) -> int:
        """Bytes emitted on this connection (every namespace) and not yet written to the
        server; events buffered while disconnected are not counted."""
        manager = self._manager
        engine = manager.engine if manager is not None else None
        return engine.buffered_amount if engine is not None else 0

    async def drain(self) -> None:
        """Wait until what was emitted has been written (at most 64 KiB still queued), for
        producers that stream: ``client.emit(...); await client.drain()``. A server that is
        behind holds its answers (and a WebSocket stops reading), which this waits for; returns
        at once while not connected."""
        manager = self._manager
        engine = manager.engine if manager is not None else None
        if engine is not None:
            await engine.drain(DRAIN_LEVEL)

    @property
    def namespaces(self) -> list[str]:
        """The namespaces connected right now."""
        return [nsp for nsp, socket in self._sockets.items() if socket.connected]

    @property
    def manager(self) -> Manager | None:
        """The connection's manager (None before :meth:`connect`)."""
        return self._manager

    def socket(self, namespace: str = "/") -> ClientSocket:
        """The socket of ``namespace``, created on first use (handlers can be registered on it
        before connecting). Once connected, ``client.socket("/other").connect()`` joins another
        namespace on the same connection."""
        socket = self._sockets.get(namespace)
        if socket is None:
            socket = ClientSocket(
                namespace,
                runner=self._runner,
                clock=self._clock,
                hooks=self,
                serializer=self.serializer,
                retries=self.retries,
                ack_timeout=self.ack_timeout,
            )
            self._sockets[namespace] = socket
            manager = self._manager
            if manager is not None and not manager.finished:
                socket._bind(manager)
        return socket

    # -- handlers -----------------------------------------------------------------------------

    @overload
    def on(self, event: str, *, namespace: str = "/") -> Callable[[H], H]: ...
    @overload
    def on(self, event: str, handler: H, *, namespace: str = "/") -> H: ...
    def on(
        self, event: str, handler: H | None = None, *, namespace: str = "/"
    ) -> H | Callable[[H], H]:
        """Register ``handler(*args)`` for ``event`` in ``namespace`` (also as a decorator).

        Lifecycle events: ``connect()``, ``disconnect(reason)``, ``connect_error(error)``
        per namespace; ``reconnect_attempt(attempt)``, ``reconnect(attempts)``,
        ``reconnect_error(error)`` and ``reconnect_failed()`` for the connection (whatever
        the namespace). Any other name is a server event; the handler's return value answers
        the server's acknowledgement (``None``: no argument, a tuple: several).
        """
        if handler is None:
            return functools.partial(self.on, event, namespace=namespace)  # type: ignore[return-value]
        if event in MANAGER_EVENTS:
            self._manager_handlers.setdefault(event, []).append(handler)
        else:
            self.socket(namespace).on(event, handler)
        return handler

    def off(self, event: str, handler: Handler | None = None, *, namespace: str = "/") -> None:
        """Remove one handler of ``event`` (every one without ``handler``)."""
        if event in MANAGER_EVENTS:
            handlers = self._manager_handlers.get(event, [])
            if handler is None:
                handlers.clear()
            elif handler in handlers:
                handlers.remove(handler)
        elif namespace in self._sockets:
            self._sockets[namespace].off(event, handler)

    def on_any(self, handler: H, *, namespace: str = "/") -> H:
        """Register ``handler(event, *args)`` for every server event of ``namespace``."""
        return self.socket(namespace).on_any(handler)

    def off_any(self, handler: Handler | None = None, *, namespace: str = "/") -> None:
        """Remove one catch-all handler (every one without ``handler``)."""
        if namespace in self._sockets:
            self._sockets[namespace].off_any(handler)

    # -- emitting -----------------------------------------------------------------------------

    def emit(self, event: str, *args: Any, namespace: str = "/", volatile: bool = False) -> None:
        """Send an event (not awaited; buffered while disconnected, dropped if ``volatile``).
        See :meth:`ClientSocket.emit`."""
        self.socket(namespace).emit(event, *args, volatile=volatile)

    def send(self, *args: Any, namespace: str = "/") -> None:
        """``emit("message", *args)``."""
        self.socket(namespace).emit("message", *args)

    async def emit_with_ack(
        self,
        event: str,
        *args: Any,
        namespace: str = "/",
        timeout: float | None = None,  # noqa: ASYNC109  # the ack's own timer: see ClientSocket
    ) -> Any:
        """Send an event and return the server's acknowledgement (None, a value, or a tuple of
        values); raises :class:`~sockjet.errors.AckTimeout`. See
        :meth:`ClientSocket.emit_with_ack`."""
        return await self.socket(namespace).emit_with_ack(event, *args, timeout=timeout)

    # -- connecting ---------------------------------------------------------------------------

    async def connect(
        self,
        url: str,
        *,
        transports: Iterable[str] = TRANSPORTS,
        namespaces: Iterable[str] | None = None,
        auth: Auth | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        path: str = "/socket.io/",
        upgrade: bool = True,
        wait: bool = True,
        retry: bool = False,
    ) -> None:
        """Connect to ``url`` (``http(s)://`` or ``ws(s)://host:port``; a path names a
        namespace, as in ``io("http://host/chat")``).

        ``transports``: ``["polling", "websocket"]`` starts with long-polling and upgrades;
        ``["websocket"]`` goes straight to WebSocket. ``namespaces``: those to join on this
        connection (default: every namespace given handlers or used so far, else ``"/"``).
        ``auth``: the CONNECT payload, a dict or a function (plain or async) returning one,
        called at each (re)connection. ``headers`` and ``query`` go with every request.

        With ``wait`` (default), return once every namespace is connected, or raise
        :class:`~sockjet.client.errors.ConnectError` (after cleaning up): a namespace was
        refused (``.message``/``.data`` from the server), or the connection failed. A failed
        first attempt is not retried and the whole call is bounded by ``timeout``, unless
        ``retry`` is set: then the reconnection rules apply from the first attempt, as in the
        JS client. Without ``wait``, return at once and let the connection proceed (and
        retry) in the background; watch ``connect`` / ``connect_error``.
        """
        manager = self._manager
        if manager is not None:
            if not manager.finished:
                raise RuntimeError("already connected: call disconnect() first")
            await self._release()
        base, url_namespace, url_query = _split_url(url)
        names = self._namespaces(namespaces, url_namespace)
        transports = tuple(transports)
        if not transports or any(name not in TRANSPORTS for name in transports):
            raise ValueError(f"transports must be a non-empty subset of {TRANSPORTS}")
        options = HTTPOptions(
            url=base,
            path="/" + path.strip("/") + "/",
            query={**url_query, **(query or {})},
            headers=dict(headers or {}),
            max_payload=self.max_payload,
            connect_timeout=self.timeout,
            ssl=self._ssl,
        )
        session: aiohttp.ClientSession | None = None
        if self._transport_factory is not None:
            factory = self._transport_factory(options)
        else:
            session = self._http_session
            if session is None:
                session = aiohttp.ClientSession(
                    cookie_jar=aiohttp.CookieJar(unsafe=True),  # sticky-session cookies on IPs
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout),
                )
            factory = HTTPTransports(session, options)
        manager = Manager(
            factory,
            hooks=self,
            clock=self._clock,
            serializer=self.serializer,
            limits=DecoderLimits(_MAX_ATTACHMENTS, self.max_payload, CLIENT_RESERVED_EVENTS),
            transports=transports,
            upgrade=upgrade,
            reconnection=self.reconnection,
            reconnection_attempts=self.reconnection_attempts,
            reconnection_delay=self.reconnection_delay,
            reconnection_delay_max=self.reconnection_delay_max,
            randomization_factor=self.randomization_factor,
            timeout=self.timeout,
            random=self._random,
        )
        self._manager = manager
        self._finalizer = None
        self._owned_session = session if session is not self._http_session else None
        sockets = tuple(self.socket(name) for name in names)
        for socket in self._sockets.values():
            socket._bind(manager)
        for socket in sockets:
            if auth is not None:
                socket.auth = auth
        waiter = None
        if wait:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            self._waiting_for = sockets
        manager.open(None if retry or not wait else self._first_attempt_done)
        for socket in sockets:
            socket.connect()
        if waiter is None:
            return
        try:
            async with asyncio.timeout(None if retry else self.timeout):
                await waiter
        except BaseException as exc:
            await self.disconnect()
            if isinstance(exc, TimeoutError):
                raise ConnectError("timeout") from None
            raise
        finally:
            self._waiter = None
            self._waiting_for = ()

    def _namespaces(self, namespaces: Iterable[str] | None, url_namespace: str) -> list[str]:
        if namespaces is not None:
            names = list(dict.fromkeys(namespaces))
            if not names:
                raise ValueError("namespaces cannot be empty")
        else:
            names = list(self._sockets)
            if url_namespace not in names and (url_namespace != "/" or not names):
                names.append(url_namespace)
        for name in names:
            if not name.startswith("/") or "," in name:
                raise ValueError(f"invalid namespace {name!r}: must start with '/' and have no ','")
        return names

    async def disconnect(self, *, grace: float = 5.0) -> None:
        """Leave every namespace, close the connection, stop reconnecting, and return once
        nothing is left running: transports closed, the HTTP session closed (if the client
        opened it), handler tasks finished (those still running after ``grace`` seconds are
        cancelled). Emits still buffered are dropped and awaited acknowledgements fail with
        :class:`~sockjet.errors.AckTimeout`. Idempotent."""
        manager = self._manager
        if manager is not None:
            for socket in list(manager.sockets.values()):
                socket.disconnect()
            if not manager.finished:
                manager.close()
            error = AckTimeout("the client disconnected")
            for socket in self._sockets.values():
                socket._drop_pending(error)
            self._fail_waiter(ConnectError("io client disconnect"))
            await self._release()
        await self._runner.drain(grace)

    async def _release(self) -> None:
        """Wait for the finished manager's cleanup, then forget it."""
        finalizer = self._finalizer
        if finalizer is not None:
            await asyncio.shield(finalizer)
        for socket in self._sockets.values():
            socket._bind(None)
        self._manager = None
        self._finalizer = None

    async def wait(self) -> None:
        """Wait until the connection is closed for good: by :meth:`disconnect`, by the server
        (every namespace disconnected), or once reconnection gave up."""
        if self._manager is None:
            return
        if self._finalizer is None:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._done_waiters.append(waiter)
            await waiter
        finalizer = self._finalizer
        if finalizer is not None:
            await asyncio.shield(finalizer)

    # -- hooks from the manager and the sockets -----------------------------------------------

    def _fail_waiter(self, error: ConnectError) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def _first_attempt_done(self, error: ConnectError | None) -> None:
        if error is not None:
            self._fail_waiter(error)

    def socket_connected(self, socket: ClientSocket) -> None:
        waiter = self._waiter
        if (
            waiter is not None
            and not waiter.done()
            and all(waiting.connected for waiting in self._waiting_for)
        ):
            waiter.set_result(None)

    def socket_failed(self, socket: ClientSocket, error: ConnectError) -> None:
        if socket in self._waiting_for:
            self._fail_waiter(error)

    def manager_event(self, event: str, args: tuple[Any, ...]) -> None:
        for handler in tuple(self._manager_handlers.get(event, ())):
            self._runner.run(handler, args)

    def manager_finished(self, manager: Manager, reason: str) -> None:
        if manager is not self._manager:
            return
        self._fail_waiter(ConnectError(reason))
        session = self._owned_session
        self._owned_session = None
        self._finalizer = asyncio.ensure_future(_finalize(manager, session))
        waiters, self._done_waiters = self._done_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


async def _finalize(manager: Manager, session: aiohttp.ClientSession | None) -> None:
    try:
        await manager.wait_closed()
    finally:
        if session is not None:
            await session.close()
