"""Things the chat tests run: ``sockjet chat`` as a real process, a private PostgreSQL
cluster, and a headless Chromium.

* :class:`ChatProcess` starts ``sockjet chat`` (the console script of this venv) on a given port
  and waits for its "serving" line; ``stop()`` sends SIGTERM (a clean shutdown), ``kill()``
  SIGKILL.
* :class:`PrivatePostgres` creates a throw-away PostgreSQL 15 cluster with ``initdb`` in a
  temporary directory, runs it on a free loopback port with trust authentication (as the
  ``postgres`` system user when we are root: PostgreSQL refuses to run as root), and deletes it
  afterwards. It never touches the machine's own PostgreSQL.
* :class:`PrivateRedis` runs a throw-away ``redis-server`` on a free loopback port (nothing
  saved to disk), for clusters of chat servers.
* :class:`NodeChat` runs ``node/chat_node.js``: the Node chat that ``sockjet chat`` replaces
  (socket.io 4.8, the same events), in a Redis cluster through ``@socket.io/redis-adapter``.
* :func:`launch_chromium` opens Debian's Chromium through Playwright, with a fresh profile and
  none of its background network traffic; Playwright never downloads a browser here.
"""

# Every wait here takes its own `timeout`.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path
from typing import Any, Self

from orphans import die_with_parent
from peers import HERE, PuppetError, _LineProcess

ROOT = Path(__file__).resolve().parents[2]
WEB_DIST = ROOT / "examples" / "chat" / "web" / "dist"
SOCKJET = Path(sys.executable).with_name("sockjet")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PG_BIN_DIRS = (Path("/usr/lib/postgresql/15/bin"), Path("/usr/local/bin"))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for servers that must restart on the same
    port, so that port 0 cannot be used)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- sockjet chat as a process -------------------------------------------------------------------


class ChatProcess:
    """``sockjet chat`` in a subprocess (or another ``command`` that ends up running it, such
    as ``./dev run``). ``async with ChatProcess(port, db) as chat: ...``"""

    def __init__(
        self,
        port: int,
        database: str,
        *extra: str,
        command: tuple[str, ...] = (str(SOCKJET), "chat"),
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = command
        self.env = env
        self.port = port
        self.database = database
        self.extra = extra
        self.url = f"http://127.0.0.1:{port}"
        self.proc: asyncio.subprocess.Process | None = None
        self.output: deque[str] = deque(maxlen=200)
        self._readers: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self, timeout: float = 20.0) -> None:
        """Start and wait until it listens."""
        args = ["--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--database", self.database, "--log-level", "warning", *self.extra]
        self.proc = await asyncio.create_subprocess_exec(
            *self.command,
            *args,
            env=None if self.env is None else {**os.environ, **self.env},
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        ready = asyncio.get_running_loop().create_future()
        self._readers = [
            asyncio.create_task(self._read(self.proc.stdout, ready)),
            asyncio.create_task(self._read(self.proc.stderr, None)),
        ]
        try:
            await asyncio.wait_for(ready, timeout)
        except (TimeoutError, RuntimeError):
            await self.kill()
            raise RuntimeError(f"sockjet chat did not start:\n{self.log()}") from None

    async def _read(self, stream: Any, ready: asyncio.Future[None] | None) -> None:
        async for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            self.output.append(line)
            if ready is not None and not ready.done() and "serving the chat on" in line:
                ready.set_result(None)
        if ready is not None and not ready.done():
            ready.set_exception(RuntimeError("exited"))

    def log(self) -> str:
        return "\n".join(self.output) or "(no output)"

    async def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (a graceful shutdown) and wait for the exit code; SIGKILL if it hangs."""
        return await self._end(signal.SIGTERM, timeout)

    async def kill(self) -> int:
        """SIGKILL: a crash, nothing flushed."""
        return await self._end(signal.SIGKILL, 5.0)

    async def _end(self, signum: int, timeout: float) -> int:
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        if proc.returncode is None:
            proc.send_signal(signum)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)
        assert proc.returncode is not None
        return proc.returncode


# -- a private PostgreSQL ------------------------------------------------------------------------


def postgres_binaries() -> Path | None:
    """The directory holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    for directory in PG_BIN_DIRS:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    return None


class PrivatePostgres:
    """A PostgreSQL cluster of our own: ``with PrivatePostgres() as pg: pg.url``."""

    def __init__(self) -> None:
        found = postgres_binaries()
        if found is None:
            raise RuntimeError("PostgreSQL's initdb/pg_ctl are not installed")
        self.bin = found
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sockjet-pg-"))
        self.data = self.dir / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as_postgres = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self._as_postgres, *args], capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed:\n{result.stdout}\n{result.stderr}\n{self.log()}")

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.dir / "server.log").read_text(errors="replace")[-4000:]
        return ""

    def start(self) -> None:
        """Create the cluster and start its server."""
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        self.start_server()

    def start_server(self) -> None:
        """Start (or restart) the server; returns once it accepts connections."""
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c synchronous_commit=off"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop_server(self) -> None:
        """Stop the server at once (as a crash would), keeping the cluster."""
        if (self.data / "postmaster.pid").exists():
            self._run(
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
            )

    def stop(self) -> None:
        """Stop the server and delete the cluster."""
        try:
            self.stop_server()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- a private Redis -----------------------------------------------------------------------------


