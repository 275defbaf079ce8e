"""All the cores of one host: ``--workers N`` (``sockjet serve``, ``sockjet chat``) and
``Server.run(workers=N)``.

One port, N worker processes, and no sticky sessions:

* **Listening.** The supervisor binds one listening socket and every worker accepts from it
  (inherited). A connection waits in one queue until some worker takes it, so a worker that
  dies or drains loses none of the connections not yet accepted (with ``SO_REUSEPORT``, each
  worker has its own queue, and the kernel resets what waits in the queue of a socket that
  closes). docs/deployment.md has the measurements behind this choice.
* **Sessions.** A worker's sids start with its id (:data:`~sockjet.serving.handoff.WORKER_ID_LENGTH`
  characters, :attr:`~sockjet.engine.server.EngineServer.sid_prefix`). A polling request (or
  an upgrade) for another worker's session is handed over to it, connection and bytes read, over
  a Unix socket (:mod:`sockjet.serving.handoff`); handshakes and WebSocket-only clients stay
  where the kernel put them.
* **Broadcasts, rooms, fetch_sockets, acks** go between the workers through the application's
  cluster adapter when it has one (the Redis adapter: then the workers of several hosts form
  one cluster), otherwise through a local bus between the workers of the host
  (:mod:`sockjet.adapters.local_bus`), which the default memory adapter is replaced with.
* **The supervisor** (:class:`Supervisor`, the process you start) restarts a worker that dies
  (with backoff; its clients reconnect to the others), drains every worker on SIGTERM or
  SIGINT (a second one forces the exit), and on SIGHUP replaces the workers one at a time: it
  starts a new one, waits until it serves, then drains the old one, so there are always at
  least N workers accepting. Workers learn of a drain over their control socket, not by signal,
  so that a SIGTERM sent to the whole process group (systemd, Ctrl+C) is still one request to
  drain. A worker never outlives its supervisor: it watches a pipe only the supervisor holds,
  drains when it closes, and exits after :data:`ORPHAN_TIMEOUT` seconds whatever its state.

Workers of ``sockjet serve``/``chat`` are new interpreters running the same command line (so a
SIGHUP loads the application's new code); those of ``Server.run(workers=N)`` are forks of the
process that called it. Linux only (``SCM_RIGHTS`` over ``SOCK_SEQPACKET``); TLS cannot be
handed over, so it must be terminated in front (``ssl`` is refused with workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from sockjet.serving.handoff import (
    WORKER_ALPHABET,
    HandoffListener,
    HandoffRouter,
    HandoffStats,
    LoadTable,
    handoff_path,
    listen_handoff,
)

if TYPE_CHECKING:
    from sockjet.adapters.local_bus import LocalBus
    from sockjet.serving.native import NativeServer

__all__ = [
    "ENV",
    "ORPHAN_TIMEOUT",
    "Supervisor",
    "WorkerConfig",
    "WorkerRuntime",
    "bind",
    "exec_spawner",
    "fork_spawner",
    "parse_workers",
    "worker_from_env",
]

logger = logging.getLogger("sockjet.workers")

ENV: Final = "SOCKJET_WORKER"
"""The environment variable that makes a ``sockjet`` command a worker (its configuration)."""
LOAD_INTERVAL: Final = 0.25
"""Seconds between two updates of a worker's entry in the load table (it also writes it at
every handshake), and of its list of the other workers."""
ORPHAN_TIMEOUT: Final = 30.0
"""Seconds a worker whose supervisor is gone may take to drain before it exits anyway."""
BACKLOG: Final = 2048
START_TIMEOUT: Final = 60.0
"""Seconds a new worker gets to serve (import the application, open its database...)."""
STOP_TIMEOUT: Final = 30.0
"""Seconds a draining worker gets to exit before it is killed."""
QUICK_DEATH: Final = 10.0
"""A worker that dies sooner than this after starting is restarted with growing delays."""


def parse_workers(text: str) -> int:
    """``--workers``: a number of workers, or ``auto`` (the cores this process may use)."""
    if text == "auto":
        return available_cores()
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"not a number of workers: {text!r}") from None
    if not 1 <= value <= 512:
        raise ValueError(f"must be 1 to 512 (or auto), got {text}")
    return value


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def check_platform() -> None:
    """Raise RuntimeError where workers cannot run (they need Linux's Unix sockets)."""
    if not sys.platform.startswith("linux"):
        raise RuntimeError("--workers needs Linux (file descriptors passed over Unix sockets)")


def bind(host: str, port: int, *, reuse_port: bool = False, listen: bool = True) -> socket.socket:
    """The listening socket every worker accepts from (the first address ``host`` has).

    ``reuse_port``: with ``SO_REUSEPORT`` (one such socket per worker; the supervisor binds
    one that does not listen, to hold the port)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if listen:
            sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


# -- what a worker is given ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What the supervisor gives one worker (in :data:`ENV`, as JSON, for a new interpreter)."""

    wid: str
    """This worker's id: the prefix of its sids."""
    run_dir: str
    """Where the workers' handoff and bus sockets are."""
    listen_fd: int
    handoff_fd: int
    bus_fd: int
    control_fd: int
    """A socket to the supervisor: it sends ``drain``/``force``, the worker ``ready``/stats."""
    alive_fd: int
    """A pipe only the supervisor writes to: at its end of file, the supervisor is gone."""
    peers: tuple[str, ...] = ()
    """The workers running when this one started (it links its bus to theirs)."""
    workers: int = 1

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        data = json.loads(text)
        data["peers"] = tuple(data.get("peers", ()))
        return cls(**data)

    @property
    def fds(self) -> list[int]:
        return [self.listen_fd, self.handoff_fd, self.bus_fd, self.control_fd, self.alive_fd]


def worker_from_env() -> WorkerRuntime | None:
    """The runtime of this process when the supervisor started it (and forget :data:`ENV`,
    so that the application's own subprocesses are not workers)."""
    text = os.environ.pop(ENV, None)
    if text is None:
        return None
    return WorkerRuntime(WorkerConfig.from_json(text))


class Servable(Protocol):
    """A :class:`sockjet.Server`, or an application that serves one (``ChatService``)."""

    async def serve(self, host: str = ..., port: int = ..., **options: Any) -> Any: ...

    async def close(self) -> None: ...


# -- the worker side ----------------------------------------------------------------------------


class WorkerRuntime:
    """What makes one process a worker: call :meth:`prepare` on the Server before it starts
    (sid prefix, local bus), then run :meth:`serve`."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.wid = config.wid
        load_path = os.path.join(config.run_dir, "load")
        self._load = LoadTable(load_path) if os.path.exists(load_path) else None
        self._engine: Any = None
        self._peer_ids: list[str] = list(config.peers)
        self.router = HandoffRouter(
            config.wid,
            config.run_dir,
            load=self._load,
            sessions=self._sessions,
            peers=lambda: self._peer_ids,
        )
        self._bus: LocalBus | None = None
        self._stop: asyncio.Event | None = None
        self._signals = 0
        self._main: asyncio.Task[Any] | None = None

    def local_bus(self) -> LocalBus:
        """This worker's bus to the others (made on first use; started by :meth:`serve`)."""
        if self._bus is None:
            from sockjet.adapters.local_bus import LocalBus, bus_path

            config = self.config
            sock = socket.socket(fileno=config.bus_fd)
            peers = [bus_path(config.run_dir, wid) for wid in config.peers]
            self._bus = LocalBus(config.wid, sock, peers)
        return self._bus

    def local_adapter(self) -> Any:
        """The adapter factory over :meth:`local_bus` (``Server(adapter=...)``)."""
        from sockjet.adapters.local_bus import local_bus_adapter

        return local_bus_adapter(self.local_bus())

    def _sessions(self) -> int:
        engine = self._engine
        return 0 if engine is None else int(engine.clients_count)

    def _refresh(self) -> None:
        """Publish this worker's load; list the others (their handoff sockets)."""
        self.router.publish_load()
        with contextlib.suppress(OSError):
            self._peer_ids = [
                name[2:-5]
                for name in os.listdir(self.config.run_dir)
                if name.startswith("h-") and name.endswith(".sock") and name[2:-5] != self.wid
            ]

    def prepare(self, io: Any) -> None:
        """Make the sids of ``io`` (a :class:`sockjet.Server`) name this worker, and give it
        the local bus unless it has a cluster adapter of its own."""
        io.engine.sid_prefix = self.wid
        self._engine = io.engine
        replace = getattr(io, "_use_adapter_if_default", None)
        if replace is not None and not replace(self.local_adapter()):
            adapter = io.sockets.adapter
            if not hasattr(adapter, "wait_ready") and not getattr(adapter, "cluster", False):
                logger.warning(
                    "%s is not a cluster adapter: broadcasts will not cross workers",
                    type(adapter).__name__,
                )

    async def serve(
        self, io: Servable, host: str, port: int, options: dict[str, Any] | None = None
    ) -> int:
        """Serve ``io`` on the shared socket until the supervisor (or a signal) says drain;
        returns the exit code."""
        loop = asyncio.get_running_loop()
        config = self.config
        stop = self._stop = asyncio.Event()
        self._main = asyncio.current_task()
        control = socket.socket(fileno=config.control_fd)
        control.setblocking(False)
        _watch_supervisor(config.alive_fd, loop, stop)
        listen = socket.socket(fileno=config.listen_fd)
        handoff_sock = socket.socket(fileno=config.handoff_fd)
        installed: list[signal.Signals] = []
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                continue
            installed.append(signum)
        loop.add_reader(control.fileno(), self._on_control, control)
        bus = self._bus
        listener: HandoffListener | None = None
        server: NativeServer | None = None
        code = 0
        try:
            if bus is not None:
                await bus.start()
            server = await io.serve(host, port, sock=listen, handoff=self.router, **(options or {}))
            assert server is not None
            listener = HandoffListener(handoff_sock, server.adopt, self.router.stats)
            if bus is not None:
                async with asyncio.timeout(10):
                    await bus.wait_subscribed(())
            self.router.serving = True
            self._refresh()
            refreshing = loop.create_task(self._keep_refreshing())
            _send(control, {"event": "ready", "pid": os.getpid()})
            logger.info("worker %s (pid %d) serving", self.wid, os.getpid())
            try:
                await stop.wait()
            finally:
                refreshing.cancel()
                self.router.serving = False  # no new session comes here from the others
                self.router.publish_load()
            logger.info("worker %s draining", self.wid)
            await server.stop_accepting()  # the other workers accept from now on
            await io.close()
        except asyncio.CancelledError:
            logger.warning("worker %s: forced exit", self.wid)
            code = 1
        except TimeoutError:
            logger.error("worker %s: the local bus did not link up", self.wid)
            code = 1
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(control.fileno())
            for signum in installed:
                loop.remove_signal_handler(signum)
            try:
                if server is not None:
                    await server.close()
            finally:
                if listener is not None:
                    listener.close()
                else:
                    handoff_sock.close()
                self.router.close()
                if bus is not None:
                    await bus.stop()
                _send(control, {"event": "stats", **self.stats()})
                control.close()
        return code

    async def _keep_refreshing(self) -> None:
        while True:
            await asyncio.sleep(LOAD_INTERVAL)
            self._refresh()

    def _on_signal(self, signum: int) -> None:
        if signum in (signal.SIGHUP, signal.SIGUSR1):
            return  # the supervisor's (sent to a whole process group, say): not for workers
        self._signals += 1
        if self._signals == 1:
            self._drain()
        else:
            self._force()

    def _drain(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def _force(self) -> None:
        if self._main is not None:
            self._main.cancel()

    def _on_control(self, control: socket.socket) -> None:
        try:
            data = control.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the supervisor is gone
            asyncio.get_running_loop().remove_reader(control.fileno())
            self._drain()
            return
        for line in data.split(b"\n"):
            if line == b"drain":
                self._drain()
            elif line == b"force":
                self._force()
            elif line == b"stats":
                _send(control, {"event": "stats", **self.stats()})

    def stats(self) -> dict[str, int]:
        """This worker's handoff counts (and messages published on the local bus)."""
        stats = asdict(self.router.stats)
        if self._bus is not None:
            stats["published"] = self._bus.published
        return stats


def _send(control: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        control.setblocking(True)
        control.sendall(json.dumps(message).encode() + b"\n")
        control.setblocking(False)


def _watch_supervisor(fd: int, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """A thread that notices the supervisor's end (even with the event loop stuck): drain,
    then exit after :data:`ORPHAN_TIMEOUT` seconds in any case."""

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 64):
                pass
        with contextlib.suppress(RuntimeError):  # the loop has closed: exiting anyway
            loop.call_soon_threadsafe(stop.set)
        time.sleep(ORPHAN_TIMEOUT)
        os._exit(70)

    threading.Thread(target=watch, name="sockjet-supervisor-watch", daemon=True).start()


# -- the supervisor side ------------------------------------------------------------------------


class Spawner(Protocol):
    """Starts one worker process with ``config`` (its descriptors are ``config.fds``), closing
    ``others`` in it (the supervisor's descriptors of the other workers); returns its pid."""

    def __call__(self, config: WorkerConfig, others: Sequence[int]) -> int: ...


def exec_spawner(argv: Sequence[str]) -> Spawner:
    """Workers that run ``python -c 'sockjet.cli.main()' *argv`` with :data:`ENV` set."""
    code = "import sys; from sockjet.cli import main; sys.exit(main(sys.argv[1:]))"

    def spawn(config: WorkerConfig, others: Sequence[int]) -> int:
        env = {**os.environ, ENV: config.to_json()}
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *argv],
            env=env,
            pass_fds=config.fds,
            stdin=subprocess.DEVNULL,
        )
        proc.returncode = 0  # reaped by the supervisor (os.waitpid), never by Popen
        return proc.pid

    return spawn


def fork_spawner(run: Callable[[WorkerConfig], int]) -> Spawner:
    """Workers forked from this process, running ``run(config)`` (its exit code)."""

    def spawn(config: WorkerConfig, others: Sequence[int]) -> int:
        pid = os.fork()
        if pid:
            return pid
        code = 70
        try:
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR1):
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for fd in others:
                with contextlib.suppress(OSError):
                    os.close(fd)
            code = run(config)
        except BaseException:
            logging.getLogger("sockjet.workers").exception("worker %s failed", config.wid)
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    return spawn


