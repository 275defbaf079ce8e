"""The ``sockjet`` command line.

``sockjet serve module:attribute`` imports a :class:`sockjet.Server` and serves it with the
native server until SIGINT/SIGTERM, then shuts it down gracefully (a second signal forces the
exit). Every subcommand is one ``add_<name>_command(subparsers)`` function listed in
:data:`COMMANDS`; it registers its parser and sets ``run`` to a function of the parsed
arguments returning the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias

from sockjet import __version__

if TYPE_CHECKING:
    from sockjet.serving.workers import WorkerRuntime

__all__ = ["COMMANDS", "CLIError", "build_parser", "load_target", "main", "serve_until"]

logger = logging.getLogger("sockjet.cli")

# What add_subparsers() returns; argparse gives that type no public name.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

EXIT_USAGE = 2
"""Exit code for a bad command line or an application that cannot be loaded (as argparse)."""
EXIT_FAILURE = 1


class CLIError(Exception):
    """A failure to report as ``sockjet: error: <message>`` and exit with ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


class Servable(Protocol):
    """What ``sockjet serve`` needs from its target: a :class:`sockjet.Server`."""

    async def serve(self, host: str = ..., port: int = ..., **options: Any) -> Any: ...

    async def close(self) -> None: ...


class Stoppable(Protocol):
    """The running server ``Server.serve`` returns (``NativeServer``)."""

    async def close(self) -> None: ...


# -- sockjet serve ---------------------------------------------------------------------------------


def add_serve_command(subparsers: Subparsers) -> None:
    """``sockjet serve module:attribute [options]``."""
    parser = subparsers.add_parser(
        "serve",
        help="serve a sockjet.Server with the native HTTP/WebSocket server",
        description=(
            "Import a sockjet.Server (module:attribute, importable from the current directory) "
            "and serve it until SIGINT/SIGTERM, then close every connection gracefully."
        ),
    )
    parser.add_argument("target", metavar="module:attribute", help="e.g. examples.hello:io")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=5000, help="port to bind; 0 picks a free one")
    _add_process_options(parser)
    _add_workers_option(parser)
    parser.add_argument(
        "--static", metavar="DIR", help="also serve the files of DIR (index.html for /)"
    )
    _add_metrics_option(parser)
    parser.set_defaults(run=run_serve)


def _add_metrics_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="serve Prometheus metrics at /metrics (needs: pip install 'sockjet[metrics]')",
    )


def _enable_metrics(io: Any) -> None:
    try:
        io.enable_metrics()
    except ImportError as exc:
        raise CLIError(str(exc)) from None


def run_serve(args: argparse.Namespace) -> int:
    """Load the target, then serve it until a signal asks to stop."""
    worker = _worker()
    _configure_logging(args.log_level, worker)
    if args.static is not None and not os.path.isdir(args.static):
        raise CLIError(f"--static {args.static!r} is not a directory")
    loop_factory = _loop_factory(args.loop)
    if worker is None and args.workers > 1:
        return _supervise(args, args.target)
    target = load_target(args.target)
    if not callable(getattr(target, "serve", None)) or not callable(getattr(target, "close", None)):
        raise CLIError(f"{args.target} is {type(target).__name__}, not a sockjet.Server")
    options: dict[str, Any] = {}
    if args.static is not None:
        options["static_dir"] = args.static
    if args.metrics:
        _enable_metrics(target)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        if worker is not None:
            worker.prepare(target)
            return runner.run(worker.serve(target, args.host, args.port, options))
        return runner.run(_serve_with_signals(target, args.target, args.host, args.port, options))


