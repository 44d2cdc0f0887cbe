"""Our SQLite client (bot/storage/sqlite_engine.py): statements on the loop's thread unless
opened `threaded`, and transactions that wait for another process's write lock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tortoise import connections
from tortoise.transactions import in_transaction

from bot.storage import db


@pytest.fixture
async def opened(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Path]:
    """A migrated SQLite file, opened with `threaded` as the test's parameter says."""
    path = tmp_path / "engine.sqlite3"
    url = f"sqlite://{path}"
    await db.migrate(url)
    await db.open_db(url, threaded=request.param)
    try:
        yield path
    finally:
        await db.close_db()


async def _thread_running_statements() -> int:
    client = connections.get("sqlite")
    await client.execute_query("SELECT 1")  # tortoise connects at the first statement
    # On the connection's own thread, wherever that is (aiosqlite's API).
    await client._connection.create_function("thread_id", 0, threading.get_ident)
    _, rows = await client.execute_query("SELECT thread_id() AS t")
    return rows[0]["t"]


@pytest.mark.parametrize("opened", [False], indirect=True)
async def test_statements_run_on_the_event_loops_thread_by_default(opened: Path) -> None:
    assert await _thread_running_statements() == threading.get_ident()


@pytest.mark.parametrize("opened", [True], indirect=True)
async def test_a_threaded_client_runs_statements_on_a_thread_of_their_own(opened: Path) -> None:
    assert await _thread_running_statements() != threading.get_ident()


@pytest.mark.parametrize("opened", [True], indirect=True)
async def test_a_threaded_client_waits_for_another_writer_while_the_loop_runs_on(
        opened: Path) -> None:
    other = sqlite3.connect(opened, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process (a processing child) is writing
    try:

        async def read_then_write() -> int:
            async with in_transaction("sqlite") as conn:
                _, rows = await conn.execute_query("SELECT count(*) AS n FROM suppression")
                await conn.execute_query(
                    "INSERT INTO suppression (address_hash, created_at) "
                    "VALUES ('h', '2026-01-01T00:00:00+00:00')")
                return int(rows[0]["n"])

        writer = asyncio.create_task(read_then_write())
        for _ in range(200):  # the loop keeps going: webhooks are still read meanwhile
            await asyncio.sleep(0)
        assert not writer.done()  # waiting for the lock, not failed with "database is locked"
        other.execute("COMMIT")
        assert await writer == 0
    finally:
        other.close()
    check = sqlite3.connect(opened)
    try:
        assert check.execute("SELECT count(*) FROM suppression").fetchone()[0] == 1
    finally:
        check.close()
