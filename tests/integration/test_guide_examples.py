"""The user guide's key examples, run for real.

Each server here is built from the guide's own code: the Python blocks of docs/guide.md that follow
a ``<!-- guide-test: NAME -->`` comment are executed, in order, into one module namespace (the
quick start first, since the other blocks add handlers to its ``io``). The server is served on a
free port and python-socketio's AsyncClient checks what the guide says it does.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import socketio  # type: ignore[import-untyped]  # no stubs

import sockjet

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"
_TESTED_BLOCK = re.compile(r"<!-- guide-test: (\S+) -->\n```python\n(.*?)```", re.DOTALL)
TIMEOUT = 5.0


@cache
def guide_blocks() -> dict[str, str]:
    """The guide's tested code blocks by name."""
    blocks = dict(_TESTED_BLOCK.findall(GUIDE.read_text(encoding="utf-8")))
    assert {"quickstart", "stats", "rooms", "auth", "quiz", "rename"} <= blocks.keys(), sorted(
        blocks
    )
    return blocks


def build(*names: str) -> sockjet.Server:
    """The guide's quick start plus the named blocks, executed as one module; returns its ``io``."""
    namespace: dict[str, Any] = {"__name__": "guide_example"}  # not "__main__": no io.run()
    for name in ("quickstart", *names):
        exec(compile(guide_blocks()[name], f"{GUIDE}:{name}", "exec"), namespace)
    io = namespace["io"]
    assert isinstance(io, sockjet.Server)
    return io


@asynccontextmanager
async def served(io: sockjet.Server) -> AsyncIterator[str]:
    """Serve ``io`` on 127.0.0.1 (a free port) as the guide shows; closed after."""
    server = await io.serve("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await io.close()
        await server.close()


class Events:
    """The events one client receives, by name, to await in order."""

    def __init__(self, sio: socketio.AsyncClient, *names: str) -> None:
        self._queues: dict[str, asyncio.Queue[tuple[Any, ...]]] = {}
        for name in names:
            queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
            self._queues[name] = queue
            sio.on(name, lambda *args, q=queue: q.put_nowait(args))

    async def next(self, name: str) -> tuple[Any, ...]:
        return await asyncio.wait_for(self._queues[name].get(), TIMEOUT)

    def pending(self, name: str) -> int:
        return self._queues[name].qsize()


@asynccontextmanager
async def client(url: str, **options: Any) -> AsyncIterator[socketio.AsyncClient]:
    """A python-socketio AsyncClient connected over WebSocket; disconnected after."""
    sio = socketio.AsyncClient(reconnection=False)
    events = Events(sio, "hello")
    await sio.connect(url, transports=["websocket"], wait_timeout=TIMEOUT, **options)
    try:
        # The quick start greets every socket with its id.
        assert await events.next("hello") == ({"id": sio.get_sid("/")},)
        yield sio
    finally:
        await sio.disconnect()


async def test_quickstart_return_value_answers_the_ack() -> None:
    async with served(build()) as url, client(url) as sio:
        assert await sio.call("add", (1, 2), timeout=TIMEOUT) == 3


async def test_tuple_return_value_is_several_ack_arguments() -> None:
    async with served(build("stats")) as url, client(url) as sio:
        assert await sio.call("stats", [4, 1, 9], timeout=TIMEOUT) == (1, 9)


async def test_errors_go_to_the_ack_when_one_is_awaited_else_to_an_event() -> None:
    async with served(build("rename")) as url, client(url) as sio:
        events = Events(sio, "error")
        assert await sio.call("rename", 7, timeout=TIMEOUT) == {
            "ok": False,
            "error": "name must be a string",
        }
        await sio.emit("rename", 7)
        assert await events.next("error") == (
            {"event": "rename", "message": "name must be a string"},
        )
        assert await sio.call("rename", "ann", timeout=TIMEOUT) == {"ok": True}
        assert events.pending("error") == 0  # the first error was told in its ack only


async def test_room_broadcasts() -> None:
    async with served(build("rooms")) as url, client(url) as a, client(url) as b, client(url) as c:
        events = {sio: Events(sio, "joined", "said") for sio in (a, b, c)}
        assert await a.call("join", "r1", timeout=TIMEOUT) is None
        assert await b.call("join", "r1", timeout=TIMEOUT) is None
        # socket.to(room): everyone in the room but the newcomer.
        assert await events[a].next("joined") == (b.get_sid("/"),)
        # io.to(room): everyone in the room, the sender included.
        await b.emit("say", ("r1", "hi"))
        for sio in (a, b):
            assert await events[sio].next("said") == (b.get_sid("/"), "hi")
        # c is in no room: a reply on its own connection comes after anything sent to it before.
        assert await c.call("add", (1, 1), timeout=TIMEOUT) == 2
        assert events[c].pending("joined") == events[c].pending("said") == 0
        assert events[b].pending("joined") == 0


async def test_middleware_refusal_reaches_connect_error() -> None:
    async with served(build("auth")) as url:
        refused = socketio.AsyncClient(reconnection=False)
        errors: asyncio.Queue[Any] = asyncio.Queue()
        refused.on("connect_error", errors.put_nowait)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await refused.connect(
                url, auth={"token": "wrong"}, transports=["websocket"], wait_timeout=TIMEOUT
            )
        data = await asyncio.wait_for(errors.get(), TIMEOUT)
        assert data == {"message": "not authorized", "data": {"retry": False}}

        async with client(url, auth={"token": "s3cret"}) as sio:
            assert await sio.call("whoami", timeout=TIMEOUT) == "ann"


async def test_emit_with_ack_from_the_server() -> None:
    async with served(build("quiz")) as url, client(url) as sio:
        questions: list[str] = []

        def answer(text: str) -> int:
            questions.append(text)
            return 42

        sio.on("question", answer)
        assert await sio.call("quiz", timeout=TIMEOUT) == "you said 42"
        assert questions == ["6 x 7?"]
