"""The SQLite store and the choice of store by URL (PostgreSQL runs in the integration tests)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from chat_fakes import message

from sockjet.chat.postgres_store import PostgresStore
from sockjet.chat.sqlite_store import SQLiteStore
from sockjet.chat.store import StoreError, default_database_url, sqlite_path
from sockjet.chat.stores import open_store


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///chat.db", "chat.db"),
        ("sqlite:////var/lib/chat.db", "/var/lib/chat.db"),
        ("sqlite://:memory:", ":memory:"),
        ("data/chat.db", "data/chat.db"),
    ],
)
def test_sqlite_urls(url: str, path: str) -> None:
    assert sqlite_path(url) == path
    store = open_store(url)
    assert isinstance(store, SQLiteStore) and store.path == path


def test_sqlite_url_home_is_expanded() -> None:
    assert sqlite_path("sqlite:///~/chat.db") == os.path.expanduser("~/chat.db")


def test_bad_urls() -> None:
    with pytest.raises(StoreError, match="no file name"):
        open_store("sqlite://")
    with pytest.raises(StoreError, match="unsupported database URL 'mysql://x'"):
        open_store("mysql://x")


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "PostgreSQL"])
def test_postgres_urls_never_show_the_password(scheme: str) -> None:
    store = open_store(f"{scheme}://chat:s3cret@db.example:6543/chat")
    assert isinstance(store, PostgresStore)
    assert store.description == f"PostgreSQL {scheme.lower()}://chat@db.example:6543/chat"
    assert store.url.startswith(scheme.lower() + "://")
    assert "s3cret" not in store.description
    assert (
        PostgresStore("postgresql:///chat").description == "PostgreSQL postgresql://localhost/chat"
    )


def test_default_database_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_database_url() == f"sqlite:///{tmp_path}/sockjet/chat.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_database_url().endswith("/.local/share/sockjet/chat.db")


async def test_sqlite_saves_and_reads_back_in_order(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "chat.db"  # parents are created
    store = SQLiteStore(str(path))
    await store.open()
    try:
        await store.save([message(n) for n in range(1, 6)])
        await store.save([message(6, room="other"), message(3)])  # an id saved again: ignored
        await store.save([])
        assert [m.id for m in await store.recent("r", 50)] == ["id1", "id2", "id3", "id4", "id5"]
        assert [m.id for m in await store.recent("r", 2)] == ["id4", "id5"]
        assert await store.recent("other", 50) == [message(6, room="other")]
        assert await store.recent("nobody", 50) == []
    finally:
        await store.close()
        await store.close()  # idempotent
    again = SQLiteStore(str(path))  # history survives a restart
    await again.open()
    try:
        assert (await again.recent("r", 1))[0] == message(5)
    finally:
        await again.close()


async def test_sqlite_keeps_any_text_as_it_is() -> None:
    store = SQLiteStore(":memory:")
    await store.open()
    try:
        tricky = message(1)
        tricky = type(tricky)(
            "x'); DROP TABLE chat_messages; --",
            "r",
            "u",
            "Ann 😀",
            "<b>'\"</b>\n",
            tricky.timestamp,
        )
        await store.save([tricky])
        assert await store.recent("r", 5) == [tricky]
    finally:
        await store.close()


async def test_sqlite_errors_are_store_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create"):
        await SQLiteStore(str(blocker / "chat.db")).open()
    not_sqlite = tmp_path / "garbage.db"
    not_sqlite.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(StoreError, match="cannot use SQLite"):
        await SQLiteStore(str(not_sqlite)).open()
    with pytest.raises(StoreError, match="is not open"):
        await SQLiteStore(":memory:").recent("r", 1)


async def test_postgres_unreachable_is_a_store_error() -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    store = PostgresStore("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL"):
        await store.open()
    with pytest.raises(StoreError, match="is not open"):
        await store.save([message(1)])
    await store.close()


async def test_sqlite_that_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open SQLite"):
        await SQLiteStore(str(tmp_path)).open()  # a directory


async def test_sqlite_failed_save_rolls_back_and_raises(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "chat.db"))
    await store.open()
    try:
        await store.save([message(1)])
        db = store._conn()
        await db.execute("DROP TABLE chat_messages")  # the next save cannot succeed
        with pytest.raises(sqlite3.OperationalError):
            await store.save([message(2)])
        assert not db.in_transaction
    finally:
        await store.close()


class FakePool:
    def __init__(self, close_error: BaseException | None) -> None:
        self.close_error = close_error
        self.terminated = False

    async def close(self) -> None:
        if self.close_error is not None:
            raise self.close_error

    def terminate(self) -> None:
        self.terminated = True


async def test_postgres_close_terminates_a_pool_that_will_not_close() -> None:
    store = PostgresStore("postgresql:///x")
    store._pool = pool = FakePool(TimeoutError())
    await store.close()
    assert pool.terminated
    store._pool = pool = FakePool(None)
    await store.close()
    assert not pool.terminated
