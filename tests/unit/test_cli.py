"""The ``sockjet`` command line: parsing, loading the app, serving until a signal."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sockjet import __version__, cli
from sockjet.cli import CLIError, load_target, main, serve_until

ROOT = Path(__file__).resolve().parents[2]
SOCKJET = Path(sys.executable).with_name("sockjet")  # the console script of this venv


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A current directory to write app modules in; sys.path and sys.modules restored after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write_module(directory: Path, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source))


# -- parsing -------------------------------------------------------------------------------------


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sockjet")
    assert "serve" in out


def test_serve_help_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for option in ("--host", "--port", "--log-level", "--loop", "--static", "module:attribute"):
        assert option in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"sockjet {__version__}"


@pytest.mark.parametrize("argv", [[], ["nope"], ["serve"], ["serve", "a:b", "--loop", "trio"]])
def test_bad_command_lines_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage: sockjet" in capsys.readouterr().err


def test_a_command_is_one_function() -> None:
    def add_hello_command(subparsers: cli.Subparsers) -> None:
        parser = subparsers.add_parser("hello")
        parser.set_defaults(run=lambda args: 7)

    parser = cli.build_parser()
    assert parser.prog == "sockjet"
    commands = cli.COMMANDS
    try:
        cli.COMMANDS = (*commands, add_hello_command)
        assert main(["hello"]) == 7
    finally:
        cli.COMMANDS = commands


# -- loading the app -----------------------------------------------------------------------------


def test_load_target_imports_from_the_current_directory(app_dir: Path) -> None:
    write_module(app_dir, "myapp", "class Holder:\n    io = object()\n")
    holder = load_target("myapp:Holder")
    assert load_target("myapp:Holder.io") is holder.io


@pytest.mark.parametrize(
    ("spec", "source", "message"),
    [
        ("missing_mod:io", None, "cannot import module 'missing_mod'"),
        ("badattr:io", "x = 1\n", "module 'badattr' has no attribute 'io'"),
        ("noattr", None, "expected module:attribute"),
        (":io", None, "expected module:attribute"),
        ("broken:io", "raise RuntimeError('boom at import')\n", "boom at import"),
        ("needsdep:io", "import not_installed_anywhere\n", "not_installed_anywhere"),
        ("notaserver:io", "io = 42\n", "notaserver:io is int, not a sockjet.Server"),
    ],
)
def test_loading_failures_exit_2_with_a_clear_message(
    app_dir: Path,
    capsys: pytest.CaptureFixture[str],
    spec: str,
    source: str | None,
    message: str,
) -> None:
    if source is not None:
        write_module(app_dir, spec.partition(":")[0], source)
    assert main(["serve", spec, "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("sockjet: error: ")
    assert message in err


def test_static_must_be_a_directory(app_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "x:io", "--static", str(app_dir / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_loop_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    uvloop = pytest.importorskip("uvloop")
    assert cli._loop_factory("asyncio") is None
    assert cli._loop_factory("auto") is uvloop.new_event_loop
    assert cli._loop_factory("uvloop") is uvloop.new_event_loop
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    assert cli._loop_factory("auto") is None
    with pytest.raises(CLIError, match="uvloop is not installed"):
        cli._loop_factory("uvloop")


def test_urls() -> None:
    assert cli._url("127.0.0.1", 5000) == "http://127.0.0.1:5000"
    assert cli._url("::1", 80) == "http://[::1]:80"


# -- serving ---------------------------------------------------------------------------------------


class FakeNative:
    def __init__(self, log: list[str], port: int) -> None:
        self.log = log
        self.port = port

    async def close(self) -> None:
        self.log.append("native.close")


class FakeIO:
    """A sockjet.Server as the CLI sees it."""

    def __init__(self, on_serve: Any = None, on_close: Any = None) -> None:
        self.log: list[str] = []
        self.on_serve = on_serve
        self.on_close = on_close

    async def serve(self, host: str = "127.0.0.1", port: int = 5000, **options: Any) -> FakeNative:
        self.log.append(f"serve {host} {port} {options}")
        if self.on_serve is not None:
            self.on_serve()
        return FakeNative(self.log, 4321 if port == 0 else port)

    async def close(self) -> None:
        self.log.append("io.close")
        if self.on_close is not None:
            await self.on_close()


async def test_serve_until_closes_the_app_then_the_server() -> None:
    io = FakeIO()
    stop = asyncio.Event()
    url: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    running = asyncio.create_task(
        serve_until(io, "127.0.0.1", 0, stop, announce=url.set_result, static_dir="d")
    )
    assert await url == "http://127.0.0.1:4321"
    stop.set()
    await running
    assert io.log == ["serve 127.0.0.1 0 {'static_dir': 'd'}", "io.close", "native.close"]


async def test_serve_until_reports_an_address_in_use() -> None:
    class Busy(FakeIO):
        async def serve(self, host: str = "", port: int = 0, **options: Any) -> FakeNative:
            raise OSError(98, "Address already in use")

    with pytest.raises(CLIError, match=r"cannot listen on 127\.0\.0\.1:80: .*in use") as failed:
        await serve_until(Busy(), "127.0.0.1", 80, asyncio.Event())
    assert failed.value.code == 1


def run_main_with(monkeypatch: pytest.MonkeyPatch, app_dir: Path, io: FakeIO) -> int:
    write_module(app_dir, "fakeapp", "io = None\n")
    monkeypatch.setattr(cli, "load_target", lambda spec: io)
    return main(["serve", "fakeapp:io", "--port", "0", "--loop", "asyncio"])


def sigterm_soon() -> None:
    asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)


def test_sigterm_shuts_down_gracefully(
    monkeypatch: pytest.MonkeyPatch, app_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    io = FakeIO(on_serve=sigterm_soon)
    assert run_main_with(monkeypatch, app_dir, io) == 0
    assert io.log[1:] == ["io.close", "native.close"]
    out = capsys.readouterr().out
    assert "sockjet: serving fakeapp:io on http://127.0.0.1:4321" in out
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # our handler is gone


def test_a_second_signal_forces_the_exit(
    monkeypatch: pytest.MonkeyPatch, app_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def hang() -> None:
        sigterm_soon()
        await asyncio.Event().wait()

    io = FakeIO(on_serve=sigterm_soon, on_close=hang)
    assert run_main_with(monkeypatch, app_dir, io) == 1
    assert io.log[1:] == ["io.close", "native.close"]
    assert "forced exit" in capsys.readouterr().err


def test_keyboard_interrupt_before_serving_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(spec: str) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "load_target", interrupted)
    assert main(["serve", "x:io"]) == 130


# -- end to end: the real server, the example, a real process ---------------------------------


async def test_serve_until_serves_a_real_server() -> None:
    from sockjet.server.server import Server

    io = Server()
    stop = asyncio.Event()
    url: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    running = asyncio.create_task(serve_until(io, "127.0.0.1", 0, stop, announce=url.set_result))
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(await url + "/socket.io/?EIO=4&transport=polling") as response,
        ):
            assert (await response.text()).startswith('0{"sid":')
    finally:
        stop.set()
        await running
    assert io.engine.closed


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "loop"), [(signal.SIGTERM, "auto"), (signal.SIGINT, "asyncio")])
async def test_sockjet_serve_example_in_a_process(signum: signal.Signals, loop: str) -> None:
    socketio = pytest.importorskip("socketio")
    process = await asyncio.create_subprocess_exec(
        str(SOCKJET),
        "serve",
        "examples.hello:io",
        "--port",
        "0",
        "--log-level",
        "warning",
        "--loop",
        loop,
        "--static",
        "examples/hello_static",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()
        found = re.search(r"on (http://127\.0\.0\.1:\d+) ", line)
        assert found, line
        url = found.group(1)
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/socket.io/?EIO=4&transport=polling") as response:
                assert (await response.text()).startswith('0{"sid":')
            async with http.get(url + "/") as response:
                assert "<title>sockjet hello</title>" in await response.text()
        client = socketio.AsyncClient()
        hello: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        client.on("hello", hello.set_result)
        await client.connect(url, transports=["websocket"])
        try:
            assert await client.call("echo", ("hi", 42), timeout=5) == ("hi", 42)
            assert (await asyncio.wait_for(hello, 5))["sid"]
        finally:
            await client.disconnect()
        process.send_signal(signum)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    _, err = await process.communicate()
    assert b"Traceback" not in err, err.decode()
