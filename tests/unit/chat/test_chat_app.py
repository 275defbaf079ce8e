"""The chat's events against a real sockjet Server, on fake Engine.IO sessions (no network)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from chat_fakes import FakeClient, MemoryStore, StepClock, counter_ids, message, settle

from sockjet.chat.app import ChatApp
from sockjet.server.server import Server


class Chat:
    def __init__(self, recovery: bool = False, **options: Any) -> None:
        self.io = Server(connection_state_recovery=recovery)
        self.store = MemoryStore()
        self.app = ChatApp(
            self.io,
            self.store,
            clock=StepClock(),
            new_id=counter_ids(),
            retry_delays=(),
            **options,
        )

    def client(self, auth: dict[str, Any] | None = None) -> FakeClient:
        return FakeClient(self.io, auth)


@pytest_asyncio.fixture
async def chat() -> AsyncIterator[Chat]:
    c = Chat()
    await c.app.start()
    yield c
    await c.io.close()
    await c.app.close()


async def test_join_announces_and_returns_history_and_who_is_online(chat: Chat) -> None:
    ann, bob = chat.client(), chat.client()
    reply = await ann.join("general", "u1", "Ann")
    assert reply == {
        "ok": True,
        "roomId": "general",
        "history": [],
        "online": [{"userId": "u1", "username": "Ann"}],
    }
    reply = await bob.join("general", "u2", "Bob")
    assert reply["online"] == [
        {"userId": "u1", "username": "Ann"},
        {"userId": "u2", "username": "Bob"},
    ]
    assert ann.take("userJoined") == [
        {"userId": "u2", "username": "Bob", "message": "Bob joined the chat"}
    ]
    assert bob.take("userJoined") == []  # everyone else, not the newcomer
    socket = chat.io.sockets.sockets[bob.id]
    assert socket.data == {"userId": "u2", "username": "Bob"}


async def test_messages_reach_the_room_sender_included_and_are_saved(chat: Chat) -> None:
    ann, bob, eve = chat.client(), chat.client(), chat.client()
    await ann.join("general", "u1", "Ann")
    await bob.join("general", "u2", "Bob")
    await eve.join("elsewhere", "u3", "Eve")
    (ack,) = await ann.call("sendMessage", {"roomId": "general", "message": " <b>hi</b> "})
    expected = {
        "id": "m1",
        "userId": "u1",
        "username": "Ann",
        "message": "<b>hi</b>",
        "timestamp": "2026-01-02T03:04:05.001Z",
    }
    assert ack == {"ok": True, "id": "m1", "timestamp": expected["timestamp"]}
    assert ann.take("receiveMessage") == [expected]
    assert bob.take("receiveMessage") == [expected]
    assert eve.take("receiveMessage") == []  # rooms are isolated
    await chat.app.writer.flush()
    assert [m.to_event() for m in chat.store.rows] == [expected]
    assert chat.store.rows[0].room_id == "general"


async def test_history_holds_the_last_messages_oldest_first_saved_or_not(chat: Chat) -> None:
    chat.app.history_limit = 3
    chat.store.rows = [message(1, room="general"), message(2, room="general")]
    ann = chat.client()
    await ann.join("general", "u1", "Ann")
    chat.store.gate = asyncio.Event()  # saves wait: m1, m2 stay unsaved
    ann.emit("sendMessage", {"roomId": "general", "message": "three"})
    ann.emit("sendMessage", {"roomId": "general", "message": "four"})
    await settle()
    bob = chat.client()
    reply = await bob.join("general", "u2", "Bob")
    assert [m["id"] for m in reply["history"]] == ["id2", "m1", "m2"]
    assert [m["message"] for m in reply["history"]][1:] == ["three", "four"]
    chat.store.gate.set()
    await chat.app.writer.flush()
    reply = await chat.client().join("general", "u3", "Cy")
    assert [m["id"] for m in reply["history"]] == ["id2", "m1", "m2"]  # no duplicates


async def test_history_read_failure_still_joins(
    chat: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    chat.store.fail_reads = True
    with caplog.at_level(logging.ERROR, "sockjet.chat"):
        reply = await chat.client().join("general", "u1", "Ann")
    assert reply["ok"] and reply["history"] == []
    assert "reading the history of room 'general' failed" in caplog.text


async def test_typing_reaches_the_others_only(chat: Chat) -> None:
    ann, bob = chat.client(), chat.client()
    await ann.join("general", "u1", "Ann")
    await bob.join("general", "u2", "Bob")
    (ack,) = await ann.call("typing", {"roomId": "general"})
    assert ack == {"ok": True}
    assert bob.take("userTyping") == [{"username": "Ann"}]
    assert ann.take("userTyping") == []


async def test_leave_room_announces_and_stops_delivery(chat: Chat) -> None:
    ann, bob = chat.client(), chat.client()
    await ann.join("general", "u1", "Ann")
    await bob.join("general", "u2", "Bob")
    (ack,) = await bob.call("leaveRoom", {"roomId": "general"})
    assert ack == {"ok": True, "roomId": "general"}
    assert ann.take("userLeft") == [{"userId": "u2", "username": "Bob"}]
    ann.emit("sendMessage", {"roomId": "general", "message": "still there?"})
    assert bob.take("receiveMessage") == []
    (ack,) = await bob.call("leaveRoom", {"roomId": "general"})  # again: nothing to do
    assert ack == {"ok": True, "roomId": "general"} and ann.take("userLeft") == []


async def test_disconnect_announces_each_room(chat: Chat) -> None:
    ann, bob = chat.client(), chat.client()
    await ann.join("a", "u1", "Ann")
    await ann.join("b", "u1", "Ann")
    await bob.join("a", "u2", "Bob")
    await bob.join("b", "u2", "Bob")
    ann.take()
    bob.drop()
    await settle()
    assert ann.take("userLeft") == [{"userId": "u2", "username": "Bob"}] * 2


async def test_a_socket_that_never_joined_leaves_silently(chat: Chat) -> None:
    ann, bob = chat.client(), chat.client()
    await ann.join("a", "u1", "Ann")
    bob.drop()
    await settle()
    assert ann.take() == []


async def test_presence_counts_users_not_tabs(chat: Chat) -> None:
    ann, tab1, tab2 = chat.client(), chat.client(), chat.client()
    await ann.join("general", "u1", "Ann")
    await tab1.join("general", "u2", "Bob")
    assert len(ann.take("userJoined")) == 1
    reply = await tab2.join("general", "u2", "Bob")  # Bob's second tab
    assert ann.take("userJoined") == [] and tab1.take("userJoined") == []
    assert [u["userId"] for u in reply["online"]] == ["u1", "u2"]
    tab1.drop()  # one tab closes: Bob is still here
    await settle()
    assert ann.take("userLeft") == []
    tab2.drop()  # the last one: now he left
    await settle()
    assert ann.take("userLeft") == [{"userId": "u2", "username": "Bob"}]


async def test_a_reconnect_replaces_the_old_socket_without_noise(chat: Chat) -> None:
    ann, old = chat.client(), chat.client()
    await ann.join("general", "u1", "Ann")
    await old.join("general", "u2", "Bob")
    ann.take()
    new = chat.client()  # Bob's page reconnected before the old socket timed out
    reply = await new.join("general", "u2", "Bob")
    old.drop("ping timeout")
    await settle()
    assert ann.take() == []  # neither joined nor left: he never went away
    assert [u["username"] for u in reply["online"]] == ["Ann", "Bob"]


async def test_joining_twice_is_harmless(chat: Chat) -> None:
    ann, bob = chat.client(), chat.client()
    await ann.join("general", "u1", "Ann")
    await bob.join("general", "u2", "Bob")
    reply = await bob.join("general", "u2", "Bob")
    assert reply["ok"] and len(reply["online"]) == 2
    assert ann.take("userJoined") == [
        {"userId": "u2", "username": "Bob", "message": "Bob joined the chat"}
    ]


async def test_echo_acks_with_the_same_arguments(chat: Chat) -> None:
    client = chat.client()
    assert await client.call("echo", 1, "two", {"three": [3]}, None) == [
        1,
        "two",
        {"three": [3]},
        None,
    ]
    assert await client.call("echo") == []


@pytest.mark.parametrize(
    ("event", "args", "error"),
    [
        ("joinRoom", [], "expected an object like {roomId, userId, username}"),
        ("joinRoom", [{"roomId": "r", "userId": "u"}], "username is missing"),
        ("joinRoom", [{"roomId": 1, "userId": "u", "username": "A"}], "roomId must be a string"),
        ("sendMessage", [{"roomId": "r"}], "message is missing"),
        ("sendMessage", ["hello"], "expected an object like {roomId, message}"),
        (
            "sendMessage",
            [{"roomId": "r", "message": "x" * 2001}],
            "message is longer than 2000 characters",
        ),
        ("sendMessage", [{"roomId": "r", "message": "hi"}], "join the room before sending to it"),
        ("typing", [None], "expected an object like {roomId}"),
        ("typing", [{"roomId": "r"}], "join the room first"),
        ("leaveRoom", [{"room": "r"}], "roomId is missing"),
    ],
)
async def test_bad_input_gets_an_error_ack_or_else_an_error_event(
    chat: Chat, event: str, args: list[Any], error: str
) -> None:
    client = chat.client()
    assert await client.call(event, *args) == [{"ok": False, "error": error}]
    await settle()
    assert client.take("error") == []  # told once, in the ack it waited for
    client.emit(event, *args)  # without an ack: the error event tells
    await settle()
    assert client.take("error") == [{"event": event, "message": error}]
    assert await client.call("echo", "alive") == ["alive"]


async def test_changing_user_needs_leaving_first(chat: Chat) -> None:
    client = chat.client()
    await client.join("a", "u1", "Ann")
    reply = await client.join("b", "u2", "Bob")
    assert reply == {"ok": False, "error": "leave your rooms before changing user"}
    await client.call("leaveRoom", {"roomId": "a"})
    assert (await client.join("b", "u2", "Bob"))["ok"]


async def test_rooms_per_socket_are_bounded() -> None:
    c = Chat(max_rooms_per_socket=2)
    await c.app.start()
    client = c.client()
    assert (await client.join("a", "u", "A"))["ok"]
    assert (await client.join("b", "u", "A"))["ok"]
    assert (await client.join("c", "u", "A")) == {
        "ok": False,
        "error": "you can be in at most 2 rooms",
    }
    assert (await client.join("a", "u", "A"))["ok"]  # one already joined is fine
    await c.io.close()
    await c.app.close()


async def test_a_full_write_queue_refuses_messages_it_could_lose() -> None:
    c = Chat(max_pending=1)
    await c.app.start()
    c.store.gate = asyncio.Event()
    ann, bob = c.client(), c.client()
    await ann.join("r", "u1", "Ann")
    await bob.join("r", "u2", "Bob")
    assert (await ann.call("sendMessage", {"roomId": "r", "message": "one"}))[0]["ok"]
    await settle()
    assert (await ann.call("sendMessage", {"roomId": "r", "message": "two"}))[0]["ok"] is False
    assert [m["message"] for m in bob.take("receiveMessage")] == ["one"]  # "two" never went out
    c.store.gate.set()
    await c.io.close()
    await c.app.close()
    assert [m.message for m in c.store.rows] == ["one"]


async def test_a_failed_save_is_reported_to_the_sender(caplog: pytest.LogCaptureFixture) -> None:
    c = Chat()
    await c.app.start()
    ann, bob = c.client(), c.client()
    await ann.join("r", "u1", "Ann")
    await bob.join("r", "u2", "Bob")
    c.store.fail = 1
    with caplog.at_level(logging.ERROR, "sockjet.chat"):
        ann.emit("sendMessage", {"roomId": "r", "message": "lost?"})
        await c.app.writer.flush()
    assert ann.take("error") == [
        {
            "event": "sendMessage",
            "id": "m1",
            "message": "your message could not be saved: it will not be in the history",
        }
    ]
    assert bob.take("error") == []
    assert "1 chat messages could not be saved" in caplog.text
    await c.io.close()
    await c.app.close()


async def test_close_saves_accepted_messages_and_closes_the_store() -> None:
    c = Chat()
    await c.app.start()
    assert c.store.opened
    ann = c.client()
    await ann.join("r", "u1", "Ann")
    for n in range(20):
        ann.emit("sendMessage", {"roomId": "r", "message": f"n{n}"})
    await c.io.close()
    await c.app.close()
    assert [m.message for m in c.store.rows] == [f"n{n}" for n in range(20)]
    assert c.store.closed


async def test_a_join_interrupted_by_a_disconnect_announces_nothing(
    chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann, bob = chat.client(), chat.client()
    await ann.join("r", "u1", "Ann")
    ann.take()
    # The presence lookup suspends, as a cluster's does (the memory adapter's returns at once,
    # and from Python 3.12 the handler task starts eagerly: it would finish before the drop).
    adapter = chat.app.nsp.adapter
    lookup = adapter.fetch_sockets

    async def suspending_lookup(opts: Any) -> Any:
        await asyncio.sleep(0)
        return await lookup(opts)

    monkeypatch.setattr(adapter, "fetch_sockets", suspending_lookup)
    # Bob's join runs as a task; his connection drops before it resumes.
    bob.client.on_message('21["joinRoom",{"roomId":"r","userId":"u2","username":"Bob"}]')
    bob.drop()
    await settle()
    assert ann.take("userJoined") == []


async def test_presence_lookup_failure_is_logged_not_raised(
    chat: Chat, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann, bob = chat.client(), chat.client()
    await ann.join("r", "u1", "Ann")
    await bob.join("r", "u2", "Bob")

    async def broken(*args: Any) -> Any:
        raise TimeoutError("the cluster did not answer")

    monkeypatch.setattr(chat.app.nsp.adapter, "fetch_sockets", broken)
    with caplog.at_level(logging.ERROR, "sockjet.chat"):
        (ack,) = await bob.call("leaveRoom", {"roomId": "r"})
    assert ack == {"ok": True, "roomId": "r"}
    assert "could not tell who is still in room 'r'" in caplog.text


def test_the_package_exports_lazily() -> None:
    import sockjet.chat

    assert sockjet.chat.ChatApp is ChatApp
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = sockjet.chat.nope  # type: ignore[attr-defined]


# -- rooms are named by their ids; a socket's own room is not one -------------------------------


async def test_a_room_is_the_socket_io_room_of_its_name(chat: Chat) -> None:
    ann = chat.client()
    await ann.join("general", "u1", "Ann")
    assert chat.io.sockets.sockets[ann.id].rooms == {ann.id, "general"}
    # What a Node server or @socket.io/redis-emitter sends to "general" reaches the chat.
    chat.io.to("general").emit("receiveMessage", {"message": "from elsewhere"})
    assert ann.take("receiveMessage") == [{"message": "from elsewhere"}]


async def test_a_room_named_like_a_socket_is_refused(chat: Chat) -> None:
    ann, bob = chat.client(), chat.client()
    await bob.join("general", "u2", "Bob")
    for name in (bob.id, ann.id):  # another socket's own room, or one's own
        reply = await ann.join(name, "u1", "Ann")
        assert reply == {"ok": False, "error": "this room name is taken: choose another"}
    assert chat.io.sockets.sockets[ann.id].rooms == {ann.id}
    assert bob.take("userJoined") == []
    # Nor is a socket's own room one it could send, type or leave to.
    for event, payload in (
        ("sendMessage", {"roomId": ann.id, "message": "hi"}),
        ("typing", {"roomId": ann.id}),
    ):
        (reply,) = await ann.call(event, payload)
        assert reply["ok"] is False
    assert await ann.call("leaveRoom", {"roomId": ann.id}) == [{"ok": True, "roomId": ann.id}]
    assert ann.id in chat.io.sockets.sockets[ann.id].rooms


async def test_a_join_the_cluster_cannot_check_is_refused(
    chat: Chat, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any) -> Any:
        raise TimeoutError("the cluster did not answer")

    monkeypatch.setattr(chat.app.nsp.adapter, "fetch_sockets", broken)
    ann = chat.client()
    with caplog.at_level(logging.WARNING, "sockjet.chat"):
        reply = await ann.join("general", "u1", "Ann")
    assert reply == {"ok": False, "error": "the chat cannot be joined right now"}
    assert "could not look into room 'general'" in caplog.text
    assert chat.io.sockets.sockets[ann.id].rooms == {ann.id}


# -- typing --------------------------------------------------------------------------------------


async def test_typing_is_never_volatile(chat: Chat) -> None:
    ann, bob = chat.client(), chat.client()
    await ann.join("general", "u1", "Ann")
    await bob.join("general", "u2", "Bob")
    bob.writable = False  # a polling client between two GETs
    ann.emit("typing", {"roomId": "general"})
    await settle()
    assert bob.take("userTyping") == [{"username": "Ann"}] and bob.volatile_dropped == 0


async def test_typing_is_thinned_to_one_notice_per_interval_and_a_trailing_one() -> None:
    c = Chat(typing_interval=0.05)
    await c.app.start()
    ann, bob, cy, dee = c.client(), c.client(), c.client(), c.client()
    for client, name in zip((ann, bob, cy, dee), ("Ann", "Bob", "Cy", "Dee"), strict=True):
        await client.join("r", name.lower(), name)
    bob.take()
    for _ in range(5):  # a burst of keystrokes
        ann.emit("typing", {"roomId": "r"})
    cy.emit("typing", {"roomId": "r"})  # another user is counted apart
    assert bob.take("userTyping") == [{"username": "Ann"}, {"username": "Cy"}]
    await bob.wait_for("userTyping")  # the burst's trailing notice, once the interval ends
    assert bob.take("userTyping") == [{"username": "Ann"}]
    # A message ends the typing: the next notice goes out at once...
    ann.emit("typing", {"roomId": "r"})  # due as a trailing notice
    ann.emit("sendMessage", {"roomId": "r", "message": "done"})
    ann.emit("typing", {"roomId": "r"})
    assert bob.take("userTyping") == [{"username": "Ann"}]
    # ...and the trailing notice that was due is dropped: Dee's, due after it would have
    # come, arrives alone.
    dee.emit("typing", {"roomId": "r"})
    dee.emit("typing", {"roomId": "r"})
    assert bob.take("userTyping") == [{"username": "Dee"}]
    await bob.wait_for("userTyping")
    assert bob.take("userTyping") == [{"username": "Dee"}]
    assert bob.names() == ["receiveMessage"]
    await c.io.close()
    await c.app.close()


async def test_typing_interval_zero_sends_every_notice() -> None:
    c = Chat(typing_interval=0)
    await c.app.start()
    ann, bob = c.client(), c.client()
    await ann.join("r", "u1", "Ann")
    await bob.join("r", "u2", "Bob")
    for _ in range(3):
        ann.emit("typing", {"roomId": "r"})
    assert bob.take("userTyping") == [{"username": "Ann"}] * 3
    await c.io.close()
    await c.app.close()


# -- limits --------------------------------------------------------------------------------------


def test_the_longest_message_must_fit_in_max_payload() -> None:
    io = Server(max_payload=10_000)
    store = MemoryStore()
    assert ChatApp(io, store, max_message_chars=2244).max_message_chars == 2244
    for bad in (2245, 0):
        with pytest.raises(ValueError, match=r"max_message_chars must be 1 to 2244"):
            ChatApp(Server(max_payload=10_000), store, max_message_chars=bad)


async def test_the_message_limit_is_an_option() -> None:
    c = Chat(max_message_chars=10)
    await c.app.start()
    ann = c.client()
    await ann.join("r", "u1", "Ann")
    assert (await ann.call("sendMessage", {"roomId": "r", "message": "é" * 10}))[0]["ok"]
    assert await ann.call("sendMessage", {"roomId": "r", "message": "é" * 11}) == [
        {"ok": False, "error": "message is longer than 10 characters"}
    ]
    await c.io.close()
    await c.app.close()


async def test_history_is_bounded_in_characters_too() -> None:
    c = Chat(history_max_chars=25)
    await c.app.start()
    c.store.rows = [message(n) for n in range(1, 6)]  # "text 1" .. "text 5": 6 characters each
    reply = await c.client().join("r", "u1", "Ann")
    assert [m["message"] for m in reply["history"]] == ["text 2", "text 3", "text 4", "text 5"]
    c.app.history_max_chars = 3  # the newest message is always there
    reply = await c.client().join("r", "u2", "Bob")
    assert [m["message"] for m in reply["history"]] == ["text 5"]
    await c.io.close()
    await c.app.close()


async def test_a_trailing_notice_needs_its_typist_still_in_the_room() -> None:
    c = Chat(typing_interval=0.02)
    await c.app.start()
    ann, bob, cy = c.client(), c.client(), c.client()
    for client, name in zip((ann, bob, cy), ("Ann", "Bob", "Cy"), strict=True):
        await client.join("r", name.lower(), name)
    bob.take()
    ann.emit("typing", {"roomId": "r"})
    ann.emit("typing", {"roomId": "r"})  # due as a trailing notice...
    c.io.in_(ann.id).sockets_leave("r")  # ...but the server took her out of the room
    cy.emit("typing", {"roomId": "r"})
    cy.emit("typing", {"roomId": "r"})  # Cy's trailing notice comes after Ann's would have
    await bob.wait_for("userTyping", 3)
    assert bob.take("userTyping") == [{"username": u} for u in ("Ann", "Cy", "Cy")]
    cy.emit("typing", {"roomId": "r"})
    cy.emit("typing", {"roomId": "r"})
    c.app.typing_notices.close()  # closing forgets what is due
    assert not c.app.typing_notices._windows
    with pytest.raises(ValueError, match="0 or more seconds"):
        Chat(typing_interval=-1)
    await c.io.close()
    await c.app.close()


async def test_a_user_back_by_recovery_is_announced_again() -> None:
    chat = Chat(recovery=True)
    await chat.app.start()
    try:
        ann, bob = chat.client(), chat.client()
        await ann.join("general", "u1", "Ann")
        await bob.join("general", "u2", "Bob")
        ann.take()
        auth = {"pid": bob.connected["pid"]}
        if bob.offset is not None:
            auth["offset"] = bob.offset
        bob.drop("transport close")
        await ann.wait_for("userLeft")
        assert ann.take("userLeft") == [{"userId": "u2", "username": "Bob"}]
        again = chat.client(auth)
        assert again.id == bob.id  # recovered: same socket id, still in the room
        await ann.wait_for("userJoined")
        assert ann.take("userJoined") == [
            {"userId": "u2", "username": "Bob", "message": "Bob joined the chat"}
        ]
        (ack,) = await again.call("sendMessage", {"roomId": "general", "message": "back"})
        assert ack["ok"] is True
    finally:
        await chat.io.close()
        await chat.app.close()


async def test_a_fresh_connection_announces_nothing_by_itself() -> None:
    chat = Chat(recovery=True)
    await chat.app.start()
    try:
        ann = chat.client()
        await ann.join("general", "u1", "Ann")
        chat.client()
        await settle()
        assert ann.take("userJoined") == []
    finally:
        await chat.io.close()
        await chat.app.close()
