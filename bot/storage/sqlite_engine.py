"""tortoise's SQLite client, with transactions that take the write lock when they begin.

SQLite lets one process write at a time. A transaction begun with plain BEGIN takes
the lock only at its first write; if another process (a processing worker, the
`export-member` command) wrote in between, that first write fails at once with
"database is locked", whatever the busy timeout, because the snapshot it read is
stale. BEGIN IMMEDIATE takes the lock up front, waiting up to the busy timeout for
it, so a transaction that reads and then writes never fails that way. Within one
process nothing changes: tortoise already runs one transaction at a time.
"""

from __future__ import annotations

import sqlite3

from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.exceptions import TransactionManagementError


class _ImmediateTransaction(SqliteTransactionWrapper):
    async def begin(self) -> None:
        try:
            await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc


class ImmediateSqliteClient(SqliteClient):
    def _in_transaction(self) -> SqliteTransactionContext:
        return SqliteTransactionContext(_ImmediateTransaction(self), self._lock)


client_class = ImmediateSqliteClient
