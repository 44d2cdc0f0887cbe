"""Shared fixtures: a real App on a real SQLite file (and PostgreSQL when configured),
driven through the in-memory test chat with an injectable clock."""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from bot.app import App
from bot.clock import FakeClock
from bot.config import Config, Database, GroupSeed, Pacing, Security, TestChat, Transports
from bot.transports.testchat import TestChatTransport

TEST_KEY = base64.urlsafe_b64encode(b"k" * 32).decode()
PG_URL = os.environ.get("TEST_DATABASE_URL", "")
REQUIRE_PG = os.environ.get("GROUNDWORK_REQUIRE_POSTGRES") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: needs TEST_DATABASE_URL")


async def reset_postgres(url: str) -> None:
    """An empty public schema, so migrations run from scratch for each test."""
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


def _backends() -> list[object]:
    pg_marks = [pytest.mark.postgres]
    if not PG_URL:
        pg_marks.append(pytest.mark.skip(
            reason="PostgreSQL tests need TEST_DATABASE_URL (make test sets it in CI)"))
    return ["sqlite", pytest.param("postgres", marks=pg_marks)]


@pytest.fixture(params=_backends())
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/groundwork.sqlite3"
    try:
        await reset_postgres(PG_URL)
    except (OSError, asyncpg.PostgresError) as exc:
        if REQUIRE_PG:
            raise
        pytest.skip(f"PostgreSQL at TEST_DATABASE_URL is unreachable: {exc}")
    return PG_URL


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path}/groundwork.sqlite3"


def make_config(db_url: str, tmp_path: Path, **overrides: object) -> Config:
    base = Config(
        database=Database(url=db_url),
        transports=Transports(testchat=TestChat(pacing=Pacing(
            rate_per_second=100_000, per_recipient_seconds=0, per_room_per_minute=0))),
        admins=("testchat:olga",),
        timezone="Europe/London",
        groups=(GroupSeed(code="riverside", name="Riverside Neighbours", area="Riverside",
                          timezone="Europe/London"),
                GroupSeed(code="hillcrest", name="Hillcrest Tenants", area="Hillcrest",
                          timezone="America/New_York")),
        security=Security(key_file=str(tmp_path / "secret.key")),
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


@dataclasses.dataclass
class Harness:
    app: App
    chat: TestChatTransport
    clock: FakeClock
    config: Config

    async def member(self, name: str, *groups: str) -> None:
        """Bring someone in: first message, YES, and joins."""
        await self.chat.say(name, "hi")
        await self.chat.say(name, "YES")
        for code in groups:
            await self.chat.say(name, f"/join {code}")


async def start_harness(config: Config, clock: FakeClock | None = None) -> Harness:
    clock = clock or FakeClock()
    chat = TestChatTransport(clock.now)
    app = App(config, clock=clock, environ={"GROUNDWORK_SECRET_KEY": TEST_KEY},
              transports=[chat])
    await app.start(background=False)
    return Harness(app, chat, clock, config)


@pytest.fixture
async def harness(db_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    h = await start_harness(make_config(db_url, tmp_path))
    try:
        yield h
    finally:
        await h.app.stop()


@pytest.fixture
async def sqlite_harness(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    h = await start_harness(make_config(sqlite_url, tmp_path))
    try:
        yield h
    finally:
        await h.app.stop()
