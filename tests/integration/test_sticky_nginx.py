"""Two sockjet nodes on one Redis behind nginx: the deployment of docs/deployment.md, for real.

The nginx configurations are the documented ones (see :mod:`nginx_peers`). Polling clients make
one HTTP request after another, and only the node that made a session knows it: these tests show
that both documented kinds of sticky sessions (by client address, by route cookie) keep every
request of a client on one node while clients spread over both, that clients on different nodes
meet in one room through the Redis adapter, and that the official client's upgrade from polling
to WebSocket goes through the proxy. The negative control takes stickiness away: polling then
breaks with ``{"code":1,"message":"Session ID unknown"}``, while WebSocket-only clients, which
make a single request, still work. The page's Python examples (health endpoint, emitter) run too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import socketio  # type: ignore[import-untyped]  # no stubs
from nginx_peers import DEPLOYMENT, Nginx, deployment_blocks, nginx_binary
from peers import NodePuppet
from redis_peers import RedisServer, adapter_of, redis_available

import sockjet
from sockjet.adapters.redis import redis_adapter

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed"),
    pytest.mark.skipif(not redis_available(), reason="redis-server is not installed"),
]

TIMEOUT = 5.0
ROOM = "lobby"
# Clients are spread by address or by random cookie: open them until each node has this many.
PER_NODE = 2
MAX_CLIENTS = 24
ROUND_ROBIN_LINE = "    hash $remote_addr consistent;"


@dataclass
class Node:
    """One sockjet server of the cluster."""

    name: str
    io: sockjet.Server
    port: int = 0


@dataclass
class Client:
    """A python-socketio client with what it received."""

    sio: Any
    said: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)

    async def call(self, event: str, *args: Any) -> Any:
        return await self.sio.call(event, args if len(args) != 1 else args[0], timeout=TIMEOUT)

    async def next_said(self) -> tuple[str, str]:
        return await asyncio.wait_for(self.said.get(), TIMEOUT)


def _build_node(name: str, redis_url: str) -> sockjet.Server:
    io = sockjet.Server(adapter=redis_adapter(redis_url))

    @io.on("whoami")
    def whoami(socket: sockjet.Socket) -> str:
        return name

    @io.on("join")
    def join(socket: sockjet.Socket, room: str) -> str:
        socket.join(room)
        return name

    @io.on("say")
    def say(socket: sockjet.Socket, room: str, text: str) -> None:
        io.to(room).emit("said", text, name)

    return io


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def nodes() -> AsyncIterator[list[Node]]:
    """Two sockjet nodes, each on its own free port, sharing a private Redis."""
    async with contextlib.AsyncExitStack() as stack:
        redis = await stack.enter_async_context(RedisServer())
        cluster = []
        for name in ("A", "B"):
            node = Node(name, _build_node(name, redis.url))
            server = await node.io.serve("127.0.0.1", 0)
            stack.push_async_callback(server.close)
            stack.push_async_callback(node.io.close)
            node.port = server.port
            cluster.append(node)
        async with asyncio.timeout(TIMEOUT):
            for node in cluster:
                await adapter_of(node.io).wait_ready()
        yield cluster


@contextlib.asynccontextmanager
async def proxy(nodes: list[Node], block: str) -> AsyncIterator[str]:
    async with Nginx(block, [node.port for node in nodes]) as nginx:
        yield nginx.url


@contextlib.asynccontextmanager
async def client(
    url: str,
    *,
    transports: list[str] | None = None,
    session: Callable[[], aiohttp.ClientSession] | None = None,
) -> AsyncIterator[Client]:
    """A connected python-socketio client (over ``session`` when given); closed after."""
    http = session() if session is not None else None
    options: dict[str, Any] = {} if http is None else {"http_session": http}
    sio = socketio.AsyncClient(reconnection=False, handle_sigint=False, **options)
    me = Client(sio)
    sio.on("said", lambda text, node: me.said.put_nowait((text, node)))
    try:
        await sio.connect(url, transports=transports or ["polling"], wait_timeout=TIMEOUT)
        yield me
    finally:
        await sio.disconnect()
        if http is not None:
            await http.close()


def from_address(host: str) -> Callable[[], aiohttp.ClientSession]:
    """Sessions whose connections leave from ``host`` (any 127.x.y.z is local on Linux)."""
    return lambda: aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(host, 0)))


def with_cookies() -> aiohttp.ClientSession:
    # aiohttp keeps no cookies from IP-address hosts (127.0.0.1) unless told to.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def spread(
    stack: contextlib.AsyncExitStack,
    url: str,
    sessions: Callable[[int], Callable[[], aiohttp.ClientSession]],
) -> dict[str, list[Client]]:
    """Open polling clients until both nodes have PER_NODE of them; clients by node name."""
    by_node: dict[str, list[Client]] = {"A": [], "B": []}
    for i in range(MAX_CLIENTS):
        c = await stack.enter_async_context(client(url, session=sessions(i)))
        by_node[await c.call("whoami")].append(c)
        if all(len(group) >= PER_NODE for group in by_node.values()):
            return by_node
    pytest.fail(f"{MAX_CLIENTS} clients did not spread over both nodes: {by_node}")


async def assert_sticky_cluster(nodes: list[Node], by_node: dict[str, list[Client]]) -> None:
    everyone = [c for group in by_node.values() for c in group]
    # Each client's session is on the node it was routed to, and only there ...
    for node in nodes:
        sessions = set(node.io.engine.sessions)
        for name, group in by_node.items():
            sids = {c.sio.eio.sid for c in group}
            assert sids <= sessions if name == node.name else not sids & sessions
    # ... every later request of a client reaches that node again ...
    for name, group in by_node.items():
        for c in group:
            assert await c.call("join", ROOM) == name
            assert await c.call("whoami") == name
    # ... and a broadcast from either node reaches the room on both.
    for name, group in by_node.items():
        await group[0].sio.emit("say", (ROOM, f"hello from {name}"))
        for c in everyone:
            assert await c.next_said() == (f"hello from {name}", name)
    assert all(c.sio.eio.current_transport == "polling" for c in everyone)


async def test_address_hash_keeps_polling_clients_on_their_node(nodes: list[Node]) -> None:
    block = deployment_blocks()["nginx-sticky-address"]
    async with proxy(nodes, block) as url, contextlib.AsyncExitStack() as stack:
        by_node = await spread(stack, url, lambda i: from_address(f"127.0.0.{i + 2}"))
        await assert_sticky_cluster(nodes, by_node)


async def test_route_cookie_keeps_polling_clients_on_their_node(nodes: list[Node]) -> None:
    block = deployment_blocks()["nginx-sticky-cookie"]
    async with proxy(nodes, block) as url, contextlib.AsyncExitStack() as stack:
        by_node = await spread(stack, url, lambda _: with_cookies)
        await assert_sticky_cluster(nodes, by_node)


@pytest.mark.node
@pytest.mark.parametrize("config", ["nginx-sticky-address", "nginx-sticky-cookie"])
async def test_official_client_upgrades_through_the_proxy(
    nodes: list[Node], puppet: NodePuppet, config: str
) -> None:
    async with proxy(nodes, deployment_blocks()[config]) as url:
        # withCredentials: the official client keeps cookies (in Node too) only when asked to.
        c = await puppet.connect(url, withCredentials=True)
        try:
            assert await c.wait_upgrade() == "websocket"
            (name,) = await c.emit_with_ack("whoami")
            # The node that answers is the one holding the session, now on WebSocket.
            sid = (await c.state())["engine_id"]
            (node,) = [node for node in nodes if sid in node.io.engine.sessions]
            assert node.name == name
            assert node.io.engine.sessions[sid].transport == "websocket"
        finally:
            await c.disconnect()


def round_robin_block() -> str:
    """The address-hash configuration without its hash line: plain round robin."""
    block = deployment_blocks()["nginx-sticky-address"]
    assert ROUND_ROBIN_LINE in block
    return block.replace(ROUND_ROBIN_LINE, "")


async def test_without_stickiness_polling_sessions_are_unknown(nodes: list[Node]) -> None:
    async with proxy(nodes, round_robin_block()) as url, aiohttp.ClientSession() as http:
        try:
            endpoint = f"{url}/socket.io/?EIO=4&transport=polling"
            async with http.get(endpoint) as response:
                body = await response.text()
            sid = json.loads(body[1:])["sid"]
            # Round robin: the handshake went to one node, the next request or the one after
            # it goes to the other, which has never heard of the session.
            answers = []
            for _ in range(2):
                async with http.post(
                    f"{endpoint}&sid={sid}", data="40", headers={"content-type": "text/plain"}
                ) as response:
                    answers.append((response.status, await response.text()))
                if response.status == 400:
                    break
            assert answers[-1] == (400, '{"code":1,"message":"Session ID unknown"}'), answers

            sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
            with pytest.raises(socketio.exceptions.ConnectionError):
                await sio.connect(url, transports=["polling"], wait_timeout=1)
            await sio.disconnect()
        finally:
            await close_sessions(http, nodes)


async def close_sessions(http: aiohttp.ClientSession, nodes: list[Node]) -> None:
    """Close the sessions the clients above left behind, on the node that has each: a polling
    session otherwise waits for its client until the server's shutdown grace runs out."""
    for node in nodes:
        engine = node.io.engine
        polling = [sid for sid, s in engine.sessions.items() if s.transport == "polling"]
        for sid in polling:
            endpoint = f"http://127.0.0.1:{node.port}/socket.io/?EIO=4&transport=polling"
            async with http.post(
                f"{endpoint}&sid={sid}", data="1", headers={"content-type": "text/plain"}
            ) as response:
                assert response.status == 200
        assert not set(polling) & set(engine.sessions)


