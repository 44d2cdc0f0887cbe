"""A broadcast survives a crash: `kill -9` of a real `python -m bot run` a third of the way
through a 10,000-member announcement, a restart, and every member gets it; the only
duplicates are the delivery round that was in flight when the process died."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from bot.config import ConfigError, load_config
from bot.outbox import max_rows_in_flight
from tests.fakes.graph_api import GraphApiStandIn
from tests.procs import (
    NUMBER,
    TOKEN,
    BotProcess,
    Database,
    bot_environ,
    free_port,
    poll,
    supervised,
    wait_until,
    write_config,
)
from tests.seeding import queue_announcements

MEMBERS = 10_000
RATE = 2_000  # msg/s: the whole broadcast takes ~5 s of pacing
# The rows a killed worker had claimed come back after the outbox lease; the default
# (120 s) is right for production and far too long for a test.
LEASES = "workers:\n  inbox_lease_seconds: 2\n  outbox_lease_seconds: 2\n"
TEXT = "📣 Riverside Neighbours\nPark clean-up on Saturday at 10:00. Gloves provided."


async def queue_announcement(config: Path, environ: dict[str, str]) -> None:
    assert await queue_announcements(config, environ, MEMBERS, "1555", TEXT) == MEMBERS


def distinct_recipients(graph: GraphApiStandIn) -> Callable[[], int]:
    """How many different people the stand-in accepted a message for (kept incrementally:
    it is asked after every request)."""
    seen: set[str] = set()
    read = 0

    def count() -> int:
        nonlocal read
        for body in graph.sent[read:]:
            seen.add(body["to"])
        read = len(graph.sent)
        return len(seen)

    return count


def rows_in_flight_bound() -> int:
    """Rows the delivery worker can have sent but not yet marked sent when it dies: the
    rounds in flight (it claims the next round while one sends, and records a round's
    outcomes together), and one worker per process."""
    return max_rows_in_flight(RATE)


async def test_announcement_killed_mid_broadcast_reaches_every_member_after_restart(
        tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    db_url = f"sqlite://{tmp_path}/bot.sqlite3"
    db = Database(db_url)
    environ = bot_environ(db_url)
    async with GraphApiStandIn(token=TOKEN, phone_number_id=NUMBER) as graph:
        port = free_port()
        config = write_config(tmp_path / "config.yaml", graph_url=graph.base_url, port=port,
                              rate_per_second=RATE, extra=LEASES)
        await queue_announcement(config, environ)
        bot = BotProcess(config, port, environ, tmp_path / "bot.log")
        reached = distinct_recipients(graph)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http, \
                supervised(bot):
            await bot.start(http)
            await graph.wait_for_requests(MEMBERS // 3, timeout=60)
            bot.kill()
            await bot.wait_exit()
            sent_before_kill = len(graph.sent)
            marked_sent = await db.scalar(
                "SELECT count(*) FROM outbox_item WHERE status = 'sent'")
            in_flight = await db.scalar(
                "SELECT count(*) FROM outbox_item WHERE status = 'sending'")

            restarted = time.monotonic()
            await bot.start(http)
            await wait_until(graph, lambda: reached() >= MEMBERS, timeout=90,
                             what="every member to be messaged")

            async def queue_empty() -> bool:
                return await db.scalar("SELECT count(*) FROM outbox_item "
                                       "WHERE status IN ('queued', 'sending')") == 0

            # The last sends are recorded a moment after the stand-in saw them.
            await poll(queue_empty, timeout=30, what="the outbox to drain")
            drained_seconds = time.monotonic() - restarted
            assert await bot.terminate() == 0

        statuses = dict(await db.rows(
            "SELECT status, count(*) FROM outbox_item GROUP BY status"))
        duplicates = len(graph.sent) - MEMBERS
        bound = rows_in_flight_bound()
        figures = {"sent_before_kill": sent_before_kill, "marked_sent_at_kill": marked_sent,
                   "claimed_at_kill": in_flight, "duplicates": duplicates,
                   "duplicate_bound": bound, "seconds_to_drain_after_restart":
                   round(drained_seconds, 1)}
        for name, value in figures.items():
            record_property(name, value)
        print(f"crash mid-broadcast: {figures}")

        assert reached() == MEMBERS, "someone never got the announcement"
        assert statuses == {"sent": MEMBERS}
        assert {b["text"]["body"] for b in graph.sent} == {TEXT}
        assert 0 <= duplicates <= bound, figures
        # Everything the stand-in saw before the kill was either recorded as sent or still
        # claimed: the crash cost at most the claimed rows' second sends.
        assert sent_before_kill - marked_sent <= in_flight <= bound, figures


@pytest.mark.parametrize("lease", ["0", "0.5", "-3", "soon"])
def test_worker_leases_below_a_second_are_refused(tmp_path: Path, lease: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"workers:\n  outbox_lease_seconds: {lease}\n")
    with pytest.raises(ConfigError, match=r"workers\.outbox_lease_seconds"):
        load_config(config, environ={})
