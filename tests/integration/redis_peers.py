"""Peers for the Redis cluster tests.

* :class:`RedisServer`: a private ``redis-server`` on a free port in a temporary directory (no
  persistence), which a test can kill and start again on the same port.
* :class:`NodeRedisNode`: ``node/redis_node.js``, a Node socket.io 4.8 server with
  ``@socket.io/redis-adapter`` (classic or sharded) or ``@socket.io/redis-streams-adapter``
  (``streams=True``, with connection state recovery when ``recovery_ms`` is set), and an
  ``@socket.io/redis-emitter``, driven over JSON lines.
* :class:`PyClient`: python-socketio's ``AsyncClient`` recording what it receives.
* :func:`sockjet_node`: a sockjet server with the Redis adapter, served on a free port and
  subscribed before it is returned; :func:`sockjet_streams_node` the same with the Redis Streams
  adapter.

Every wait is bounded (see peers.py): a broken peer fails a test quickly, with what it said.
"""

# Every wait here takes its own `timeout`: bounding each wait is the point of this harness.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import tempfile
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Self

import redis.asyncio as aioredis
import socketio  # type: ignore[import-untyped]  # no stubs
from orphans import die_with_parent
from peers import HERE, PuppetError, Recorder, _LineProcess, _Mailbox, from_wire, to_wire

from sockjet import Server
from sockjet.adapters.redis import RedisAdapter, redis_adapter
from sockjet.adapters.redis_streams import StreamsAdapter, redis_streams_adapter
from sockjet.server.recovery import ConnectionStateRecovery

__all__ = [
    "NodeRedisNode",
    "PyClient",
    "RedisCluster",
    "RedisServer",
    "redis_available",
    "sockjet_node",
    "sockjet_streams_node",
    "until",
]

REDIS_NODE_JS = HERE / "node" / "redis_node.js"
DEFAULT_TIMEOUT = 5.0


def redis_available() -> bool:
    return shutil.which("redis-server") is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A private redis-server: ``async with RedisServer() as redis: redis.url``.

    ``persistent``: an append-only file, synced before each reply, so that what Redis
    acknowledged survives a kill and a restart (in its temporary directory)."""

    def __init__(self, *, persistent: bool = False) -> None:
        self.persistent = persistent
        self.cluster = False
        """Start as a Redis Cluster node (see :class:`RedisCluster`)."""
        self._bus_port: int | None = None
        self.port = _free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="sockjet-redis-"))
        self._proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None
        self.log: deque[str] = deque(maxlen=50)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    async def start(self) -> None:
        """Start on :attr:`port`; returns once it accepts connections."""
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed")
        self._proc = proc = await asyncio.create_subprocess_exec(
            exe,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            *(("--appendonly", "yes", "--appendfsync", "always") if self.persistent else ()),
            *(("--appendonly", "no") if not self.persistent else ()),
            *(self._cluster_options() if self.cluster else ()),
            "--dir",
            str(self._dir),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(10):
                async for raw in proc.stdout:
                    line = raw.decode("utf-8", "replace").rstrip()
                    self.log.append(line)
                    if "Ready to accept connections" in line:
                        break
                else:
                    raise RuntimeError("redis-server exited:\n" + "\n".join(self.log))
        except BaseException:
            await self.kill()
            raise
        self._drain = asyncio.create_task(self._read_rest(proc))

    def _cluster_options(self) -> tuple[str, ...]:
        if self._bus_port is None:
            self._bus_port = _free_port()  # the node-to-node port (not port + 10000)
        return (
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-port", str(self._bus_port), "--cluster-node-timeout", "2000",
        )  # fmt: skip

    async def _read_rest(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            self.log.append(raw.decode("utf-8", "replace").rstrip())

    async def kill(self) -> None:
        """Kill the process (SIGKILL: no goodbye to its clients)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        drain, self._drain = self._drain, None
        if drain is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(drain, 2)