async def _serve_with_signals(
    io: Servable, name: str, host: str, port: int, options: dict[str, Any]
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main_task = asyncio.current_task()
    assert main_task is not None

    def on_signal(signum: int) -> None:
        if not stop.is_set():
            logger.info("%s: shutting down (again to force)", signal.Signals(signum).name)
            stop.set()
        else:
            main_task.cancel()

    installed: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows, no handlers
            continue
        installed.append(signum)
    try:

        def announce(url: str) -> None:
            print(f"sockjet: serving {name} on {url} (Ctrl+C to quit)", flush=True)

        await serve_until(io, host, port, stop, announce=announce, **options)
    except asyncio.CancelledError:
        print("sockjet: forced exit", file=sys.stderr, flush=True)
        return EXIT_FAILURE
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
    return 0


async def serve_until(
    io: Servable,
    host: str,
    port: int,
    stop: asyncio.Event,
    *,
    announce: Callable[[str], None] | None = None,
    **options: Any,
) -> None:
    """Serve ``io`` on ``host:port`` until ``stop`` is set, then close it
    gracefully (clients are disconnected with "server shutting down") and the server after it.

    ``announce`` gets the URL once listening. Raises :class:`CLIError` when the address cannot
    be bound.
    """
    try:
        server: Stoppable = await io.serve(host, port, **options)
    except OSError as exc:
        raise CLIError(f"cannot listen on {host}:{port}: {exc}", EXIT_FAILURE) from exc
    try:
        if announce is not None:
            announce(_url(host, getattr(server, "port", port)))
        await stop.wait()
    finally:
        try:
            await io.close()
        finally:
            await server.close()


def _add_process_options(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` and ``--loop``, for every command that runs a server."""
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="logging level (%(default)s)",
    )
    parser.add_argument(
        "--loop",
        default="auto",
        choices=("auto", "asyncio", "uvloop"),
        help="event loop: auto uses uvloop when it is installed (%(default)s)",
    )


def _add_workers_option(parser: argparse.ArgumentParser) -> None:
    """``--workers``, for the commands that can run several worker processes."""
    parser.add_argument(
        "--workers",
        metavar="N",
        type=_workers,
        default=1,
        help=(
            "worker processes sharing the port, no sticky sessions needed (Linux): a number, "
            "or auto for one per core (%(default)s: this process serves)"
        ),
    )


def _workers(text: str) -> int:
    from sockjet.serving.workers import parse_workers

    try:
        return parse_workers(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _worker() -> WorkerRuntime | None:
    """The worker runtime when a supervisor started this process, else None."""
    if "SOCKJET_WORKER" not in os.environ:
        return None
    from sockjet.serving.workers import worker_from_env

    return worker_from_env()


def _supervise(args: argparse.Namespace, name: str) -> int:
    """Run this very command line in ``args.workers`` worker processes, under a supervisor."""
    from sockjet.serving.workers import check_platform, exec_spawner, run_workers

    try:
        check_platform()
    except RuntimeError as exc:
        raise CLIError(str(exc)) from None
    workers = args.workers

    def announce(url: str) -> None:
        print(
            f"sockjet: serving {name} on {url} with {workers} workers (Ctrl+C to quit)",
            flush=True,
        )

    try:
        return run_workers(
            args.host, args.port, workers, exec_spawner(args.argv), announce=announce
        )
    except OSError as exc:
        raise CLIError(f"cannot listen on {args.host}:{args.port}: {exc}", EXIT_FAILURE) from exc


def _configure_logging(level: str, worker: WorkerRuntime | None = None) -> None:
    """Log to stderr from ``level`` (a ``--log-level`` choice) up; a worker names itself."""
    who = "" if worker is None else f" [worker {worker.wid}]"
    logging.basicConfig(
        level=level.upper(), format=f"%(asctime)s %(levelname)s{who} %(name)s: %(message)s"
    )


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise CLIError("--loop uvloop: uvloop is not installed") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def load_target(spec: str) -> Any:
    """Import ``module:attribute`` (the attribute may be dotted), from the current directory too.

    Raises :class:`CLIError` with a message saying what is missing.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise CLIError(f"expected module:attribute (like examples.hello:io), got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # as uvicorn does: apps are imported from where we run
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise CLIError(f"cannot import module {module_name!r}: {exc}") from None
        traceback.print_exc()  # the app itself imports something missing: show where
        raise CLIError(f"importing {module_name!r} failed: {exc}") from None
    except Exception as exc:
        traceback.print_exc()
        raise CLIError(f"importing {module_name!r} failed: {exc!r}") from None
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise CLIError(f"module {module_name!r} has no attribute {attribute!r}") from None
    return target


# -- sockjet chat ----------------------------------------------------------------------------------


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _message_chars(text: str) -> int:
    from sockjet.chat.validation import MAX_PAYLOAD, max_message_chars_for

    ceiling = max_message_chars_for(MAX_PAYLOAD)
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of characters: {text!r}") from None
    if not 1 <= value <= ceiling:
        raise argparse.ArgumentTypeError(
            f"must be 1 to {ceiling} (what the {MAX_PAYLOAD}-byte max payload holds at 4 bytes "
            f"a character), got {text}"
        )
    return value


def add_chat_command(subparsers: Subparsers) -> None:
    """``sockjet chat [options]``: the chat application and its front end on one port."""
    from sockjet.chat.store import default_database_url
    from sockjet.chat.validation import MAX_MESSAGE_CHARS, MAX_PAYLOAD, max_message_chars_for

    parser = subparsers.add_parser(
        "chat",
        help="run the chat application (React front end + Socket.IO, history in a database)",
        description=(
            "Serve the chat front end (examples/chat/web, built by ./dev run) and /socket.io/ "
            "on one port, keeping the history in SQLite (default) or PostgreSQL, until "
            "SIGINT/SIGTERM; every accepted message is saved before it exits."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=5000, help="port to bind (%(default)s)")
    parser.add_argument(
        "--database",
        metavar="URL",
        default=default_database_url(),
        help="sqlite:///FILE or postgresql://USER@HOST/DB (%(default)s)",
    )
    parser.add_argument(
        "--ping-interval",
        metavar="SECONDS",
        type=_positive_seconds,
        default=25.0,
        help="Engine.IO heartbeat interval (%(default)s)",
    )
    parser.add_argument(
        "--ping-timeout",
        metavar="SECONDS",
        type=_positive_seconds,
        default=20.0,
        help="a client silent this long after a ping is dropped (%(default)s)",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="join a cluster of chat servers through Redis (redis://HOST:PORT/DB)",
    )
    parser.add_argument(
        "--redis-adapter",
        choices=REDIS_ADAPTERS,
        default="classic",
        help=(
            "the cluster's protocol (%(default)s): classic or sharded (@socket.io/redis-adapter), "
            "streams (@socket.io/redis-streams-adapter: recovery across servers)"
        ),
    )
    parser.add_argument(
        "--recovery",
        action="store_true",
        help=(
            "connection state recovery: a client back within 2 minutes gets its id, rooms and "
            "missed messages (with --redis, on any server: needs --redis-adapter streams)"
        ),
    )
    parser.add_argument(
        "--web",
        metavar="DIR",
        help="the built front end to serve (default: examples/chat/web/dist when built)",
    )
    parser.add_argument(
        "--max-message-chars",
        metavar="N",
        type=_message_chars,
        default=MAX_MESSAGE_CHARS,
        help=(
            "longest message, in characters (%(default)s); at most "
            f"{max_message_chars_for(MAX_PAYLOAD)}, what the {MAX_PAYLOAD}-byte max payload "
            "holds at 4 bytes a character"
        ),
    )
    _add_metrics_option(parser)
    _add_process_options(parser)
    _add_workers_option(parser)
    parser.set_defaults(run=run_chat)


def run_chat(args: argparse.Namespace) -> int:
    """Build the chat from the options and serve it until a signal asks to stop."""
    worker = _worker()
    _configure_logging(args.log_level, worker)
    from sockjet.chat.service import ChatService, find_web_dir
    from sockjet.chat.store import StoreError

    if args.web is not None and not os.path.isfile(os.path.join(args.web, "index.html")):
        raise CLIError(f"--web {args.web!r} has no index.html (build the front end first)")
    loop_factory = _loop_factory(args.loop)
    if not args.redis and args.redis_adapter != "classic":
        raise CLIError("--redis-adapter needs --redis")
    if args.redis and args.recovery and args.redis_adapter != "streams":
        raise CLIError(
            f"--recovery with --redis needs --redis-adapter streams (the {args.redis_adapter} "
            "adapter cannot recover sessions across servers)"
        )
    if worker is None and args.workers > 1:
        if args.redis:
            # a bad URL or no redis package: say so once, here
            _redis_adapter(args.redis, args.redis_adapter)
        return _supervise(args, "the chat")
    adapter = _redis_adapter(args.redis, args.redis_adapter) if args.redis else None
    if worker is not None and adapter is None:
        adapter = worker.local_adapter()
    try:
        service = ChatService(
            database_url=args.database,
            ping_interval=args.ping_interval,
            ping_timeout=args.ping_timeout,
            adapter=adapter,
            connection_state_recovery=args.recovery,
            web_dir=args.web if args.web is not None else find_web_dir(),
            max_message_chars=args.max_message_chars,
        )
        if args.metrics:
            _enable_metrics(service.io)
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            if worker is not None:
                worker.prepare(service.io)
                return runner.run(worker.serve(service, args.host, args.port))
            return runner.run(_serve_with_signals(service, "the chat", args.host, args.port, {}))
    except StoreError as exc:
        raise CLIError(str(exc), EXIT_FAILURE) from None


REDIS_ADAPTERS: Final = ("classic", "sharded", "streams")
"""What ``--redis-adapter`` picks from (docs/deployment.md says which and why)."""


def _redis_adapter(url: str, kind: str = "classic") -> Any:
    """The Redis adapter factory of ``kind`` (``REDIS_ADAPTERS``), imported only when asked
    for (it needs the redis package)."""
    name = "sockjet.adapters.redis_streams" if kind == "streams" else "sockjet.adapters.redis"
    try:
        module = importlib.import_module(name)
        # the factories import redis-py, the package they need
        if kind == "streams":
            return module.redis_streams_adapter(url)
        if kind == "sharded":
            return module.redis_adapter(url, sharded=True)
        return module.redis_adapter(url)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "redis":
            raise CLIError(
                "--redis needs the redis package: pip install 'sockjet[redis]'"
            ) from None
        if exc.name == name:
            raise CLIError(
                f"--redis: this version of sockjet has no Redis adapter ({name})"
            ) from None
        raise
    except ValueError as exc:
        raise CLIError(f"--redis {url!r}: {exc}") from None


# -- the parser ----------------------------------------------------------------------------------

COMMANDS: tuple[Callable[[Subparsers], None], ...] = (add_serve_command, add_chat_command)
"""Every subcommand: one function that adds its parser and sets ``run``."""


def build_parser() -> argparse.ArgumentParser:
    """The ``sockjet`` argument parser with every command of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="sockjet", description="sockjet: a fast Socket.IO server for Python."
    )
    parser.add_argument("--version", action="version", version=f"sockjet {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what --workers runs again
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except CLIError as exc:
        print(f"sockjet: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:  # Ctrl+C before the server installed its handlers
        return 130


if __name__ == "__main__":
    sys.exit(main())