async def test_websocket_only_clients_need_no_stickiness(nodes: list[Node]) -> None:
    async with proxy(nodes, round_robin_block()) as url, contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(client(url, transports=["websocket"])) for _ in range(4)
        ]
        names = [await c.call("join", ROOM) for c in clients]
        assert sorted(names) == ["A", "A", "B", "B"]  # round robin alternates
        await clients[0].sio.emit("say", (ROOM, "hi"))
        for c in clients:
            assert await c.next_said() == ("hi", names[0])


# -- the page's Python examples ------------------------------------------------------------------

_PYTHON_BLOCK = re.compile(r"<!-- deployment-test: (\S+) -->\n```python\n(.*?)```", re.DOTALL)


def python_example(name: str, replace: dict[str, str] | None = None) -> dict[str, Any]:
    """Execute docs/deployment.md's Python block ``name`` as a module (with the ``replace``
    substitutions, e.g. a Redis URL); returns its namespace."""
    blocks = dict(_PYTHON_BLOCK.findall(DEPLOYMENT.read_text(encoding="utf-8")))
    code = blocks[name]
    for old, new in (replace or {}).items():
        assert old in code, old
        code = code.replace(old, new)
    namespace: dict[str, Any] = {"__name__": f"deployment_{name}"}  # not "__main__"
    exec(compile(code, f"{DEPLOYMENT}:{name}", "exec"), namespace)
    return namespace


