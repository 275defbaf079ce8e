"""Checks of what clients send to the chat: every field is looked at before it is used.

Each ``parse_*`` function takes an event's first argument as the client sent it (any JSON value)
and returns clean values, or raises :class:`ChatInputError` with a message meant for the person
at the keyboard. Nothing here trusts a type, a length or a character of client input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "MAX_MESSAGE_CHARS",
    "MAX_NAME_CHARS",
    "MAX_PAYLOAD",
    "MAX_ROOM_CHARS",
    "MAX_USER_ID_CHARS",
    "MESSAGE_ENVELOPE_BYTES",
    "ChatInputError",
    "JoinRequest",
    "SendRequest",
    "max_message_chars_for",
    "parse_join",
    "parse_room",
    "parse_send",
]

MAX_MESSAGE_CHARS: Final = 2000
"""Longest chat message, in characters (after trimming surrounding blanks)."""
MAX_NAME_CHARS: Final = 32
MAX_ROOM_CHARS: Final = 64
MAX_USER_ID_CHARS: Final = 64
MAX_PAYLOAD: Final = 1_000_000
"""Bytes of one packet the server of ``sockjet chat`` accepts (``sockjet.Server``'s default
``max_payload``): what bounds ``max_message_chars``."""
MESSAGE_ENVELOPE_BYTES: Final = 1024
"""Room for what surrounds a message's text in its packet (``42<ack id>["sendMessage",
{"roomId":"<up to 64 characters>","message":"..."}]``: about 350 bytes at most), rounded up."""


def max_message_chars_for(max_payload: int) -> int:
    """The longest message (in characters) that always fits in one packet of ``max_payload``
    bytes: a character is at most 4 bytes of UTF-8 (as socket.io-client sends JSON; newline, tab,
    quote and backslash are escaped in 2), plus :data:`MESSAGE_ENVELOPE_BYTES`."""
    return max(0, (max_payload - MESSAGE_ENVELOPE_BYTES) // 4)


# C0 controls and DEL. Messages may keep newlines and tabs; names and ids may not.
_NAME_FORBIDDEN: Final = re.compile(r"[\x00-\x1f\x7f]")
_MESSAGE_FORBIDDEN: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_USER_ID: Final = re.compile(r"[A-Za-z0-9_.:-]+")


class ChatInputError(ValueError):
    """A client sent something the chat refuses; ``str(exc)`` says what, for a person."""


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """A valid ``joinRoom``."""

    room_id: str
    user_id: str
    username: str


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A valid ``sendMessage``."""

    room_id: str
    message: str


def _object(data: Any, shape: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ChatInputError(f"expected an object like {shape}")
    return data


def _string(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        raise ChatInputError(f"{key} is missing")
    if not isinstance(value, str):
        raise ChatInputError(f"{key} must be a string")
    return value


def _utf8(value: str, key: str) -> None:
    # JSON allows lone surrogates ("\ud800"); no database can store them.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ChatInputError(f"{key} is not valid Unicode text") from None


def _name(data: dict[str, Any], key: str, limit: int) -> str:
    raw = _string(data, key)
    if len(raw) > 4 * limit:  # bound the work on absurd input before trimming it
        raise ChatInputError(f"{key} must be at most {limit} characters")
    value = raw.strip()
    if not value:
        raise ChatInputError(f"{key} must not be empty")
    if len(value) > limit:
        raise ChatInputError(f"{key} must be at most {limit} characters")
    if _NAME_FORBIDDEN.search(value):
        raise ChatInputError(f"{key} must not contain control characters")
    _utf8(value, key)
    return value


def parse_room(data: Any) -> str:
    """The ``roomId`` of ``{roomId}`` (``leaveRoom``, ``typing``)."""
    return _name(_object(data, "{roomId}"), "roomId", MAX_ROOM_CHARS)


def parse_join(data: Any) -> JoinRequest:
    """``{roomId, userId, username}`` of ``joinRoom``."""
    fields = _object(data, "{roomId, userId, username}")
    room_id = _name(fields, "roomId", MAX_ROOM_CHARS)
    user_id = _string(fields, "userId")
    if not 0 < len(user_id) <= MAX_USER_ID_CHARS or not _USER_ID.fullmatch(user_id):
        raise ChatInputError(
            f"userId must be 1 to {MAX_USER_ID_CHARS} letters, digits or any of _ . : -"
        )
    return JoinRequest(room_id, user_id, _name(fields, "username", MAX_NAME_CHARS))


def parse_send(data: Any, max_chars: int = MAX_MESSAGE_CHARS) -> SendRequest:
    """``{roomId, message}`` of ``sendMessage``; the message is trimmed and at most
    ``max_chars`` characters long."""
    fields = _object(data, "{roomId, message}")
    room_id = _name(fields, "roomId", MAX_ROOM_CHARS)
    raw = _string(fields, "message")
    if len(raw) > 4 * max_chars:
        raise ChatInputError(f"message is longer than {max_chars} characters")
    message = raw.strip()
    if not message:
        raise ChatInputError("message must not be empty")
    if len(message) > max_chars:
        raise ChatInputError(f"message is longer than {max_chars} characters")
    if _MESSAGE_FORBIDDEN.search(message):
        raise ChatInputError("message must not contain control characters")
    _utf8(message, "message")
    return SendRequest(room_id, message)
