"""``sockjet chat --workers 3``, one port, no proxy: every chat scenario of
test_chat_protocol.py that passes on one process passes on three workers, with the official
client over WebSocket only, polling only and polling upgraded to WebSocket, and with
python-socketio's client.

Rooms span workers (the clients' session ids say which worker holds them), and the workers'
own counts (SIGUSR1) prove that polling requests landed on workers that did not hold their
session and were handed over to the one that did: the tests cannot pass by luck.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from chat_peers import free_port
from peers import NodeClient, NodePuppet
from test_chat_protocol import ISO_UTC, UUID, PyClient, join, joined
from workers_peers import WorkersChat

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]

TRANSPORTS: list[dict[str, Any]] = [
    {"transports": ["websocket"]},
    {"transports": ["polling"]},
    {},  # polling, then the upgrade to WebSocket
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chat(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WorkersChat]:
    db = tmp_path_factory.mktemp("workers") / "chat.db"
    running = WorkersChat(free_port(), f"sqlite:///{db}")
    running.db = db  # type: ignore[attr-defined]
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def worker_of(client: NodeClient) -> str:
    """The worker holding the client's session: its engine sid names it."""
    engine_id = (await client.state())["engine_id"]
    assert isinstance(engine_id, str) and len(engine_id) == 20
    return engine_id[:2]


async def test_every_event_with_the_official_client(puppet: NodePuppet, chat: WorkersChat) -> None:
    sent_before, _, _ = await chat.handoffs()
    ann = await puppet.connect(chat.url, transports=["polling"])
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
    assert await ann.next_event("receiveMessage") == [expected]
    assert await bob.next_event("receiveMessage") == [expected]
    await bob.emit("typing", {"roomId": "general"})
    assert await ann.next_event("userTyping") == [{"username": "Bob"}]
    assert await ann.emit_with_ack("echo", 1, "two", {"3": [4]}, None) == [
        1,
        "two",
        {"3": [4]},
        None,
    ]
    assert await ann.emit_with_ack("sendMessage", {"roomId": "general"}) == [
        {"ok": False, "error": "message is missing"}
    ]
    await ann.emit("joinRoom", "general")
    assert await ann.next_event("error") == [
        {"event": "joinRoom", "message": "expected an object like {roomId, userId, username}"}
    ]
    assert await bob.emit_with_ack("leaveRoom", {"roomId": "general"}) == [
        {"ok": True, "roomId": "general"}
    ]
    assert await ann.next_event("userLeft") == [{"userId": "u-bob", "username": "Bob"}]
    await joined(bob, "general", "u-bob", "Bob")
    assert (await ann.next_event("userJoined"))[0]["username"] == "Bob"
    await bob.close_engine()  # disconnection announces too, whichever worker Bob was on
    assert await ann.next_event("userLeft") == [{"userId": "u-bob", "username": "Bob"}]
    cy = await puppet.connect(chat.url)
    history = (await joined(cy, "general", "u-cy", "Cy"))["history"]
    assert history == [expected]
    assert ann.pending("receiveMessage") == 0 and ann.pending("error") == 0
    # Ann polled for all of this: each of her requests that the kernel gave another worker
    # than hers was handed over (a new connection lands anywhere; keep-alive ones stay).
    sent, _, failed = await chat.handoffs()
    assert sent > sent_before and failed == 0


async def test_two_rooms_are_isolated(puppet: NodePuppet, chat: WorkersChat) -> None:
    a1, a2, b1 = [await puppet.connect(chat.url, **TRANSPORTS[n]) for n in range(3)]
    await joined(a1, "a", "u1", "A1")
    await joined(a2, "a", "u2", "A2")
    await joined(b1, "b", "u3", "B1")
    await a1.emit("typing", {"roomId": "a"})
    await a1.emit_with_ack("sendMessage", {"roomId": "a", "message": "for a"})
    await b1.emit_with_ack("sendMessage", {"roomId": "b", "message": "for b"})
    assert (await a2.next_event("receiveMessage"))[0]["message"] == "for a"
    assert (await b1.next_event("receiveMessage"))[0]["message"] == "for b"
    assert (await a1.next_event("receiveMessage"))[0]["message"] == "for a"
    for c in (a1, a2, b1):
        await c.emit_with_ack("echo")
    assert a1.pending("receiveMessage") == a2.pending("receiveMessage") == 0
    assert b1.pending("receiveMessage") == 0 and b1.pending("userTyping") == 0
    assert b1.pending("userJoined") == 0
    assert await b1.emit_with_ack("sendMessage", {"roomId": "a", "message": "intruder"}) == [
        {"ok": False, "error": "join the room before sending to it"}
    ]
    await a1.emit_with_ack("echo")
    assert a1.pending("receiveMessage") == 0
    assert (await joined(b1, "b", "u3", "B1"))["history"][-1]["message"] == "for b"


