"""Presence is derived from the sockets in a room and their data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sockjet.chat.presence import ChatUser, chat_rooms, is_socket_id, online_users, user_of


@dataclass
class FakeSocket:
    id: str
    data: Any = field(default_factory=dict)


def test_chat_rooms_are_the_rooms_named_by_their_ids() -> None:
    # As in the Node chat: the room "general" is the Socket.IO room "general"; only the
    # socket's own room (its id) is no chat room.
    assert chat_rooms({"Xyz123", "b", "a", "chat:c"}, "Xyz123") == ["a", "b", "chat:c"]
    assert chat_rooms({"Xyz123"}, "Xyz123") == []


def test_a_room_named_like_a_socket_is_recognised() -> None:
    sockets = [FakeSocket("s1"), FakeSocket("s2")]
    assert is_socket_id("s2", sockets)
    assert not is_socket_id("general", sockets)
    assert not is_socket_id("s3", [])


def test_user_of_reads_socket_data_defensively() -> None:
    assert user_of({"userId": "u", "username": "Ann", "x": 1}) == ChatUser("u", "Ann")
    assert user_of({}) is None
    assert user_of({"userId": 1, "username": "Ann"}) is None
    assert user_of(None) is None
    assert user_of(["userId"]) is None


def test_online_users_are_distinct_and_sorted() -> None:
    sockets = [
        FakeSocket("s1", {"userId": "u2", "username": "bob"}),
        FakeSocket("s2", {"userId": "u1", "username": "Ann"}),
        FakeSocket("s3", {"userId": "u2", "username": "bob"}),  # a second tab
        FakeSocket("s4", {}),  # connected, never joined
        FakeSocket("s5", {"userId": "u3", "username": "ann"}),
    ]
    assert online_users(sockets) == [
        ChatUser("u1", "Ann"),
        ChatUser("u3", "ann"),
        ChatUser("u2", "bob"),
    ]
    assert online_users(sockets, without_socket="s2") == [
        ChatUser("u3", "ann"),
        ChatUser("u2", "bob"),
    ]
    assert ChatUser("u1", "Ann").to_dict() == {"userId": "u1", "username": "Ann"}
