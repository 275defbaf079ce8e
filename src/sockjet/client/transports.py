"""The Engine.IO client's transports: HTTP long-polling and WebSocket, on aiohttp.

A transport moves Engine.IO packets and reports to its listener (the engine client) through four
synchronous callbacks: open, packets, drain (idle again after a write) and closed. It owns its
tasks (polling: the GET loop and the current POST; WebSocket: the reader and the current write)
and :meth:`Transport.wait_closed` returns once all of them are finished.

``send()`` always accepts packets (they queue behind a write in flight); :attr:`writable` says
whether the transport is idle, which is what the engine batches on, as in engine.io-client.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import aiohttp

from sockjet.client.errors import TransportError
from sockjet.protocol.engineio import (
    PROTOCOL_VERSION,
    Packet,
    PacketType,
    decode_packet,
    decode_payload,
    encode_packet,
    encode_payload,
)

__all__ = [
    "CLOSE_TIMEOUT",
    "HTTPOptions",
    "HTTPTransports",
    "PollingTransport",
    "Transport",
    "TransportFactory",
    "TransportListener",
    "WebSocketTransport",
]

logger = logging.getLogger("sockjet.client")

CLOSE_TIMEOUT: Final = 2.0
"""Seconds a closing transport waits for the server (the CLOSE request, the WebSocket closing
handshake) before it drops the connection."""

_EIO: Final = str(PROTOCOL_VERSION)
_TEXT_PLAIN: Final = {"Content-Type": "text/plain;charset=UTF-8"}
_CLOSE_BODY: Final = b"1"

# Transport states
_IDLE: Final = 0  # created, not opened
_CONNECTING: Final = 1
_OPEN: Final = 2
_CLOSED: Final = 3


class TransportListener(Protocol):
    """What a transport reports to (the engine client)."""

    def transport_open(self, transport: Transport) -> None:
        """The transport is connected (a WebSocket after its handshake)."""
        ...

    def transport_packets(self, transport: Transport, packets: list[Packet]) -> None:
        """Packets arrived, in order (never a CLOSE: that ends the transport instead)."""
        ...

    def transport_drain(self, transport: Transport) -> None:
        """Everything sent so far is written; the transport is :attr:`~Transport.writable`."""
        ...

    def transport_closed(self, transport: Transport, error: TransportError | None) -> None:
        """The transport ended by itself: closed by the server (``error`` None) or failed."""
        ...


class Transport(Protocol):
    """One Engine.IO transport of one connection."""

    __slots__ = ()

    @property
    def name(self) -> str:
        """``"polling"`` or ``"websocket"``."""
        ...

    @property
    def buffered_amount(self) -> int:
        """Bytes handed to this transport and not yet written (a POST in flight counts until
        its answer: the server may hold it to slow a fast client down)."""
        ...

    @property
    def writable(self) -> bool:
        """Open and not writing: a :meth:`send` now goes out at once."""
        ...

    def open(self, listener: TransportListener) -> None:
        """Start connecting; report to ``listener`` from now on."""
        ...

    def set_sid(self, sid: str) -> None:
        """The session id the server gave in its OPEN packet (sent with every request)."""
        ...

    def send(self, packets: Sequence[Packet]) -> None:
        """Queue packets for writing, after whatever is being written."""
        ...

    async def pause(self) -> None:
        """Stop receiving and wait until nothing is in flight (polling, before an upgrade)."""
        ...

    def resume(self) -> None:
        """Undo :meth:`pause` (an upgrade that failed after the pause)."""
        ...

    def close(self, *, notify: bool = True) -> None:
        """Stop now; with ``notify``, tell the server (polling: a CLOSE packet). Idempotent; the
        listener is not called back."""
        ...

    async def wait_closed(self) -> None:
        """Return once every task of this transport has finished (after :meth:`close`)."""
        ...


TransportFactory = Callable[[str, "str | None"], Transport]
"""``factory(name, sid)``: a new transport ``name`` for session ``sid`` (None: a handshake)."""


@dataclass(frozen=True, slots=True)
class HTTPOptions:
    """Where and how the transports of one connection reach the server."""

    url: str
    """``http://host:port`` or ``https://host:port`` (no path)."""
    path: str = "/socket.io/"
    query: Mapping[str, str] = field(default_factory=dict)
    """Extra query parameters for every request."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra headers for every request and the WebSocket handshake."""
    max_payload: int = 100_000_000
    """Largest polling body / WebSocket message accepted from the server, in bytes."""
    connect_timeout: float | None = 20.0
    """Seconds to establish a TCP connection (the manager bounds the whole handshake too)."""
    ssl: Any = True
    """aiohttp's ``ssl`` argument: True (verify), False (do not), or an ``ssl.SSLContext``."""


