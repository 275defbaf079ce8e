"""Servers for sockjet's client to talk to, started and stopped by the tests.

* :class:`ServerProcess`: a Socket.IO server in a child process on a port that survives a kill
  and a restart: Node's socket.io 4.x (a small inline script) or ``sockjet serve`` (the app below,
  :func:`restart_app`). Both report what they receive as JSON lines.
* :func:`python_socketio_server`: python-socketio's ``AsyncServer`` under aiohttp, in the test's
  loop, on a free port.
* :func:`sockjet_server`: sockjet's own server, in the test's loop.
* :func:`silent_server`: an Engine.IO server that handshakes, accepts every namespace, then never
  pings: what a dead server behind a live TCP connection looks like to the client.
* :class:`Events`: what client handlers observed, awaited with a timeout.
"""

# Every wait here takes its own `timeout`: bounding each wait is the point of this harness.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from orphans import die_with_parent

HERE = Path(__file__).resolve().parent
JS_ROOT = HERE.parent / "js"
NODE_MODULES = JS_ROOT / "node_modules"
DEFAULT_TIMEOUT = 5.0

__all__ = [
    "Events",
    "ServerProcess",
    "client_tasks",
    "python_socketio_server",
    "restart_app",
    "silent_server",
    "sockjet_server",
]


class Events:
    """Values put by handlers under a key, consumed once each, awaited with a timeout."""

    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[Any]] = {}
        self.history: list[tuple[str, Any]] = []

    def _queue(self, key: str) -> asyncio.Queue[Any]:
        return self._queues.setdefault(key, asyncio.Queue())

    def put(self, key: str, value: Any = None) -> None:
        self.history.append((key, value))
        self._queue(key).put_nowait(value)

    def handler(self, key: str) -> Callable[..., None]:
        """A handler recording its argument (or tuple of arguments) under ``key``."""

        def record(*args: Any) -> None:
            self.put(key, args[0] if len(args) == 1 else args)

        return record

    async def get(self, key: str, timeout: float = DEFAULT_TIMEOUT) -> Any:
        try:
            return await asyncio.wait_for(self._queue(key).get(), timeout)
        except TimeoutError:
            seen = [k for k, _ in self.history[-20:]]
            raise AssertionError(f"no {key!r} within {timeout}s (last: {seen})") from None

    def pending(self, key: str) -> int:
        return self._queue(key).qsize()


def client_tasks() -> list[asyncio.Task[Any]]:
    """The tasks of sockjet's client still running (transports, upgrades, handlers...)."""
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if code is not None and f"{os.sep}sockjet{os.sep}client{os.sep}" in code.co_filename:
            found.append(task)
    return found


# -- a server process that can be killed and restarted on the same port ------------------------

NODE_RESTART_JS = r"""
"use strict";
const http = require("http");
const { Server } = require("socket.io");
const httpServer = http.createServer();
const io = new Server(httpServer, { pingInterval: 1000, pingTimeout: 1000 });
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
io.on("connection", (socket) => {
  out({ type: "connection", id: socket.id });
  socket.onAny((event, ...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    out({ type: "event", event, args });
    if (ack) ack("ok");
  });
});
httpServer.listen(Number(process.env.PORT), "127.0.0.1",
  () => out({ type: "listening", port: httpServer.address().port }));
"""

_SERVING = re.compile(r"sockjet: serving \S+ on http://[^:]+:(\d+)")


def restart_app() -> Any:
    """The app ``sockjet serve client_peers:restart_app.io`` runs: reports every event as a JSON
    line on stdout and acknowledges it with ``"ok"`` (as the Node script does)."""
    import sockjet

    io = sockjet.Server(ping_interval=1, ping_timeout=1)

    def out(report: dict[str, Any]) -> None:
        print(json.dumps(report), flush=True)

    @io.on("connection")
    def connection(socket: sockjet.Socket) -> None:
        out({"type": "connection", "id": socket.id})

    for name in ("msg", "sync"):

        @io.on(name)
        def event(socket: sockjet.Socket, *args: Any, _name: str = name) -> str:
            out({"type": "event", "event": _name, "args": list(args)})
            return "ok"

    return io


def __getattr__(name: str) -> Any:
    # `sockjet serve client_peers:restart_io` builds the app only in the child process.
    if name == "restart_io":
        return restart_app()
    raise AttributeError(name)


