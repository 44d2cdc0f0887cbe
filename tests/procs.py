"""Real `python -m bot run` processes for the reliability tests.

A test writes a config (secrets as `${ENV}`), starts one or more bots on free ports of
127.0.0.1, waits for `/readyz`, and stops them with SIGTERM (graceful) or SIGKILL (a
crash). `supervised` kills whatever a failing test left running. Nothing here sleeps to
wait for work: the only short awaits are while a starting process is not listening yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from tests.conftest import TEST_KEY
from tests.fakes.graph_api import GraphApiStandIn, body_of, sign

REPO = Path(__file__).resolve().parent.parent
NUMBER = "111"
TOKEN = "reliability-token"
APP_SECRET = "reliability-app-secret"
VERIFY = "reliability-verify"
WEBHOOK = "/webhooks/whatsapp"
READY_SECONDS = 30.0  # a start on a busy 2-core machine (imports, migrations) takes ~2-5 s
EXIT_SECONDS = 30.0

CONFIG = """\
organization:
  name: Reliability Test
database:
  url: "${{DATABASE_URL}}"
server:
  host: 127.0.0.1
  port: {port}
transports:
  testchat:
    enabled: false
  whatsapp:
    enabled: true
    phone_number_id: "${{WA_PHONE_NUMBER_ID}}"
    access_token: "${{WA_ACCESS_TOKEN}}"
    app_secret: "${{WA_APP_SECRET}}"
    verify_token: "${{WA_VERIFY_TOKEN}}"
    api_base_url: "{graph}"
    pacing:
      rate_per_second: {rate}
      per_recipient_seconds: {spacing}
      per_room_per_minute: {per_room}
messaging:
  quiet_hours: "off"
  max_group_messages_per_day: 100
groups:
  - code: riverside
    name: Riverside Neighbours
    area: Riverside
security:
  key_env: GROUNDWORK_SECRET_KEY
  key_file: "{key_file}"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, *, graph_url: str, port: int, rate_per_second: float,
                 extra: str = "", per_recipient_seconds: float = 0,
                 per_room_per_minute: int = 0) -> Path:
    """A config for one worker; `extra` is appended YAML (e.g. a `workers:` section)."""
    # The key file is only a fallback: GROUNDWORK_SECRET_KEY is set for every process,
    # because workers sharing a database must share the key.
    path.write_text(CONFIG.format(port=port, graph=graph_url, rate=rate_per_second,
                                  spacing=per_recipient_seconds, per_room=per_room_per_minute,
                                  key_file=path.parent / "secret.key") + extra)
    return path


def bot_environ(database_url: str) -> dict[str, str]:
    """The environment of a bot process: every secret the config refers to."""
    return {**os.environ, "GROUNDWORK_SECRET_KEY": TEST_KEY, "DATABASE_URL": database_url,
            "WA_PHONE_NUMBER_ID": NUMBER, "WA_ACCESS_TOKEN": TOKEN,
            "WA_APP_SECRET": APP_SECRET, "WA_VERIFY_TOKEN": VERIFY}