def _failure(message: str, exc: BaseException) -> TransportError:
    if isinstance(exc, TransportError):
        return exc
    error = TransportError(message, description=f"{type(exc).__name__}: {exc}".rstrip(": "))
    error.__cause__ = exc
    return error


async def _gather(tasks: Callable[[], Sequence[asyncio.Task[None] | None]]) -> None:
    # Looks again after each wait: a finishing task may have started another (a POST's end
    # starts the next POST, a close starts the CLOSE request).
    while running := [task for task in tasks() if task is not None and not task.done()]:
        await asyncio.gather(*running, return_exceptions=True)


def _cancel_others(*tasks: asyncio.Task[None] | None) -> None:
    # A transport may be closed from inside its own task (a listener callback): that task sees
    # the closed state and returns by itself; cancelling it would cut its cleanup short.
    current = asyncio.current_task()
    for task in tasks:
        if task is not None and task is not current:
            task.cancel()


class _BaseTransport(Transport):
    """What both transports share: where the server is, the session id, the state and the
    listener told once when the transport ends by itself."""

    __slots__ = ("_listener", "_options", "_session", "_sid", "_state")

    def __init__(
        self, session: aiohttp.ClientSession, options: HTTPOptions, sid: str | None = None
    ) -> None:
        self._session = session
        self._options = options
        self._sid = sid
        self._state = _IDLE
        self._listener: TransportListener | None = None

    def set_sid(self, sid: str) -> None:
        self._sid = sid

    def _query(self) -> dict[str, str]:
        """The query string of every request: the user's parameters, then Engine.IO's."""
        params = dict(self._options.query)
        params["EIO"] = _EIO
        params["transport"] = self.name
        if self._sid is not None:
            params["sid"] = self._sid
        return params

    def _fail(self, error: TransportError | None) -> None:
        """End by itself: closed by the server (``error`` None) or failed."""
        if self._state != _CLOSED:
            self._state = _CLOSED
            assert self._listener is not None
            self._listener.transport_closed(self, error)


_timestamps = itertools.count()