async def test_health_endpoint_turns_503_when_shutting_down() -> None:
    example = python_example("health")
    io: sockjet.Server = example["io"]
    server = await io.serve("127.0.0.1", 0, fallback=example["health"])
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{server.port}") as http:
            async with http.get("/healthz") as response:
                assert (response.status, await response.text()) == (200, "ok")
            async with http.get("/elsewhere") as response:
                assert response.status == 404
            await io.close()
            async with http.get("/healthz") as response:
                assert response.status == 503
    finally:
        await io.close()
        await server.close()


async def test_emitter_example_reaches_a_room_on_a_node() -> None:
    async with contextlib.AsyncExitStack() as stack:
        redis = await stack.enter_async_context(RedisServer())
        io = sockjet.Server(adapter=redis_adapter(redis.url))

        @io.on("join")
        def join(socket: sockjet.Socket, room: str) -> None:
            socket.join(room)

        server = await io.serve("127.0.0.1", 0)
        stack.push_async_callback(server.close)
        stack.push_async_callback(io.close)
        async with asyncio.timeout(TIMEOUT):
            await adapter_of(io).wait_ready()
        got: asyncio.Queue[Any] = asyncio.Queue()
        sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        sio.on("order_ready", got.put_nowait)
        await sio.connect(
            f"http://127.0.0.1:{server.port}", transports=["websocket"], wait_timeout=TIMEOUT
        )
        stack.push_async_callback(sio.disconnect)
        await sio.call("join", "order-42", timeout=TIMEOUT)

        example = python_example("emitter", {"redis://10.0.0.20:6379/0": redis.url})
        await example["notify"]("42")

        assert await asyncio.wait_for(got.get(), TIMEOUT) == {"id": "42"}
