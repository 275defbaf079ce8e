"""Peers written by others, driven from asyncio tests.

* :class:`NodePuppet` runs ``node/puppet.js``, one long-lived Node process that drives any number
  of official ``socket.io-client`` 4.x instances over JSON lines; each :class:`NodeClient` is the
  Python handle of one of them.
* :class:`NodeSocketIOServer` runs Node's own ``socket.io`` server (the reference implementation)
  from a small inline script, to self-test the puppet and to serve as a peer for sockjet's client.
* :class:`Recorder` collects what sockjet's handlers observed, for tests to await.

Every wait has a timeout and reports what *did* arrive when it expires, so a broken server fails a
test quickly and legibly instead of hanging CI. When Node dies, every pending wait fails at once
with its stderr.
"""

# Every wait here takes its own `timeout`: bounding each wait is the point of this harness.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from orphans import die_with_parent

__all__ = [
    "JS_ROOT",
    "AckTimeoutError",
    "ConnectError",
    "NodeClient",
    "NodePuppet",
    "NodeSocketIOServer",
    "PuppetError",
    "Received",
    "Recorder",
    "Serve",
    "from_wire",
    "node_available",
    "to_wire",
]

HERE = Path(__file__).resolve().parent
PUPPET_JS = HERE / "node" / "puppet.js"
JS_ROOT = HERE.parent / "js"
NODE_MODULES = JS_ROOT / "node_modules"
DEFAULT_TIMEOUT = 5.0
# One stdout line carries a whole event, binary included (base64): allow large ones.
LINE_LIMIT = 64 * 1024 * 1024


Serve = Callable[[Any], Awaitable[str]]
"""The ``serve`` fixture: ``url = await serve(io)`` serves a sockjet Server on 127.0.0.1 (a free
port) for one test and closes it after."""


def node_available() -> bool:
    """True when ``node`` and the npm packages in tests/js are installed."""
    return shutil.which("node") is not None and (NODE_MODULES / "socket.io-client").is_dir()


