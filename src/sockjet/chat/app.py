"""The chat's events, on one namespace of a :class:`sockjet.Server`.

Events (payload shapes are fixed: the front end and the tests rely on them):

``joinRoom`` {roomId, userId, username}
    Joins the room; the user goes into ``socket.data``. The others in the room get
    ``userJoined`` {userId, username, message} unless that user was already there (another tab).
    Ack: {ok: true, roomId, history: [message...] (the last 50, oldest first), online: [user...]}.
``sendMessage`` {roomId, message}
    Everyone in the room, the sender included, gets ``receiveMessage`` {id, userId, username,
    message, timestamp}; the message is saved afterwards (:mod:`sockjet.chat.writer`).
    Ack: {ok: true, id, timestamp}.
``typing`` {roomId}
    The others in the room get ``userTyping`` {username} (volatile: may be dropped).
``leaveRoom`` {roomId}, and disconnection
    When the user's last socket leaves the room, the room gets ``userLeft`` {userId, username}.
    Ack: {ok: true, roomId}.
``echo`` (any arguments)
    The ack carries the same arguments.

Invalid input never raises. When the client asked for an ack, the ack says what is wrong:
{ok: false, error: "<what is wrong>"}; otherwise the socket gets an ``error`` event
{event, message} (:func:`sockjet.ack_requested` tells which). A
message that could not be saved is reported to its sender by an ``error`` event
{event: "sendMessage", id, message}.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final

from sockjet.chat.models import ChatMessage, format_timestamp, new_message_id, utc_now
from sockjet.chat.presence import ChatUser, chat_rooms, online_users, room_key, user_of
from sockjet.chat.store import MessageStore
from sockjet.chat.validation import (
    MAX_MESSAGE_CHARS,
    ChatInputError,
    parse_join,
    parse_room,
    parse_send,
)
from sockjet.chat.writer import DEFAULT_MAX_PENDING, DEFAULT_RETRY_DELAYS, Pending, WriteBehind
from sockjet.server import Server, Socket, ack_requested

__all__ = ["HISTORY_LIMIT", "MAX_ROOMS_PER_SOCKET", "ChatApp"]

logger = logging.getLogger("sockjet.chat")

HISTORY_LIMIT: Final = 50
"""Messages of history ``joinRoom`` returns."""
MAX_ROOMS_PER_SOCKET: Final = 10
"""Chat rooms one socket may be in at once (bounds what one client can make the server hold)."""

Ack = dict[str, Any]


class ChatApp:
    """The chat application on ``io`` (namespace ``namespace``), saving to ``store``.

    ``await start()`` opens the store before serving; ``await close()`` after ``io.close()``
    saves every accepted message and closes the store.
    """

    def __init__(
        self,
        io: Server,
        store: MessageStore,
        *,
        namespace: str = "/",
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_message_id,
        max_message_chars: int = MAX_MESSAGE_CHARS,
        history_limit: int = HISTORY_LIMIT,
        max_rooms_per_socket: int = MAX_ROOMS_PER_SOCKET,
        max_pending: int = DEFAULT_MAX_PENDING,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
    ) -> None:
        self.io = io
        self.store = store
        self.nsp = io.of(namespace)
        self.clock = clock
        self.new_id = new_id
        self.max_message_chars = max_message_chars
        self.history_limit = history_limit
        self.max_rooms_per_socket = max_rooms_per_socket
        self.writer = WriteBehind(
            store, self._on_save_failure, max_pending=max_pending, retry_delays=retry_delays
        )
        nsp = self.nsp
        nsp.on("joinRoom", self.join_room)
        nsp.on("leaveRoom", self.leave_room)
        nsp.on("sendMessage", self.send_message)
        nsp.on("typing", self.typing)
        nsp.on("echo", self.echo)
        nsp.on("disconnect", self.on_disconnect)

    async def start(self) -> None:
        """Open the store (raises :class:`~sockjet.chat.store.StoreError`) and start saving."""
        await self.store.open()
        self.writer.start()

    async def close(self) -> None:
        """Save every accepted message, then close the store. Call it after ``io.close()``."""
        try:
            await self.writer.close()
        finally:
            await self.store.close()

    # -- events -------------------------------------------------------------------------------

    async def join_room(self, socket: Socket, data: Any = None, *_: Any) -> Ack | None:
        """``joinRoom`` {roomId, userId, username}."""
        try:
            request = parse_join(data)
        except ChatInputError as exc:
            return self._refuse(socket, "joinRoom", str(exc))
        user = ChatUser(request.user_id, request.username)
        current = user_of(socket.data)
        joined = chat_rooms(socket.rooms)
        if current is not None and current.user_id != user.user_id and joined:
            return self._refuse(socket, "joinRoom", "leave your rooms before changing user")
        already = request.room_id in joined
        if not already and len(joined) >= self.max_rooms_per_socket:
            return self._refuse(
                socket, "joinRoom", f"you can be in at most {self.max_rooms_per_socket} rooms"
            )
        key = room_key(request.room_id)
        socket.data.update(userId=user.user_id, username=user.username)
        socket.join(key)
        # Taken right after joining: anything accepted later reaches this socket live.
        unsaved = self.writer.unsaved(request.room_id)
        sockets = await self.nsp.in_(key).fetch_sockets()
        if not socket.connected:
            return {"ok": False, "error": "disconnected"}
        others = online_users(sockets, without_socket=socket.id)
        if not already and all(u.user_id != user.user_id for u in others):
            socket.to(key).emit(
                "userJoined",
                {**user.to_dict(), "message": f"{user.username} joined the chat"},
            )
        history = await self._history(request.room_id, unsaved)
        return {
            "ok": True,
            "roomId": request.room_id,
            "history": [m.to_event() for m in history],
            "online": [u.to_dict() for u in online_users(sockets)],
        }

    async def leave_room(self, socket: Socket, data: Any = None, *_: Any) -> Ack | None:
        """``leaveRoom`` {roomId}: leaving a room one is not in is not an error."""
        try:
            room_id = parse_room(data)
        except ChatInputError as exc:
            return self._refuse(socket, "leaveRoom", str(exc))
        key = room_key(room_id)
        if key in socket.rooms:
            socket.leave(key)
            user = user_of(socket.data)
            if user is not None:
                await self._announce_left(key, user)
        return {"ok": True, "roomId": room_id}

    def send_message(self, socket: Socket, data: Any = None, *_: Any) -> Ack | None:
        """``sendMessage`` {roomId, message}: broadcast now, save in the background."""
        try:
            request = parse_send(data, self.max_message_chars)
        except ChatInputError as exc:
            return self._refuse(socket, "sendMessage", str(exc))
        key = room_key(request.room_id)
        user = user_of(socket.data)
        if user is None or key not in socket.rooms:
            return self._refuse(socket, "sendMessage", "join the room before sending to it")
        message = ChatMessage(
            id=self.new_id(),
            room_id=request.room_id,
            user_id=user.user_id,
            username=user.username,
            message=request.message,
            timestamp=format_timestamp(self.clock()),
        )
        # Queued before the broadcast, so a history read from now on includes it.
        if not self.writer.submit(message, socket.id):
            return self._refuse(
                socket, "sendMessage", "the server cannot save messages right now; try again"
            )
        self.nsp.to(key).emit("receiveMessage", message.to_event())
        return {"ok": True, "id": message.id, "timestamp": message.timestamp}

    def typing(self, socket: Socket, data: Any = None, *_: Any) -> Ack | None:
        """``typing`` {roomId}."""
        try:
            room_id = parse_room(data)
        except ChatInputError as exc:
            return self._refuse(socket, "typing", str(exc))
        key = room_key(room_id)
        user = user_of(socket.data)
        if user is None or key not in socket.rooms:
            return self._refuse(socket, "typing", "join the room first")
        # Volatile: a typing notice superseded by the next one may be dropped under load.
        socket.to(key).volatile.emit("userTyping", {"username": user.username})
        return {"ok": True}

    def echo(self, socket: Socket, *args: Any) -> tuple[Any, ...]:
        """``echo``: the ack carries the same arguments (a tuple: one ack argument each)."""
        return args

    async def on_disconnect(self, socket: Socket, reason: str) -> None:
        """Tell each room the socket was in that its user left, unless another of their
        sockets is still there."""
        user = user_of(socket.data)
        if user is None:
            return
        for room_id in chat_rooms(socket.rooms):
            await self._announce_left(room_key(room_id), user)

    # -- helpers ------------------------------------------------------------------------------

    def _refuse(self, socket: Socket, event: str, message: str) -> Ack | None:
        """Report bad input where the client will look: in the ack it awaits, else by event."""
        if ack_requested():
            return {"ok": False, "error": message}
        socket.emit("error", {"event": event, "message": message})
        return None

    async def _announce_left(self, key: str, user: ChatUser) -> None:
        try:
            sockets = await self.nsp.in_(key).fetch_sockets()
        except Exception:
            logger.exception("could not tell who is still in %s", key)
            return
        if all(u.user_id != user.user_id for u in online_users(sockets)):
            self.nsp.to(key).emit("userLeft", user.to_dict())

    async def _history(self, room_id: str, unsaved: list[ChatMessage]) -> list[ChatMessage]:
        """Saved messages plus those accepted and not saved yet, deduplicated (a message may
        be saved while the query runs), the last ``history_limit`` of them."""
        try:
            saved = await self.store.recent(room_id, self.history_limit)
        except Exception:
            logger.exception("reading the history of room %r failed", room_id)
            saved = []
        ids = {m.id for m in saved}
        merged = saved + [m for m in unsaved if m.id not in ids]
        return merged[-self.history_limit :]

    def _on_save_failure(self, batch: Sequence[Pending], error: BaseException) -> None:
        for pending in batch:
            self.nsp.to(pending.sender).emit(
                "error",
                {
                    "event": "sendMessage",
                    "id": pending.message.id,
                    "message": "your message could not be saved: it will not be in the history",
                },
            )
