"""Several workers on one PostgreSQL database: two real `python -m bot run` processes on
different ports share the inbox and the outbox (rows claimed with FOR UPDATE SKIP LOCKED)
and the per-number send rate (slots reserved in the database).

Needs TEST_DATABASE_URL (CI sets it and requires PostgreSQL); each test creates a
database of its own next to it, so other tests resetting that one cannot disturb the
running workers.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import itertools
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import PG_URL, REQUIRE_PG
from tests.fakes.graph_api import GraphApiStandIn, text_webhook
from tests.procs import (
    NUMBER,
    REPO,
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
from tests.seeding import queue_announcements, queue_to_room

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="several workers need PostgreSQL: set "
                                          "TEST_DATABASE_URL (CI does)"),
]

WORKERS = 2


class StampedList(list[Any]):
    """The stand-in's list of accepted messages, with the moment each was accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item: Any) -> None:
        self.times.append(time.monotonic())
        super().append(item)


@dataclass
class Cluster:
    bots: list[BotProcess]
    db: Database
    url: str
    http: aiohttp.ClientSession

    async def metrics(self, name: str, **labels: str) -> list[float]:
        return [metric(await bot.metrics(self.http), name, **labels) for bot in self.bots]


async def migrate_once(config: Path, environ: dict[str, str], log: Path) -> None:
    """`python -m bot migrate`, as an operator runs it before starting the workers."""
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "migrate", "--config", str(config), cwd=REPO,
            env=environ, stdout=out, stderr=out)
        code = await asyncio.wait_for(process.wait(), 60)
    assert code == 0, f"python -m bot migrate exited with {code}; see {log}"


@contextlib.asynccontextmanager
async def database() -> AsyncIterator[str]:
    try:
        async with fresh_postgres(PG_URL) as url:
            yield url
    except (OSError, asyncpg.PostgresError) as exc:
        if REQUIRE_PG:
            raise
        pytest.skip(f"PostgreSQL at TEST_DATABASE_URL is unusable: {exc}")


@contextlib.asynccontextmanager
async def cluster(tmp_path: Path, graph: GraphApiStandIn, rate: float,
                  before_start: Callable[[Path, dict[str, str]], Any] | None = None,
                  per_recipient_seconds: float = 0, per_room_per_minute: int = 0
                  ) -> AsyncIterator[Cluster]:
    """WORKERS bots with the same config but for server.port, on one fresh database."""
    async with database() as url:
        environ = bot_environ(url)
        bots = []
        for n in range(WORKERS):
            port = free_port()
            config = write_config(tmp_path / f"worker{n}.yaml", graph_url=graph.base_url,
                                  port=port, rate_per_second=rate,
                                  per_recipient_seconds=per_recipient_seconds,
                                  per_room_per_minute=per_room_per_minute)
            bots.append(BotProcess(config, port, environ, tmp_path / f"worker{n}.log"))
        await migrate_once(bots[0].config, environ, tmp_path / "migrate.log")
        if before_start is not None:
            await before_start(bots[0].config, environ)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http, supervised(*bots):
            await asyncio.gather(*(bot.start(http) for bot in bots))
            yield Cluster(bots, Database(url), url, http)
            for bot in bots:
                assert await bot.terminate() == 0, bot.tail()


