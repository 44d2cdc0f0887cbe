"""The schema: the migrations match the models, the queues keep their indexes, and the
operator hears of a server that will not keep them lean."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
from tortoise.context import TortoiseContext
from tortoise.migrations.autodetector import MigrationAutodetector

from bot.storage import db
from tests.procs import asyncpg_url


async def test_the_models_need_no_migration_that_is_not_written(tmp_path: Path) -> None:
    """What `tortoise makemigrations` would write after a model change with no migration."""
    config = db.tortoise_config(f"sqlite://{tmp_path}/makemigrations.sqlite3")
    async with TortoiseContext() as ctx:
        await ctx.init(config=config)
        detector = MigrationAutodetector(ctx.apps, config["apps"])
        unwritten = await detector.changes()
    assert [w.name for w in unwritten] == []


async def _indexes(url: str, table: str) -> dict[str, tuple[bool, str]]:
    """Each index of `table`: (unique, its definition or columns)."""
    if url.startswith("sqlite://"):
        conn = sqlite3.connect(url[len("sqlite://"):])
        try:
            found = {}
            for _, name, unique, *_ in conn.execute(f"PRAGMA index_list('{table}')"):
                columns = [r[2] for r in conn.execute(f"PRAGMA index_info('{name}')")]
                found[name] = (bool(unique), ", ".join(columns))
            return found
        finally:
            conn.close()
    pg = await asyncpg.connect(asyncpg_url(url))
    try:
        rows = await pg.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1",
                              table)
    finally:
        await pg.close()
    return {r["indexname"]: ("UNIQUE" in r["indexdef"], r["indexdef"]) for r in rows}


async def test_the_queues_keep_their_unique_key_and_claim_indexes(db_url: str) -> None:
    await db.migrate(db_url)

    inbox = await _indexes(db_url, "inbox_item")
    outbox = await _indexes(db_url, "outbox_item")

    # A redelivered webhook is ignored by its unique (transport, event_key)...
    assert any(unique and "transport" in cols and "event_key" in cols
               for unique, cols in inbox.values())
    # ... each claim reads its partial index in order ...
    assert "inbox_item_pending" in inbox and "outbox_item_due" in outbox
    # ... and the inbox's status index, which no query read, is gone.
    assert not any(name.startswith("idx_inbox_item_status") for name in inbox)


async def test_the_operator_is_warned_exactly_when_the_server_will_not_vacuum_the_queues(
        db_url: str) -> None:
    await db.migrate(db_url)
    await db.open_db(db_url)
    try:
        warnings = await db.server_warnings(db_url)
    finally:
        await db.close_db()
    if not db_url.startswith("postgres"):
        assert warnings == []  # SQLite reuses the pages of deleted rows by itself
        return
    pg = await asyncpg.connect(asyncpg_url(db_url))
    try:
        autovacuum = await pg.fetchval("SHOW autovacuum")
    finally:
        await pg.close()
    assert warnings == ([] if autovacuum == "on" else [db.AUTOVACUUM_OFF])
