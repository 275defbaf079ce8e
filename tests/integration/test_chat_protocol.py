"""`sockjet chat` at the protocol level: the official socket.io-client (Node) and python-socketio's
client exercise every event, room isolation, presence, load and mixed transports."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import socketio
from peers import NodeClient, NodePuppet

from sockjet.chat.service import ChatService

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@dataclass
class RunningChat:
    url: str
    service: ChatService
    db: Path

    def saved(self) -> list[tuple[str, str, str]]:
        """(room, username, message) of every saved row, in order."""
        with contextlib.closing(sqlite3.connect(self.db)) as db:
            return list(
                db.execute("SELECT room_id, username, message FROM chat_messages ORDER BY seq")
            )


async def start_chat(db: Path) -> tuple[RunningChat, Any]:
    service = ChatService(database_url=f"sqlite:///{db}")
    server = await service.serve("127.0.0.1", 0)
    return RunningChat(f"http://127.0.0.1:{server.port}", service, db), server


@pytest_asyncio.fixture(loop_scope="module")
async def chat(tmp_path: Path) -> AsyncIterator[RunningChat]:
    running, server = await start_chat(tmp_path / "chat.db")
    try:
        yield running
    finally:
        await running.service.close()
        await server.close()


def join(room: str, user_id: str, username: str) -> dict[str, str]:
    return {"roomId": room, "userId": user_id, "username": username}


async def joined(client: NodeClient, room: str, user_id: str, username: str) -> dict[str, Any]:
    (reply,) = await client.emit_with_ack("joinRoom", join(room, user_id, username))
    assert reply["ok"], reply
    return dict(reply)


# -- the official client -------------------------------------------------------------------------


async def test_every_event_with_the_official_client(puppet: NodePuppet, chat: RunningChat) -> None:
    ann = await puppet.connect(chat.url)
    bob = await puppet.connect(chat.url, transports=["websocket"])
    reply = await joined(bob, "general", "u-bob", "Bob")
    assert reply == {
        "ok": True,
        "roomId": "general",
        "history": [],
        "online": [{"userId": "u-bob", "username": "Bob"}],
    }
    reply = await joined(ann, "general", "u-ann", "Ann")
    assert reply["online"] == [
        {"userId": "u-ann", "username": "Ann"},
        {"userId": "u-bob", "username": "Bob"},
    ]
    assert await bob.next_event("userJoined") == [
        {"userId": "u-ann", "username": "Ann", "message": "Ann joined the chat"}
    ]

    (ack,) = await ann.emit_with_ack(
        "sendMessage", {"roomId": "general", "message": "hi <b>Bob</b>"}
    )
    assert ack["ok"] and UUID.match(ack["id"]) and ISO_UTC.match(ack["timestamp"])
    expected = {
        "id": ack["id"],
        "userId": "u-ann",
        "username": "Ann",
        "message": "hi <b>Bob</b>",
        "timestamp": ack["timestamp"],
    }
    assert await ann.next_event("receiveMessage") == [expected]  # the sender too
    assert await bob.next_event("receiveMessage") == [expected]

    await bob.emit("typing", {"roomId": "general"})
    assert await ann.next_event("userTyping") == [{"username": "Bob"}]

    assert await ann.emit_with_ack("echo", 1, "two", {"3": [4]}, None) == [
        1,
        "two",
        {"3": [4]},
        None,
    ]

    # Bad input: an error ack when one was asked, else an error event; never a crash.
    assert await ann.emit_with_ack("sendMessage", {"roomId": "general"}) == [
        {"ok": False, "error": "message is missing"}
    ]
    await ann.emit("joinRoom", "general")
    assert await ann.next_event("error") == [
        {"event": "joinRoom", "message": "expected an object like {roomId, userId, username}"}
    ]
    too_long = {"roomId": "general", "message": "x" * 2001}
    assert await ann.emit_with_ack("sendMessage", too_long) == [
        {"ok": False, "error": "message is longer than 2000 characters"}
    ]

    assert await bob.emit_with_ack("leaveRoom", {"roomId": "general"}) == [
        {"ok": True, "roomId": "general"}
    ]
    assert await ann.next_event("userLeft") == [{"userId": "u-bob", "username": "Bob"}]
    await joined(bob, "general", "u-bob", "Bob")
    assert (await ann.next_event("userJoined"))[0]["username"] == "Bob"
    await bob.close_engine()  # disconnection announces too
    assert await ann.next_event("userLeft") == [{"userId": "u-bob", "username": "Bob"}]

    history = (await joined(await puppet.connect(chat.url), "general", "u-cy", "Cy"))["history"]
    assert history == [expected]
    assert ann.pending("receiveMessage") == 0 and ann.pending("error") == 0


async def test_two_rooms_are_isolated(puppet: NodePuppet, chat: RunningChat) -> None:
    a1, a2, b1 = (
        (await puppet.connect(chat.url) for _ in range(3))
        if False
        else (
            await puppet.connect(chat.url),
            await puppet.connect(chat.url),
            await puppet.connect(chat.url),
        )
    )
    await joined(a1, "a", "u1", "A1")
    await joined(a2, "a", "u2", "A2")
    await joined(b1, "b", "u3", "B1")
    await a1.emit("typing", {"roomId": "a"})
    await a1.emit_with_ack("sendMessage", {"roomId": "a", "message": "for a"})
    await b1.emit_with_ack("sendMessage", {"roomId": "b", "message": "for b"})
    assert (await a2.next_event("receiveMessage"))[0]["message"] == "for a"
    assert (await b1.next_event("receiveMessage"))[0]["message"] == "for b"
    assert (await a1.next_event("receiveMessage"))[0]["message"] == "for a"
    # Sentinels: an echo round trip after everything, then nothing from the other room.
    for c in (a1, a2, b1):
        await c.emit_with_ack("echo")
    assert a1.pending("receiveMessage") == a2.pending("receiveMessage") == 0
    assert b1.pending("receiveMessage") == 0 and b1.pending("userTyping") == 0
    assert b1.pending("userJoined") == 0  # nobody joined b after B1
    # Sending to a room one has not joined is refused, and reaches nobody.
    assert await b1.emit_with_ack("sendMessage", {"roomId": "a", "message": "intruder"}) == [
        {"ok": False, "error": "join the room before sending to it"}
    ]
    await a1.emit_with_ack("echo")
    assert a1.pending("receiveMessage") == 0
    assert (await joined(b1, "b", "u3", "B1"))["history"][-1]["message"] == "for b"


async def test_presence_across_tabs_and_reconnects(puppet: NodePuppet, chat: RunningChat) -> None:
    watcher = await puppet.connect(chat.url)
    await joined(watcher, "p", "w", "Watcher")
    tab1 = await puppet.connect(chat.url, transports=["polling"])
    tab2 = await puppet.connect(chat.url, transports=["websocket"])
    await joined(tab1, "p", "dana", "Dana")
    reply = await joined(tab2, "p", "dana", "Dana")  # a second tab: one user
    assert [u["username"] for u in reply["online"]] == ["Dana", "Watcher"]
    await tab1.close_engine()
    await tab2.emit_with_ack("echo")  # the server has handled tab1's close by now
    await watcher.emit_with_ack("echo")
    assert watcher.pending("userLeft") == 0
    # Dana's page reconnects (new socket) before the old one is gone: still no noise.
    tab3 = await puppet.connect(chat.url)
    await joined(tab3, "p", "dana", "Dana")
    await tab2.drop()
    await tab3.emit("typing", {"roomId": "p"})
    assert await watcher.next_event("userTyping") == [{"username": "Dana"}]
    assert watcher.pending("userLeft") == 0
    assert watcher.pending("userJoined") == 1  # her very first join only
    await tab3.disconnect()
    assert await watcher.next_event("userLeft") == [{"userId": "dana", "username": "Dana"}]
    reply = await joined(await puppet.connect(chat.url), "p", "x", "X")
    assert [u["username"] for u in reply["online"]] == ["Watcher", "X"]


async def test_twenty_clients_fifty_messages_each_mixed_transports(
    puppet: NodePuppet, chat: RunningChat
) -> None:
    transports: list[dict[str, Any]] = [
        {"transports": ["websocket"]},
        {"transports": ["polling"]},
        {},  # polling, then the upgrade to WebSocket
    ]
    clients = []
    for n in range(20):
        client = await puppet.connect(chat.url, **transports[n % 3])
        await joined(client, "load", f"u{n}", f"user{n}")
        clients.append(client)
    for client in clients:
        await client.emit_many(
            ("sendMessage", [{"roomId": "load", "message": f"{client.handle} {i}"}])
            for i in range(50)
        )
    for client in clients:
        per_sender: dict[str, list[int]] = defaultdict(list)
        ids: set[str] = set()
        for _ in range(20 * 50):
            (m,) = await client.next_event("receiveMessage")
            sender, number = m["message"].split()
            per_sender[sender].append(int(number))
            ids.add(m["id"])
        assert len(ids) == 1000  # no duplicates
        assert all(numbers == list(range(50)) for numbers in per_sender.values())
        assert len(per_sender) == 20
    for client in clients:
        await client.emit_with_ack("echo")
        assert client.pending("receiveMessage") == 0
    transports_now = {await c.transport() for c in clients}
    assert transports_now == {"websocket", "polling"}
    await chat.service.app.writer.flush()
    assert len([row for row in chat.saved() if row[0] == "load"]) == 1000


# -- python-socketio's client --------------------------------------------------------------------


class PyClient:
    """python-socketio's AsyncClient with every chat event queued for the test to await."""

    EVENTS = ("receiveMessage", "userJoined", "userLeft", "userTyping", "error")

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.queues: dict[str, asyncio.Queue[Any]] = {e: asyncio.Queue() for e in self.EVENTS}
        for event in self.EVENTS:
            self.sio.on(event, self.queues[event].put_nowait)

    async def next(self, event: str) -> Any:
        return await asyncio.wait_for(self.queues[event].get(), 5)

    async def call(self, event: str, data: Any) -> Any:
        return await self.sio.call(event, data, timeout=5)


