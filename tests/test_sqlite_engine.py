"""Our SQLite client (bot/storage/sqlite_engine.py): statements on the event loop's thread,
and transactions that wait for another process's write lock instead of failing."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tortoise import connections
from tortoise.transactions import in_transaction

from bot.storage import db

HELD_SECONDS = 0.3  # how long the other writer keeps the lock; the busy timeout is 5 s


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[Path]:
    path = tmp_path / "engine.sqlite3"
    url = f"sqlite://{path}"
    await db.migrate(url)
    await db.open_db(url)
    try:
        yield path
    finally:
        await db.close_db()


async def test_statements_run_on_the_event_loops_thread(opened: Path) -> None:
    client = connections.get("sqlite")
    await client.execute_query("SELECT 1")  # tortoise connects at the first statement
    await client._connection.create_function("thread_id", 0, threading.get_ident)
    _, rows = await client.execute_query("SELECT thread_id() AS t")
    assert rows[0]["t"] == threading.get_ident()


async def test_a_transaction_waits_for_another_processs_write_lock_instead_of_failing(
        opened: Path) -> None:
    other = sqlite3.connect(opened, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process (a processing child) is writing
    release = threading.Timer(HELD_SECONDS, other.execute, ("COMMIT",))
    release.start()
    started = time.monotonic()
    try:
        async with in_transaction("sqlite") as conn:  # BEGIN IMMEDIATE: waits for it
            _, rows = await conn.execute_query("SELECT count(*) AS n FROM suppression")
            await conn.execute_query("INSERT INTO suppression (address_hash, created_at) "
                                     "VALUES ('h', '2026-01-01T00:00:00+00:00')")
        waited = time.monotonic() - started
    finally:
        release.join()
        other.close()
    assert rows[0]["n"] == 0
    assert waited >= HELD_SECONDS / 2  # it waited for the lock: no "database is locked"
    check = sqlite3.connect(opened)
    try:
        assert check.execute("SELECT count(*) FROM suppression").fetchone()[0] == 1
    finally:
        check.close()
