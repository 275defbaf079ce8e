"""Which store a database URL opens (the stores import the interface in
:mod:`sockjet.chat.store`; this module imports the stores, so neither imports the other back)."""

from __future__ import annotations

from sockjet.chat.store import MessageStore, StoreError, sqlite_path

__all__ = ["open_store"]


def open_store(url: str) -> MessageStore:
    """The store for a database URL (not yet opened: ``await store.open()``).

    ``postgresql://`` or ``postgres://`` URLs go to PostgreSQL; ``sqlite://`` URLs and plain
    file paths to SQLite. Raises :class:`StoreError` for anything else.
    """
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        # imported when used: asyncpg is only needed for PostgreSQL
        from sockjet.chat.postgres_store import PostgresStore

        return PostgresStore(scheme + url[len(scheme) :])  # asyncpg wants it in lower case
    if scheme in ("sqlite", ""):
        from sockjet.chat.sqlite_store import SQLiteStore

        return SQLiteStore(sqlite_path(url))
    raise StoreError(
        f"unsupported database URL {url!r}: use sqlite:///FILE or postgresql://USER@HOST/DB"
    )
