"""PostgreSQL connections go back to the pool without asyncpg's reset round trip
(bot/storage/postgres_connection.py), and what the reset was for still holds."""

from __future__ import annotations

import asyncpg
import pytest

from bot.storage.models import Member
from bot.storage.postgres_connection import PooledConnection
from tests.conftest import Harness
from tests.procs import asyncpg_url

RESET = "pg_advisory_unlock_all"


async def last_statements(url: str) -> list[str]:
    """The last statement of every other connection to the database, as the server saw it."""
    conn = await asyncpg.connect(asyncpg_url(url))
    try:
        rows = await conn.fetch("SELECT query FROM pg_stat_activity WHERE datname = "
                                "current_database() AND pid <> pg_backend_pid()")
    finally:
        await conn.close()
    return [r["query"] for r in rows]


@pytest.mark.postgres
async def test_a_pooled_connection_goes_back_without_a_reset_statement(
        harness: Harness, db_url: str) -> None:
    if not db_url.startswith("postgres"):
        pytest.skip("the pool and its reset are asyncpg's, on PostgreSQL")
    assert await Member.all().count() == 0  # a statement outside a transaction
    seen = await last_statements(db_url)
    assert any('FROM "member"' in q for q in seen)  # the bot's connection, seen
    assert not any(RESET in q for q in seen)


@pytest.mark.postgres
async def test_a_transaction_left_open_is_rolled_back_when_its_connection_is_released(
        db_url: str) -> None:
    if not db_url.startswith("postgres"):
        pytest.skip("the pool and its reset are asyncpg's, on PostgreSQL")
    pool = await asyncpg.create_pool(asyncpg_url(db_url), min_size=1, max_size=1,
                                     connection_class=PooledConnection)
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE left_open (n int)")
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO left_open VALUES (1)")
        async with pool.acquire() as conn:  # the same connection: the pool holds one
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM left_open") == 0
    finally:
        await pool.close()
