"""The PostgreSQL message store, through asyncpg (a small connection pool)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

# asyncpg ships no type information (the asyncpg-stubs package would add it).
import asyncpg  # type: ignore[import-untyped]

from sockjet.chat.models import ChatMessage, format_timestamp
from sockjet.chat.store import COLUMNS, TABLE, StoreError, schema

__all__ = ["PostgresStore"]

# Several chat servers may start at once against one database: the schema is created under an
# advisory lock, since concurrent CREATE TABLE IF NOT EXISTS can still collide in PostgreSQL.
_SCHEMA_LOCK = 0x736F636B6A6574  # "sockjet"
_CLOSE_TIMEOUT = 5.0
_SCHEMA = schema("BIGSERIAL PRIMARY KEY", "TIMESTAMPTZ")
_INSERT = (
    f"INSERT INTO {TABLE} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING"
)
_RECENT = f"SELECT {COLUMNS} FROM {TABLE} WHERE room_id = $1 ORDER BY seq DESC LIMIT $2"


def _describe(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"PostgreSQL {parts.scheme}://{user}{host}{port}{parts.path}"


class PostgresStore:
    """Messages in a PostgreSQL database."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 4) -> None:
        self.url = url
        self.description = _describe(url)
        self._min_size = min_size
        self._max_size = max_size
        self._pool: Any = None  # asyncpg.Pool

    async def open(self) -> None:
        try:
            pool = await asyncpg.create_pool(
                self.url,
                min_size=self._min_size,
                max_size=self._max_size,
                command_timeout=10,
                timeout=10,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise StoreError(f"cannot connect to {self.description}: {exc}") from exc
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
                await conn.execute(_SCHEMA)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await pool.close()
            raise StoreError(f"cannot use {self.description}: {exc}") from exc
        self._pool = pool

    def _the_pool(self) -> Any:
        if self._pool is None:
            raise StoreError(f"{self.description} is not open")
        return self._pool

    async def save(self, messages: Sequence[ChatMessage]) -> None:
        rows = [
            (
                m.id,
                m.room_id,
                m.user_id,
                m.username,
                m.message,
                datetime.fromisoformat(m.timestamp),
            )
            for m in messages
        ]
        async with self._the_pool().acquire() as conn, conn.transaction():
            await conn.executemany(_INSERT, rows)

    async def recent(self, room_id: str, limit: int) -> list[ChatMessage]:
        async with self._the_pool().acquire() as conn:
            rows = await conn.fetch(_RECENT, room_id, limit)
        return [
            ChatMessage(
                row["id"],
                row["room_id"],
                row["user_id"],
                row["username"],
                row["message"],
                format_timestamp(row["created_at"]),
            )
            for row in reversed(rows)
        ]

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            # A graceful close waits for the server's goodbye: bounded, for a server that is gone.
            await asyncio.wait_for(pool.close(), _CLOSE_TIMEOUT)
        except Exception:
            pool.terminate()
