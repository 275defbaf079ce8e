"""Typing notices, thinned on the server instead of dropped by transport.

Every ``typing`` event could become a ``userTyping`` to the whole room (a client may send one
per keystroke). :class:`TypingNotices` lets at most one through per user, per room, per
``interval`` on this server: the first at once, the rest of a burst as one trailing notice when
the interval ends, so that a person who keeps typing is shown for as long as they type. Every
notice is sent like any other event (never volatile): polling clients get them too.

A user's message, or their leaving the room, ends their typing there: a trailing notice still
due is dropped (it would otherwise arrive after the message and show them typing again), and
their next ``typing`` goes out at once.
"""

from __future__ import annotations

import asyncio
from typing import Final

from sockjet.chat.presence import ChatUser
from sockjet.server import Socket

__all__ = ["TYPING_INTERVAL", "TypingNotices"]

TYPING_INTERVAL: Final = 1.0
"""Seconds between two ``userTyping`` of one user in one room (the front end shows a notice for
3 s, so it never lapses while someone types)."""


class _Window:
    __slots__ = ("pending", "timer")

    def __init__(self, timer: asyncio.TimerHandle) -> None:
        self.timer = timer
        self.pending: tuple[Socket, ChatUser] | None = None
        """The latest ``typing`` received during the interval, if any: the trailing notice."""


class TypingNotices:
    """Sends ``userTyping`` {username} to a room, at most once per user per ``interval``."""

    __slots__ = ("_windows", "interval")

    def __init__(self, interval: float = TYPING_INTERVAL) -> None:
        if not interval >= 0:
            raise ValueError("the typing interval must be 0 or more seconds")
        self.interval = interval
        self._windows: dict[tuple[str, str], _Window] = {}

    def typing(self, socket: Socket, room_id: str, user: ChatUser) -> None:
        """``user`` (on ``socket``, which is in ``room_id``) is typing there."""
        if self.interval == 0:
            _notify(socket, room_id, user)
            return
        key = (room_id, user.user_id)
        window = self._windows.get(key)
        if window is None:
            _notify(socket, room_id, user)
            self._open(key)
        else:
            window.pending = (socket, user)

    def stop(self, room_id: str, user_id: str) -> None:
        """The user's typing in ``room_id`` is over (they sent a message, or left)."""
        window = self._windows.pop((room_id, user_id), None)
        if window is not None:
            window.timer.cancel()

    def close(self) -> None:
        """Forget every interval and its trailing notice."""
        for window in self._windows.values():
            window.timer.cancel()
        self._windows.clear()

    def _open(self, key: tuple[str, str]) -> None:
        timer = asyncio.get_running_loop().call_later(self.interval, self._end, key)
        self._windows[key] = _Window(timer)

    def _end(self, key: tuple[str, str]) -> None:
        window = self._windows.pop(key, None)
        if window is None or window.pending is None:
            return
        socket, user = window.pending
        room_id = key[0]
        if socket.connected and room_id in socket.rooms:
            _notify(socket, room_id, user)
            self._open(key)  # the trailing notice starts an interval of its own


def _notify(socket: Socket, room_id: str, user: ChatUser) -> None:
    socket.to(room_id).emit("userTyping", {"username": user.username})
