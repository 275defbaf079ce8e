"""docs/client.md's examples, run for real against a sockjet server.

The Python blocks that follow a ``<!-- client-doc-test: NAME -->`` comment are executed as
modules; the test then calls the function each one defines with the URL of a server that does
what the example expects.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from client_peers import client_tasks, sockjet_server

import sockjet

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"
_TESTED_BLOCK = re.compile(r"<!-- client-doc-test: (\S+) -->\n```python\n(.*?)```", re.DOTALL)


@cache
def blocks() -> dict[str, str]:
    found = dict(_TESTED_BLOCK.findall(DOC.read_text(encoding="utf-8")))
    assert {"quickstart", "namespaces", "load"} <= found.keys(), sorted(found)
    return found


def load_block(name: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": f"client_doc_{name}"}  # not __main__: no asyncio.run
    exec(compile(blocks()[name], f"{DOC}:{name}", "exec"), namespace)
    return namespace


def chat_server(*, token: str | None = None) -> sockjet.Server:
    """What the examples talk to: a chat (rooms, acknowledged messages, ``token`` required if
    given), an ``/admin`` namespace and a ``ping`` echo."""
    io = sockjet.Server()

    @io.use
    def authenticate(socket: sockjet.Socket) -> None:
        if token is not None and socket.handshake.auth.get("token") != token:
            raise sockjet.ConnectionRefused("not authorized")

    @io.on("joinRoom")
    def join_room(socket: sockjet.Socket, data: dict[str, str]) -> None:
        socket.join(data["roomId"])
        socket.data.update(room=data["roomId"], username=data["username"])

    @io.on("sendMessage")
    def send_message(socket: sockjet.Socket, data: dict[str, str]) -> dict[str, bool]:
        message = {"username": socket.data["username"], "text": data["text"]}
        io.to(socket.data["room"]).emit("receiveMessage", message)
        return {"ok": True}

    @io.of("/admin").on("whoami")
    def whoami(socket: sockjet.Socket) -> None:
        socket.emit("audit", socket.id)

    @io.on("ping")
    def ping(socket: sockjet.Socket, n: int) -> int:
        return n

    return io


async def test_quickstart(capsys: pytest.CaptureFixture[str]) -> None:
    async with sockjet_server(chat_server(token="s3cret")) as url:
        await load_block("quickstart")["main"](url)
    assert capsys.readouterr().out == "bot: hi\nserver replied {'ok': True}\n"
    assert client_tasks() == []


async def test_namespaces() -> None:
    async with sockjet_server(chat_server()) as url:
        root, admin = await load_block("namespaces")["two_namespaces"](url)
    assert root and admin and root != admin


async def test_load() -> None:
    async with sockjet_server(chat_server()) as url:
        assert await load_block("load")["load"](url, 50) == list(range(50))
    assert client_tasks() == []