class BotProcess:
    """One `python -m bot run`; may be started again after it stopped or was killed."""

    def __init__(self, config: Path, port: int, environ: dict[str, str], log: Path) -> None:
        self.config = config
        self.port = port
        self.environ = environ
        self.log = log
        self.base = f"http://127.0.0.1:{port}"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, http: aiohttp.ClientSession) -> None:
        """Spawn the process and return once /readyz answers 200."""
        assert not self.running, "already running"
        with self.log.open("ab") as out:  # one log across restarts, for the failure message
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", "--config", str(self.config), cwd=REPO,
                env=self.environ, stdout=out, stderr=out)
        await self.wait_ready(http)

    async def wait_ready(self, http: aiohttp.ClientSession) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_SECONDS
        while loop.time() < deadline:
            assert self.process is not None
            if self.process.returncode is not None:
                raise RuntimeError(f"the bot exited with {self.process.returncode}:\n"
                                   f"{self.tail()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(self.base + "/readyz",
                                    timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.05)  # only while the process is not listening yet
        raise RuntimeError(f"/readyz never answered 200 within {READY_SECONDS} s:\n"
                           f"{self.tail()}")

    def kill(self) -> None:
        """A crash: SIGKILL, no chance to finish anything."""
        assert self.process is not None and self.process.returncode is None
        os.kill(self.process.pid, signal.SIGKILL)

    async def wait_exit(self) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), EXIT_SECONDS)

    async def terminate(self) -> int:
        """A graceful stop: SIGTERM, then the exit code (bounded wait)."""
        assert self.process is not None and self.process.returncode is None
        self.process.send_signal(signal.SIGTERM)
        return await self.wait_exit()

    async def ensure_stopped(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.kill()
            await self.process.wait()

    async def metrics(self, http: aiohttp.ClientSession) -> str:
        async with http.get(self.base + "/metrics") as resp:
            return await resp.text()

    def tail(self, lines: int = 60) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.asynccontextmanager
async def supervised(*bots: BotProcess) -> AsyncIterator[None]:
    """Whatever happens in the block, no bot process outlives it."""
    try:
        yield
    finally:
        for bot in bots:
            await bot.ensure_stopped()


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus counter's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


async def post_webhook(http: aiohttp.ClientSession, base: str, payload: Any) -> int:
    """POST a webhook signed as Meta signs it; the HTTP status (connection errors raise)."""
    body = body_of(payload)
    headers = {"Content-Type": "application/json",
               "X-Hub-Signature-256": sign(body, APP_SECRET)}
    async with http.post(base + WEBHOOK, data=body, headers=headers) as resp:
        await resp.read()
        return resp.status


async def wait_until(graph: GraphApiStandIn, done: Callable[[], bool],
                     timeout: float, what: str) -> None:  # noqa: ASYNC109
    """Wait on the stand-in's traffic (no polling) until `done()` holds."""
    try:
        await graph.wait_for(done, timeout=timeout)
    except TimeoutError:
        raise TimeoutError(f"timed out after {timeout} s waiting for {what}") from None


async def poll(check: Callable[[], Awaitable[Any]], timeout: float,  # noqa: ASYNC109
               what: str, every: float = 0.1) -> Any:
    """Bounded polling of a database condition that no event announces; returns its value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() >= deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(every)


# -- the database, read from outside the bot ------------------------------------------


class Database:
    """Read-only queries against the bot's database, SQLite file or PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def postgres(self) -> bool:
        return self.url.startswith(("postgres://", "postgresql://"))

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.postgres:
            conn = await asyncpg.connect(asyncpg_url(self.url))
            try:
                return [tuple(r) for r in await conn.fetch(sql)]
            finally:
                await conn.close()
        path = self.url[len("sqlite://"):].split("?", 1)[0]
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
            return db.execute(sql).fetchall()

    async def scalar(self, sql: str) -> Any:
        return (await self.rows(sql))[0][0]

    async def settled(self) -> bool:
        """Every inbound event processed, every outbound message out of the queue."""
        pending = await self.scalar(
            "SELECT (SELECT count(*) FROM inbox_item WHERE status <> 'done') + "
            "(SELECT count(*) FROM outbox_item WHERE status IN ('queued', 'sending'))")
        return pending == 0

    async def table_counts(self) -> dict[str, int]:
        """Rows in every table of ours (not the migrations bookkeeping)."""
        if self.postgres:
            names = [r[0] for r in await self.rows(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        else:
            names = [r[0] for r in await self.rows(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%'")]
        return {name: int(await self.scalar(f'SELECT count(*) FROM "{name}"'))
                for name in sorted(names)}


def asyncpg_url(url: str) -> str:
    """tortoise's postgres:// address as asyncpg takes it."""
    return url.replace("postgres://", "postgresql://", 1)


@contextlib.asynccontextmanager
async def fresh_postgres(base_url: str) -> AsyncIterator[str]:
    """A new, empty database next to TEST_DATABASE_URL's, dropped afterwards.

    Processes started by a test keep their own connections open, and other test files
    reset TEST_DATABASE_URL's schema between tests: a database of our own keeps them
    from pulling the tables from under a running worker.
    """
    name = f"reliability_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_url(base_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    address, mark, query = base_url.partition("?")
    prefix, _, _ = address.rpartition("/")
    try:
        yield f"{prefix}/{name}{mark}{query}"
    finally:
        admin = await asyncpg.connect(asyncpg_url(base_url))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
