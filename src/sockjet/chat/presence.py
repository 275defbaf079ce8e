"""Who is in which room: derived from the sockets themselves, never from a separate registry.

A socket that joined a chat room is in the Socket.IO room named by the room's id, exactly (as
in the Node chat, so that Node servers and ``@socket.io/redis-emitter`` in the same cluster
reach the same clients), and carries its user in ``socket.data`` (``userId``, ``username``). Who
is online in a room is the set of distinct users of the sockets in that room, as
``fetch_sockets()`` reports them, so it is right across tabs (one user, several sockets),
reconnects (a new socket replaces an old one) and, with a cluster adapter, across servers.
Nothing needs cleaning up when a socket goes: it leaves its rooms and its user is no longer
counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["ChatUser", "chat_rooms", "is_socket_id", "online_users", "user_of"]


def chat_rooms(rooms: Iterable[str], socket_id: str) -> list[str]:
    """The chat rooms among a socket's Socket.IO rooms: all but its own (named by its id)."""
    return sorted(r for r in rooms if r != socket_id)


def is_socket_id(room_id: str, sockets: Iterable[_HasData]) -> bool:
    """Whether one of ``sockets`` is named ``room_id``: a chat room of that name would receive
    what is sent to that socket alone."""
    return any(s.id == room_id for s in sockets)


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
