"""What one socket causes reaches the room in the order the socket sent it, although joining and
leaving wait for the cluster: SocketOrder alone, then the chat on a real Server whose presence
lookups are held back as a slow cluster's would be."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest
import pytest_asyncio
from chat_fakes import FakeClient, MemoryStore, StepClock, counter_ids, settle

from sockjet.chat.app import ChatApp
from sockjet.chat.ordering import Release, SocketOrder
from sockjet.server.server import Server

# -- SocketOrder -----------------------------------------------------------------------------


async def test_an_idle_socket_runs_its_event_at_once() -> None:
    order = SocketOrder()
    assert order.run("s", lambda: 42) == 42
    assert not order.busy("s")


async def test_events_wait_for_a_held_turn_and_run_in_arrival_order() -> None:
    order = SocketOrder()
    ran: list[str] = []
    gate = asyncio.Event()

    async def join(release: Release) -> str:
        await gate.wait()
        ran.append("join")
        release()
        ran.append("join after release")
        return "joined"

    def step(name: str) -> str:
        ran.append(name)
        return f"{name} done"

    held = order.hold("s", join)
    first = order.run("s", lambda: step("send 1"))
    second = order.run("s", lambda: step("send 2"))
    other = order.run("t", lambda: step("other socket"))
    assert other == "other socket done"  # another socket is not held up
    assert isinstance(first, Awaitable) and isinstance(second, Awaitable)
    tasks = [asyncio.ensure_future(a) for a in (second, first, held)]  # started out of order
    await settle()
    assert ran == ["other socket"] and order.busy("s")
    gate.set()
    assert await asyncio.gather(*tasks) == ["send 2 done", "send 1 done", "joined"]
    assert ran == ["other socket", "join", "join after release", "send 1", "send 2"]
    assert not order.busy("s")  # nothing left behind


async def test_a_cancelled_waiter_keeps_the_order_of_the_others() -> None:
    order = SocketOrder()
    gate = asyncio.Event()
    ran: list[str] = []

    async def slow(release: Release) -> None:
        await gate.wait()
        ran.append("slow")

    first = asyncio.ensure_future(order.hold("s", slow))
    middle = asyncio.ensure_future(order.hold("s", lambda release: asyncio.sleep(0)))
    last = order.run("s", lambda: ran.append("last"))
    assert isinstance(last, Awaitable)
    last_task = asyncio.ensure_future(last)
    await settle()
    middle.cancel()
    await settle()
    assert ran == []  # the cancelled one did not let the last one overtake the first
    gate.set()
    await asyncio.gather(first, last_task)
    assert ran == ["slow", "last"] and middle.cancelled()
    assert not order.busy("s")


# -- the chat ------------------------------------------------------------------------------------


class HeldLookups:
    """Makes ``fetch_sockets`` wait until ``open()``, as a cluster round trip does."""

    def __init__(self, app: ChatApp, monkeypatch: pytest.MonkeyPatch) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        adapter = app.nsp.adapter
        lookup = adapter.fetch_sockets

        async def held(opts: Any) -> Any:
            found = await lookup(opts)  # what was there when asked
            await self.gate.wait()
            return found

        monkeypatch.setattr(adapter, "fetch_sockets", held)

    def close(self) -> None:
        self.gate.clear()

    def open(self) -> None:
        self.gate.set()


@pytest_asyncio.fixture
async def app() -> AsyncIterator[tuple[Server, ChatApp]]:
    io = Server()
    chat = ChatApp(io, MemoryStore(), clock=StepClock(), new_id=counter_ids(), retry_delays=())
    await chat.start()
    yield io, chat
    await io.close()
    await chat.close()


def join_packet(ack: int, room: str, user_id: str, name: str) -> str:
    return f'2{ack}["joinRoom",{{"roomId":"{room}","userId":"{user_id}","username":"{name}"}}]'


async def test_a_join_then_messages_reach_the_room_in_that_order(
    app: tuple[Server, ChatApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    io, chat = app
    lookups = HeldLookups(chat, monkeypatch)
    ann, bob = FakeClient(io), FakeClient(io)
    await ann.join("r", "u1", "Ann")
    lookups.close()
    # One polling POST: join, two messages, typing, a leave and a join elsewhere.
    bob.client.on_message(join_packet(1, "r", "u2", "Bob"))
    bob.emit("sendMessage", {"roomId": "r", "message": "one"})
    bob.emit("typing", {"roomId": "r"})
    bob.emit("sendMessage", {"roomId": "r", "message": "two"})
    bob.client.on_message('22["leaveRoom",{"roomId":"r"}]')
    bob.client.on_message(join_packet(3, "r", "u2", "Bob"))
    await settle()
    assert ann.events == [] and bob.events == []  # all wait for the first join's lookup
    lookups.open()
    await ann.wait_for("userJoined", 2)
    assert ann.names() == [
        "userJoined",
        "receiveMessage",
        "userTyping",
        "receiveMessage",
        "userLeft",
        "userJoined",
    ]
    assert [m["message"] for m in ann.take("receiveMessage")] == ["one", "two"]
    assert bob.take("error") == []
    assert bob.acks[1][0]["ok"] and bob.acks[2] == [{"ok": True, "roomId": "r"}]


async def test_the_notice_goes_out_when_the_user_joins_not_after_a_lookup(
    app: tuple[Server, ChatApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    io, chat = app
    lookups = HeldLookups(chat, monkeypatch)
    ann, bob, cy = FakeClient(io), FakeClient(io), FakeClient(io)
    await ann.join("r", "u1", "Ann")
    lookups.close()
    ann.client.on_message('29["echo"]')  # Ann's own queue is idle: answered at once
    assert ann.acks.pop(9) == []
    bob.client.on_message(join_packet(91, "r", "u2", "Bob"))  # asks the cluster first
    await settle()
    assert ann.take() == [] and "r" not in io.sockets.sockets[bob.id].rooms
    lookups.open()
    await ann.wait_for("userJoined")  # in the room and announced at the same moment
    assert ann.take("userJoined") == [
        {"userId": "u2", "username": "Bob", "message": "Bob joined the chat"}
    ]
    # Cy joins after Bob: Bob is online for her, and his notice is not hers.
    reply = await cy.join("r", "u3", "Cy")
    assert [u["username"] for u in reply["online"]] == ["Ann", "Bob", "Cy"]
    await bob.call("echo")
    assert cy.take("userJoined") == []


async def test_who_joins_during_a_lookup_hears_of_the_join_that_follows(
    app: tuple[Server, ChatApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    io, chat = app
    lookups = HeldLookups(chat, monkeypatch)
    ann, bob = FakeClient(io), FakeClient(io)
    lookups.close()
    ann.client.on_message(join_packet(91, "r", "u1", "Ann"))
    await settle()
    # Bob's join does not wait for Ann's (another socket), only for its own lookup.
    bob.client.on_message(join_packet(91, "r", "u2", "Bob"))
    await settle()
    lookups.open()
    await settle()
    await ann.call("echo")
    await bob.call("echo")
    # Both lookups saw an empty room: each was announced to whoever was in the room when
    # they joined, so exactly one of them heard of the other, and lists who is online right.
    heard = ann.take("userJoined") + bob.take("userJoined")
    assert len(heard) == 1
    online = [{u["username"] for u in c.acks[91][0]["online"]} for c in (ann, bob)]
    assert {"Ann", "Bob"} in online


async def test_a_disconnect_is_announced_after_what_the_socket_sent_before(
    app: tuple[Server, ChatApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    io, chat = app
    lookups = HeldLookups(chat, monkeypatch)
    ann, bob, cy = FakeClient(io), FakeClient(io), FakeClient(io)
    await ann.join("r", "u1", "Ann")
    await cy.join("s", "u3", "Cy")
    await bob.join("r", "u2", "Bob")
    await bob.join("s", "u2", "Bob")
    ann.take()
    cy.take()
    lookups.close()
    bob.client.on_message('21["leaveRoom",{"roomId":"s"}]')
    await settle()  # out of s, held by the lookup that tells whether he is still there
    bob.emit("sendMessage", {"roomId": "r", "message": "bye"})
    bob.drop()  # the message was sent before: it still goes, then the user leaves
    await settle()
    assert ann.take() == []
    lookups.open()
    await ann.wait_for("userLeft")
    assert ann.names() == ["receiveMessage", "userLeft"]
    assert cy.take("userLeft") == [{"userId": "u2", "username": "Bob"}]
    assert not chat._order.busy(bob.id)


async def test_a_leave_still_waiting_when_the_socket_drops_is_announced_once(
    app: tuple[Server, ChatApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    io, chat = app
    lookups = HeldLookups(chat, monkeypatch)
    ann, bob = FakeClient(io), FakeClient(io)
    await ann.join("r", "u1", "Ann")
    await bob.join("r", "u2", "Bob")
    ann.take()
    lookups.close()
    bob.client.on_message('21["joinRoom",{"roomId":"s","userId":"u2","username":"Bob"}]')
    bob.client.on_message('22["leaveRoom",{"roomId":"r"}]')  # waits for the join's lookup
    bob.drop()  # before the leave ran: the disconnection announces r, the leave does not
    lookups.open()
    await ann.wait_for("userLeft")
    await ann.call("echo")
    assert ann.take() == [{"userId": "u2", "username": "Bob"}]


async def test_a_socket_gone_during_the_lookup_joins_nothing(
    app: tuple[Server, ChatApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    io, chat = app
    lookups = HeldLookups(chat, monkeypatch)
    ann, bob = FakeClient(io), FakeClient(io)
    await ann.join("r", "u1", "Ann")
    ann.take()
    lookups.close()
    bob.client.on_message(join_packet(91, "r", "u2", "Bob"))
    await settle()  # waiting for the lookup
    bob.drop()
    lookups.open()
    await ann.call("echo")
    await settle()
    assert ann.take() == [] and not chat._order.busy(bob.id)


async def test_what_changed_during_the_lookup_is_checked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    io = Server()
    chat = ChatApp(io, MemoryStore(), max_rooms_per_socket=1, retry_delays=())
    await chat.start()
    lookups = HeldLookups(chat, monkeypatch)
    ann = FakeClient(io)
    lookups.close()
    ann.client.on_message(join_packet(91, "a", "u1", "Ann"))
    await settle()
    io.in_(ann.id).sockets_join("b")  # the server puts her in a room meanwhile
    lookups.open()
    await ann.call("echo")
    assert ann.acks[91] == [{"ok": False, "error": "you can be in at most 1 rooms"}]
    await io.close()
    await chat.close()


async def test_who_is_online_falls_back_to_what_the_first_lookup_saw(
    app: tuple[Server, ChatApp], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    io, chat = app
    ann, bob = FakeClient(io), FakeClient(io)
    await ann.join("r", "u1", "Ann")
    adapter = chat.nsp.adapter
    lookup = adapter.fetch_sockets
    calls = 0

    async def second_fails(opts: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise TimeoutError("the cluster did not answer")
        return await lookup(opts)

    monkeypatch.setattr(adapter, "fetch_sockets", second_fails)
    with caplog.at_level(logging.WARNING, "sockjet.chat"):
        reply = await bob.join("r", "u2", "Bob")
    assert [u["username"] for u in reply["online"]] == ["Ann", "Bob"]
    assert "could not tell who is in room 'r'" in caplog.text