class PrivateRedis:
    """``async with PrivateRedis() as redis: redis.url``"""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = Path(tempfile.mkdtemp(prefix="sockjet-redis-"))
        self.proc: asyncio.subprocess.Process | None = None
        self.output: deque[str] = deque(maxlen=50)

    async def __aenter__(self) -> Self:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.proc = await asyncio.create_subprocess_exec(
            binary,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--dir", str(self.dir)),
            stdin=subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        assert self.proc.stdout is not None
        async with asyncio.timeout(15):
            async for raw in self.proc.stdout:
                self.output.append(raw.decode(errors="replace").rstrip())
                if b"Ready to accept connections" in raw:
                    break
            else:
                raise RuntimeError("redis-server exited:\n" + "\n".join(self.output))
        return self

    async def __aexit__(self, *exc: object) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- the Node chat -------------------------------------------------------------------------------


class NodeChat(_LineProcess):
    """``node/chat_node.js`` on a free port, in the cluster of ``redis_url``.

    ``async with NodeChat(redis.url) as chat: chat.url``. Heartbeat times are in seconds.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        name: str = "chat",
        ping_interval: float = 25.0,
        ping_timeout: float = 20.0,
    ) -> None:
        super().__init__(f"node chat {name}")
        self.options = {
            "url": redis_url,
            "name": name,
            "pingInterval": int(ping_interval * 1000),
            "pingTimeout": int(ping_timeout * 1000),
        }
        self.port = 0
        self._ready: asyncio.Future[dict[str, Any]] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        self._ready = asyncio.get_running_loop().create_future()
        script = str(HERE / "node" / "chat_node.js")
        await self._spawn(script, env={"CHAT_NODE_OPTIONS": json.dumps(self.options)})
        try:
            hello = await asyncio.wait_for(asyncio.shield(self._ready), 15.0)
        except (TimeoutError, PuppetError):
            await self._stop(None)
            raise PuppetError(f"{self.name} did not start; stderr:\n{self.stderr_text()}") from None
        self.port = int(hello["port"])
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stop(b"")  # closing stdin lets it close its server and exit

    def _on_line(self, msg: dict[str, Any]) -> None:
        if msg.get("type") == "ready" and self._ready is not None and not self._ready.done():
            self._ready.set_result(msg)

    def _on_exit(self, exc: PuppetError) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(exc)


# -- Chromium ------------------------------------------------------------------------------------


def chromium_available() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return CHROMIUM.exists()


@contextlib.asynccontextmanager
async def launch_chromium(**context_options: Any) -> Any:
    """A Playwright browser context on Debian's Chromium with a fresh profile, closed after."""
    from playwright.async_api import async_playwright

    profile = tempfile.mkdtemp(prefix="sockjet-chromium-")
    try:
        async with async_playwright() as p:
            context = await p.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                args=CHROMIUM_ARGS,
                headless=True,
                **context_options,
            )
            try:
                yield context
            finally:
                await context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