@dataclass(eq=False)
class _Worker:
    wid: str
    slot: int
    pid: int
    control: socket.socket
    alive: int
    started: float
    ready: bool = False
    draining: bool = False
    buffer: bytes = b""
    stats: dict[str, Any] = field(default_factory=dict)


class Supervisor:
    """Runs and watches ``workers`` worker processes sharing ``sock`` (see the module)."""

    def __init__(
        self,
        sock: socket.socket,
        spawn: Spawner,
        workers: int,
        *,
        announce: Callable[[], None] | None = None,
        say: Callable[[str], None] = lambda text: print(text, flush=True),
        start_timeout: float = START_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
        reuse_port: bool = False,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.sock = sock
        self.reuse_port = reuse_port
        self.spawn = spawn
        self.workers = workers
        self.announce = announce
        self.say = say
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.run_dir = tempfile.mkdtemp(prefix="sockjet-")
        self.load = LoadTable.create(os.path.join(self.run_dir, "load"))
        self.live: dict[str, _Worker] = {}
        self.finished: list[_Worker] = []
        self._selector = selectors.DefaultSelector()
        self._ids = deque(
            WORKER_ALPHABET[i] + WORKER_ALPHABET[j] for i in range(64) for j in range(64)
        )
        self._stopping = 0
        self._stop_deadline: float | None = None
        self._roll: deque[str] | None = None
        self._roll_new: _Worker | None = None
        self._roll_old: _Worker | None = None
        self._roll_deadline = 0.0
        self._restarts: list[tuple[float, int]] = []
        self._quick_deaths: dict[int, int] = {}
        self._announced = False
        self._failed_start = False
        self._wakeup_r, self._wakeup_w = socket.socketpair()
        self._signals: deque[int] = deque()
        self._stats_wanted: set[str] = set()
        self._stats_deadline: float | None = None

    # -- starting and stopping workers -------------------------------------------------------------

    def _new_id(self) -> str:
        for _ in range(len(self._ids)):
            wid = self._ids[0]
            self._ids.rotate(-1)
            if wid not in self.live:
                return wid
        raise RuntimeError("no worker id left")  # pragma: no cover - 4,096 live workers

    def _start(self, slot: int) -> _Worker:
        wid = self._new_id()
        run_dir = self.run_dir
        handoff = listen_handoff(handoff_path(run_dir, wid))
        from sockjet.adapters.local_bus import bus_path, listen_bus

        bus = listen_bus(bus_path(run_dir, wid))
        mine, theirs = socket.socketpair()
        alive_r, alive_w = os.pipe()
        listen = self.sock
        if self.reuse_port:
            host, port = self.sock.getsockname()[:2]
            listen = bind(host, port, reuse_port=True)
        config = WorkerConfig(
            wid=wid,
            run_dir=run_dir,
            listen_fd=listen.fileno(),
            handoff_fd=handoff.fileno(),
            bus_fd=bus.fileno(),
            control_fd=theirs.fileno(),
            alive_fd=alive_r,
            peers=tuple(w.wid for w in self.live.values() if not w.draining),
            workers=self.workers,
        )
        others = [w.control.fileno() for w in self.live.values()]
        others += [w.alive for w in self.live.values()]
        others += [mine.fileno(), alive_w, self._wakeup_r.fileno(), self._wakeup_w.fileno()]
        selector_fd = getattr(self._selector, "fileno", None)  # epoll has one
        if selector_fd is not None:
            others.append(selector_fd())
        try:
            pid = self.spawn(config, others)
        finally:
            handoff.close()
            bus.close()
            theirs.close()
            os.close(alive_r)
            if listen is not self.sock:
                listen.close()  # the worker's: a socket of the group that nobody accepts from
                # would take its share of the connections
        mine.setblocking(False)
        worker = _Worker(wid, slot, pid, mine, alive_w, time.monotonic())
        self.live[wid] = worker
        self._selector.register(mine, selectors.EVENT_READ, worker)
        logger.info("worker %s (pid %d) starting", wid, pid)
        return worker

    def _tell(self, worker: _Worker, command: bytes) -> None:
        with contextlib.suppress(OSError):
            worker.control.send(command + b"\n")

    def _drain(self, worker: _Worker) -> None:
        if not worker.draining:
            worker.draining = True
            self._tell(worker, b"drain")

    def _reaped(self, worker: _Worker, status: int) -> None:
        self.live.pop(worker.wid, None)
        self.load.set(worker.wid, -1)  # killed, it could not say so itself
        self.finished.append(worker)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(worker.control)
        self._read(worker)  # its last words (stats)
        worker.control.close()
        os.close(worker.alive)
        for path in (handoff_path(self.run_dir, worker.wid),):
            with contextlib.suppress(OSError):
                path.unlink()
        from sockjet.adapters.local_bus import bus_path

        with contextlib.suppress(OSError):
            bus_path(self.run_dir, worker.wid).unlink()
        code = os.waitstatus_to_exitcode(status)
        what = f"signal {-code}" if code < 0 else f"code {code}"
        if worker.draining or self._stopping:
            logger.info("worker %s (pid %d) exited (%s)", worker.wid, worker.pid, what)
            return
        if not worker.ready and not self._announced:
            logger.error(
                "worker %s (pid %d) exited (%s) before serving", worker.wid, worker.pid, what
            )
            self._failed_start = True
            self._stop()
            return
        if self._roll_new is worker:
            logger.error(
                "the new worker %s exited (%s): rolling restart abandoned", worker.wid, what
            )
            self._end_roll()
            return
        lived = time.monotonic() - worker.started
        deaths = self._quick_deaths.get(worker.slot, 0) + 1 if lived < QUICK_DEATH else 0
        self._quick_deaths[worker.slot] = deaths
        delay = 0.0 if not deaths else min(0.25 * 2 ** (deaths - 1), 15.0)
        logger.warning(
            "worker %s (pid %d) exited (%s); restarting it in %.2gs",
            worker.wid,
            worker.pid,
            what,
            delay,
        )
        self._restarts.append((time.monotonic() + delay, worker.slot))

    # -- messages from workers -----------------------------------------------------------------------

    def _read(self, worker: _Worker) -> None:
        while True:
            try:
                data = worker.control.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(worker.control)
                return
            lines = (worker.buffer + data).split(b"\n")
            worker.buffer = lines.pop()
            for line in lines:
                self._on_message(worker, line)

    def _on_message(self, worker: _Worker, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        event = message.get("event") if isinstance(message, dict) else None
        if event == "ready":
            worker.ready = True
            worker.started = time.monotonic()
            logger.info("worker %s (pid %d) ready", worker.wid, worker.pid)
            if self._roll_new is worker:
                self._roll_step_ready()
            elif not self._announced and self._all_ready():
                self._announced = True
                if self.announce is not None:
                    self.announce()
        elif event == "stats":
            worker.stats = {k: v for k, v in message.items() if k != "event"}
            self._stats_wanted.discard(worker.wid)
            if not self._stats_wanted and self._stats_deadline is not None:
                self._report_stats()

    def _ask_stats(self) -> None:
        """SIGUSR1: every worker reports its handoffs; then one line sums them up."""
        ready = [w for w in self.live.values() if w.ready]
        self._stats_wanted = {w.wid for w in ready}
        self._stats_deadline = time.monotonic() + 2.0
        for worker in ready:
            self._tell(worker, b"stats")
        if not ready:
            self._report_stats()

    def _report_stats(self) -> None:
        self._stats_deadline = None
        self._stats_wanted.clear()
        parts = []
        for worker in sorted(self.live.values(), key=lambda w: w.wid):
            stats = worker.stats
            parts.append(
                f"{worker.wid} sent={stats.get('sent', 0)} adopted={stats.get('adopted', 0)} "
                f"failed={stats.get('failed', 0)} balanced={stats.get('balanced', 0)} "
                f"sessions={self.load.get(worker.wid)}"
            )
        totals = self.totals()
        self.say(
            f"sockjet: handoffs: {', '.join(parts) or 'no worker'}; total sent={totals.sent} "
            f"adopted={totals.adopted} failed={totals.failed}"
        )

    def _all_ready(self) -> bool:
        ready = [w for w in self.live.values() if w.ready and not w.draining]
        return len(ready) >= self.workers

    # -- rolling restart -----------------------------------------------------------------------------

    def _begin_roll(self) -> None:
        if self._roll is not None:
            logger.info("SIGHUP: a rolling restart is already under way")
            return
        if self._stopping or not self._announced:
            return
        self._roll = deque(w.wid for w in self.live.values() if w.ready and not w.draining)
        logger.info("SIGHUP: replacing %d workers one at a time", len(self._roll))
        self._roll_next()

    def _roll_next(self) -> None:
        assert self._roll is not None
        while self._roll:
            old = self.live.get(self._roll.popleft())
            if old is None or old.draining:
                continue  # died meanwhile: its slot restarts on its own
            self._roll_old = old
            self._roll_new = self._start(old.slot)
            self._roll_deadline = time.monotonic() + self.start_timeout
            return
        logger.info("rolling restart done")
        self._end_roll()

    def _roll_step_ready(self) -> None:
        old, self._roll_old = self._roll_old, None
        self._roll_new = None
        if old is not None and old.wid in self.live:
            self._drain(old)
            self._roll_old = old  # wait for it to exit before the next one
            self._roll_deadline = time.monotonic() + self.stop_timeout + 5
        else:
            self._roll_next()

    def _end_roll(self) -> None:
        new = self._roll_new
        if new is not None and new.wid in self.live:
            self._drain(new)
        self._roll = None
        self._roll_new = None
        self._roll_old = None

    def _check_roll(self, now: float) -> None:
        if self._roll is None:
            return
        old = self._roll_old
        if self._roll_new is None and old is not None and old.wid not in self.live:
            self._roll_old = None
            self._roll_next()
        elif self._roll_new is None and old is not None and now > self._roll_deadline:
            logger.warning("worker %s did not drain in time: killing it", old.wid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(old.pid, signal.SIGKILL)
            self._roll_deadline = now + self.stop_timeout
        elif self._roll_new is not None and now > self._roll_deadline:
            logger.error(
                "the new worker did not serve in %ss: rolling restart abandoned", self.start_timeout
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._roll_new.pid, signal.SIGKILL)
            self._end_roll()

    # -- the loop ------------------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)

    def _stop(self) -> None:
        self._stopping += 1
        self._restarts.clear()
        self._roll = None
        self._roll_new = self._roll_old = None
        if self._stopping == 1:
            self._stop_deadline = time.monotonic() + self.stop_timeout
            for worker in list(self.live.values()):
                self._drain(worker)
        else:
            for worker in list(self.live.values()):
                self._tell(worker, b"force")

    def run(self) -> int:
        """Start the workers and supervise them until they all exited after a stop; returns
        the exit code (0 after a graceful stop)."""
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR1)
        previous = {signum: signal.getsignal(signum) for signum in handled}
        self._wakeup_r.setblocking(False)
        self._wakeup_w.setblocking(False)
        old_wakeup = signal.set_wakeup_fd(self._wakeup_w.fileno(), warn_on_full_buffer=False)
        self._selector.register(self._wakeup_r, selectors.EVENT_READ, None)
        try:
            for signum in handled:
                signal.signal(signum, self._on_signal)
            for slot in range(self.workers):
                self._start(slot)
            start_deadline = time.monotonic() + self.start_timeout
            while self.live or (self._restarts and not self._stopping):
                now = time.monotonic()
                if not self._announced and not self._stopping and now > start_deadline:
                    logger.error("the workers did not serve within %ss", self.start_timeout)
                    self._failed_start = True
                    self._stop()
                self._tick(now)
                timeout = self._next_timeout(now)
                for key, _ in self._selector.select(timeout):
                    if key.data is None:
                        with contextlib.suppress(OSError):
                            while self._wakeup_r.recv(512):
                                pass
                    else:
                        self._read(key.data)
                self._handle_signals()
                self._reap()
        finally:
            for worker in list(self.live.values()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(worker.pid, 0)
                self.live.pop(worker.wid, None)
                worker.control.close()
                os.close(worker.alive)
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._selector.close()
            self._wakeup_r.close()
            self._wakeup_w.close()
            self.load.close()
            shutil.rmtree(self.run_dir, ignore_errors=True)
        if self._failed_start:
            return 1
        return 0 if self._stopping < 2 else 1

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.popleft()
            if signum in (signal.SIGTERM, signal.SIGINT):
                if self._stopping == 0:
                    name = signal.Signals(signum).name
                    logger.info("%s: draining %d workers (again to force)", name, len(self.live))
                self._stop()
            elif signum == signal.SIGHUP:
                self._begin_roll()
            elif signum == signal.SIGUSR1:
                self._ask_stats()

    def _reap(self) -> None:
        for worker in list(self.live.values()):
            try:
                pid, status = os.waitpid(worker.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = worker.pid, 0
            if pid:
                self._reaped(worker, status)

    def _tick(self, now: float) -> None:
        due = [slot for at, slot in self._restarts if at <= now]
        if due and not self._stopping:
            self._restarts = [(at, slot) for at, slot in self._restarts if at > now]
            for slot in due:
                self._start(slot)
        self._check_roll(now)
        if self._stats_deadline is not None and now > self._stats_deadline:
            self._report_stats()
        if self._stop_deadline is not None and now > self._stop_deadline:
            self._stop_deadline = None
            for worker in list(self.live.values()):
                logger.warning(
                    "worker %s did not drain in %ss: killing it", worker.wid, self.stop_timeout
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)

    def _next_timeout(self, now: float) -> float:
        deadlines = [at for at, _ in self._restarts]
        if self._stop_deadline is not None:
            deadlines.append(self._stop_deadline)
        if self._roll is not None:
            deadlines.append(self._roll_deadline)
        if self._stats_deadline is not None:
            deadlines.append(self._stats_deadline)
        # waitpid has no descriptor: a dead worker is also noticed within this bound
        return max(0.0, min([*(d - now for d in deadlines), 0.2]))

    # -- reporting -----------------------------------------------------------------------------------

    def totals(self) -> HandoffStats:
        """The handoffs of every worker that reported (on exit)."""
        total = HandoffStats()
        for worker in [*self.finished, *self.live.values()]:
            for name in ("sent", "failed", "adopted", "refused", "balanced"):
                setattr(total, name, getattr(total, name) + int(worker.stats.get(name, 0)))
        return total


def summary(supervisor: Supervisor) -> str:
    """One line on what the workers did, for the supervisor's last words."""
    totals = supervisor.totals()
    reported = sum(1 for w in supervisor.finished if w.stats)
    return (
        f"{len(supervisor.finished)} worker processes ran, {reported} reported: "
        f"{totals.sent} connections handed over to the worker holding their session "
        f"({totals.adopted} adopted, {totals.failed} answered where they landed; "
        f"{totals.balanced} of them new sessions sent to a worker holding fewer)"
    )


def run_workers(
    host: str,
    port: int,
    workers: int,
    spawn: Spawner,
    *,
    announce: Callable[[str], None] | None = None,
    say: Callable[[str], None] = lambda text: print(text, flush=True),
) -> int:
    """Bind ``host:port``, run a :class:`Supervisor` of ``workers`` workers started by
    ``spawn``, ``say`` a summary when they stopped; returns the exit code. ``announce`` gets the
    URL once every worker serves. Raises OSError when the address cannot be bound."""
    check_platform()
    reuse_port = os.environ.get("SOCKJET_REUSE_PORT") == "1"  # for measurements (see docs)
    sock = bind(host, port, reuse_port=reuse_port, listen=not reuse_port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}"
    try:
        supervisor = Supervisor(
            sock,
            spawn,
            workers,
            announce=None if announce is None else lambda: announce(url),
            say=say,
            reuse_port=reuse_port,
        )
        code = supervisor.run()
    finally:
        sock.close()
    say(f"sockjet: stopped; {summary(supervisor)}")
    return code


def serve_forked(
    io: Any, host: str, port: int, workers: int, options: dict[str, Any], *, uvloop: bool = True
) -> int:
    """``Server.run(workers=N)``: forks of this process serve ``io`` (see the module)."""

    def run(config: WorkerConfig) -> int:
        runtime = WorkerRuntime(config)
        runtime.prepare(io)
        main = runtime.serve(io, host, port, dict(options))
        if uvloop:
            try:
                import uvloop as uvloop_module
            except ImportError:  # pragma: no cover - uvloop is optional
                pass
            else:
                return uvloop_module.run(main)
        return asyncio.run(main)

    def announce(url: str) -> None:
        logger.info("serving on %s with %d workers", url, workers)

    return run_workers(host, port, workers, fork_spawner(run), announce=announce, say=logger.info)