async def test_python_socketio_client_every_event(chat: RunningChat) -> None:
    ann, bob = PyClient(), PyClient()
    await ann.sio.connect(chat.url, transports=["polling"])
    await bob.sio.connect(chat.url, transports=["websocket"])
    try:
        assert (await ann.call("joinRoom", join("py", "a", "Ann")))["ok"]
        assert (await bob.call("joinRoom", join("py", "b", "Bob")))["online"] == [
            {"userId": "a", "username": "Ann"},
            {"userId": "b", "username": "Bob"},
        ]
        assert (await ann.next("userJoined"))["message"] == "Bob joined the chat"
        ack = await bob.call("sendMessage", {"roomId": "py", "message": "héllo 😀"})
        for client in (ann, bob):
            m = await client.next("receiveMessage")
            assert m == {
                "id": ack["id"],
                "userId": "b",
                "username": "Bob",
                "message": "héllo 😀",
                "timestamp": ack["timestamp"],
            }
        await ann.sio.emit("typing", {"roomId": "py"})
        assert await bob.next("userTyping") == {"username": "Ann"}
        assert await ann.sio.call("echo", (1, [2], {"x": None}), timeout=5) == (1, [2], {"x": None})
        await bob.sio.emit("sendMessage", {"roomId": "py", "message": ""})
        assert await bob.next("error") == {
            "event": "sendMessage",
            "message": "message must not be empty",
        }
        assert await bob.call("leaveRoom", {"roomId": "py"}) == {"ok": True, "roomId": "py"}
        assert await ann.next("userLeft") == {"userId": "b", "username": "Bob"}
        history = (await bob.call("joinRoom", join("py", "b", "Bob")))["history"]
        assert [m["message"] for m in history] == ["héllo 😀"]
    finally:
        await ann.sio.disconnect()
        await bob.sio.disconnect()


async def test_history_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "restart.db"
    first, server = await start_chat(db)
    client = PyClient()
    await client.sio.connect(first.url)
    await client.call("joinRoom", join("keep", "u", "Una"))
    for n in range(60):
        await client.sio.emit("sendMessage", {"roomId": "keep", "message": f"m{n}"})
    assert (await client.call("echo", "done")) == "done"  # every message was handled
    await client.sio.disconnect()
    await first.service.close()  # saves everything accepted
    await server.close()

    second, server = await start_chat(db)
    try:
        client = PyClient()
        await client.sio.connect(second.url)
        history = (await client.call("joinRoom", join("keep", "v", "Vic")))["history"]
        assert [m["message"] for m in history] == [f"m{n}" for n in range(10, 60)]  # the last 50
        await client.sio.disconnect()
    finally:
        await second.service.close()
        await server.close()