async def test_presence_across_tabs_and_reconnects(puppet: NodePuppet, chat: WorkersChat) -> None:
    watcher = await puppet.connect(chat.url)
    await joined(watcher, "p", "w", "Watcher")
    tab1 = await puppet.connect(chat.url, transports=["polling"])
    tab2 = await puppet.connect(chat.url, transports=["websocket"])
    await joined(tab1, "p", "dana", "Dana")
    reply = await joined(tab2, "p", "dana", "Dana")  # a second tab, maybe on another worker
    assert [u["username"] for u in reply["online"]] == ["Dana", "Watcher"]
    await tab1.close_engine()
    await tab2.emit_with_ack("echo")
    await watcher.emit_with_ack("echo")
    assert watcher.pending("userLeft") == 0
    tab3 = await puppet.connect(chat.url)
    await joined(tab3, "p", "dana", "Dana")
    await tab2.drop()
    await tab3.emit("typing", {"roomId": "p"})
    assert await watcher.next_event("userTyping") == [{"username": "Dana"}]
    assert watcher.pending("userLeft") == 0
    assert watcher.pending("userJoined") == 1
    await tab3.disconnect()
    assert await watcher.next_event("userLeft") == [{"userId": "dana", "username": "Dana"}]
    reply = await joined(await puppet.connect(chat.url), "p", "x", "X")
    assert [u["username"] for u in reply["online"]] == ["Watcher", "X"]


async def test_twenty_clients_fifty_messages_each_mixed_transports(
    puppet: NodePuppet, chat: WorkersChat
) -> None:
    sent_before, _, _ = await chat.handoffs()
    clients = []
    for n in range(20):
        client = await puppet.connect(chat.url, **TRANSPORTS[n % 3])
        await joined(client, "load", f"u{n}", f"user{n}")
        clients.append(client)
    # the room spans the workers: every worker holds some of its sessions
    holders = {await worker_of(c) for c in clients}
    assert len(holders) == chat.workers, holders
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
    assert {await c.transport() for c in clients} == {"websocket", "polling"}
    sent, _, failed = await chat.handoffs()
    assert sent > sent_before and failed == 0


async def test_python_socketio_client_every_event(chat: WorkersChat) -> None:
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
            assert (await client.next("receiveMessage"))["id"] == ack["id"]
        await ann.sio.emit("typing", {"roomId": "py"})
        assert await bob.next("userTyping") == {"username": "Ann"}
        assert await ann.sio.call("echo", (1, [2], {"x": None}), timeout=5) == (1, [2], {"x": None})
        assert await bob.call("leaveRoom", {"roomId": "py"}) == {"ok": True, "roomId": "py"}
        assert await ann.next("userLeft") == {"userId": "b", "username": "Bob"}
        history = (await bob.call("joinRoom", join("py", "b", "Bob")))["history"]
        assert [m["message"] for m in history] == ["héllo 😀"]
    finally:
        await ann.sio.disconnect()
        await bob.sio.disconnect()


async def test_stopping_drains_every_worker_and_saves_everything(chat: WorkersChat) -> None:
    code = await chat.stop()
    assert code == 0, chat.log()
    summary = await chat.wait_line(r"sockjet: stopped; (\d+) worker processes ran, (\d+) reported")
    assert summary[1] == summary[2] == "3", chat.log()
    db: Path = chat.db  # type: ignore[attr-defined]
    with contextlib.closing(sqlite3.connect(db)) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM chat_messages WHERE room_id = 'load'"
        ).fetchone()
    assert count == 1000
