"""Presence is derived from the sockets in a room and their data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sockjet.chat.presence import ChatUser, chat_rooms, online_users, room_key, user_of


@dataclass
class FakeSocket:
    id: str
    data: Any = field(default_factory=dict)


def test_room_keys_never_collide_with_socket_rooms() -> None:
    assert room_key("general") == "chat:general"
    assert chat_rooms({"Xyz123", "chat:b", "chat:a", "other"}) == ["a", "b"]


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
