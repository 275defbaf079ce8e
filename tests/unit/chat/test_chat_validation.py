"""Every field a client sends is checked: type, presence, length, characters."""

from __future__ import annotations

from typing import Any

import pytest

from sockjet.chat.validation import (
    MAX_MESSAGE_CHARS,
    MAX_NAME_CHARS,
    MAX_ROOM_CHARS,
    ChatInputError,
    JoinRequest,
    SendRequest,
    parse_join,
    parse_room,
    parse_send,
)

JOIN = {"roomId": "general", "userId": "u-1", "username": "Ann"}


def test_join_accepts_and_trims() -> None:
    request = parse_join({"roomId": "  general ", "userId": "a1:b_2.c-3", "username": " Ann "})
    assert request == JoinRequest("general", "a1:b_2.c-3", "Ann")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (None, "expected an object like {roomId, userId, username}"),
        ([1, 2], "expected an object"),
        ("general", "expected an object"),
        ({**JOIN, "roomId": None}, "roomId is missing"),
        ({"userId": "u", "username": "A"}, "roomId is missing"),
        ({**JOIN, "roomId": 5}, "roomId must be a string"),
        ({**JOIN, "roomId": "   "}, "roomId must not be empty"),
        ({**JOIN, "roomId": "x" * (MAX_ROOM_CHARS + 1)}, "at most 64 characters"),
        ({**JOIN, "roomId": "x" * 10_000}, "at most 64 characters"),
        ({**JOIN, "roomId": "a\nb"}, "control characters"),
        ({**JOIN, "roomId": "a\x00b"}, "control characters"),
        ({**JOIN, "roomId": "a\ud800"}, "roomId is not valid Unicode text"),
        ({**JOIN, "userId": ""}, "userId must be 1 to 64"),
        ({**JOIN, "userId": "has space"}, "userId must be 1 to 64"),
        ({**JOIN, "userId": "x" * 65}, "userId must be 1 to 64"),
        ({**JOIN, "userId": 7}, "userId must be a string"),
        ({**JOIN, "username": "x" * (MAX_NAME_CHARS + 1)}, "at most 32 characters"),
        ({**JOIN, "username": ""}, "username must not be empty"),
        ({**JOIN, "username": ["Ann"]}, "username must be a string"),
        ({**JOIN, "username": "A\x7f"}, "control characters"),
    ],
)
def test_join_refuses(data: Any, error: str) -> None:
    with pytest.raises(ChatInputError, match=error.replace("{", r"\{").replace("}", r"\}")):
        parse_join(data)


def test_room_only_needs_room_id() -> None:
    assert parse_room({"roomId": "r", "extra": 1}) == "r"
    with pytest.raises(ChatInputError, match="roomId is missing"):
        parse_room({})
    with pytest.raises(ChatInputError, match=r"expected an object like \{roomId\}"):
        parse_room(3)


def test_send_keeps_newlines_and_markup_as_text() -> None:
    request = parse_send({"roomId": "r", "message": "  <b>hi</b>\n\tthere  "})
    assert request == SendRequest("r", "<b>hi</b>\n\tthere")


def test_send_length_limit_counts_characters_after_trimming() -> None:
    assert parse_send({"roomId": "r", "message": "é" * MAX_MESSAGE_CHARS}).message == (
        "é" * MAX_MESSAGE_CHARS
    )
    assert parse_send({"roomId": "r", "message": " " * 10 + "a" * MAX_MESSAGE_CHARS})
    assert parse_send({"roomId": "r", "message": "abcd"}, max_chars=4).message == "abcd"
    with pytest.raises(ChatInputError, match="longer than 4 characters"):
        parse_send({"roomId": "r", "message": "abcde"}, max_chars=4)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"roomId": "r"}, "message is missing"),
        ({"roomId": "r", "message": 12}, "message must be a string"),
        ({"roomId": "r", "message": " \n "}, "message must not be empty"),
        ({"roomId": "r", "message": "x" * (MAX_MESSAGE_CHARS + 1)}, "longer than 2000"),
        ({"roomId": "r", "message": "x" * 1_000_000}, "longer than 2000"),
        ({"roomId": "r", "message": "a\x00b"}, "control characters"),
        ({"roomId": "r", "message": "a\x1bb"}, "control characters"),
        ({"roomId": "r", "message": "\udfff"}, "message is not valid Unicode text"),
        ({"message": "hi"}, "roomId is missing"),
        ([], "expected an object like"),
    ],
)
def test_send_refuses(data: Any, error: str) -> None:
    with pytest.raises(ChatInputError, match=error):
        parse_send(data)
