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
from typing import Any, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

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


def columns(model: type[Model], alias: str, prefix: str = "") -> str:
    """`alias.col AS prefixcol, ...` for every column of the model."""
    return ", ".join(f'{alias}."{col}" AS "{prefix}{col}"' for col in db_columns(model))


def db_columns(model: type[Model]) -> tuple[str, ...]:
    return tuple(model._meta.fields_db_projection.values())


def builder(model: type[M], prefix: str = "") -> Callable[[Mapping[str, Any]], M]:
    """Turns a row selected with `columns(model, alias, prefix)` into a model object,
    converted exactly as tortoise converts its own query results."""
    cols = db_columns(model)
    if not prefix:
        return lambda row: model._init_from_db(**{c: row[c] for c in cols})
    keyed = tuple((c, prefix + c) for c in cols)
    return lambda row: model._init_from_db(**{c: row[k] for c, k in keyed})


async def rows(db: BaseDBAsyncClient, sql: str, values: Sequence[Any]) -> Sequence[Any]:
    """The rows of a SELECT; each is indexable by column name on both dialects."""
    _, found = await db.execute_query(sql, list(values))
    return found
