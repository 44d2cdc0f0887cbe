"""A savepoint opened only when an item first writes.

The processor runs a batch of inbox items in one transaction and each item in a
savepoint of its own, so that a failing item undoes its own writes only. Most
messages only read (HELP, /mygroups, /settings, /groups), and for them the two
extra statements of a savepoint (SAVEPOINT, RELEASE) are half the round trips
to the database. So while an item runs, the batch's connection is seen through
`LazySavepoint`: every statement passes through unchanged, and the first one that
is not a plain SELECT opens the item's savepoint first.

An item that fails before opening one has written nothing: on SQLite the batch
goes on; on PostgreSQL a failed statement may have poisoned the transaction, so
the caller treats it as a failure of the whole batch (see bot/processing.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionContext


def reads_only(query: str) -> bool:
    """True for a statement that cannot write. Anything unsure (a WITH, a PRAGMA) writes."""
    return query.lstrip()[:7].upper() == "SELECT "


class SavepointFailed(Exception):
    """Closing a savepoint failed: the transaction around it is in no state to go on."""


class LazySavepoint:
    """The batch's transaction connection, for one item (see the module docstring)."""

    def __init__(self, inner: BaseDBAsyncClient) -> None:
        self._inner = inner
        self._savepoint: TransactionContext | None = None
        self.wrote = False  # the savepoint was opened: something may have been written
        # The statements that may have written, as sent, with their values (None for
        # a script's, or several rows' at once): bot/services/batch_reads.py reads them.
        self.writes: list[tuple[str, list[Any] | None]] = []
        self.nested = False  # a transaction was opened inside: its statements are not seen

    def __getattr__(self, name: str) -> Any:
        # Everything but the statements below (capabilities, executor class, ...) as is.
        return getattr(self._inner, name)

    async def _write(self) -> None:
        if not self.wrote:
            savepoint = self._inner._in_transaction()
            await savepoint.__aenter__()
            self._savepoint, self.wrote = savepoint, True

    async def close(self, exc: BaseException | None) -> None:
        """Release the savepoint, or roll back to it when the item failed."""
        savepoint, self._savepoint = self._savepoint, None
        if savepoint is not None:
            await savepoint.__aexit__(type(exc) if exc else None, exc,
                                      exc.__traceback__ if exc else None)

    async def _writing(self, query: str, values: list[Any] | None) -> None:
        await self._write()
        self.writes.append((query, values))

    async def execute_query(self, query: str, values: list[Any] | None = None) -> Any:
        if not reads_only(query):
            await self._writing(query, values or [])
        return await self._inner.execute_query(query, values)

    async def execute_query_dict(self, query: str, values: list[Any] | None = None) -> Any:
        if not reads_only(query):
            await self._writing(query, values or [])
        return await self._inner.execute_query_dict(query, values)

    async def execute_query_dict_with_affected(self, query: str,
                                               values: list[Any] | None = None) -> Any:
        if not reads_only(query):
            await self._writing(query, values or [])
        return await self._inner.execute_query_dict_with_affected(query, values)

    async def execute_insert(self, query: str, values: list[Any]) -> Any:
        await self._writing(query, values)
        return await self._inner.execute_insert(query, values)

    async def execute_many(self, query: str, values: list[list[Any]]) -> Any:
        await self._writing(query, None)
        return await self._inner.execute_many(query, values)

    async def execute_script(self, query: str) -> Any:
        await self._writing(query, None)
        return await self._inner.execute_script(query)

    def _in_transaction(self) -> TransactionContext:
        return _Nested(self)


class _Nested(TransactionContext):
    """A transaction opened inside the item: its savepoint comes after the item's own."""

    def __init__(self, lazy: LazySavepoint) -> None:
        self._lazy = lazy
        self._inner: TransactionContext | None = None

    async def __aenter__(self) -> Any:
        await self._lazy._write()
        self._lazy.nested = True
        self._inner = self._lazy._inner._in_transaction()
        return await self._inner.__aenter__()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc_val: BaseException | None, exc_tb: TracebackType | None) -> None:
        assert self._inner is not None
        await self._inner.__aexit__(exc_type, exc_val, exc_tb)


@contextlib.asynccontextmanager
async def lazy_savepoint(connection_name: str) -> AsyncIterator[LazySavepoint]:
    """Run the block with the current transaction seen through a LazySavepoint.

    Inside a transaction only. On an exception the savepoint, if opened, is rolled
    back, and the exception goes on; `wrote` says whether the block wrote anything.
    Raises SavepointFailed if the savepoint cannot be released or rolled back.
    """
    lazy = LazySavepoint(connections.get(connection_name))
    token = connections.set(connection_name, lazy)  # type: ignore[arg-type]
    try:
        try:
            yield lazy
        except BaseException as exc:
            try:
                await lazy.close(exc)
            except Exception as failed:
                raise SavepointFailed("rolling back to the savepoint failed") from failed
            raise
        try:
            await lazy.close(None)
        except Exception as failed:
            raise SavepointFailed("releasing the savepoint failed") from failed
    finally:
        connections.reset(token)
