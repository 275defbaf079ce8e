"""The chat's events, on one namespace of a :class:`sockjet.Server`.

Events (payload shapes are fixed: the front end, the tests and the Node chat rely on them):

``joinRoom`` {roomId, userId, username}
    Joins the Socket.IO room named ``roomId``; the user goes into ``socket.data``. The others in
    the room get ``userJoined`` {userId, username, message} at that moment, unless that user was
    already there (another tab). A ``roomId`` that is the id of a socket (on any server of the
    cluster) is refused. Ack: {ok: true, roomId, history: [message...] (the last 50, oldest
    first), online: [user...]}.
``sendMessage`` {roomId, message}
    Everyone in the room, the sender included, gets ``receiveMessage`` {id, userId, username,
    message, timestamp}; the message is saved afterwards (:mod:`sockjet.chat.writer`).
    Ack: {ok: true, id, timestamp}.
``typing`` {roomId}
    The others in the room get ``userTyping`` {username}, at most once per user and room per
    ``typing_interval`` (:mod:`sockjet.chat.typing_notices`).
``leaveRoom`` {roomId}, and disconnection
    When the user's last socket leaves the room, the room gets ``userLeft`` {userId, username}.
    Ack: {ok: true, roomId}. A socket that comes back by connection state recovery is in its
    rooms again: they get ``userJoined`` again (unless another socket of the user stayed).
``echo`` (any arguments)
    The ack carries the same arguments.

What one socket causes reaches the room in the order the socket sent it (its join notice, its
messages, its typing, its leaving), although joining and leaving ask the cluster first: each
socket's events are queued behind its earlier ones (:mod:`sockjet.chat.ordering`).

Invalid input never raises. When the client asked for an ack, the ack says what is wrong:
{ok: false, error: "<what is wrong>"}; otherwise the socket gets an ``error`` event
{event, message} (:func:`sockjet.ack_requested` tells which). A
message that could not be saved is reported to its sender by an ``error`` event
{event: "sendMessage", id, message}.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Final

from sockjet.chat.models import ChatMessage, format_timestamp, new_message_id, utc_now
from sockjet.chat.ordering import Release, SocketOrder
from sockjet.chat.presence import ChatUser, chat_rooms, is_socket_id, online_users, user_of
from sockjet.chat.store import MessageStore
from sockjet.chat.typing_notices import TYPING_INTERVAL, TypingNotices
from sockjet.chat.validation import (
    MAX_MESSAGE_CHARS,
    ChatInputError,
    max_message_chars_for,
    parse_join,
    parse_room,
    parse_send,
)
from sockjet.chat.writer import DEFAULT_MAX_PENDING, DEFAULT_RETRY_DELAYS, Pending, WriteBehind
from sockjet.server import RemoteSocket, Server, Socket, ack_requested

__all__ = ["HISTORY_LIMIT", "HISTORY_MAX_CHARS", "MAX_ROOMS_PER_SOCKET", "ChatApp"]

logger = logging.getLogger("sockjet.chat")

HISTORY_LIMIT: Final = 50
"""Messages of history ``joinRoom`` returns."""
HISTORY_MAX_CHARS: Final = 200_000
"""At most this many characters of message text in that history (older messages are left out
past it, the newest is always there): with long messages allowed, 50 of them would make one ack
larger than a connection may buffer."""
MAX_ROOMS_PER_SOCKET: Final = 10
"""Chat rooms one socket may be in at once (bounds what one client can make the server hold)."""

Ack = dict[str, Any]
Reply = Ack | None | Awaitable[Ack | None]
"""What a handler returns: the ack now, or an awaitable of it when the event waits its turn."""


class ChatApp:
    """The chat application on ``io`` (namespace ``namespace``), saving to ``store``.

    ``await start()`` opens the store before serving; ``await close()`` after ``io.close()``
    saves every accepted message and closes the store.

    Limits: ``max_message_chars`` (characters of one message; at most what ``io``'s
    ``max_payload`` holds, see :func:`~sockjet.chat.validation.max_message_chars_for`, else
    :class:`ValueError`), ``history_limit`` and ``history_max_chars`` (the history returned on
    joining), ``max_rooms_per_socket``, ``max_pending`` (messages accepted and not saved yet),
    ``typing_interval`` (seconds between two ``userTyping`` of one user in one room; 0 sends
    every one).
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
        history_max_chars: int = HISTORY_MAX_CHARS,
        max_rooms_per_socket: int = MAX_ROOMS_PER_SOCKET,
        max_pending: int = DEFAULT_MAX_PENDING,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        typing_interval: float = TYPING_INTERVAL,
    ) -> None:
        ceiling = max_message_chars_for(io.engine.max_payload)
        if not 1 <= max_message_chars <= ceiling:
            raise ValueError(
                f"max_message_chars must be 1 to {ceiling} (what max_payload="
                f"{io.engine.max_payload} holds at 4 bytes a character), got {max_message_chars}"
            )
        self.io = io
        self.store = store
        self.nsp = io.of(namespace)
        self.clock = clock
        self.new_id = new_id
        self.max_message_chars = max_message_chars
        self.history_limit = history_limit
        self.history_max_chars = history_max_chars
        self.max_rooms_per_socket = max_rooms_per_socket
        self.writer = WriteBehind(
            store, self._on_save_failure, max_pending=max_pending, retry_delays=retry_delays
        )
        self.typing_notices = TypingNotices(typing_interval)
        self._order = SocketOrder()
        nsp = self.nsp
        nsp.on("joinRoom", self.join_room)
        nsp.on("leaveRoom", self.leave_room)
        nsp.on("sendMessage", self.send_message)
        nsp.on("typing", self.typing)
        nsp.on("echo", self.echo)
        nsp.on("disconnect", self.on_disconnect)
        nsp.on("connection", self.on_connection)

    async def start(self) -> None:
        """Open the store (raises :class:`~sockjet.chat.store.StoreError`) and start saving."""
        await self.store.open()
        self.writer.start()

    async def close(self) -> None:
        """Save every accepted message, then close the store. Call it after ``io.close()``."""
        self.typing_notices.close()
        try:
            await self.writer.close()
        finally:
            await self.store.close()

    # -- events: each waits for the socket's earlier ones --------------------------------------

    def join_room(self, socket: Socket, data: Any = None, *_: Any) -> Reply:
        """``joinRoom`` {roomId, userId, username}."""
        return self._order.hold(socket.id, lambda release: self._join(socket, data, release))

    def leave_room(self, socket: Socket, data: Any = None, *_: Any) -> Reply:
        """``leaveRoom`` {roomId}: leaving a room one is not in is not an error."""
        return self._order.hold(socket.id, lambda _: self._leave(socket, data))

    def send_message(self, socket: Socket, data: Any = None, *_: Any) -> Reply:
        """``sendMessage`` {roomId, message}: broadcast now, save in the background."""
        return self._order.run(socket.id, lambda: self._send(socket, data))

    def typing(self, socket: Socket, data: Any = None, *_: Any) -> Reply:
        """``typing`` {roomId}."""
        return self._order.run(socket.id, lambda: self._typing(socket, data))

    def echo(self, socket: Socket, *args: Any) -> tuple[Any, ...] | Awaitable[tuple[Any, ...]]:
        """``echo``: the ack carries the same arguments (a tuple: one ack argument each). It
        comes after everything the socket sent before it took effect."""
        return self._order.run(socket.id, lambda: args)

    def on_connection(self, socket: Socket) -> Awaitable[None] | None:
        """A recovered socket is back in its rooms, which were told its user left: tell them
        the user is back (connection state recovery)."""
        if not socket.recovered:
            return None
        return self._order.hold(socket.id, lambda _: self._recovered(socket))

    def on_disconnect(self, socket: Socket, reason: str) -> Awaitable[None]:
        """Tell each room the socket was in that its user left, unless another of their
        sockets is still there."""
        return self._order.hold(socket.id, lambda _: self._disconnected(socket))

    # -- what they do -------------------------------------------------------------------------

    async def _join(self, socket: Socket, data: Any, release: Release) -> Ack | None:
        try:
            request = parse_join(data)
        except ChatInputError as exc:
            return self._refuse(socket, "joinRoom", str(exc))
        if not socket.connected:  # gone while this waited its turn
            return {"ok": False, "error": "disconnected"}
        user = ChatUser(request.user_id, request.username)
        room_id = request.room_id
        refusal = self._join_refusal(socket, user, room_id)
        if refusal is not None:
            return self._refuse(socket, "joinRoom", refusal)
        if room_id in socket.rooms:
            socket.data.update(userId=user.user_id, username=user.username)
            present: list[Socket | RemoteSocket] = []
        else:
            # Asked before joining, cluster-wide: is the name a socket's own room, and is this
            # user there already (another tab)? The socket's later events wait meanwhile.
            try:
                present = await self.nsp.in_(room_id).fetch_sockets()
            except Exception as exc:
                logger.warning("could not look into room %r before a join: %s", room_id, exc)
                return self._refuse(socket, "joinRoom", "the chat cannot be joined right now")
            if not socket.connected:
                return {"ok": False, "error": "disconnected"}
            if is_socket_id(room_id, present):
                return self._refuse(socket, "joinRoom", "this room name is taken: choose another")
            refusal = self._join_refusal(socket, user, room_id)  # rooms may change remotely
            if refusal is not None:
                return self._refuse(socket, "joinRoom", refusal)
            there = online_users(present, without_socket=socket.id)
            socket.data.update(userId=user.user_id, username=user.username)
            # Joining and the notice go together, with no await between them: whoever is in
            # the room now hears of the join, whoever joins later finds the user online.
            socket.join(room_id)
            if all(u.user_id != user.user_id for u in there):
                socket.to(room_id).emit(
                    "userJoined",
                    {**user.to_dict(), "message": f"{user.username} joined the chat"},
                )
        # Taken right after joining: anything accepted later reaches this socket live.
        unsaved = self.writer.unsaved(room_id)
        release()  # the room has seen all the join causes: the socket's next events may go
        online, history = await asyncio.gather(
            self._online(room_id, socket, present), self._history(room_id, unsaved)
        )
        return {
            "ok": True,
            "roomId": room_id,
            "history": [m.to_event() for m in history],
            "online": [u.to_dict() for u in online],
        }

    def _join_refusal(self, socket: Socket, user: ChatUser, room_id: str) -> str | None:
        """Why ``socket`` may not join ``room_id`` as ``user`` (None: it may)."""
        joined = chat_rooms(socket.rooms, socket.id)
        current = user_of(socket.data)
        if current is not None and current.user_id != user.user_id and joined:
            return "leave your rooms before changing user"
        if room_id == socket.id:
            return "this room name is taken: choose another"
        if room_id not in joined and len(joined) >= self.max_rooms_per_socket:
            return f"you can be in at most {self.max_rooms_per_socket} rooms"
        return None

    async def _leave(self, socket: Socket, data: Any) -> Ack | None:
        try:
            room_id = parse_room(data)
        except ChatInputError as exc:
            return self._refuse(socket, "leaveRoom", str(exc))
        # Once disconnected, the disconnection (queued after this) announces every room left.
        if socket.connected and self._in_room(socket, room_id):
            socket.leave(room_id)
            user = user_of(socket.data)
            if user is not None:
                self.typing_notices.stop(room_id, user.user_id)
                await self._announce_left(room_id, user)
        return {"ok": True, "roomId": room_id}

    def _send(self, socket: Socket, data: Any) -> Ack | None:
        try:
            request = parse_send(data, self.max_message_chars)
        except ChatInputError as exc:
            return self._refuse(socket, "sendMessage", str(exc))
        room_id = request.room_id
        user = user_of(socket.data)
        if user is None or not self._in_room(socket, room_id):
            return self._refuse(socket, "sendMessage", "join the room before sending to it")
        message = ChatMessage(
            id=self.new_id(),
            room_id=room_id,
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
        self.typing_notices.stop(room_id, user.user_id)  # the message ends the typing
        self.nsp.to(room_id).emit("receiveMessage", message.to_event())
        return {"ok": True, "id": message.id, "timestamp": message.timestamp}

    def _typing(self, socket: Socket, data: Any) -> Ack | None:
        try:
            room_id = parse_room(data)
        except ChatInputError as exc:
            return self._refuse(socket, "typing", str(exc))
        user = user_of(socket.data)
        if user is None or not self._in_room(socket, room_id):
            return self._refuse(socket, "typing", "join the room first")
        self.typing_notices.typing(socket, room_id, user)
        return {"ok": True}

    async def _disconnected(self, socket: Socket) -> None:
        user = user_of(socket.data)
        if user is None:
            return
        for room_id in chat_rooms(socket.rooms, socket.id):
            self.typing_notices.stop(room_id, user.user_id)
            await self._announce_left(room_id, user)

    async def _recovered(self, socket: Socket) -> None:
        user = user_of(socket.data)
        if user is None:
            return
        for room_id in chat_rooms(socket.rooms, socket.id):
            await self._announce_back(room_id, socket, user)

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _in_room(socket: Socket, room_id: str) -> bool:
        """Whether ``socket`` is in chat room ``room_id`` (its own room is no chat room)."""
        return room_id != socket.id and room_id in socket.rooms

    def _refuse(self, socket: Socket, event: str, message: str) -> Ack | None:
        """Report bad input where the client will look: in the ack it awaits, else by event."""
        if ack_requested():
            return {"ok": False, "error": message}
        socket.emit("error", {"event": event, "message": message})
        return None

    async def _online(
        self, room_id: str, socket: Socket, present: list[Socket | RemoteSocket]
    ) -> list[ChatUser]:
        """Who is in the room now that ``socket`` is (asked after joining, so that nobody who
        joined first is missing); what was known before joining when the cluster fails."""
        try:
            sockets = await self.nsp.in_(room_id).fetch_sockets()
        except Exception as exc:
            logger.warning("could not tell who is in room %r: %s", room_id, exc)
            sockets = [*present, socket]
        return online_users(sockets)

    async def _announce_back(self, room_id: str, socket: Socket, user: ChatUser) -> None:
        try:
            sockets = await self.nsp.in_(room_id).fetch_sockets()
        except Exception:
            logger.exception("could not tell who is in room %r", room_id)
            return
        if all(u.user_id != user.user_id for u in online_users(sockets, without_socket=socket.id)):
            socket.to(room_id).emit(
                "userJoined", {**user.to_dict(), "message": f"{user.username} joined the chat"}
            )

    async def _announce_left(self, room_id: str, user: ChatUser) -> None:
        try:
            sockets = await self.nsp.in_(room_id).fetch_sockets()
        except Exception:
            logger.exception("could not tell who is still in room %r", room_id)
            return
        if all(u.user_id != user.user_id for u in online_users(sockets)):
            self.nsp.to(room_id).emit("userLeft", user.to_dict())

    async def _history(self, room_id: str, unsaved: list[ChatMessage]) -> list[ChatMessage]:
        """Saved messages plus those accepted and not saved yet, deduplicated (a message may
        be saved while the query runs): the last ``history_limit`` of them, fewer when their
        text exceeds ``history_max_chars``."""
        try:
            saved = await self.store.recent(room_id, self.history_limit)
        except Exception:
            logger.exception("reading the history of room %r failed", room_id)
            saved = []
        ids = {m.id for m in saved}
        merged = (saved + [m for m in unsaved if m.id not in ids])[-self.history_limit :]
        budget = self.history_max_chars
        first = len(merged)
        while first > 0:
            budget -= len(merged[first - 1].message)
            if budget < 0 and first < len(merged):
                break
            first -= 1
        return merged[first:]

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