class RedisCluster:
    """A private Redis Cluster of ``masters`` redis-servers (no replicas) on free ports, each
    in its own temporary directory with its own cluster config file, joined with
    ``redis-cli --cluster create``: ``async with RedisCluster() as cluster: cluster.url``.
    Ready once every node says ``cluster_state:ok``."""

    def __init__(self, masters: int = 3) -> None:
        self.nodes = [RedisServer() for _ in range(masters)]

    @property
    def url(self) -> str:
        """A URL of one node (a cluster client discovers the others from it)."""
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for node in self.nodes:
            await node.__aexit__()

    async def start(self) -> None:
        for node in self.nodes:
            node.cluster = True
        await asyncio.gather(*(node.start() for node in self.nodes))
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed")
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        proc = await asyncio.create_subprocess_exec(
            cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        if proc.returncode != 0:
            raise RuntimeError("redis-cli --cluster create failed:\n" + out.decode())
        for port in self.ports:
            client = aioredis.Redis(host="127.0.0.1", port=port)
            try:
                await until(lambda c=client: _cluster_ok(c), timeout=20, every=0.05)
            finally:
                await client.aclose()

    def client(self) -> aioredis.RedisCluster:
        """A cluster client of this cluster (the caller closes it)."""
        return aioredis.RedisCluster(host="127.0.0.1", port=self.ports[0])


async def _cluster_ok(client: aioredis.Redis) -> bool:
    info = await client.cluster("info")
    return bool(info.get("cluster_state") == "ok")


class NodeRedisNode(_LineProcess):
    """A Node socket.io server in the Redis cluster (see node/redis_node.js for commands).

    ``async with NodeRedisNode(redis.url, name="n1") as node: await node.call("emit", ...)``;
    :attr:`url` is its socket.io URL. Reports (``connection``, ``disconnect``,
    ``server_side``) are awaited with :meth:`next_report`.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        name: str = "node",
        sharded: bool = False,
        server: bool = True,
        key: str = "socket.io",
        requests_timeout_ms: int = 5000,
        streams: bool = False,
        stream_options: Mapping[str, Any] | None = None,
        recovery_ms: int | None = None,
        ping_interval_ms: int = 10000,
        ping_timeout_ms: int = 5000,
    ) -> None:
        super().__init__(f"node redis {name}")
        self.options = {
            "url": redis_url,
            "name": name,
            "sharded": sharded,
            "server": server,
            "key": key,
            "requestsTimeout": requests_timeout_ms,
            "streams": streams,
            "streamOptions": dict(stream_options or {}),
            "recovery": recovery_ms,
            "pingInterval": ping_interval_ms,
            "pingTimeout": ping_timeout_ms,
        }
        self.port: int | None = None
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._calls: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next = 1
        self._mail = _Mailbox()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        self._ready = asyncio.get_running_loop().create_future()
        await self._spawn(str(REDIS_NODE_JS), env={"REDIS_NODE_OPTIONS": json.dumps(self.options)})
        try:
            hello = await asyncio.wait_for(asyncio.shield(self._ready), 15.0)
        except (TimeoutError, PuppetError):
            await self._stop(None)
            raise PuppetError(f"{self.name} did not start; stderr:\n{self.stderr_text()}") from None
        self.port = hello.get("port")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stop(b"")

    def _on_line(self, msg: dict[str, Any]) -> None:
        if msg.get("type") == "ready":
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(msg)
            return
        if "id" in msg:
            future = self._calls.pop(msg["id"], None)
            if future is not None and not future.done():
                future.set_result(msg)
            return
        self._mail.put(str(msg.get("type")), from_wire(msg))

    def _on_exit(self, exc: PuppetError) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(exc)
        for future in self._calls.values():
            if not future.done():
                future.set_exception(exc)
        self._calls.clear()
        self._mail.fail(exc)

    async def call(self, cmd: str, *, timeout: float = DEFAULT_TIMEOUT, **fields: Any) -> Any:
        """Run one command; returns its result, raises :class:`PuppetError` on failure (the
        error message and any partial ``responses`` are in the exception's args)."""
        proc = self.proc
        assert proc is not None and proc.stdin is not None
        call_id = self._next
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = future
        if "args" in fields:
            fields["args"] = to_wire(fields["args"])
        proc.stdin.write((json.dumps({"id": call_id, "cmd": cmd, **fields}) + "\n").encode())
        try:
            reply = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise PuppetError(f"{self.name}: {cmd!r} got no reply within {timeout}s") from None
        if not reply.get("ok"):
            raise PuppetError(reply.get("error"), from_wire(reply.get("responses")))
        return from_wire(reply.get("result"))

    async def next_report(self, kind: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        report: dict[str, Any] = await self._mail.get(kind, timeout, f"{self.name} {kind}")
        return report


class PyClient:
    """A python-socketio client (websocket only) that records every event it receives.

    ``replies`` maps an event name to what the client answers when the server asks for an ack.
    """

    def __init__(self, replies: Mapping[str, Any] | None = None) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.replies = dict(replies or {})
        self.seen = Recorder(DEFAULT_TIMEOUT)
        self.sids: dict[str, str] = {}

    def _record(self, namespace: str) -> Callable[..., Any]:
        def handler(event: str, *args: Any) -> Any:
            self.seen.put(f"{namespace} {event}", list(args))
            return self.replies.get(event)

        return handler

    async def connect(
        self, url: str, *, namespaces: tuple[str, ...] = ("/",), auth: Any = None
    ) -> Self:
        for namespace in namespaces:
            self.sio.on("*", self._record(namespace), namespace=namespace)
            self.sio.on(
                "disconnect",
                lambda *a, ns=namespace: self.seen.put(f"{ns} $disconnect", list(a)),
                namespace=namespace,
            )
        await self.sio.connect(
            url, transports=["websocket"], namespaces=list(namespaces), auth=auth, wait_timeout=5
        )
        for namespace in namespaces:
            self.sids[namespace] = self.sio.get_sid(namespace)
        return self

    @property
    def sid(self) -> str:
        return self.sids["/"]

    async def next(self, event: str, namespace: str = "/", timeout: float | None = None) -> Any:
        """The args of the next ``event`` (in ``namespace``) not consumed yet."""
        return await self.seen.get(f"{namespace} {event}", timeout)

    def pending(self, event: str, namespace: str = "/") -> int:
        return self.seen.pending(f"{namespace} {event}")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sio.disconnect(), 5)


async def sockjet_node(
    stack: contextlib.AsyncExitStack,
    redis_url: str,
    setup: Callable[[Server], None] | None = None,
    *,
    namespaces: tuple[str, ...] = ("/", "/chat"),
    **adapter_options: Any,
) -> tuple[Server, str]:
    """A sockjet server in the Redis cluster, served on 127.0.0.1:<free port> until ``stack``
    closes; returns ``(io, url)`` once its namespaces are subscribed."""
    io = Server(adapter=redis_adapter(redis_url, **adapter_options))
    for name in namespaces:
        io.of(name)
    if setup is not None:
        setup(io)
    native = await io.serve("127.0.0.1", 0)
    stack.push_async_callback(native.close)
    stack.push_async_callback(io.close)
    async with asyncio.timeout(DEFAULT_TIMEOUT):
        for name in namespaces:
            await adapter_of(io, name).wait_ready()
    return io, f"http://127.0.0.1:{native.port}"


async def sockjet_streams_node(
    stack: contextlib.AsyncExitStack,
    redis_url: str,
    setup: Callable[[Server], None] | None = None,
    *,
    namespaces: tuple[str, ...] = ("/", "/chat"),
    recovery: ConnectionStateRecovery | None = None,
    ping_interval: float = 10.0,
    ping_timeout: float = 5.0,
    **adapter_options: Any,
) -> tuple[Server, str]:
    """A sockjet server with the Redis Streams adapter (and ``recovery`` when given), served
    on 127.0.0.1:<free port> until ``stack`` closes; returns ``(io, url)`` once its namespaces
    are subscribed and its stream reader started."""
    io = Server(
        adapter=redis_streams_adapter(redis_url, **adapter_options),
        connection_state_recovery=recovery,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
    )
    for name in namespaces:
        io.of(name)
    if setup is not None:
        setup(io)
    native = await io.serve("127.0.0.1", 0)
    stack.push_async_callback(native.close)
    stack.push_async_callback(io.close)
    async with asyncio.timeout(DEFAULT_TIMEOUT):
        for name in namespaces:
            adapter = io.of(name).adapter
            assert isinstance(adapter, StreamsAdapter)
            await adapter.wait_ready()
    return io, f"http://127.0.0.1:{native.port}"


async def until(
    check: Callable[[], Awaitable[bool]], timeout: float = DEFAULT_TIMEOUT, every: float = 0.01
) -> None:
    """Wait until ``await check()`` is true (for state only Redis can be asked about)."""
    async with asyncio.timeout(timeout):
        while True:
            if await check():
                return
            await asyncio.sleep(every)


def adapter_of(io: Server, nsp: str = "/") -> RedisAdapter:
    adapter = io.of(nsp).adapter
    assert isinstance(adapter, RedisAdapter)
    return adapter
