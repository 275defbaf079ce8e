"""The SQLite message store (the default): one file, through aiosqlite (a worker thread)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Sequence

import aiosqlite

from sockjet.chat.models import ChatMessage
from sockjet.chat.store import COLUMNS, TABLE, StoreError, schema

__all__ = ["SQLiteStore"]

_SCHEMA = schema("INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT")
_INSERT = f"INSERT OR IGNORE INTO {TABLE} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
_RECENT = f"SELECT {COLUMNS} FROM {TABLE} WHERE room_id = ? ORDER BY seq DESC LIMIT ?"


class SQLiteStore:
    """Messages in a SQLite file (``":memory:"`` for a throw-away database)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.description = f"SQLite {path}"
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        if self.path != ":memory:":
            await asyncio.to_thread(self._make_parent)
        try:
            db = await aiosqlite.connect(self.path)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open {self.description}: {exc}") from exc
        try:
            # WAL: readers (history) never wait for the writer; NORMAL is durable across
            # application crashes, which is what a chat needs. busy_timeout lets several
            # processes share the file.
            await db.execute("PRAGMA busy_timeout = 5000")
            await self._prepare(db)
        except sqlite3.Error as exc:
            await db.close()
            raise StoreError(f"cannot use {self.description}: {exc}") from exc
        self._db = db

    @staticmethod
    async def _prepare(db: aiosqlite.Connection) -> None:
        # Two servers opening one new file at once: switching to WAL and creating the table
        # take the write lock, and SQLite answers "database is locked" at once, without its
        # busy timeout, to the one that would otherwise deadlock. That one tries again.
        for delay in (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, None):
            try:
                await db.execute("PRAGMA journal_mode = WAL")
                await db.execute("PRAGMA synchronous = NORMAL")
                await db.executescript(_SCHEMA)
                await db.commit()
                return
            except sqlite3.OperationalError as exc:
                if delay is None or "locked" not in str(exc):
                    raise
                with contextlib.suppress(sqlite3.Error):
                    await db.rollback()
                await asyncio.sleep(delay)

    def _make_parent(self) -> None:
        parent = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {parent}: {exc}") from exc

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError(f"{self.description} is not open")
        return self._db

    async def save(self, messages: Sequence[ChatMessage]) -> None:
        db = self._conn()
        rows = [(m.id, m.room_id, m.user_id, m.username, m.message, m.timestamp) for m in messages]
        try:
            await db.executemany(_INSERT, rows)
            await db.commit()
        except Exception:
            with contextlib.suppress(Exception):  # the original error is the one to report
                await db.rollback()
            raise

    async def recent(self, room_id: str, limit: int) -> list[ChatMessage]:
        async with self._conn().execute(_RECENT, (room_id, limit)) as cursor:
            rows = await cursor.fetchall()
        return [ChatMessage(*row) for row in reversed(list(rows))]

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()
