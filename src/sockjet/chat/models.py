"""What the chat stores and sends: one message, and how its id and timestamp are made."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["ChatMessage", "format_timestamp", "new_message_id", "utc_now"]


def utc_now() -> datetime:
    """The current time in UTC (the default clock of the chat)."""
    return datetime.now(UTC)


def new_message_id() -> str:
    """A unique message id: a random UUID, so that no two servers of a cluster can collide
    (a clock value could)."""
    return str(uuid.uuid4())


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``, as JavaScript's ``toISOString()``."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat message as accepted by the server (validated, stamped, with its id)."""

    id: str
    room_id: str
    user_id: str
    username: str
    message: str
    timestamp: str
    """ISO 8601 UTC, see :func:`format_timestamp`."""

    def to_event(self) -> dict[str, Any]:
        """The ``receiveMessage`` payload (also how history lists messages)."""
        return {
            "id": self.id,
            "userId": self.user_id,
            "username": self.username,
            "message": self.message,
            "timestamp": self.timestamp,
        }
