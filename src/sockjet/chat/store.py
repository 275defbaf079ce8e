"""Where chat messages are kept: one small interface, two databases.

* SQLite (the default): a file, embedded, nothing to install (:mod:`sockjet.chat.sqlite_store`,
  through aiosqlite).
* PostgreSQL: ``postgresql://user@host/db`` (:mod:`sockjet.chat.postgres_store`, through
  asyncpg), for several chat servers sharing one history.

:func:`open_store` picks one from a URL. Stores are used by one writer (the write-behind queue,
:mod:`sockjet.chat.writer`) and by any number of history readers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from sockjet.chat.models import ChatMessage

__all__ = ["MessageStore", "StoreError", "default_database_url", "sqlite_path"]

TABLE = "chat_messages"
COLUMNS = "id, room_id, user_id, username, message, created_at"
"""What a :class:`ChatMessage` is saved in and read back from, in the order of its fields."""


def schema(seq_type: str, timestamp_type: str) -> str:
    """The table and its index, with each database's types for the sequence number (the
    saving order, which history follows) and ``created_at``."""
    return f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    seq {seq_type},
    id TEXT NOT NULL UNIQUE,
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    username TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at {timestamp_type} NOT NULL
);
CREATE INDEX IF NOT EXISTS {TABLE}_room_seq ON {TABLE} (room_id, seq);
"""


class StoreError(Exception):
    """The database cannot be opened or used; the message says which and why."""


class MessageStore(Protocol):
    """What the chat needs from a database."""

    description: str
    """Where the messages are, for logs (never with a password)."""

    async def open(self) -> None:
        """Connect and create the table when missing. Raises :class:`StoreError`."""

    async def save(self, messages: Sequence[ChatMessage]) -> None:
        """Save messages in one transaction, in order; saving an id again does nothing (so a
        batch may be retried)."""

    async def recent(self, room_id: str, limit: int) -> list[ChatMessage]:
        """The last ``limit`` saved messages of a room, oldest first."""

    async def close(self) -> None:
        """Disconnect. Idempotent."""


def default_database_url() -> str:
    """``sqlite:///`` + ``$XDG_DATA_HOME/sockjet/chat.db`` (``~/.local/share`` by default): a
    place that survives restarts and stays out of source trees."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return "sqlite:///" + os.path.join(base, "sockjet", "chat.db")


def sqlite_path(url: str) -> str:
    """The file of a SQLite URL: ``sqlite:///relative.db``, ``sqlite:////absolute.db``,
    ``sqlite://:memory:``, or a plain path."""
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://") :]
        path = rest[1:] if rest.startswith("/") else rest
    else:
        path = url
    if not path:
        raise StoreError(f"no file name in the database URL {url!r}")
    return path if path == ":memory:" else str(Path(path).expanduser())