class ServerProcess:
    """``kind`` is ``"node"`` or ``"sockjet"``. :meth:`start` (again after :meth:`kill`) listens
    on the same port; :attr:`reports` holds what the current process reported."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None
        self.reports: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.stderr_tail: deque[str] = deque(maxlen=50)
        self._tasks: list[asyncio.Task[None]] = []
        self._listening: asyncio.Future[int] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ServerProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.kill()

    def _command(self) -> tuple[list[str], dict[str, str], Path]:
        env = dict(os.environ)
        if self.kind == "node":
            node = shutil.which("node")
            assert node is not None
            env["NODE_PATH"] = str(NODE_MODULES)
            env["PORT"] = str(self.port)
            return [node, "-e", NODE_RESTART_JS], env, JS_ROOT
        code = "from sockjet.cli import main; raise SystemExit(main())"
        args = [
            "serve",
            "client_peers:restart_io",
            "--port",
            str(self.port),
            "--log-level",
            "error",
        ]
        return [sys.executable, "-c", code, *args], env, HERE

    async def start(self, timeout: float = 15.0) -> None:
        """Start the server (on the port of the previous run, if any) and wait until it listens."""
        assert self.proc is None, "already running"
        command, env, cwd = self._command()
        self.reports = asyncio.Queue()
        self._listening = asyncio.get_running_loop().create_future()
        self.proc = await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        self._tasks = [
            asyncio.create_task(self._read_stdout(self.proc)),
            asyncio.create_task(self._read_stderr(self.proc)),
        ]
        try:
            self.port = await asyncio.wait_for(asyncio.shield(self._listening), timeout)
        except TimeoutError:
            await self.kill()
            raise AssertionError(f"{self.kind} server did not start: {self.stderr()}") from None

    async def kill(self) -> None:
        """SIGKILL: no goodbye to the clients, the port is free at once."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def stderr(self) -> str:
        return "\n".join(self.stderr_tail) or "(empty)"

    async def next_report(self, kind: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The next report of that kind (``connection``, ``event``); others are skipped."""
        async with asyncio.timeout(timeout):
            while True:
                report = await self.reports.get()
                if report.get("type") == kind:
                    return report

    async def _read_stdout(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            serving = _SERVING.search(line)
            try:
                report = json.loads(line) if not serving else {"type": "listening"}
            except ValueError:
                self.stderr_tail.append(f"[stdout] {line}")
                continue
            if report.get("type") == "listening":
                port = int(serving.group(1)) if serving else int(report["port"])
                if self._listening is not None and not self._listening.done():
                    self._listening.set_result(port)
            else:
                self.reports.put_nowait(report)

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            self.stderr_tail.append(raw.decode("utf-8", "replace").rstrip())


# -- servers in the test's own loop ------------------------------------------------------------


@contextlib.asynccontextmanager
async def _aiohttp_app(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def python_socketio_server(sio: Any) -> AsyncIterator[str]:
    """Serve a ``socketio.AsyncServer(async_mode="aiohttp")``; yields its URL."""
    app = web.Application()
    sio.attach(app)
    try:
        async with _aiohttp_app(app) as url:
            yield url
    finally:
        await sio.shutdown()


@contextlib.asynccontextmanager
async def sockjet_server(io: Any) -> AsyncIterator[str]:
    """``await io.serve("127.0.0.1", 0)``; yields its URL, closes everything after."""
    server = await io.serve("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await io.close()
        await server.close()


@contextlib.asynccontextmanager
async def silent_server(
    ping_interval_ms: int = 100, ping_timeout_ms: int = 100
) -> AsyncIterator[tuple[str, Events]]:
    """A WebSocket-only Engine.IO server that accepts every namespace and never pings.
    Yields its URL and an :class:`Events` with one ``"connection"`` per handshake."""
    events = Events()
    count = 0

    async def handle(request: web.Request) -> web.WebSocketResponse:
        nonlocal count
        count += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        handshake = {
            "sid": f"silent{count}",
            "upgrades": [],
            "pingInterval": ping_interval_ms,
            "pingTimeout": ping_timeout_ms,
            "maxPayload": 1_000_000,
        }
        await ws.send_str("0" + json.dumps(handshake))
        events.put("connection", count)
        async for msg in ws:  # answer CONNECTs, ignore the rest, never ping
            if isinstance(msg.data, str) and msg.data.startswith("40"):
                nsp = msg.data[2:].split(",", 1)[0] + "," if msg.data[2:3] == "/" else ""
                await ws.send_str(f'40{nsp}{{"sid":"s{count}"}}')
        return ws

    app = web.Application()
    app.router.add_get("/socket.io/", handle)
    async with _aiohttp_app(app) as url:
        yield url, events