class PollingTransport(_BaseTransport):
    """HTTP long-polling: one GET at a time for receiving, one POST at a time for sending."""

    __slots__ = ("_close_task", "_in_flight", "_outbox", "_pausing", "_poll_task", "_post_task")

    name: Final = "polling"

    def __init__(
        self, session: aiohttp.ClientSession, options: HTTPOptions, sid: str | None = None
    ) -> None:
        super().__init__(session, options, sid)
        self._outbox: list[Packet] = []
        self._in_flight = 0  # bytes of the POST waiting for its answer
        self._pausing = False
        self._poll_task: asyncio.Task[None] | None = None
        self._post_task: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None

    @property
    def writable(self) -> bool:
        return self._state == _OPEN and self._post_task is None

    @property
    def buffered_amount(self) -> int:
        return self._in_flight + sum(_size(packet.data) for packet in self._outbox)

    def open(self, listener: TransportListener) -> None:
        self._listener = listener
        self._state = _OPEN
        self._poll_task = asyncio.create_task(self._poll_loop(), name="sockjet-client-poll")

    def send(self, packets: Sequence[Packet]) -> None:
        self._outbox.extend(packets)
        if self._post_task is None and self._state == _OPEN:
            self._post_task = asyncio.create_task(self._post_loop(), name="sockjet-client-post")

    async def pause(self) -> None:
        self._pausing = True
        running = [t for t in (self._poll_task, self._post_task) if t is not None and not t.done()]
        if running:
            await asyncio.wait(running)

    def resume(self) -> None:
        self._pausing = False
        if self._state == _OPEN and (self._poll_task is None or self._poll_task.done()):
            self._poll_task = asyncio.create_task(self._poll_loop(), name="sockjet-client-poll")

    def close(self, *, notify: bool = True) -> None:
        was_open = self._state == _OPEN
        self._state = _CLOSED
        self._outbox = []
        if notify and was_open and self._sid is not None and self._close_task is None:
            # The pending GET is left to finish: the server answers it once it has the CLOSE
            # (aborting it would look like a poll abandoned halfway, a transport error).
            _cancel_others(self._post_task)
            self._close_task = asyncio.create_task(self._post_close(), name="sockjet-client-close")
        else:
            _cancel_others(self._poll_task, self._post_task)

    async def wait_closed(self) -> None:
        await _gather(lambda: (self._poll_task, self._post_task, self._close_task))

    # -- tasks --------------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        try:
            while self._state == _OPEN and not self._pausing:
                body = await self._request("GET")
                packets = decode_payload(body, max_payload=self._options.max_payload)
                if self._state != _OPEN:
                    return
                closed = False
                for index, packet in enumerate(packets):
                    if packet.type is PacketType.CLOSE:  # the server closed the session
                        del packets[index:]
                        closed = True
                        break
                assert self._listener is not None
                if packets:
                    self._listener.transport_packets(self, packets)
                if closed and self._state == _OPEN:
                    self._state = _CLOSED
                    self._listener.transport_closed(self, None)
                    return
        except Exception as exc:
            self._fail(_failure("xhr poll error", exc))

    async def _post_loop(self) -> None:
        try:
            while self._outbox and self._state == _OPEN:
                packets, self._outbox = self._outbox, []
                body = encode_payload(packets).encode()
                self._in_flight = len(body)
                await self._request("POST", body)
                self._in_flight = 0
        except Exception as exc:
            self._post_task = None
            self._in_flight = 0
            self._fail(_failure("xhr post error", exc))
            return
        self._post_task = None
        if self._state == _OPEN and self._listener is not None:
            self._listener.transport_drain(self)

    async def _post_close(self) -> None:
        # Best effort: the server learns at once that the client left ("transport close").
        poll = self._poll_task
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._request("POST", _CLOSE_BODY)
                if poll is not None and not poll.done():
                    await asyncio.wait([poll])
        except Exception:
            logger.debug("polling CLOSE not delivered", exc_info=True)
        finally:
            if poll is not None:
                poll.cancel()

    async def _request(self, method: str, body: bytes | None = None) -> bytes:
        options = self._options
        params = self._query()
        params["t"] = format(next(_timestamps), "x")  # cache busting, as the JS client does
        headers = dict(options.headers)
        if body is not None:
            headers.update(_TEXT_PLAIN)
        async with self._session.request(
            method,
            options.url + options.path,
            params=params,
            data=body,
            headers=headers,
            ssl=options.ssl,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=options.connect_timeout),
        ) as response:
            if response.status != 200:
                detail = await response.content.read(256)
                raise TransportError(
                    "xhr post error" if body is not None else "xhr poll error",
                    description=f"HTTP {response.status} {detail.decode('utf-8', 'replace')}",
                )
            return await _read_limited(response, options.max_payload)


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, refused past ``limit`` bytes before it is all in memory."""
    length = response.content_length
    if length is not None and length > limit:
        raise TransportError("xhr poll error", description=f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise TransportError("xhr poll error", description=f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class WebSocketTransport(_BaseTransport):
    """One WebSocket: one Engine.IO packet per message, binary MESSAGEs as binary frames."""

    __slots__ = ("_outbox", "_run_task", "_write_task", "_ws")

    name: Final = "websocket"

    def __init__(
        self, session: aiohttp.ClientSession, options: HTTPOptions, sid: str | None = None
    ) -> None:
        super().__init__(session, options, sid)
        self._outbox: list[str | bytes] = []
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._write_task: asyncio.Task[None] | None = None

    @property
    def writable(self) -> bool:
        return self._state == _OPEN and self._write_task is None

    @property
    def buffered_amount(self) -> int:
        return sum(map(len, self._outbox))

    def open(self, listener: TransportListener) -> None:
        self._listener = listener
        self._state = _CONNECTING
        self._run_task = asyncio.create_task(self._run(), name="sockjet-client-websocket")

    def send(self, packets: Sequence[Packet]) -> None:
        self._outbox.extend([encode_packet(packet) for packet in packets])
        if self._write_task is None and self._state == _OPEN:
            self._write_task = asyncio.create_task(self._write(), name="sockjet-client-write")

    async def pause(self) -> None:
        """Nothing to pause: a WebSocket is never upgraded."""

    def resume(self) -> None:
        """Nothing to resume."""

    def close(self, *, notify: bool = True) -> None:
        # ``notify`` is implicit here: closing the WebSocket is the notice.
        self._state = _CLOSED
        self._outbox = []
        _cancel_others(self._write_task, self._run_task)

    async def wait_closed(self) -> None:
        await _gather(lambda: (self._run_task, self._write_task))

    # -- tasks --------------------------------------------------------------------------------

    def _url(self) -> str:
        options = self._options
        url = options.url
        scheme = "wss" if url.startswith("https:") else "ws"
        return scheme + url[url.index(":") :] + options.path

    async def _run(self) -> None:
        options = self._options
        try:
            ws = await self._session.ws_connect(
                self._url(),
                params=self._query(),
                headers=options.headers,
                max_msg_size=options.max_payload,
                autoping=True,
                ssl=options.ssl,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT),
            )
        except Exception as exc:
            self._fail(_failure("websocket error", exc))
            return
        self._ws = ws
        try:
            if self._state != _CONNECTING:
                return  # closed while connecting
            self._state = _OPEN
            assert self._listener is not None
            self._listener.transport_open(self)
            await self._read(ws)
        finally:
            await ws.close()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        assert self._listener is not None
        text, binary = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY
        while self._state == _OPEN:
            message = await ws.receive()
            kind = message.type
            if kind is text or kind is binary:
                try:
                    packet = decode_packet(message.data)
                except Exception as exc:
                    self._fail(_failure("websocket error", exc))
                    return
                if packet.type is PacketType.CLOSE:
                    self._fail(None)
                    return
                self._listener.transport_packets(self, [packet])
            elif kind is aiohttp.WSMsgType.ERROR:
                self._fail(_failure("websocket error", message.data))
                return
            elif kind in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
            ):
                self._fail(None)
                return

    async def _write(self) -> None:
        ws = self._ws
        assert ws is not None
        outbox = self._outbox
        try:
            while outbox:
                frame = outbox[0]
                # aiohttp's send waits while the socket's buffer is full: the frame counts as
                # buffered until it returns
                if isinstance(frame, str):
                    await ws.send_str(frame)
                else:
                    await ws.send_bytes(frame)
                del outbox[0]
        except Exception as exc:
            self._write_task = None
            self._fail(_failure("websocket error", exc))
            return
        self._write_task = None
        if self._state == _OPEN and self._listener is not None:
            self._listener.transport_drain(self)


def _size(data: Any) -> int:
    return len(data) if isinstance(data, str | bytes) else 0


class HTTPTransports:
    """The default :data:`TransportFactory`: aiohttp transports sharing one ``ClientSession``."""

    __slots__ = ("options", "session")

    def __init__(self, session: aiohttp.ClientSession, options: HTTPOptions) -> None:
        self.session = session
        self.options = options

    def __call__(self, name: str, sid: str | None) -> Transport:
        if name == "polling":
            return PollingTransport(self.session, self.options, sid)
        if name == "websocket":
            return WebSocketTransport(self.session, self.options, sid)
        raise ValueError(f"unknown transport {name!r}")
