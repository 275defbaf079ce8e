"""Two `sockjet chat --redis` processes form one chat: messages, typing, presence and history
cross from one server to the other (a private redis-server, one shared SQLite file)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
import socketio
from chat_peers import ChatProcess, PrivateRedis, free_port

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")


class Client:
    """python-socketio's client with the chat's events queued."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: dict[str, asyncio.Queue[Any]] = {}
        for name in ("receiveMessage", "userJoined", "userLeft", "userTyping"):
            queue: asyncio.Queue[Any] = asyncio.Queue()
            self.events[name] = queue
            self.sio.on(name, queue.put_nowait)

    async def next(self, event: str) -> Any:
        return await asyncio.wait_for(self.events[event].get(), 5)

    async def join(self, url: str, room: str, user_id: str, name: str) -> dict[str, Any]:
        if not self.sio.connected:
            await self.sio.connect(url)
        reply: dict[str, Any] = await self.sio.call(
            "joinRoom", {"roomId": room, "userId": user_id, "username": name}, timeout=5
        )
        assert reply["ok"], reply
        return reply


async def test_two_servers_one_chat(tmp_path: Path) -> None:
    async with PrivateRedis() as redis:
        db = f"sqlite:///{tmp_path}/chat.db"
        one = ChatProcess(free_port(), db, "--redis", redis.url)
        two = ChatProcess(free_port(), db, "--redis", redis.url)
        await asyncio.gather(one.start(), two.start())  # each announces once subscribed
        ann, bob, ann2, cy = Client(), Client(), Client(), Client()
        try:
            await ann.join(one.url, "c", "ann", "Ann")
            reply = await bob.join(two.url, "c", "bob", "Bob")
            assert [u["username"] for u in reply["online"]] == ["Ann", "Bob"]  # across servers
            assert (await ann.next("userJoined"))["username"] == "Bob"

            ack = await ann.sio.call(
                "sendMessage", {"roomId": "c", "message": "from one"}, timeout=5
            )
            assert (await bob.next("receiveMessage"))["id"] == ack["id"]
            await bob.sio.call("sendMessage", {"roomId": "c", "message": "from two"}, timeout=5)
            assert [(await ann.next("receiveMessage"))["message"] for _ in range(2)] == [
                "from one",
                "from two",
            ]
            await bob.sio.emit("typing", {"roomId": "c"})
            assert await ann.next("userTyping") == {"username": "Bob"}

            # Ann opens a second tab on the other server: one user; closing a tab is no exit.
            reply = await ann2.join(two.url, "c", "ann", "Ann")
            assert [u["username"] for u in reply["online"]] == ["Ann", "Bob"]
            assert [m["message"] for m in reply["history"]] == ["from one", "from two"]
            await ann.sio.disconnect()
            await cy.sio.connect(one.url)  # a round trip through the server Ann left
            assert await cy.sio.call("echo", "x", timeout=5) == "x"
            reply = await bob.join(two.url, "c", "bob", "Bob")  # already in: who is online?
            assert [u["username"] for u in reply["online"]] == ["Ann", "Bob"]
            await ann2.sio.call("leaveRoom", {"roomId": "c"}, timeout=5)
            assert await bob.next("userLeft") == {"userId": "ann", "username": "Ann"}
            await bob.sio.call("echo", timeout=5)
            assert bob.events["userJoined"].empty() and bob.events["userLeft"].empty()
        finally:
            for client in (ann, bob, ann2, cy):
                await client.sio.disconnect()
            codes = await asyncio.gather(one.stop(), two.stop())
        assert codes == [0, 0], one.log() + two.log()
