"""The Engine.IO v4 server: handshakes, sessions, and the requests the serving layer hands over.

The serving layer (native server or ASGI) calls, for every request under :attr:`EngineServer.path`:

* :meth:`EngineServer.handle_request` for plain HTTP (polling GET/POST, CORS preflight, errors);
* :meth:`EngineServer.check_websocket` before accepting a WebSocket upgrade, then
  :meth:`EngineServer.open_websocket` once the upgrade is done.

Every refused request is answered: ``{"code":N,"message":...}`` JSON with HTTP 400 (403 for
FORBIDDEN), as Node engine.io does; 503 with code 3 once the server is closing.

User hooks (``allow_request``, a CORS origin predicate) run under ``hook_timeout``: one that
fails or takes longer refuses the request (403 for ``allow_request``, 500 for the predicate)
instead of leaving it open.

Origins: see :mod:`sockjet.engine.cors`. A cross-origin request whose Origin is not allowed (by
default, every cross-origin request: CORS is closed) is refused with 403 and code 4, on polling
requests and on the WebSocket upgrade alike (cross-site WebSocket hijacking). Node only omits the
CORS headers and checks nothing on upgrades.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Final

from sockjet.engine.cookie import SessionCookie
from sockjet.engine.cors import CorsOptions, CorsPolicy
from sockjet.engine.deadlines import slot_resolution
from sockjet.engine.flow import (
    DEFAULT_MAX_BUFFERED,
    DEFAULT_SLOW_CONSUMER_TIMEOUT,
    FlowLimits,
    FlowStats,
)
from sockjet.engine.hooks import EngineHooks, call_hooks
from sockjet.engine.io import (
    EngineSocket,
    HTTPRequest,
    HTTPResponse,
    Outgoing,
    SessionHandler,
    WebSocketConnection,
    WebSocketHandler,
)
from sockjet.engine.session import Session, SessionContext
from sockjet.engine.transports.websocket import RefusedWebSocket, WebSocketTransport
from sockjet.errors import HandshakeError
from sockjet.protocol.engineio import encode_packet
from sockjet.protocol.handshake import (
    ERROR_MESSAGES,
    ErrorCode,
    check_request,
    error_body,
    handshake_error,
    open_packet,
)
from sockjet.protocol.session import SessionMachine

__all__ = ["CorsOptions", "EngineServer"]

logger = logging.getLogger("sockjet.engine")

_TRANSPORTS: Final = frozenset(("polling", "websocket"))
_JSON: Final = ("Content-Type", "application/json")
_NO_HEADERS: Final[list[tuple[str, str]]] = []
_HOOK_FAILED: Final = HTTPResponse(
    500, [("Content-Type", "text/plain; charset=utf-8")], b"Internal Server Error"
)


def _shutting_down() -> HandshakeError:
    """The answer to a handshake once the server is closing: 503 with code 3."""
    return HandshakeError(ErrorCode.BAD_REQUEST, ERROR_MESSAGES[ErrorCode.BAD_REQUEST], 503)


class EngineServer:
    """An Engine.IO v4 server, independent of how bytes reach it.

    ``on_connection`` is called with each new session (an
    :class:`~sockjet.engine.io.EngineSocket`) and returns the
    :class:`~sockjet.engine.io.SessionHandler` that receives its messages and its close.
    Times are in seconds. Limits:

    * ``max_payload``: bytes of a polling POST body (413 past it) and of a WebSocket message
      (enforced by the serving layer, which reads this attribute); advertised to clients.
    * ``max_buffered_bytes``: per-session outbound high-water mark. Over it, volatile packets
      are dropped and the slow-consumer clock runs: a session that stays over it for
      ``slow_consumer_timeout`` seconds, or whose queue would pass ``max_outbound_bytes``, is
      closed with ``"slow consumer"`` (see :mod:`sockjet.engine.flow`).
    * ``close_timeout``: how long a server-side close over polling waits for the client's next
      GET to deliver what is queued and the CLOSE packet (Node's 30 s).
    * ``hook_timeout``: the longest ``allow_request`` or a CORS origin predicate may take.
    * ``max_packets_per_poll``: most packets in one polling answer (None: all that are queued,
      as Node does). python-engineio's client (python-socketio) refuses answers of more than
      16 packets ("Unexpected packet from server"): set 16 when such clients poll.

    ``cookie``: set a session cookie on polling handshakes, for load balancers that stick by
    cookie (:class:`~sockjet.engine.cookie.SessionCookie`).
    """

    def __init__(
        self,
        on_connection: Callable[[EngineSocket], SessionHandler],
        *,
        path: str = "/socket.io/",
        ping_interval: float = 25.0,
        ping_timeout: float = 20.0,
        max_payload: int = 1_000_000,
        transports: Sequence[str] = ("polling", "websocket"),
        allow_upgrades: bool = True,
        upgrade_timeout: float = 10.0,
        cors: CorsOptions | None = None,
        allow_request: Callable[[HTTPRequest], Awaitable[bool]] | None = None,
        http_compression: bool = True,
        per_message_deflate: bool = False,
        max_buffered_bytes: int = 1_000_000,
        max_outbound_bytes: int = DEFAULT_MAX_BUFFERED,
        slow_consumer_timeout: float = DEFAULT_SLOW_CONSUMER_TIMEOUT,
        close_timeout: float = 30.0,
        hook_timeout: float = 45.0,
        max_packets_per_poll: int | None = None,
        cookie: SessionCookie | None = None,
    ) -> None:
        if isinstance(transports, str) or not transports or not set(transports) <= _TRANSPORTS:
            raise ValueError(f"transports must be a non-empty subset of {sorted(_TRANSPORTS)}")
        for name, value in (
            ("ping_interval", ping_interval),
            ("ping_timeout", ping_timeout),
            ("upgrade_timeout", upgrade_timeout),
            ("close_timeout", close_timeout),
            ("hook_timeout", hook_timeout),
            ("max_payload", max_payload),
            ("max_buffered_bytes", max_buffered_bytes),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive, not {value!r}")
        self._on_connection = on_connection
        self.path = path.rstrip("/") + "/"
        """The URL path the serving layer routes here (always with a trailing slash)."""
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_payload = max_payload
        self.transports = tuple(transports)
        self.allow_upgrades = allow_upgrades
        self.upgrade_timeout = upgrade_timeout
        self.cors = cors
        self.http_compression = http_compression
        self.per_message_deflate = per_message_deflate
        """Whether the serving layer should negotiate permessage-deflate."""
        self.max_buffered_bytes = max_buffered_bytes
        self.flow = FlowLimits(max_buffered_bytes, max_outbound_bytes, slow_consumer_timeout)
        """The outbound flow-control limits (see :mod:`sockjet.engine.flow`)."""
        self.stats = FlowStats()
        """What flow control counted: dropped volatile packets, slow consumers."""
        self.close_timeout = close_timeout
        self.hook_timeout = hook_timeout
        if max_packets_per_poll is not None and max_packets_per_poll < 1:
            raise ValueError(f"max_packets_per_poll must be at least 1, not {max_packets_per_poll}")
        self.max_packets_per_poll = max_packets_per_poll
        self.cookie = cookie
        """The session cookie set on polling handshakes (see :mod:`sockjet.engine.cookie`)."""
        self._allow_request = allow_request
        self.hooks = EngineHooks()
        """Observation hooks: sessions opened, upgraded and closed, refused requests, slow
        consumers, dropped volatile packets (see :mod:`sockjet.engine.hooks`)."""
        self._cors = CorsPolicy(cors)
        self._transport_set = frozenset(transports)
        self._upgradable = allow_upgrades and self._transport_set >= _TRANSPORTS
        self._sessions: dict[str, Session] = {}
        self._context: SessionContext | None = None  # made with the first session (needs a loop)
        self._closed = False
        self._drained: asyncio.Future[None] | None = None
        """Set once every session is gone while :meth:`close` waits for them."""
        self.sid_prefix = ""
        """What every new sid starts with: a worker of ``--workers`` names itself there (see
        :mod:`sockjet.serving.handoff`). Sids keep their length and alphabet (20 characters of
        base64url), the prefix replacing random ones."""

    # -- introspection --------------------------------------------------------------------------

    @property
    def clients_count(self) -> int:
        """Open sessions (including those finishing a close)."""
        return len(self._sessions)

    @property
    def sessions(self) -> Mapping[str, EngineSocket]:
        """The current sessions by sid (read-only view)."""
        return MappingProxyType(self._sessions)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    # -- events ---------------------------------------------------------------------------------

    def on_connection_error(
        self, handler: Callable[[HTTPRequest, HandshakeError], None]
    ) -> Callable[[HTTPRequest, HandshakeError], None]:
        """Call ``handler(request, error)`` for every refused Engine.IO request (Node's
        ``io.engine.on("connection_error")``): an unknown sid, a bad transport, a refused
        Origin or ``allow_request``... ``error.code`` and ``error.message`` are what the client
        gets. Usable as a decorator; the handler must not block (it runs inline).
        """
        self.hooks.connection_error.append(handler)
        return handler

    # -- HTTP -----------------------------------------------------------------------------------

    async def handle_request(self, request: HTTPRequest) -> HTTPResponse:
        """Answer one HTTP request: a polling GET or POST, a CORS preflight, or an error."""
        cors_headers = await self._origin_check(request)
        if cors_headers is None:
            return self._refuse(request, handshake_error(ErrorCode.FORBIDDEN), _NO_HEADERS)
        if isinstance(cors_headers, HTTPResponse):  # the origin predicate failed
            return cors_headers
        try:
            method = request.method
            if method == "OPTIONS" and self._cors.enabled:
                return HTTPResponse(204, self._cors.preflight(request, cors_headers))
            sid = self._check(request, upgrade=False)
            if sid is None:
                await self._admit(request)
                session = self._create(request, None)
                if session is None:
                    return HTTPResponse(500, list(cors_headers))
                polling = session.polling
                assert polling is not None  # a new polling session
                if self.cookie is not None:
                    cors_headers = [*cors_headers, self.cookie.header(session.sid)]
                return await polling.handle_get(request, cors_headers)
            # check_request found the session just now (no await since) on its polling transport
            polling = self._sessions[sid].polling
            assert polling is not None
            if method == "GET":
                return await polling.handle_get(request, cors_headers)
            if method == "POST":
                return await polling.handle_post(request, cors_headers)
            raise handshake_error(ErrorCode.BAD_REQUEST)
        except HandshakeError as error:
            return self._refuse(request, error, cors_headers)

    # -- WebSocket ------------------------------------------------------------------------------

    async def check_websocket(self, request: HTTPRequest) -> HTTPResponse | None:
        """Decide on a WebSocket upgrade: None to accept it, else the response to send instead.

        Applies the handshake checks, ``allow_request`` (new sessions), the Origin check, and
        refuses an upgrade the session cannot take (already on WebSocket, already upgrading,
        upgrades disabled).
        """
        cors_headers = await self._origin_check(request)
        if cors_headers is None:
            return self._refuse(request, handshake_error(ErrorCode.FORBIDDEN), _NO_HEADERS)
        if isinstance(cors_headers, HTTPResponse):  # the origin predicate failed
            return cors_headers
        try:
            sid = self._check(request, upgrade=True)
            if request.query.get("transport") != "websocket":
                # Node accepts, then closes: polling does not handle upgrades
                raise handshake_error(ErrorCode.BAD_REQUEST)
            if sid is None:
                await self._admit(request)
            # An upgrade the session cannot take (already upgraded or upgrading, closing,
            # upgrades disabled) is accepted, then closed by open_websocket, as Node does.
            return None
        except HandshakeError as error:
            return self._refuse(request, error, cors_headers)

    def open_websocket(self, request: HTTPRequest, conn: WebSocketConnection) -> WebSocketHandler:
        """Take over an accepted WebSocket: a new session, or the upgrade of a polling one."""
        sid = request.query.get("sid")
        if sid:
            session = self._sessions.get(sid)
            probe = session.begin_upgrade(conn) if session is not None else None
            if probe is None:
                # the session closed or started another upgrade since check_websocket
                conn.close(1000)
                return RefusedWebSocket()
            return probe
        if self._closed:
            conn.close(1001)
            return RefusedWebSocket()
        session = self._create(request, conn)
        if session is None:
            return RefusedWebSocket()
        active = session.active
        assert isinstance(active, WebSocketTransport)
        return active

    # -- shutdown -------------------------------------------------------------------------------

    async def close(self, grace: float = 2.0) -> None:
        """Refuse new handshakes and close every session with "forced server close". Idempotent.

        Sessions close as the client would want to see it: what is queued is flushed, a
        WebSocket gets its close frame, and a polling client gets the CLOSE packet on its pending
        GET, or on its next one if none is pending (so it sees "transport close", not an error).
        Polling sessions whose client does not come back within ``grace`` seconds are dropped.
        """
        self._closed = True
        for session in list(self._sessions.values()):
            session.close("forced server close")
        if self._sessions:
            drained = self._drained
            if drained is None:
                drained = self._drained = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(drained), grace)
            for session in list(self._sessions.values()):
                session.fail("forced server close")
        # let the polls just woken answer their CLOSE packet before returning
        await asyncio.sleep(0)

    # -- internals --------------------------------------------------------------------------

    async def _origin_check(
        self, request: HTTPRequest
    ) -> list[tuple[str, str]] | HTTPResponse | None:
        """CORS headers for the responses, None to refuse (see :mod:`sockjet.engine.cors`), or
        ``_HOOK_FAILED`` when the application's origin predicate failed or hung."""
        if "origin" not in request.headers:
            return _NO_HEADERS
        if not self._cors.calls_application:
            # nothing of the application's runs, so nothing to bound: no timer per handshake
            return await self._cors.check(request)
        try:
            async with asyncio.timeout(self.hook_timeout):
                return await self._cors.check(request)
        except Exception:
            logger.exception("the CORS origin check failed for %r", request.headers["origin"])
            return _HOOK_FAILED

    def _session_transport(self, sid: str) -> str | None:
        session = self._sessions.get(sid)
        return None if session is None else session.transport

    def _check(self, request: HTTPRequest, *, upgrade: bool) -> str | None:
        return check_request(
            method=request.method,
            query=request.query,
            upgrade=upgrade,
            transports=self._transport_set,
            session_transport=self._session_transport,
            origin=request.headers.get("origin"),
        )

    async def _allowed(self, request: HTTPRequest) -> None:
        """Run ``allow_request``; raise FORBIDDEN when it refuses (or fails)."""
        allow = self._allow_request
        if allow is None:
            return
        try:
            async with asyncio.timeout(self.hook_timeout):
                allowed = await allow(request)
        except Exception:
            # TimeoutError included: a hook that hangs must not hold the request open
            logger.exception("allow_request failed; refusing the request")
            allowed = False
        if not allowed:
            raise handshake_error(ErrorCode.FORBIDDEN)

    async def _admit(self, request: HTTPRequest) -> None:
        """May a new session open? Not while shutting down, and only if ``allow_request`` agrees.

        Raises the HandshakeError to answer with.
        """
        if self._closed:
            raise _shutting_down()
        await self._allowed(request)
        if self._closed:  # closed while allow_request ran
            raise _shutting_down()

    def _create(self, request: HTTPRequest, conn: WebSocketConnection | None) -> Session | None:
        """A new session: OPEN packet queued first, then ``on_connection``. None if it failed."""
        loop = asyncio.get_running_loop()
        sessions = self._sessions
        sid = self._new_sid()
        while sid in sessions:  # pragma: no cover - over 100 random bits
            sid = self._new_sid()
        upgradable = conn is None and self._upgradable
        machine = SessionMachine(
            loop.time(),
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            upgradable=upgradable,
            upgrade_timeout=self.upgrade_timeout,
            close_timeout=self.close_timeout,
        )
        ctx = self._context
        if ctx is None or ctx.loop is not loop:
            ctx = self._context = SessionContext(
                loop,
                max_payload=self.max_payload,
                http_compression=self.http_compression,
                flow=self.flow,
                stats=self.stats,
                on_closed=self._forget,
                max_packets_per_poll=self.max_packets_per_poll,
                hooks=self.hooks,
                deadline_resolution=slot_resolution(
                    self.ping_interval, self.ping_timeout, self.upgrade_timeout, self.close_timeout
                ),
            )
        session = Session(sid, request, ctx=ctx, machine=machine, websocket=conn)
        sessions[sid] = session
        packet = open_packet(
            sid,
            upgrades=["websocket"] if upgradable else [],
            ping_interval_ms=round(self.ping_interval * 1000),
            ping_timeout_ms=round(self.ping_timeout * 1000),
            max_payload=self.max_payload,
        )
        session.active.send(Outgoing(encode_packet(packet)), False)
        try:
            handler = self._on_connection(session)
        except Exception:
            logger.exception("on_connection failed; closing session %s", sid)
            session.fail("forced close")
            return None
        session.attach(handler)
        opened = self.hooks.session_opened
        if opened:
            call_hooks(opened, session)
        return session

    def _new_sid(self) -> str:
        prefix = self.sid_prefix
        return prefix + secrets.token_urlsafe(15)[len(prefix) :]

    def _forget(self, session: Session) -> None:
        self._sessions.pop(session.sid, None)
        closed = self.hooks.session_closed
        if closed:
            call_hooks(closed, session, session.machine.close_reason)
        drained = self._drained
        if drained is not None and not self._sessions and not drained.done():
            drained.set_result(None)

    def _refuse(
        self, request: HTTPRequest, error: HandshakeError, cors_headers: list[tuple[str, str]]
    ) -> HTTPResponse:
        hooks = self.hooks.connection_error
        if hooks:
            call_hooks(hooks, request, error)
        return HTTPResponse(error.status, [_JSON, *cors_headers], error_body(error))