async def test_two_workers_share_the_inbox_and_answer_each_message_once(
        tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    people = 300
    redelivered = 60  # Meta redelivers some webhooks, and not to the same worker
    senders = [f"1888{i:06d}" for i in range(people)]
    async with GraphApiStandIn(token=TOKEN, phone_number_id=NUMBER) as graph, \
            cluster(tmp_path, graph, rate=2_000) as workers:
        posts: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        for i, who in enumerate(senders):
            payload = text_webhook("hello", wa_id=who, name=None, message_id=f"wamid.MW{i:06d}")
            posts.put_nowait((i, payload))
            if i < redelivered:
                posts.put_nowait((i + 1, payload))  # the copy goes to the other worker

        async def poster() -> None:
            while not posts.empty():
                i, payload = posts.get_nowait()
                bot = workers.bots[i % WORKERS]
                assert await post_webhook(workers.http, bot.base, payload) == 200

        await asyncio.gather(*(poster() for _ in range(8)))
        await wait_until(graph, lambda: len(graph.sent) >= people, timeout=60,
                         what="a reply to every sender")

        await poll(workers.db.settled, timeout=30, what="both workers to finish")
        processed = await workers.metrics("groundwork_processed_total", outcome="ok")
        delivered = await workers.metrics("groundwork_delivered_total", transport="whatsapp")
        inbox = dict(await workers.db.rows(
            "SELECT status, count(*) FROM inbox_item GROUP BY status"))
        outbox = dict(await workers.db.rows(
            "SELECT kind, count(*) FROM outbox_item GROUP BY kind"))
    per_person = collections.Counter(b["to"] for b in graph.sent)
    record_property("processed_per_worker", processed)
    record_property("delivered_per_worker", delivered)
    print(f"several workers, inbound: processed {processed}, delivered {delivered}")

    assert inbox == {"done": people}  # the redelivered copies were recognised
    assert outbox == {"notice": people}
    assert sorted(per_person) == sorted(senders)
    assert set(per_person.values()) == {1}, per_person.most_common(3)
    assert sum(processed) == people and sum(delivered) == people
    assert all(n > 0 for n in processed), "one worker did all the processing"
    assert all(n > 0 for n in delivered), "one worker did all the sending"


async def test_two_workers_draining_one_announcement_keep_the_per_number_rate(
        tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    rate = 150.0  # msg/s per business number: the platform's limit and our pacing
    members = 900  # ~6 s at that rate

    async def queue_announcement(config: Path, environ: dict[str, str]) -> None:
        await queue_announcements(config, environ, members, "1999", "Town hall tonight at 7")

    async with GraphApiStandIn(token=TOKEN, phone_number_id=NUMBER) as graph:
        graph.sent = StampedList()
        graph.limit_rate(rate)  # answers 130429 past `rate` per second
        async with cluster(tmp_path, graph, rate=rate,
                           before_start=queue_announcement) as workers:
            await wait_until(graph, lambda: len(graph.sent) >= members, timeout=90,
                             what="the announcement to reach everyone")
            delivered = await workers.metrics("groundwork_delivered_total",
                                              transport="whatsapp")
            retried = await workers.metrics("groundwork_retried_total")
        assert isinstance(graph.sent, StampedList)
        times = graph.sent.times
        refused = len(graph.requests_to("/messages")) - len(graph.sent)

    achieved = (len(times) - 1) / (times[-1] - times[0])
    busiest_second = max(bisect.bisect_left(times, start + 1.0) - i
                         for i, start in enumerate(times))
    figures = {"rate": rate, "achieved_rate": round(achieved, 1),
               "busiest_second": busiest_second, "refused_130429": refused,
               "delivered_per_worker": delivered, "retried_per_worker": retried}
    for name, value in figures.items():
        record_property(name, value)
    print(f"several workers, paced announcement: {figures}")

    per_person = collections.Counter(b["to"] for b in graph.sent)
    assert len(per_person) == members and set(per_person.values()) == {1}
    assert refused == 0, figures
    assert achieved <= rate * 1.03, figures
    assert all(n > 0 for n in delivered), f"one worker did all the sending: {figures}"


async def test_two_workers_keep_the_spacing_between_group_messages_to_one_person(
        tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    members, spacing = 120, 2.0  # two announcements each: the second waits out the spacing

    async def queue_both(config: Path, environ: dict[str, str]) -> None:
        await queue_announcements(config, environ, members, "1777",
                                  "Town hall tonight at 7", "Bring a friend")

    async with GraphApiStandIn(token=TOKEN, phone_number_id=NUMBER) as graph:
        graph.sent = StampedList()
        async with cluster(tmp_path, graph, rate=150, before_start=queue_both,
                           per_recipient_seconds=spacing) as workers:
            await wait_until(graph, lambda: len(graph.sent) >= 2 * members, timeout=90,
                             what="both announcements to reach everyone")
            delivered = await workers.metrics("groundwork_delivered_total",
                                              transport="whatsapp")
        assert isinstance(graph.sent, StampedList)
        times: dict[str, list[float]] = collections.defaultdict(list)
        for body, at in zip(graph.sent, graph.sent.times, strict=True):
            times[body["to"]].append(at)

    gaps = [later - earlier for stamps in times.values()
            for earlier, later in itertools.pairwise(sorted(stamps))]
    figures = {"members": members, "spacing": spacing, "smallest_gap": round(min(gaps), 3),
               "delivered_per_worker": delivered}
    for name, value in figures.items():
        record_property(name, value)
    print(f"several workers, spacing per person: {figures}")

    assert len(times) == members and all(len(t) == 2 for t in times.values()), figures
    # The stand-in stamps arrival; a send leaves at its slot, so allow the loop's jitter.
    assert min(gaps) >= spacing - 0.05, figures
    assert all(n > 0 for n in delivered), f"one worker did all the sending: {figures}"


ROOM = "120363000000000001@g.us"


async def test_a_rooms_window_holds_for_a_worker_that_did_not_send_the_first_posts(
        tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    # One worker fills the room's window, then stops; another (the same one restarted:
    # nothing in its memory) finds ten more posts for that room within the minute. Its
    # own pacer saw none of the first ten: only the database knows the room is full.
    per_minute = 10
    async with database() as url, GraphApiStandIn(token=TOKEN, phone_number_id=NUMBER) as graph:
        environ = bot_environ(url)
        port = free_port()
        config = write_config(tmp_path / "worker.yaml", graph_url=graph.base_url, port=port,
                              rate_per_second=50, per_room_per_minute=per_minute)
        bot = BotProcess(config, port, environ, tmp_path / "worker.log")
        await migrate_once(config, environ, tmp_path / "migrate.log")
        db = Database(url)
        await queue_to_room(config, environ, ROOM, [f"First {n}" for n in range(per_minute)])
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http, supervised(bot):
            await bot.start(http)
            await wait_until(graph, lambda: len(graph.sent) >= per_minute, timeout=30,
                             what="the first worker to fill the room's window")
            assert await bot.terminate() == 0, bot.tail()
            await queue_to_room(config, environ, ROOM, [f"Then {n}" for n in range(10)])
            await bot.start(http)

            async def every_post_through_a_round() -> dict[str, int] | None:
                rows = dict(await db.rows(
                    "SELECT CASE WHEN status = 'sent' THEN 'sent' WHEN status = 'queued' "
                    "AND not_before > now() + interval '20 seconds' THEN 'put off' "
                    "ELSE 'not yet' END, count(*) FROM outbox_item GROUP BY 1"))
                return rows if "not yet" not in rows else None

            counts = await poll(every_post_through_a_round, timeout=30,
                                what="every room post sent or put off by the window")
            assert await bot.terminate() == 0, bot.tail()
    to_room = [b["text"]["body"] for b in graph.sent if b.get("to") == ROOM]
    figures = {"per_minute": per_minute, "sent": len(to_room), **counts}
    for name, value in figures.items():
        record_property(name, value)
    assert len(to_room) == per_minute and counts == {"sent": 10, "put off": 10}, figures
    assert all(text.startswith("First") for text in to_room), figures
