"""Who is in which room: derived from the sockets themselves, never from a separate registry.

A socket that joined a chat room is in the Socket.IO room :func:`room_key` of it and carries
its user in ``socket.data`` (``userId``, ``username``). Who is online in a room is the set of
distinct users of the sockets in that room, as ``fetch_sockets()`` reports them, so it is right
across tabs (one user, several sockets), reconnects (a new socket replaces an old one) and, with
a cluster adapter, across servers. Nothing needs cleaning up when a socket goes: it leaves its
rooms and its user is no longer counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Protocol

__all__ = ["ROOM_PREFIX", "ChatUser", "chat_rooms", "online_users", "room_key", "user_of"]

ROOM_PREFIX: Final = "chat:"
"""Chat rooms live under this prefix, so a room name can never be another socket's own room
(each socket is in the room named by its id)."""


def room_key(room_id: str) -> str:
    """The Socket.IO room of a chat room."""
    return ROOM_PREFIX + room_id


def chat_rooms(rooms: Iterable[str]) -> list[str]:
    """The chat room ids among a socket's Socket.IO rooms."""
    return sorted(r[len(ROOM_PREFIX) :] for r in rooms if r.startswith(ROOM_PREFIX))


@dataclass(frozen=True, slots=True)
class ChatUser:
    """A person in the chat: the id their browser chose and the name they show."""

    user_id: str
    username: str

    def to_dict(self) -> dict[str, str]:
        return {"userId": self.user_id, "username": self.username}


def user_of(data: Any) -> ChatUser | None:
    """The user a socket's ``data`` carries (None before it joined a room)."""
    if not isinstance(data, dict):
        return None
    user_id, username = data.get("userId"), data.get("username")
    if isinstance(user_id, str) and isinstance(username, str):
        return ChatUser(user_id, username)
    return None


class _HasData(Protocol):
    id: str

    @property
    def data(self) -> Any: ...


def online_users(
    sockets: Iterable[_HasData], *, without_socket: str | None = None
) -> list[ChatUser]:
    """Distinct users of ``sockets`` (skipping ``without_socket``), sorted by name."""
    users: dict[str, ChatUser] = {}
    for socket in sockets:
        if socket.id == without_socket:
            continue
        user = user_of(socket.data)
        if user is not None:
            users[user.user_id] = user
    return sorted(users.values(), key=lambda u: (u.username.casefold(), u.user_id))
