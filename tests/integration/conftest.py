"""Fixtures for the interop tests: the Node puppet (official socket.io-client), Node's own
socket.io server, and sockjet servers under the native server and under ASGI (uvicorn).

Test modules that use the module-scoped puppet run in one event loop per module:
``pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from peers import NodePuppet, NodeSocketIOServer, Serve, node_available

SERVING_MODES = ("native", "asgi")


HERE = Path(__file__).resolve().parent

# The official protocol suites are code we may not ship and CI cannot fetch: that module runs
# only when pointed at local clones (`./dev conformance DIR`, docs/conformance.md).
collect_ignore = [] if os.environ.get("SOCKJET_SUITES") else ["test_conformance_suites.py"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Without Node or the npm packages, the integration tests that need them skip with the
    # reason (in CI the root conftest turns that into a failure). This hook sees every
    # collected item: it must leave other directories alone (tests/interop fails by itself).
    if node_available():
        return
    skip = pytest.mark.skip(reason="node or tests/js/node_modules missing (./dev setup)")
    for item in items:
        if "node" in item.keywords and HERE in item.path.parents:
            item.add_marker(skip)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def puppet() -> AsyncIterator[NodePuppet]:
    """One Node process per test module, driving as many official clients as the tests need."""
    async with NodePuppet() as p:
        yield p


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node_server() -> AsyncIterator[NodeSocketIOServer]:
    """Node's reference socket.io server (see :class:`NodeSocketIOServer` for its behaviour)."""
    async with NodeSocketIOServer(pingInterval=300, pingTimeout=300) as server:
        yield server


@pytest.fixture(params=SERVING_MODES)
def serving(request: pytest.FixtureRequest) -> str:
    """The serving layer under test: sockjet's native server, or its ASGI app under uvicorn."""
    mode: str = request.param
    return mode


async def _serve_native(io: Any, stack: contextlib.AsyncExitStack) -> str:
    server = await io.serve("127.0.0.1", 0)
    stack.push_async_callback(server.close)
    stack.push_async_callback(io.close)  # LIFO: the Socket.IO server closes first
    return f"http://127.0.0.1:{server.port}"


async def _serve_asgi(io: Any, stack: contextlib.AsyncExitStack) -> str:
    import uvicorn

    from sockjet.serving.asgi import ASGIApp
    from sockjet.serving.native import stop_accepting

    # Bind first: the port is known at once and clients queue in the backlog until uvicorn
    # accepts, so nothing polls for "started".
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stack.callback(sock.close)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    config = uvicorn.Config(
        ASGIApp(io),
        lifespan="on",
        log_level="warning",
        ws="websockets-sansio",
        ws_max_size=max(io.engine.max_payload, 1_000_000) + 1024,
        ws_ping_interval=None,  # Engine.IO has its own heartbeat
        timeout_graceful_shutdown=3,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")

    async def stop() -> None:
        await io.close()
        await stop_accepting([sock])  # uvicorn's close() meets CPython gh-109564 too
        server.should_exit = True
        await asyncio.wait_for(task, 10)

    stack.push_async_callback(stop)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest_asyncio.fixture(loop_scope="module")
async def serve(serving: str) -> AsyncIterator[Serve]:
    """Start sockjet servers for one test under the ``serving`` mode; all closed after it."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(io: Any) -> str:
            if serving == "native":
                return await _serve_native(io, stack)
            return await _serve_asgi(io, stack)

        yield start


@pytest_asyncio.fixture(loop_scope="module")
async def serve_native() -> AsyncIterator[Serve]:
    """Like ``serve``, native server only (for tests about one serving layer's behaviour)."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(io: Any) -> str:
            return await _serve_native(io, stack)

        yield start


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect cycles after each test, so a leaked socket or transport is reported (warnings
    are errors) by the test that leaked it rather than by whichever test the GC ran in."""
    yield
    gc.collect()
