"""`python -m bot run` as a real process: readiness, health, metrics, signed WhatsApp
webhooks answered through the Graph API stand-in, and a graceful stop on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import TEST_KEY
from tests.fakes.graph_api import GraphApiStandIn, body_of, sign, text_webhook
from tests.procs import free_port

REPO = Path(__file__).resolve().parent.parent
NUMBER = "111"
TOKEN = "serving-token"
APP_SECRET = "serving-app-secret"
VERIFY = "serving-verify"
WA_ID = "15550001111"
WEBHOOK = "/webhooks/whatsapp"
STARTUP_ATTEMPTS = 400  # x 0.05 s between refused connections: at most ~20 s to listen
EXIT_SECONDS = 30

CONFIG = """\
organization:
  name: Serving Test
database:
  url: "sqlite://{tmp}/bot.sqlite3"
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
security:
  key_env: GROUNDWORK_SECRET_KEY
  key_file: "{tmp}/secret.key"
"""


@dataclass
class Bot:
    process: asyncio.subprocess.Process
    base: str
    http: aiohttp.ClientSession
    graph: GraphApiStandIn
    database: Path
    log: Path

    async def webhook(self, payload: dict[str, Any], signature: str | None = "") -> int:
        """POST a webhook as Meta does; "" signs it properly, None sends no signature."""
        body = body_of(payload)
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature or sign(body, APP_SECRET)
        async with self.http.post(self.base + WEBHOOK, data=body, headers=headers) as resp:
            return resp.status

    async def stop(self) -> int:
        """SIGTERM, then the exit code (bounded wait)."""
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), EXIT_SECONDS)

    def count(self, table: str) -> int:
        """Rows in a table, read with sqlite3 from the file the process wrote."""
        with contextlib.closing(sqlite3.connect(self.database)) as db:
            return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def wait_until_ready(bot: Bot) -> None:
    """Poll /readyz until it answers 200; a refused connection means not listening yet."""
    for _ in range(STARTUP_ATTEMPTS):
        if bot.process.returncode is not None:
            pytest.fail(f"the bot exited with {bot.process.returncode}:\n"
                        f"{bot.log.read_text()}")
        try:
            async with bot.http.get(bot.base + "/readyz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)  # only while the process starts listening
    pytest.fail(f"/readyz never answered 200:\n{bot.log.read_text()}")


@contextlib.asynccontextmanager
async def running_bot(tmp_path: Path) -> AsyncIterator[Bot]:
    async with GraphApiStandIn(token=TOKEN, phone_number_id=NUMBER) as graph:
        port = free_port()
        config = tmp_path / "config.yaml"
        config.write_text(CONFIG.format(tmp=tmp_path, port=port, graph=graph.base_url))
        env = {**os.environ, "GROUNDWORK_SECRET_KEY": TEST_KEY, "WA_PHONE_NUMBER_ID": NUMBER,
               "WA_ACCESS_TOKEN": TOKEN, "WA_APP_SECRET": APP_SECRET,
               "WA_VERIFY_TOKEN": VERIFY}
        log = tmp_path / "bot.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", "--config", str(config), cwd=REPO,
                env=env, stdout=out, stderr=out)
        try:
            async with aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=10)) as http:
                bot = Bot(process, f"http://127.0.0.1:{port}", http, graph,
                          tmp_path / "bot.sqlite3", log)
                await wait_until_ready(bot)
                yield bot
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_run_is_ready_healthy_and_exports_prometheus_metrics(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as bot:
        async with bot.http.get(bot.base + "/readyz") as resp:
            assert resp.status == 200
            assert await resp.json() == {"status": "ready", "transports": ["whatsapp"]}
        async with bot.http.get(bot.base + "/healthz") as resp:
            assert resp.status == 200 and (await resp.json())["status"] == "alive"
        async with bot.http.get(bot.base + "/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            metrics = await resp.text()
        for name in ("groundwork_outbox_queue_depth", "groundwork_inbox_pending",
                     "groundwork_process_seconds"):
            assert f"# TYPE {name} " in metrics
        assert "\ngroundwork_outbox_queue_depth 0.0\n" in metrics
        # Meta's subscription handshake, with our verify token only.
        query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "42"}
        async with bot.http.get(bot.base + WEBHOOK, params=query) as resp:
            assert resp.status == 200 and await resp.text() == "42"
        query["hub.verify_token"] = "guess"
        async with bot.http.get(bot.base + WEBHOOK, params=query) as resp:
            assert resp.status == 403
        assert await bot.stop() == 0


async def test_signed_webhook_is_answered_once_at_the_graph_api(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as bot:
        hello = text_webhook("hello", wa_id=WA_ID, message_id="wamid.HELLO")
        assert await bot.webhook(hello) == 200
        assert await bot.webhook(hello) == 200  # Meta redelivers: same message id
        assert await bot.webhook(text_webhook("YES", wa_id=WA_ID, message_id="wamid.YES")) == 200
        # Replies go out in order; once YES is answered, any reply to the copy would be too.
        await bot.graph.wait_for_requests(2, timeout=10)
        notice, welcome = bot.graph.requests
        assert notice.method == "POST" and notice.path == f"/{bot.graph.version}/{NUMBER}/messages"
        assert notice.headers["Authorization"] == f"Bearer {TOKEN}"
        assert notice.json["messaging_product"] == "whatsapp"
        assert notice.json["recipient_type"] == "individual" and notice.json["to"] == WA_ID
        assert notice.json["type"] == "text"
        assert notice.json["text"]["body"].startswith("Hi! This is Serving Test")
        assert "You're in" in welcome.json["text"]["body"]
        async with bot.http.get(bot.base + "/metrics") as resp:
            metrics = await resp.text()
        assert 'groundwork_inbound_total{kind="message",transport="whatsapp"} 3.0' in metrics
        assert await bot.stop() == 0
        assert len(bot.graph.requests) == 2
        assert bot.count("inbox_item") == 2  # the copy was recognised, not stored again


async def test_unsigned_or_wrongly_signed_webhooks_are_rejected_and_not_stored(
        tmp_path: Path) -> None:
    async with running_bot(tmp_path) as bot:
        forged = text_webhook("STOP", wa_id=WA_ID, message_id="wamid.FORGED")
        assert await bot.webhook(forged, signature=None) == 401
        assert await bot.webhook(forged, signature=sign(body_of(forged), "not-the-secret")) == 401
        assert await bot.webhook(forged, signature="sha256=" + "0" * 64) == 401
        assert await bot.stop() == 0
        assert bot.graph.requests == []
        assert bot.count("inbox_item") == 0
        assert bot.count("member") == 0


async def test_sigterm_exits_zero_and_loses_nothing_accepted(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as bot:
        assert await bot.webhook(text_webhook("hello", wa_id=WA_ID)) == 200
        # Accepted (stored) and perhaps not yet processed when the signal arrives.
        assert await bot.stop() == 0
        assert "shutting down: finishing in-flight work" in bot.log.read_text()
        with contextlib.closing(sqlite3.connect(bot.database)) as db:
            inbox = db.execute("SELECT status FROM inbox_item").fetchall()
            outbox = db.execute("SELECT status FROM outbox_item").fetchall()
        assert inbox == [("done",)]  # the message in flight was processed before exit
        delivered = len(bot.graph.requests_to("/messages"))
    # The shutdown drains: the answer to the accepted message went out before the exit.
    assert outbox == [("sent",)] and delivered == 1
