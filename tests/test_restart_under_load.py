"""Restarting under inbound load: signed WhatsApp webhooks keep coming while a real
`python -m bot run` is stopped (SIGTERM) or killed (SIGKILL) and started again.

Every webhook answered 200 must be in the inbox and processed exactly once. A webhook that
failed (connection refused while the bot was down, 503 while it shut down) is posted again
later, as Meta redelivers, and still produces exactly one reply.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.outbox import max_rows_in_flight
from tests.fakes.graph_api import GraphApiStandIn, text_webhook
from tests.procs import (
    NUMBER,
    TOKEN,
    BotProcess,
    Database,
    bot_environ,
    free_port,
    poll,
    post_webhook,
    supervised,
    wait_until,
    write_config,
)
from tests.seeding import queue_announcements

MESSAGES = 600
RATE = 2_000  # msg/s of replies
CONCURRENCY = 8  # webhooks in flight at once, as Meta's delivery fan-out would have
RETRY_SECONDS = 0.05  # how soon a failed delivery is tried again (Meta waits longer)
GIVE_UP_SECONDS = 90.0  # a delivery that cannot get a 200 in this long fails the test
# Rows claimed by a killed worker come back after the lease; production's 60/120 s would
# make the test wait that long.
LEASES = "workers:\n  inbox_lease_seconds: 2\n  outbox_lease_seconds: 2\n"


def sender(i: int) -> str:
    return f"1666{i:06d}"


class Load:
    """Posts MESSAGES first messages from as many new people, retrying what failed."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.acked: set[int] = set()
        self.failures: collections.Counter[str] = collections.Counter()
        self.progress = asyncio.Condition()
        self._next = 0

    async def run(self) -> None:
        await asyncio.gather(*(self._poster() for _ in range(CONCURRENCY)))

    async def acknowledged(self, n: int, timeout: float) -> None:  # noqa: ASYNC109
        async with self.progress:
            await asyncio.wait_for(
                self.progress.wait_for(lambda: len(self.acked) >= n), timeout)

    async def _poster(self) -> None:
        while self._next < MESSAGES:
            i = self._next
            self._next += 1
            await self._deliver(i)

    async def _deliver(self, i: int) -> None:
        payload = text_webhook("hello", wa_id=sender(i), name=None,
                               message_id=f"wamid.LOAD{i:06d}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GIVE_UP_SECONDS
        while True:
            try:
                status = await post_webhook(self.http, self.base, payload)
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.failures[type(exc).__name__] += 1
            else:
                if status == 200:
                    async with self.progress:
                        self.acked.add(i)
                        self.progress.notify_all()
                    return
                self.failures[f"HTTP {status}"] += 1
            if loop.time() > deadline:
                raise AssertionError(f"webhook {i} never got a 200: {self.failures}")
            await asyncio.sleep(RETRY_SECONDS)  # the redelivery delay, not a wait for work


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
async def test_every_acknowledged_webhook_is_processed_once_across_a_restart(
        tmp_path: Path, stop: str, record_property: Callable[[str, object], None]) -> None:
    db_url = f"sqlite://{tmp_path}/bot.sqlite3"
    db = Database(db_url)
    environ = bot_environ(db_url)
    async with GraphApiStandIn(token=TOKEN, phone_number_id=NUMBER) as graph:
        port = free_port()
        config = write_config(tmp_path / "config.yaml", graph_url=graph.base_url, port=port,
                              rate_per_second=RATE, extra=LEASES)
        bot = BotProcess(config, port, environ, tmp_path / "bot.log")
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http, supervised(bot):
            await bot.start(http)
            load = Load(http, bot.base)
            posting = asyncio.create_task(load.run())
            try:
                await load.acknowledged(MESSAGES // 3, timeout=60)
                if stop == "sigterm":
                    assert await bot.terminate() == 0, bot.tail()
                    assert "shutting down: finishing in-flight work" in bot.tail()
                else:
                    bot.kill()
                    await bot.wait_exit()
                acked_before_restart = len(load.acked)
                await bot.start(http)
                await asyncio.wait_for(posting, GIVE_UP_SECONDS + 30)
            finally:
                posting.cancel()

            everyone = {sender(i) for i in range(MESSAGES)}
            await wait_until(graph, lambda: {b["to"] for b in graph.sent} >= everyone,
                             timeout=60, what="a reply to every sender")

            await poll(db.settled, timeout=30, what="the inbox and outbox to settle")
            assert await bot.terminate() == 0

    inbox = dict(await db.rows("SELECT status, count(*) FROM inbox_item GROUP BY status"))
    replies = dict(await db.rows(
        "SELECT kind, count(*) FROM outbox_item GROUP BY kind"))
    per_person = collections.Counter(b["to"] for b in graph.sent)
    duplicates = sum(n - 1 for n in per_person.values())
    figures = {"acked_before_restart": acked_before_restart, "duplicates": duplicates,
               "retried_deliveries": dict(load.failures)}
    for name, value in figures.items():
        record_property(name, value)
    print(f"restart under load ({stop}): {figures}")

    assert load.acked == set(range(MESSAGES))
    assert sum(load.failures.values()) > 0, "the restart should have refused some webhooks"
    # Processed exactly once: one inbox row per message id, done, and one reply queued.
    assert inbox == {"done": MESSAGES}
    assert replies == {"notice": MESSAGES}
    assert set(per_person) == everyone
    assert all(b["text"]["body"].startswith("Hi! This is Reliability Test")
               for b in graph.sent)
    if stop == "sigterm":
        assert duplicates == 0, per_person.most_common(3)
    else:
        # A kill between a send and its record sends that reply again after the restart:
        # at most the delivery rounds in flight.
        bound = max_rows_in_flight(RATE)
        assert duplicates <= bound, per_person.most_common(3)


class SlowGraphApi(GraphApiStandIn):
    """The stand-in, answering each message only after `delay` seconds, as the real API
    takes a few hundred milliseconds. Like Meta, it carries out a send it has started on
    even if the caller hangs up (aiohttp does not cancel a handler on disconnect)."""

    def __init__(self, delay: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delay = delay

    async def _messages(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay)  # the platform's latency, not a wait in the test
        return await super()._messages(request)


async def test_graceful_stop_finishes_the_sends_in_flight_instead_of_repeating_them(
        tmp_path: Path) -> None:
    members = 40  # more than the worker's 32 concurrent sends: some wait their turn
    db_url = f"sqlite://{tmp_path}/bot.sqlite3"
    db = Database(db_url)
    environ = bot_environ(db_url)
    async with SlowGraphApi(1.0, token=TOKEN, phone_number_id=NUMBER) as graph:
        port = free_port()
        config = write_config(tmp_path / "config.yaml", graph_url=graph.base_url, port=port,
                              rate_per_second=2_000)
        await queue_announcements(config, environ, members, "1777", "Meeting moved to 7pm")
        bot = BotProcess(config, port, environ, tmp_path / "bot.log")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http, \
                supervised(bot):
            await bot.start(http)
            await graph.wait_for_requests(20, timeout=30)  # sends in flight, unanswered
            assert await bot.terminate() == 0
            await bot.start(http)  # anything the stop left undone goes out now

            async def drained() -> bool:
                return await db.scalar("SELECT count(*) FROM outbox_item "
                                       "WHERE status IN ('queued', 'sending')") == 0

            await poll(drained, timeout=60, what="the outbox to drain")
            assert await bot.terminate() == 0
    per_person = collections.Counter(b["to"] for b in graph.sent)
    assert len(per_person) == members
    assert max(per_person.values()) == 1, (
        f"{sum(n - 1 for n in per_person.values())} sent twice: the stop cut sends off "
        "mid-request and they were repeated after the restart")
