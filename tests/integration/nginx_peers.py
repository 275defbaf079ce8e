"""A private nginx for tests: the reverse proxy of docs/deployment.md, run for real.

The proxy configurations are not written here: they are the ``nginx`` blocks of
docs/deployment.md that follow a ``<!-- deployment-test: NAME -->`` comment, so the test proves the
documented configuration. :func:`adapt` makes such a block runnable on a test machine (the
upstream servers become the test's nodes, ``listen`` a free loopback port) and wraps it in the
few main-context lines nginx needs to run unprivileged from a temporary directory.

:class:`Nginx` runs one instance in the foreground (``daemon off``) as a child process, waits for
its workers to start (its own log line, not a sleep) and stops it on exit; its error log is kept
for failure messages.
"""

# Every wait here takes its own timeout: bounding each wait is the point of this harness.

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import re
import shutil
import socket
import tempfile
from collections import deque
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Self

from orphans import die_with_parent

__all__ = ["DEPLOYMENT", "Nginx", "NginxError", "adapt", "deployment_blocks", "nginx_binary"]

DEPLOYMENT = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
_TESTED_BLOCK = re.compile(r"<!-- deployment-test: (\S+) -->\n```nginx\n(.*?)```", re.DOTALL)
# The documented example nodes, e.g. "    server 10.0.0.11:5000;" inside the upstream block.
_EXAMPLE_SERVERS = re.compile(r"(?:^[ \t]*server[ \t]+10\.0\.0\.\d+:\d+;[^\n]*\n)+", re.MULTILINE)
_LISTEN = re.compile(r"^([ \t]*)listen[ \t]+[^;]+;", re.MULTILINE)
_READY = "start worker process"


class NginxError(RuntimeError):
    """nginx did not start, or a documented block cannot be adapted."""


def nginx_binary() -> str | None:
    """The nginx executable, or None when it is not installed."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


@cache
def deployment_blocks() -> dict[str, str]:
    """docs/deployment.md's tested nginx blocks, by name."""
    return dict(_TESTED_BLOCK.findall(DEPLOYMENT.read_text(encoding="utf-8")))


def adapt(block: str, listen_port: int, upstream_ports: Sequence[int]) -> str:
    """A documented ``http``-context block with its example nodes replaced by
    ``127.0.0.1:<port>`` servers and its ``listen`` by ``127.0.0.1:<listen_port>``."""
    servers, count = _EXAMPLE_SERVERS.subn(
        "".join(f"    server 127.0.0.1:{port};\n" for port in upstream_ports), block
    )
    listens = len(_LISTEN.findall(servers))
    if count != 1 or listens != 1:
        raise NginxError(f"expected one run of example servers and one listen: {count}, {listens}")
    return _LISTEN.sub(rf"\1listen 127.0.0.1:{listen_port};", servers)


def _main_config(http_block: str, directory: Path) -> str:
    # As root, workers would switch to "nobody" and could not use the temporary directory.
    user = ""
    if os.geteuid() == 0:
        user = f"user {pwd.getpwuid(0).pw_name} {grp.getgrgid(0).gr_name};\n"
    temp_paths = "".join(
        f"    {kind}_temp_path {directory / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\n"
        "error_log stderr notice;\n"  # notice: the 'start worker process' line tells us it runs
        "events { worker_connections 1024; }\n"
        "http {\n"
        "    access_log off;\n"
        f"{temp_paths}"
        f"{http_block}\n"
        "}\n"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Nginx:
    """A private nginx in front of ``upstream_ports``, configured with a documented block.

    ``async with Nginx(block, [port1, port2]) as proxy:`` then connect to ``proxy.url``.
    """

    def __init__(
        self, block: str, upstream_ports: Sequence[int], *, start_timeout: float = 5.0
    ) -> None:
        self.block = block
        self.upstream_ports = list(upstream_ports)
        self.start_timeout = start_timeout
        self.port = 0
        self.log: deque[str] = deque(maxlen=200)
        self._dir: Path | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return "\n".join(self.log) or "(empty)"

    async def __aenter__(self) -> Self:
        binary = nginx_binary()
        if binary is None:
            raise NginxError("nginx is not installed")
        self._dir = Path(tempfile.mkdtemp(prefix="sockjet-nginx-"))
        try:
            # The free port is only free until nginx binds it: on a collision, try another.
            for _ in range(3):
                if await self._start(binary):
                    return self
            raise NginxError(f"nginx did not start; its log:\n{self.log_text()}")
        except BaseException:
            await self._stop()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()

    async def _start(self, binary: str) -> bool:
        assert self._dir is not None
        self.port = _free_port()
        conf = self._dir / "nginx.conf"
        http_block = adapt(self.block, self.port, self.upstream_ports)
        conf.write_text(_main_config(http_block, self._dir), encoding="utf-8")
        self.log.clear()
        self._proc = await asyncio.create_subprocess_exec(
            binary,
            "-p",
            str(self._dir),
            "-c",
            str(conf),
            "-e",
            "stderr",
            "-g",
            f"daemon off; pid {self._dir / 'nginx.pid'};",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        ready = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_log(ready), name="nginx-log")
        try:
            started: bool = await asyncio.wait_for(ready, self.start_timeout)
        except TimeoutError:
            raise NginxError(f"nginx: no worker within {self.start_timeout}s") from None
        if not started:
            await self._stop_process()
            if any("Address already in use" in line for line in self.log):
                return False
            raise NginxError(f"nginx exited; its log:\n{self.log_text()}")
        return True

    async def _read_log(self, ready: asyncio.Future[bool]) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        async for raw in self._proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self.log.append(line)
            if _READY in line and not ready.done():
                ready.set_result(True)
        if not ready.done():
            ready.set_result(False)  # stderr closed: nginx exited before it served

    async def _stop_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()  # fast shutdown: the master stops its workers, then exits
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        elif proc is not None:
            await proc.wait()
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader, 2.0)  # ends once stderr closes
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _stop(self) -> None:
        await self._stop_process()
        directory, self._dir = self._dir, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
