"""Processing in child processes: `bot run` with `workers.processors`.

A real `python -m bot run` with two processing children, on SQLite (one file shared by
three processes) and on PostgreSQL, answers a burst of signed webhooks: every message
is processed once and answered once, /metrics counts what the children processed (and
the delivery reports they handled), a
child killed with SIGKILL is started again without losing a message, and SIGTERM
stops the parent and its children with exit code 0.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from bot.processors import counted_line, parse_counted, parse_processed, processed_line
from tests.conftest import PG_URL
from tests.fakes.graph_api import GraphApiStandIn, status_webhook, text_webhook
from tests.procs import (
    NUMBER,
    TOKEN,
    BotProcess,
    Database,
    bot_environ,
    free_port,
    fresh_postgres,
    metric,
    poll,
    post_webhook,
    supervised,
    wait_until,
    write_config,
)

CONCURRENCY = 16
# Rows a killed child had claimed come back after the lease: short, so the test does not
# wait production's 60 s.
PROCESSORS = ("workers:\n  processors: 2\n  inbox_lease_seconds: 2\n"
              "  outbox_lease_seconds: 2\n")
CHILD_STARTED = re.compile(r"processing child (\d+) started \(pid (\d+)\)")


def sender(i: int) -> str:
    return f"1888{i:06d}"


async def post_all(http: aiohttp.ClientSession, base: str, first: int, count: int) -> None:
    """First messages from `count` new people, CONCURRENCY at a time; each must get 200."""
    queue = iter(range(first, first + count))

    async def poster() -> None:
        for i in queue:
            payload = text_webhook("hello", wa_id=sender(i), name=None,
                                   message_id=f"wamid.PROC{i:06d}")
            assert await post_webhook(http, base, payload) == 200

    await asyncio.gather(*(poster() for _ in range(CONCURRENCY)))


def children(log: str) -> dict[int, int]:
    """Child index -> pid of its latest start, from the bot's log."""
    return {int(index): int(pid) for index, pid in CHILD_STARTED.findall(log)}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def run_with_processors(tmp_path: Path, db_url: str, messages: int,
                              record_property: Callable[[str, object], None],
                              kill_a_child: bool = False) -> None:
    db = Database(db_url)
    async with GraphApiStandIn(token=TOKEN, phone_number_id=NUMBER) as graph:
        port = free_port()
        config = write_config(tmp_path / "config.yaml", graph_url=graph.base_url, port=port,
                              rate_per_second=2_000, extra=PROCESSORS)
        bot = BotProcess(config, port, bot_environ(db_url), tmp_path / "bot.log")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http, \
                supervised(bot):
            await bot.start(http)
            started = await poll(lambda: _two_children(bot), timeout=30,
                                 what="both processing children to start")
            half = messages // 2
            await post_all(http, bot.base, 0, half)
            if kill_a_child:
                os.kill(started[0], 9)
                await poll(lambda: _restarted(bot, started[0]), timeout=30,
                           what="the killed child to be started again")
            await post_all(http, bot.base, half, messages - half)
            everyone = {sender(i) for i in range(messages)}
            await wait_until(graph, lambda: {b["to"] for b in graph.sent} >= everyone,
                             timeout=90, what="a reply to every sender")
            await poll(db.settled, timeout=30, what="the inbox and outbox to settle")
            processed = metric(await bot.metrics(http), "groundwork_processed_total",
                               outcome="ok")
            # A delivery report a child handles is counted in the parent's /metrics too.
            sent_id = await db.scalar("SELECT provider_message_id FROM outbox_item "
                                      "WHERE provider_message_id IS NOT NULL LIMIT 1")
            report = status_webhook(sent_id, "failed", recipient_id=sender(0),
                                    error_code=131026, error_title="Message undeliverable")
            assert await post_webhook(http, bot.base, report) == 200

            async def undeliverable_counted() -> bool:
                return metric(await bot.metrics(http), "groundwork_failed_total",
                              reason="undeliverable") == 1

            await poll(undeliverable_counted, timeout=30,
                       what="the child's count of an undeliverable message in /metrics")
            pids = set(children(bot.tail(10_000)).values())
            assert await bot.terminate() == 0, bot.tail()
        assert not [pid for pid in pids if alive(pid)], "a child outlived its parent"

    inbox = dict(await db.rows("SELECT status, count(*) FROM inbox_item GROUP BY status"))
    per_person = collections.Counter(b["to"] for b in graph.sent)
    record_property("replies", len(graph.sent))
    assert inbox == {"done": messages + 1}  # and the delivery report
    assert set(per_person) == everyone
    assert max(per_person.values()) == 1, per_person.most_common(3)
    if not kill_a_child:
        # Every message was processed in a child and counted in the parent's /metrics
        # (a killed child's last report can be lost with it).
        assert processed == messages


async def _two_children(bot: BotProcess) -> dict[int, int] | None:
    found = children(bot.tail(10_000))
    return found if len(found) == 2 else None


async def _restarted(bot: BotProcess, killed: int) -> bool:
    log = bot.tail(10_000)
    return "exited with -9; starting it again" in log and killed not in children(
        log).values() and len(children(log)) == 2


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres",
                                                            marks=pytest.mark.postgres)])
async def test_children_process_every_message_once_and_stop_with_the_parent(
        tmp_path: Path, backend: str, record_property: Callable[[str, object], None]) -> None:
    if backend == "sqlite":
        await run_with_processors(tmp_path, f"sqlite://{tmp_path}/bot.sqlite3", 400,
                                  record_property)
        return
    if not PG_URL:
        pytest.skip("PostgreSQL tests need TEST_DATABASE_URL (make test sets it in CI)")
    async with fresh_postgres(PG_URL) as url:
        await run_with_processors(tmp_path, url, 400, record_property)


async def test_a_killed_child_is_started_again_and_nothing_is_lost(
        tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    await run_with_processors(tmp_path, f"sqlite://{tmp_path}/bot.sqlite3", 200,
                              record_property, kill_a_child=True)


def test_report_lines_round_trip_and_garbage_is_ignored() -> None:
    assert parse_processed(processed_line(3, 1, [0.25, 0.5])) == (3, 1, [0.25, 0.5])
    assert parse_processed(processed_line(0, 1, [])) == (0, 1, [])
    assert parse_counted(counted_line("held", ["outside 24h window"])) == (
        "held", ("outside 24h window",))
    assert parse_counted(counted_line("failed", ["whatsapp", "a\tb\nc"])) == (
        "failed", ("whatsapp", "a b c"))
    for garbage in (b"", b"\n", b"x y z\n", b"p 1\n", b"p 1 2 a,b\n", b"c\n"):
        assert parse_processed(garbage) is None
        assert parse_counted(garbage) is None
    # Only the counters processing increments are taken from a child.
    assert parse_counted(counted_line("delivered", ["whatsapp", "reply"])) is None
