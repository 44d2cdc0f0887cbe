"""Database start-up, shutdown and migrations (tortoise-orm's built-in migrations)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.exceptions import DBConnectionError
from tortoise.migrations.api import migrate as tortoise_migrate

from bot.storage.postgres_connection import PooledConnection

MODELS = ["bot.storage.models", "bot.storage.models_events", "bot.storage.models_discussions",
          "bot.storage.models_moderation", "bot.storage.models_teams"]
MIGRATIONS = "bot.storage.migrations"


def normalize_url(url: str) -> str:
    """Turn the operator's URL into tortoise's, with SQLite tuned for WAL."""
    if url.startswith("postgresql://"):
        url = "postgres://" + url[len("postgresql://"):]
    if url.startswith("sqlite://") and url != "sqlite://:memory:":
        path = url[len("sqlite://"):].split("?", 1)[0]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if "?" not in url:
            # WAL with synchronous=NORMAL is durable against process crashes and
            # nearly doubles write throughput over FULL.
            url += "?synchronous=NORMAL&busy_timeout=5000"
    return url


def tortoise_config(url: str) -> dict[str, Any]:
    # tortoise caches built SQL per connection name, so each dialect gets its own name
    # (one process may open SQLite and then PostgreSQL, as the test suite does).
    name = "postgres" if is_postgres(url) else "sqlite"
    return {
        "connections": {name: _connection(url)},
        "apps": {
            "models": {
                "models": MODELS,
                "default_connection": name,
                "migrations": MIGRATIONS,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _connection(url: str) -> dict[str, Any]:
    """PostgreSQL with connections that skip asyncpg's reset on release
    (bot/storage/postgres_connection.py); SQLite with our engine
    (bot/storage/sqlite_engine.py): its transactions begin IMMEDIATE, so that several
    processes can share the file, and its statements run on the event loop's thread."""
    url = normalize_url(url)
    expanded = expand_db_url(url)
    if is_postgres(url):
        expanded["credentials"]["connection_class"] = PooledConnection
        return expanded
    return {"engine": "bot.storage.sqlite_engine", "credentials": expanded["credentials"]}


def is_postgres(url: str) -> bool:
    return urlsplit(url).scheme in {"postgres", "postgresql", "asyncpg"}


class DatabaseUnavailable(Exception):
    """The database could not be reached or opened: one line for the operator."""


# What connecting can fail with when the database is not there for us: nothing listens,
# the host is unknown, the database or the role does not exist, the password is wrong,
# the server is starting or full; for SQLite, a file or folder we may not create.
_UNREACHABLE = (OSError, DBConnectionError, asyncpg.PostgresConnectionError,
                asyncpg.InvalidCatalogNameError, asyncpg.InvalidAuthorizationSpecificationError,
                asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)


def shown_url(url: str) -> str:
    """The URL as the operator may see it in a message: any password masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


@contextlib.contextmanager
def _reaching(url: str) -> Iterator[None]:
    """Connection failures as DatabaseUnavailable: `bot run` pointed at a server that is
    down printed some eighty lines of traceback, none of which said which database."""
    try:
        yield
    except _UNREACHABLE as exc:
        hint = ("Is the server running, and is database.url in the config right?"
                if is_postgres(url) else "Can the bot create and write that file?")
        raise DatabaseUnavailable(
            f"cannot open the database at {shown_url(url)}: {_reason(exc)}. {hint}") from exc


def _reason(exc: BaseException) -> str:
    # The system's words for an errno ("Connection refused"): asyncio's own message
    # depends on the event loop ("Connect call failed ('127.0.0.1', 5432)").
    if isinstance(exc, OSError) and exc.errno:
        text = os.strerror(exc.errno) if exc.errno > 0 else exc.strerror or str(exc)
        return f"{text}: {exc.filename}" if exc.filename else text
    if isinstance(exc, DBConnectionError) and exc.__cause__ is not None:
        return _reason(exc.__cause__)  # tortoise's words hide the server's own
    return str(exc).strip() or type(exc).__name__


async def migrate(url: str) -> None:
    """Apply every pending migration, then close the connections it opened."""
    try:
        with _reaching(url):
            await tortoise_migrate(config=tortoise_config(url))
    finally:
        await Tortoise.close_connections()


async def open_db(url: str) -> None:
    with _reaching(url):
        await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)


async def close_db() -> None:
    await Tortoise.close_connections()


AUTOVACUUM_OFF = (
    "PostgreSQL's autovacuum is off on this server: the inbox and the outbox churn (every "
    "message is inserted, claimed and finished within seconds) and nothing will reclaim "
    "their dead rows, so every claim reads more of them as time goes on. Turn it on "
    "(autovacuum = on, the default), or VACUUM ANALYZE inbox_item and outbox_item often.")


async def server_warnings(url: str) -> list[str]:
    """What the database server is set to that the bot cannot run well with (open_db
    first); each a line for the operator's log."""
    if not is_postgres(url):
        return []
    _, rows = await Tortoise.get_connection("postgres").execute_query(
        "SELECT current_setting('autovacuum') AS autovacuum")
    return [] if rows[0]["autovacuum"] == "on" else [AUTOVACUUM_OFF]


# For tortoise's own CLI (`tortoise -c bot.storage.db.TORTOISE_ORM makemigrations`),
# used by developers to write a new migration after changing the models.
TORTOISE_ORM = tortoise_config("sqlite://data/makemigrations.sqlite3")
