"""tortoise's SQLite client, with transactions that take the write lock when they begin
and statements run on the event loop's own thread.

SQLite lets one process write at a time. A transaction begun with plain BEGIN takes
the lock only at its first write; if another process (a processing worker, the
`export-member` command) wrote in between, that first write fails at once with
"database is locked", whatever the busy timeout, because the snapshot it read is
stale. BEGIN IMMEDIATE takes the lock up front, waiting up to the busy timeout for
it, so a transaction that reads and then writes never fails that way. Within one
process nothing changes: tortoise already runs one transaction at a time.

aiosqlite runs every statement on a thread of its own and hands the result back to the
event loop. Our statements are small (an indexed lookup, a batch insert) and take
microseconds; the two thread switches around each cost more than that, about half the
CPU of processing a message (0.45 ms with them, 0.21 ms without, measured on 5,000
messages). So the statements run inline on the loop's thread.

The cost: while a statement waits for another process's write lock (`bot run` and its
processing children share the file), the loop waits with it. The children commit within
a few milliseconds when `run` signals an inbox write (bot/processors.py), so `run`'s loop
waits about as long as its webhooks would have waited for that write anyway. Measured
both ways with one child under webhook bursts, the child processed 2,930-2,970 msg/s with
a p99 receipt-to-outbox of 61-209 ms with `run` inline, and 2,290-2,390 msg/s with 1.5-1.9
s with `run` on aiosqlite's thread, whose switches took CPU from the child.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator
from typing import Any

import aiosqlite
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.exceptions import TransactionManagementError


class InlineConnection(aiosqlite.Connection):
    """aiosqlite's connection, with each call made at once on the calling (loop) thread.

    Its thread is never started; the sqlite3 connection lives and dies on the loop's."""

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    async def _connect(self) -> InlineConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    def __await__(self) -> Generator[Any, None, InlineConnection]:
        return self._connect().__await__()

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        self.stop()


class _ImmediateTransaction(SqliteTransactionWrapper):
    async def begin(self) -> None:
        try:
            await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc


class ImmediateSqliteClient(SqliteClient):
    async def create_connection(self, with_db: bool) -> None:
        """As tortoise's own, with our connection class."""
        if self._connection is not None:
            return
        path = self.filename
        self._connection = await InlineConnection(
            lambda: sqlite3.connect(path, isolation_level=None), 64)
        self._connection._conn.row_factory = sqlite3.Row
        for pragma, value in self.pragmas.items():
            await (await self._connection.execute(f"PRAGMA {pragma}={value}")).close()
        await self._post_connect()

    def _in_transaction(self) -> SqliteTransactionContext:
        return SqliteTransactionContext(_ImmediateTransaction(self), self._lock)


client_class = ImmediateSqliteClient
