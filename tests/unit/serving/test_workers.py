"""``--workers`` and ``Server.run(workers=N)`` (``sockjet.serving.workers``): options, the
adapter a worker joins, and the supervisor run for real in a subprocess (forked workers from
``io.run``, new interpreters from ``sockjet serve``): serving, a failed start, draining, and
workers that never outlive a supervisor killed with SIGKILL."""

# Every wait here takes its own `timeout`.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import socket
import ssl
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from sockjet import Server
from sockjet.adapters.memory import MemoryAdapter
from sockjet.cli import main
from sockjet.serving.workers import WorkerConfig, available_cores, parse_workers

ROOT = Path(__file__).resolve().parents[3]
SOCKJET = Path(sys.executable).with_name("sockjet")
READY = re.compile(rb"worker (\S\S) \(pid (\d+)\) ready")


def test_the_number_of_workers() -> None:
    assert parse_workers("3") == 3
    assert parse_workers("auto") == available_cores() >= 1
    for bad in ("0", "-1", "many", "513"):
        with pytest.raises(ValueError):
            parse_workers(bad)


def test_a_bad_workers_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "examples.hello:io", "--workers", "zero"])
    assert info.value.code == 2
    assert "not a number of workers" in capsys.readouterr().err


def test_the_config_travels_as_json() -> None:
    config = WorkerConfig("AB", "/tmp/x", 3, 4, 5, 6, 7, peers=("AA",), workers=2)
    assert WorkerConfig.from_json(config.to_json()) == config


async def test_a_worker_replaces_the_default_adapter_only() -> None:
    io = Server()
    io.of("/chat")
    replacement = MemoryAdapter  # any factory: what matters is which adapters change
    made: list[str] = []

    def factory(nsp: object) -> MemoryAdapter:
        adapter = replacement(nsp)  # type: ignore[arg-type]
        made.append(adapter.nsp.name)
        return adapter

    assert io._use_adapter_if_default(factory)
    assert sorted(made) == ["/", "/chat"]
    io.of("/later")
    assert made[-1] == "/later"

    class Own(MemoryAdapter):
        pass

    own = Server(adapter=Own)
    assert not own._use_adapter_if_default(factory)
    assert type(own.sockets.adapter) is Own
    started = Server()
    started.start()
    assert not started._use_adapter_if_default(factory)
    await started.close()


def test_tls_cannot_be_handed_over() -> None:
    io = Server()
    with pytest.raises(ValueError, match="TLS"):
        io.run(port=0, workers=2, ssl=ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))


# -- the supervisor, for real ------------------------------------------------------------------


@contextlib.asynccontextmanager
async def process(*argv: str, cwd: Path = ROOT) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def read_until(
    proc: asyncio.subprocess.Process, pattern: bytes, timeout: float = 20
) -> bytes:
    """Everything printed up to the first line matching ``pattern``."""
    assert proc.stdout is not None
    seen = b""
    async with asyncio.timeout(timeout):
        async for line in proc.stdout:
            seen += line
            if re.search(pattern, line):
                return seen
    raise AssertionError(f"exited before {pattern!r}:\n{seen.decode(errors='replace')}")


async def request(port: int, head: bytes, body: bytes = b"") -> bytes:
    """One HTTP request on a new connection; the response body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        length = f"Content-Length: {len(body)}\r\n".encode() if body else b""
        writer.write(head + b" HTTP/1.1\r\nHost: x\r\n" + length + b"\r\n" + body)
        async with asyncio.timeout(5):
            answer = await reader.readuntil(b"\r\n\r\n")
            size = int(re.search(rb"content-length: (\d+)", answer, re.I)[1])  # type: ignore[index]
            return await reader.readexactly(size)
    finally:
        writer.close()


async def session(port: int) -> str:
    """Open a polling session and close it (its POST lands on any worker); its sid."""
    sid: str = json.loads((await request(port, b"GET /socket.io/?EIO=4&transport=polling"))[1:])[
        "sid"
    ]
    target = f"POST /socket.io/?EIO=4&transport=polling&sid={sid}".encode()
    assert await request(port, target, b"1") == b"ok"
    return sid


def app(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            """
            import logging, sys
            import sockjet

            io = sockjet.Server()

            if __name__ == "__main__":
                logging.basicConfig(level="INFO", stream=sys.stdout, format="%(message)s")
                io.run(port=int(sys.argv[1]), workers=2)
            """
        )
    )
    return tmp_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_io_run_with_forked_workers(tmp_path: Path) -> None:
    port = free_port()
    async with process(sys.executable, "app.py", str(port), cwd=app(tmp_path)) as proc:
        await read_until(proc, rb"serving on http://127\.0\.0\.1:\d+ with 2 workers")
        prefixes = {(await session(port))[:2] for _ in range(10)}
        assert prefixes <= {"AA", "AB"}  # the ids of the first two workers
        proc.send_signal(signal.SIGTERM)
        out = await read_until(proc, rb"sockjet: stopped")
        assert b"2 worker processes ran, 2 reported" in out
        async with asyncio.timeout(10):
            assert await proc.wait() == 0


async def test_workers_that_fail_to_start_stop_the_supervisor(tmp_path: Path) -> None:
    async with process(
        str(SOCKJET), "serve", "nowhere:io", "--port", "0", "--workers", "2"
    ) as proc:
        out = await read_until(proc, rb"sockjet: stopped", timeout=30)
        assert b"before serving" in out and b"cannot import module 'nowhere'" in out
        async with asyncio.timeout(10):
            assert await proc.wait() == 1


async def test_workers_do_not_outlive_their_supervisor() -> None:
    argv = [str(SOCKJET), "serve", "examples.hello:io", "--port", "0", "--workers", "2"]
    async with process(*argv, "--log-level", "info") as proc:
        out = await read_until(proc, rb"serving examples.hello:io on .* with 2 workers")
        pids = [int(found[2]) for found in READY.finditer(out)]
        assert len(pids) == 2
        workers = [psutil.Process(pid) for pid in pids]
        proc.kill()  # the supervisor dies at once: its workers drain, then exit
        await proc.wait()
        gone, alive = await asyncio.to_thread(psutil.wait_procs, workers, 15)
        assert not alive and len(gone) == 2
        assert proc.stdout is not None
        async with asyncio.timeout(5):
            last_words = await proc.stdout.read()  # until the workers closed it: they exited
        assert last_words.count(b"draining") == 2, last_words.decode(errors="replace")