def to_wire(value: Any) -> Any:
    """Python -> puppet JSON: bytes-like values become ``{"$bin": base64}``."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bin": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(k): to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    return value


def from_wire(value: Any) -> Any:
    """Puppet JSON -> Python: ``{"$bin": base64}`` becomes ``bytes``."""
    if isinstance(value, dict):
        if len(value) == 1 and "$bin" in value:
            return base64.b64decode(value["$bin"])
        return {k: from_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    return value


class PuppetError(RuntimeError):
    """Node crashed, a command failed, or an expected report did not arrive in time."""


class ConnectError(Exception):
    """The client's ``connect_error``: ``message`` and ``data`` as the official client saw them."""

    def __init__(self, message: str, data: Any, description: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        self.description = description


class AckTimeoutError(Exception):
    """The client's own ack timeout fired (``socket.timeout(ms).emit(..., cb)``)."""


@dataclass(frozen=True, slots=True)
class Received:
    """One event the client received: its name, decoded args and, if the server asked for an
    ack and no automatic reply was registered, the id to answer it with :meth:`NodeClient.ack`."""

    event: str
    args: list[Any]
    ack_id: int | None


class _Mailbox:
    """Reports keyed by name, each consumed once, awaited (never polled)."""

    __slots__ = ("_failure", "_items", "_waiters", "history")

    def __init__(self) -> None:
        self._items: dict[str, deque[Any]] = {}
        # A waiter may wait on several keys at once; it resolves to (key, item).
        self._waiters: dict[str, deque[asyncio.Future[tuple[str, Any]]]] = {}
        self._failure: BaseException | None = None
        self.history: list[tuple[str, Any]] = []

    def put(self, key: str, item: Any) -> None:
        self.history.append((key, item))
        waiters = self._waiters.get(key)
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result((key, item))
                return
        self._items.setdefault(key, deque()).append(item)

    def pending(self, key: str) -> int:
        return len(self._items.get(key, ()))

    def fail(self, exc: BaseException) -> None:
        self._failure = exc
        for waiters in self._waiters.values():
            for fut in waiters:
                if not fut.done():
                    fut.set_exception(exc)
        self._waiters.clear()

    async def get(self, key: str, timeout: float, what: str) -> Any:
        return (await self.get_any((key,), timeout, what))[1]

    async def get_any(self, keys: Sequence[str], timeout: float, what: str) -> tuple[str, Any]:
        for key in keys:
            items = self._items.get(key)
            if items:
                return key, items.popleft()
        if self._failure is not None:
            raise self._failure
        fut: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()
        for key in keys:
            self._waiters.setdefault(key, deque()).append(fut)
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            seen = [k for k, _ in self.history[-20:]]
            raise PuppetError(f"{what}: nothing within {timeout}s (last reports: {seen})") from None
        finally:
            for key in keys:
                waiters = self._waiters.get(key)
                if waiters is not None and fut in waiters:
                    waiters.remove(fut)


class Recorder:
    """What server-side handlers observed, for tests to await: handlers ``put`` (synchronously),
    tests ``await get`` with a timeout. Keys are free-form (``"disconnect"``, ``"chat"``...)."""

    __slots__ = ("_mail", "timeout")

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._mail = _Mailbox()
        self.timeout = timeout

    def put(self, key: str, value: Any = None) -> None:
        self._mail.put(key, value)

    async def get(self, key: str, timeout: float | None = None) -> Any:
        """The next unconsumed value recorded under ``key``."""
        wait = self.timeout if timeout is None else timeout
        return await self._mail.get(key, wait, f"server-side {key!r}")

    def pending(self, key: str) -> int:
        return self._mail.pending(key)

    @property
    def history(self) -> list[tuple[str, Any]]:
        return self._mail.history


class _LineProcess:
    """A Node child process that speaks JSON lines on stdout; stderr kept for diagnostics."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr_tail: deque[str] = deque(maxlen=200)
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    async def _spawn(self, *args: str, env: Mapping[str, str] | None = None) -> None:
        node = shutil.which("node")
        if node is None or not NODE_MODULES.is_dir():
            raise PuppetError("node or tests/js/node_modules missing (run ./dev setup)")
        full_env = dict(os.environ)
        full_env["NODE_PATH"] = str(NODE_MODULES)
        full_env.update(env or {})
        self.proc = await asyncio.create_subprocess_exec(
            node,
            *args,
            cwd=JS_ROOT,
            env=full_env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=LINE_LIMIT,
            preexec_fn=die_with_parent,
        )
        self._tasks = [
            asyncio.create_task(self._read_stdout(), name=f"{self.name}-stdout"),
            asyncio.create_task(self._read_stderr(), name=f"{self.name}-stderr"),
        ]

    def stderr_text(self) -> str:
        return "\n".join(self.stderr_tail) or "(empty)"

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.stderr_tail.append(raw.decode("utf-8", "replace").rstrip())

    async def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            async for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").strip()
                if not line:
                    continue
                try:
                    msg = json.loads(line)
                except ValueError:
                    self.stderr_tail.append(f"[stdout, not JSON] {line}")
                    continue
                self._on_line(msg)
        finally:
            code = await self.proc.wait()
            # Let stderr drain so the failure message carries Node's last words.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._tasks[1]), 1.0)
            if not self._closing:
                self._on_exit(
                    PuppetError(
                        f"{self.name} exited with code {code}; stderr:\n{self.stderr_text()}"
                    )
                )

    def _on_line(self, msg: dict[str, Any]) -> None:
        raise NotImplementedError

    def _on_exit(self, exc: PuppetError) -> None:
        raise NotImplementedError

    async def _stop(self, graceful: bytes | None, timeout: float = 3.0) -> None:
        """Stop the process: write ``graceful`` (may be empty) and close stdin so it exits on
        its own, or terminate it when ``graceful`` is None; kill it if it lingers."""
        self._closing = True
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            if graceful is not None and proc.stdin is not None:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    if graceful:
                        proc.stdin.write(graceful)
                        await proc.stdin.drain()
                proc.stdin.close()
            else:
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class NodePuppet(_LineProcess):
    """One Node process driving official socket.io-client instances.

    ``async with NodePuppet() as p: c = await p.connect(url)``. Commands are executed by Node in
    the order they are sent, so an ``on_ack_reply`` registered before an ``emit`` is in place
    before the emit leaves.
    """

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__("node puppet")
        self.timeout = timeout
        self.client_version = ""
        self._next_id = 1
        self._next_client = 1
        self._calls: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._clients: dict[str, NodeClient] = {}
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._failure: PuppetError | None = None
        self._deferred: list[str] = []

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start Node and wait until the puppet announced it is ready."""
        self._ready = asyncio.get_running_loop().create_future()
        self._calls[0] = self._ready
        await self._spawn(str(PUPPET_JS))
        try:
            hello = await asyncio.wait_for(asyncio.shield(self._ready), 15.0)
        except TimeoutError:
            await self._stop(None)
            raise PuppetError(f"puppet did not start; stderr:\n{self.stderr_text()}") from None
        self.client_version = str(hello.get("version", ""))

    async def close(self) -> None:
        """Close every client and stop Node."""
        await self._stop(b'{"id": -1, "cmd": "exit"}\n')

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and self._failure is None

    # -- plumbing ------------------------------------------------------------------------------

    def _on_line(self, msg: dict[str, Any]) -> None:
        if "client" in msg and "type" in msg:
            client = self._clients.get(msg["client"])
            if client is not None:
                client._report(msg)
            return
        fut = self._calls.pop(msg.get("id", -2), None)
        if fut is not None and not fut.done():
            fut.set_result(msg)
        elif not msg.get("ok", True):
            self._deferred.append(str(msg.get("error")))

    def _on_exit(self, exc: PuppetError) -> None:
        self._failure = exc
        for fut in self._calls.values():
            if not fut.done():
                fut.set_exception(exc)
        self._calls.clear()
        for client in self._clients.values():
            client._mail.fail(exc)

    def _send(self, cmd: str, **fields: Any) -> asyncio.Future[dict[str, Any]]:
        if self._failure is not None:
            raise self._failure
        if self._deferred:
            errors, self._deferred = self._deferred, []
            raise PuppetError(f"earlier puppet command failed: {errors}")
        assert self.proc is not None and self.proc.stdin is not None, "puppet not started"
        call_id = self._next_id
        self._next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = fut
        line = json.dumps({"id": call_id, "cmd": cmd, **fields}) + "\n"
        self.proc.stdin.write(line.encode())
        return fut

    async def call(self, cmd: str, *, wait: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send one command and await its reply (at most ``wait`` seconds); a failed command
        raises :class:`PuppetError`, a client-side ack timeout :class:`AckTimeoutError`."""
        fut = self._send(cmd, **fields)
        limit = self.timeout if wait is None else wait
        try:
            reply = await asyncio.wait_for(fut, limit)
        except TimeoutError:
            raise PuppetError(f"puppet command {cmd!r} got no reply within {limit}s") from None
        if not reply.get("ok"):
            if reply.get("timeout"):
                raise AckTimeoutError(reply.get("error"))
            raise PuppetError(f"puppet command {cmd!r} failed: {reply.get('error')}")
        return reply

    def post(self, cmd: str, **fields: Any) -> None:
        """Send a command without awaiting it; a failure is raised by the next command."""
        fut = self._send(cmd, **fields)

        def done(f: asyncio.Future[dict[str, Any]]) -> None:
            if not f.cancelled() and f.exception() is None and not f.result().get("ok"):
                self._deferred.append(f"{cmd}: {f.result().get('error')}")

        fut.add_done_callback(done)

    # -- clients -------------------------------------------------------------------------------

    async def connect(
        self,
        url: str,
        nsp: str = "/",
        *,
        wait: bool = True,
        share: NodeClient | None = None,
        ack_replies: Mapping[str, Sequence[Any]] | None = None,
        timeout: float | None = None,
        urls: Sequence[str] | None = None,
        **options: Any,
    ) -> NodeClient:
        """Open one official client on ``url`` + ``nsp``.

        ``options`` go to ``io(url, options)`` as they are (``transports``, ``upgrade``,
        ``auth``, ``query``, ``extraHeaders``, ``path``, ``withCredentials``...); the puppet
        defaults to ``reconnection: false, forceNew: true``. ``share`` multiplexes this namespace
        over another client's connection. ``ack_replies`` answers server acks from the first
        packet on. ``urls`` (with ``reconnection``): each reconnection attempt goes to the next
        server of that list (``url`` should be its first). With ``wait`` (default) returns once connected and raises
        :class:`ConnectError` on ``connect_error``.
        """
        handle = f"c{self._next_client}"
        self._next_client += 1
        client = NodeClient(self, handle, nsp)
        self._clients[handle] = client
        fields: dict[str, Any] = {
            "client": handle,
            "url": url,
            "nsp": nsp,
            "options": to_wire(options),
            "ack_replies": {k: to_wire(list(v)) for k, v in (ack_replies or {}).items()},
        }
        if share is not None:
            fields["share"] = share.handle
        if urls:
            fields["urls"] = list(urls)
        await self.call("connect", **fields)
        if wait:
            await client.wait_connect(timeout=timeout)
        return client


class NodeClient:
    """One official socket.io-client socket inside the puppet."""

    __slots__ = ("_mail", "handle", "id", "nsp", "puppet", "recovered")

    def __init__(self, puppet: NodePuppet, handle: str, nsp: str) -> None:
        self.puppet = puppet
        self.handle = handle
        self.nsp = nsp
        self.id: str | None = None
        self.recovered = False
        """``socket.recovered`` at the last connect (connection state recovery)."""
        self._mail = _Mailbox()

    def __repr__(self) -> str:
        return f"<NodeClient {self.handle} nsp={self.nsp} id={self.id}>"

    def _report(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "event":
            item = Received(msg["event"], from_wire(msg["args"]), msg.get("ack_id"))
            self._mail.put("event:" + item.event, item)
        else:
            if kind == "connect":
                self.id = msg.get("id")
                self.recovered = bool(msg.get("recovered"))
            self._mail.put("$" + kind, msg)

    def _timeout(self, timeout: float | None) -> float:
        return self.puppet.timeout if timeout is None else timeout

    @property
    def history(self) -> list[tuple[str, Any]]:
        """Every report so far, in arrival order, as (key, payload)."""
        return self._mail.history

    # -- lifecycle -----------------------------------------------------------------------------

    async def wait_connect(self, timeout: float | None = None) -> str:
        """Wait for ``connect`` (returns the socket id); raise :class:`ConnectError` instead if
        ``connect_error`` comes first."""
        key, msg = await self._mail.get_any(
            ("$connect", "$connect_error"), self._timeout(timeout), f"{self} connect"
        )
        if key == "$connect_error":
            raise ConnectError(msg["message"], from_wire(msg.get("data")), msg.get("description"))
        return str(msg["id"])

    async def wait_connect_error(self, timeout: float | None = None) -> ConnectError:
        """Wait for ``connect_error`` and return it (message, data)."""
        err = await self._mail.get(
            "$connect_error", self._timeout(timeout), f"{self} connect_error"
        )
        return ConnectError(err["message"], from_wire(err.get("data")), err.get("description"))

    async def wait_disconnect(self, timeout: float | None = None) -> str:
        """Wait for ``disconnect`` and return its reason (e.g. ``"io server disconnect"``)."""
        msg = await self._mail.get("$disconnect", self._timeout(timeout), f"{self} disconnect")
        return str(msg["reason"])

    async def wait_upgrade(self, timeout: float | None = None) -> str:
        """Wait for the engine's ``upgrade`` event and return the new transport's name."""
        msg = await self._mail.get("$upgrade", self._timeout(timeout), f"{self} upgrade")
        return str(msg["transport"])

    async def wait_ping(self, timeout: float | None = None) -> None:
        """Wait for the next Engine.IO ping from the server (answered by the client unless
        frozen): a heartbeat observed, not slept through."""
        await self._mail.get("$ping", self._timeout(timeout), f"{self} ping")

    async def wait_engine_close(self, timeout: float | None = None) -> str:
        """Wait for the Engine.IO connection's ``close`` and return its reason."""
        msg = await self._mail.get("$engine_close", self._timeout(timeout), f"{self} engine close")
        return str(msg["reason"])

    # -- events --------------------------------------------------------------------------------

    async def next_event(self, event: str, timeout: float | None = None) -> list[Any]:
        """The args of the next (not yet consumed) ``event`` received."""
        return (await self.next_received(event, timeout)).args

    async def next_received(self, event: str, timeout: float | None = None) -> Received:
        """Like :meth:`next_event`, with the ack id when the server asked for an ack."""
        item: Received = await self._mail.get(
            "event:" + event, self._timeout(timeout), f"{self} event {event!r}"
        )
        return item

    def pending(self, event: str) -> int:
        """How many ``event`` arrived and were not consumed yet (assert 0 after a sentinel)."""
        return self._mail.pending("event:" + event)

    async def emit(self, event: str, *args: Any, volatile: bool = False) -> None:
        """``socket.emit(event, ...args)``; returns once the client has queued it."""
        await self.puppet.call(
            "emit", client=self.handle, event=event, args=to_wire(args), volatile=volatile
        )

    async def emit_many(self, items: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """Emit several events in one synchronous run (polling batches them in one POST)."""
        wire = [{"event": e, "args": to_wire(list(a))} for e, a in items]
        await self.puppet.call("emit_batch", client=self.handle, items=wire)

    async def emit_with_ack(
        self, event: str, *args: Any, timeout: float | None = None, wait: float | None = None
    ) -> list[Any]:
        """Emit with an ack callback and return the ack's args.

        ``timeout`` (seconds) uses the client's own ``socket.timeout(ms)``: expiry raises
        :class:`AckTimeoutError`. ``wait`` bounds the Python-side wait otherwise.
        """
        fields: dict[str, Any] = {"client": self.handle, "event": event, "args": to_wire(args)}
        fields["ack"] = True
        if timeout is not None:
            fields["timeout"] = int(timeout * 1000)
        limit = wait if wait is not None else (timeout or 0) + self.puppet.timeout
        reply = await self.puppet.call("emit", wait=limit, **fields)
        result: list[Any] = from_wire(reply["ack"])
        return result

    def on_ack_reply(
        self, event: str, reply_args: Sequence[Any] = (), *, echo: bool = False
    ) -> None:
        """When ``event`` arrives with an ack callback, answer with ``reply_args`` (or with the
        event's own args when ``echo``). Takes effect before any command sent after it."""
        self.puppet.post(
            "on_ack_reply",
            client=self.handle,
            event=event,
            args=to_wire(list(reply_args)),
            echo=echo,
        )

    async def emit_burst(
        self, event: str, count: int, *args: Any, wait: float | None = None
    ) -> list[Any]:
        """Emit ``event(*args, i)`` for i in range(count) with acks, in one synchronous run
        (over polling they leave in as few POSTs as the client makes), and return the ack
        values in order once all came back; a disconnect before raises :class:`PuppetError`."""
        reply = await self.puppet.call(
            "emit_burst",
            wait=self._timeout(wait),
            client=self.handle,
            event=event,
            count=count,
            args=to_wire(list(args)),
        )
        acks: list[Any] = from_wire(reply["acks"])
        return acks

    async def count_events(self, event: str) -> None:
        """From now on count ``event`` instead of reporting each one (for floods)."""
        await self.puppet.call("count_events", client=self.handle, event=event)

    async def wait_count(
        self, event: str, count: int, timeout: float | None = None
    ) -> tuple[int, int]:
        """Wait until ``count`` ``event`` were counted; returns (count, payload bytes). A
        disconnect first raises :class:`PuppetError`."""
        limit = self._timeout(timeout)
        reply = await self.puppet.call(
            "wait_count", wait=limit, client=self.handle, event=event, count=count
        )
        return int(reply["count"]), int(reply["bytes"])

    async def counted(self, event: str) -> tuple[int, int]:
        """(count, payload bytes) of ``event`` so far (see :meth:`count_events`)."""
        reply = await self.puppet.call("counted", client=self.handle, event=event)
        return int(reply["count"]), int(reply["bytes"])

    async def stall(self) -> None:
        """Stop reading the WebSocket's TCP socket: alive, but taking nothing."""
        await self.puppet.call("stall", client=self.handle)

    async def ack(self, ack_id: int, *args: Any) -> None:
        """Answer a server ack received without an automatic reply (see :class:`Received`)."""
        await self.puppet.call("ack", client=self.handle, ack_id=ack_id, args=to_wire(args))

    # -- state and faults ----------------------------------------------------------------------

    async def state(self) -> dict[str, Any]:
        """``{"connected", "id", "engine_id", "transport", "ready_state"}`` right now."""
        state: dict[str, Any] = (await self.puppet.call("state", client=self.handle))["state"]
        return state

    async def transport(self) -> str | None:
        """The current Engine.IO transport name."""
        name = (await self.state())["transport"]
        return None if name is None else str(name)

    async def disconnect(self) -> None:
        """``socket.disconnect()`` (the server sees "client namespace disconnect")."""
        await self.puppet.call("disconnect", client=self.handle)

    async def close_engine(self) -> None:
        """Close the whole Engine.IO connection (the server sees "transport close")."""
        await self.puppet.call("close_engine", client=self.handle)

    async def drop(self) -> None:
        """Destroy the WebSocket's TCP socket without a close frame."""
        await self.puppet.call("drop", client=self.handle)

    async def freeze(self) -> None:
        """Stop answering the server's pings while keeping the connection open."""
        await self.puppet.call("freeze", client=self.handle)

    async def hop(self, url: str | None = None) -> None:
        """Leave the connection without telling the server (it holds the session until its
        ping timeout), then reconnect (needs ``reconnection``) to ``url``, or to the next server
        of ``connect(urls=...)``."""
        await self.puppet.call("hop", client=self.handle, url=url)

    async def forget(self) -> None:
        """Close this client quietly and stop reporting for it."""
        await self.puppet.call("forget", client=self.handle)
        self.puppet._clients.pop(self.handle, None)


# -- Node's own socket.io server ----------------------------------------------------------------

NODE_SERVER_JS = r"""
"use strict";
const http = require("http");
const { Server } = require("socket.io");
const opts = JSON.parse(process.env.SIO_OPTIONS || "{}");
const httpServer = http.createServer();
const io = new Server(httpServer, opts);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const bin = (v) => Buffer.isBuffer(v) ? { $bin: v.toString("base64") }
  : Array.isArray(v) ? v.map(bin)
  : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, bin(x)]))
  : v === undefined ? null : v;

function handler(socket) {
  out({ type: "connection", nsp: socket.nsp.name, id: socket.id, auth: bin(socket.handshake.auth),
        transport: socket.conn.transport.name });
  socket.emit("welcome", { id: socket.id, nsp: socket.nsp.name, auth: socket.handshake.auth });
  socket.onAny((event, ...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    out({ type: "event", nsp: socket.nsp.name, id: socket.id, event, args: bin(args), ack: !!ack });
    if (event === "echo") { if (ack) ack(...args); else socket.emit("echo", ...args); }
    else if (event === "kick") socket.disconnect();
    else if (event === "join") { socket.join(args[0]); if (ack) ack(true); }
    else if (event === "to_room") io.of(socket.nsp.name).to(args[0]).emit(...args.slice(1));
    else if (event === "ask") {
      socket.timeout(args[0]).emit(...args.slice(1), (err, ...res) =>
        err ? socket.emit("answer_error", err.message) : socket.emit("answer", ...res));
    }
    else if (event === "close_engine") socket.conn.close();
  });
  socket.on("disconnect", (reason) => out({ type: "disconnect", nsp: socket.nsp.name, id: socket.id, reason }));
}
io.on("connection", handler);
io.of("/admin").on("connection", handler);
io.of("/private").use((socket, next) => {
  if (socket.handshake.auth && socket.handshake.auth.token === "secret") return next();
  const err = new Error("not authorized");
  err.data = { code: 42, hint: "token" };
  next(err);
}).on("connection", handler);
process.stdin.on("data", () => {});
process.stdin.on("end", () => { io.close(); httpServer.close(); process.exit(0); });
httpServer.listen(0, "127.0.0.1", () => out({ type: "listening", port: httpServer.address().port }));
"""


class NodeSocketIOServer(_LineProcess):
    """Node's socket.io 4.x server on 127.0.0.1 with a free port.

    Namespaces ``/``, ``/admin`` and ``/private`` (middleware: ``auth.token == "secret"``, else
    ``connect_error`` "not authorized" with data ``{"code": 42, "hint": "token"}``). Each socket
    gets ``welcome`` on connect; handles ``echo`` (ack or emit back), ``kick`` (server
    disconnect), ``join`` (room), ``to_room`` (room, event, ...args), ``ask`` (timeout_ms, event,
    ...args: server ack, answered with ``answer``/``answer_error``), ``close_engine``.
    Reports ``connection``, ``event`` and ``disconnect`` (with reason) via :meth:`next_report`.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__("node socket.io server")
        self.options = options
        self.port = 0
        self._listening: asyncio.Future[dict[str, Any]] | None = None
        self._mail = _Mailbox()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        self._listening = asyncio.get_running_loop().create_future()
        await self._spawn("-e", NODE_SERVER_JS, env={"SIO_OPTIONS": json.dumps(self.options)})
        try:
            hello = await asyncio.wait_for(asyncio.shield(self._listening), 15.0)
        except (TimeoutError, PuppetError):
            await self._stop(None)
            raise PuppetError(f"node server did not start; stderr:\n{self.stderr_text()}") from None
        self.port = int(hello["port"])
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Closing stdin lets the script close its server and exit on its own.
        await self._stop(b"")

    def _on_line(self, msg: dict[str, Any]) -> None:
        if msg.get("type") == "listening":
            if self._listening is not None and not self._listening.done():
                self._listening.set_result(msg)
            return
        self._mail.put(str(msg.get("type")), from_wire(msg))

    def _on_exit(self, exc: PuppetError) -> None:
        if self._listening is not None and not self._listening.done():
            self._listening.set_exception(exc)
        self._mail.fail(exc)

    async def next_report(
        self, kind: str, sid: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """The next ``connection``/``event``/``disconnect`` report of the server; with ``sid``,
        the next one about that socket (reports about other sockets are skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = max(deadline - loop.time(), 0.0)
            report: dict[str, Any] = await self._mail.get(kind, left, f"node server {kind}")
            if sid is None or report.get("id") == sid:
                return report
