"""Hand-written SQL for the few queries every inbound message runs.

Building a query through tortoise costs about a millisecond of CPU (pypika copies
its query tree many times), several times what the database spends answering it.
A handful of queries run once or twice for every message (who is speaking, their
groups); those are written here once, with each dialect's placeholders, and their
rows turned into the same model objects tortoise would have made. Everything else
stays with the ORM.

Statements run on the connection of the current transaction, if there is one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.fields.base import Field
from tortoise.fields.data import DatetimeField
from tortoise.models import Model
from tortoise.transactions import in_transaction

M = TypeVar("M", bound=Model)


def connection(model: type[Model]) -> BaseDBAsyncClient:
    """The model's connection: the current transaction's when inside one."""
    return model._meta.db


def is_postgres(db: BaseDBAsyncClient) -> bool:
    return db.capabilities.dialect == "postgres"


def marks(db: BaseDBAsyncClient, count: int, start: int = 1) -> list[str]:
    """Parameter placeholders: asyncpg numbers them ($1, $2 ...), SQLite takes ?1, ?2 ..."""
    sign = "$" if is_postgres(db) else "?"
    return [f"{sign}{i}" for i in range(start, start + count)]


def one_of(db: BaseDBAsyncClient, column: str, start: int, values: Sequence[Any]
           ) -> tuple[str, list[Any]]:
    """`column` equal to one of `values`, as SQL and its parameters (numbered from `start`).

    PostgreSQL gets one array parameter: the same statement text whatever the number of
    values, so asyncpg prepares it once (a list of marks made a new statement, planned
    afresh, for every count). SQLite gets a list of marks."""
    if is_postgres(db):
        return f"{column} = ANY({marks(db, 1, start)[0]})", [list(values)]
    return f"{column} IN ({', '.join(marks(db, len(values), start))})", list(values)


def columns(model: type[Model], alias: str, prefix: str = "") -> str:
    """`alias.col AS prefixcol, ...` for every column of the model."""
    return ", ".join(f'{alias}."{col}" AS "{prefix}{col}"' for col in db_columns(model))


def db_columns(model: type[Model]) -> tuple[str, ...]:
    return tuple(model._meta.fields_db_projection.values())


def builder(model: type[M], prefix: str = "") -> Callable[[Mapping[str, Any]], M]:
    """Turns a row selected with `columns(model, alias, prefix)` into a model object,
    converted exactly as tortoise converts its own query results."""
    cols = db_columns(model)
    keyed = tuple((c, prefix + c) for c in cols)
    times = frozenset(c for c in cols if isinstance(
        model._meta.fields_map.get(model._meta.fields_db_projection_reverse.get(c, c)),
        DatetimeField))

    def build(row: Mapping[str, Any]) -> M:
        values = {c: row[k] for c, k in keyed}
        for c in times:
            # SQLite hands back text, which tortoise parses with the pure-Python iso8601;
            # datetime.fromisoformat reads what tortoise wrote (isoformat) far faster.
            if isinstance(value := values[c], str):
                values[c] = datetime.fromisoformat(value)
        return model._init_from_db(**values)
    return build


async def rows(db: BaseDBAsyncClient, sql: str, values: Sequence[Any]) -> Sequence[Any]:
    """The rows of a SELECT; each is indexable by column name on both dialects."""
    _, found = await db.execute_query(sql, list(values))
    return found


async def claimed(model: type[Model], sql: str, values: Sequence[Any]) -> Sequence[Any]:
    """The rows of a queue's claim (the inbox's, the outbox's): a statement that picks the
    oldest rows through its partial index, in order, and leases them.

    Queue tables fill and drain within seconds, so their statistics are nearly always
    stale. Analyzed when nothing was pending, PostgreSQL's planner took a backlog for a
    handful of rows and picked the oldest by reading every one through a bitmap and
    sorting them, until autovacuum's next round: an inbox claim took 10 ms with 10,000
    pending against 2.4 ms reading the index in order, an outbox claim 7.5 ms with
    10,800 queued by a fan-out against 1.6 ms. So on PostgreSQL bitmap scans are off for
    this statement, in a transaction of its own (two more round trips per claim); and no
    other index of the table may give part of the claim's order (migration 0017).
    Called outside any transaction."""
    db = connection(model)
    if not is_postgres(db):
        return await rows(db, sql, values)
    async with in_transaction(model._meta.default_connection) as conn:
        await conn.execute_script("SET LOCAL enable_bitmapscan = off")
        return await rows(conn, sql, values)


# Rows per INSERT statement: well under both dialects' limit on parameters (32,766).
INSERT_CHUNK = 1000


def _to_db(model: type[Model], column: str) -> Callable[[Any], Any] | None:
    """How a column's Python value becomes a parameter, as tortoise would convert it:
    None where the driver takes the value as it is (text, numbers)."""
    field = model._meta.fields_map[model._meta.fields_db_projection_reverse[column]]
    if type(field).to_db_value is Field.to_db_value:
        return None
    return lambda value: field.to_db_value(value, model)


class Insert:
    """A multi-row INSERT for one model and a fixed list of columns, built once.

    For the writes every message makes (the inbox row on receipt, the replies when
    processed): tortoise's bulk_create builds a model object per row and its query
    each time, which cost more than the database's own work.
    """

    def __init__(self, model: type[Model], columns: Sequence[str],
                 conflict: Sequence[str] = (), as_given: Sequence[str] = ()) -> None:
        self.model = model
        self.columns = tuple(columns)
        self.as_given = frozenset(as_given)  # columns whose values come ready for the driver
        # Looked up at first use: a model's foreign-key columns exist once tortoise is up.
        self._converters: tuple[Callable[[Any], Any] | None, ...] | None = None
        names = ", ".join(f'"{c}"' for c in self.columns)
        self.head = f'INSERT INTO "{model._meta.db_table}" ({names}) VALUES '
        # ON CONFLICT ... DO NOTHING: a redelivered row is ignored, on both dialects.
        self.tail = (f' ON CONFLICT ({", ".join(conflict)}) DO NOTHING' if conflict else "")

    async def run(self, values: Sequence[Sequence[Any]]) -> None:
        """Insert rows (each in `columns` order) on the current transaction's connection."""
        if not values:
            return
        if self._converters is None:
            self._converters = tuple(None if c in self.as_given else _to_db(self.model, c)
                                     for c in self.columns)
        converters = self._converters
        db = connection(self.model)
        width = len(self.columns)
        for start in range(0, len(values), INSERT_CHUNK):
            chunk = values[start:start + INSERT_CHUNK]
            params: list[Any] = []
            for row in chunk:
                params.extend(value if convert is None or value is None else convert(value)
                              for convert, value in zip(converters, row, strict=True))
            signs = marks(db, len(params))
            groups = ", ".join(f"({', '.join(signs[i:i + width])})"
                               for i in range(0, len(signs), width))
            await db.execute_query(self.head + groups + self.tail, params)

    async def run_atomic(self, values: Sequence[Sequence[Any]]) -> None:
        """Insert rows, all or none. Rows that fit one statement need no transaction (a
        statement is atomic on its own): on PostgreSQL, BEGIN and COMMIT are two more
        round trips, each a wake-up of the server process."""
        if len(values) <= INSERT_CHUNK:
            await self.run(values)
            return
        async with in_transaction(self.model._meta.default_connection):
            await self.run(values)
