"""Each person's messages are processed in the order they arrived, however many workers
claim from the inbox: a claim leaves a sender's later items alone while an earlier one of
theirs is pending outside it (leased by another worker, or locked by one claiming it).

The claims here stand for several workers: a lease lasts CLAIM_SECONDS whoever holds it,
so a second claim sees what another worker would see."""

from __future__ import annotations

import asyncpg
import pytest

from bot.messages import DeliveryState, DeliveryStatus, InboundEvent
from bot.services.inbox import MAX_ATTEMPTS, InboxService
from bot.storage.models import InboxItem
from tests.conftest import Harness
from tests.procs import asyncpg_url


async def accept(harness: Harness, *said: tuple[str, str]) -> list[InboundEvent]:
    events: list[InboundEvent] = [harness.chat.message(who, text) for who, text in said]
    await harness.app.services.inbox.accept(events, harness.clock.now())
    return events


def texts(claimed: list) -> list[str]:  # type: ignore[type-arg]
    return [getattr(c.event, "text", "(report)") for c in claimed]


def inbox(harness: Harness) -> InboxService:
    return harness.app.services.inbox


async def test_a_senders_later_message_waits_while_another_worker_holds_their_earlier_one(
        harness: Harness) -> None:
    await accept(harness, ("ana", "JOIN riverside"), ("ben", "HELP"), ("ana", "YES"))
    now = harness.clock.now()
    first = await inbox(harness).claim(now, limit=1)  # worker A
    assert texts(first) == ["JOIN riverside"]

    second = await inbox(harness).claim(now, limit=50)  # worker B, meanwhile
    assert texts(second) == ["HELP"]  # not Ana's YES: her JOIN is not done yet

    await inbox(harness).done([first[0].id], now)
    assert texts(await inbox(harness).claim(now, limit=50)) == ["YES"]


async def test_a_senders_consecutive_messages_are_claimed_together_in_order(
        harness: Harness) -> None:
    await accept(harness, ("ana", "one"), ("ana", "two"), ("ben", "hi"), ("ana", "three"))
    claimed = await inbox(harness).claim(harness.clock.now(), limit=50)
    assert texts(claimed) == ["one", "two", "hi", "three"]


async def test_reports_with_no_sender_are_never_held_back(harness: Harness) -> None:
    await accept(harness, ("ana", "JOIN riverside"))
    report = DeliveryStatus(transport="testchat", provider_message_id="p1",
                            state=DeliveryState.DELIVERED, time=harness.clock.now(),
                            recipient="ana")
    await inbox(harness).accept([report], harness.clock.now())
    await inbox(harness).claim(harness.clock.now(), limit=1)  # Ana's JOIN, leased
    assert texts(await inbox(harness).claim(harness.clock.now(), limit=50)) == ["(report)"]


async def test_a_failed_message_is_retried_before_the_same_senders_next(
        harness: Harness) -> None:
    await accept(harness, ("ana", "first"), ("ana", "second"))
    service, now = inbox(harness), harness.clock.now()
    held = await service.claim(now, limit=1)
    await service.failed_attempt(held[0].id, held[0].attempts, "RuntimeError", now)
    assert texts(await service.claim(now, limit=50)) == ["first", "second"]


async def test_a_message_given_up_on_holds_back_nothing_after_it(harness: Harness) -> None:
    await accept(harness, ("ana", "broken"), ("ana", "next"))
    service, now = inbox(harness), harness.clock.now()
    held = await service.claim(now, limit=1)
    assert await service.failed_attempt(held[0].id, MAX_ATTEMPTS - 1, "RuntimeError", now)
    assert texts(await service.claim(now, limit=50)) == ["next"]


async def test_the_sender_is_kept_as_a_keyed_hash_only_while_pending(harness: Harness) -> None:
    await accept(harness, ("ana", "hello"))
    row = await InboxItem.get()
    assert row.sender_key and "ana" not in row.sender_key
    assert row.sender_key == inbox(harness).vault.lookup_hash("testchat", "ana")[:32]
    await inbox(harness).done([row.id], harness.clock.now())
    await row.refresh_from_db()
    assert row.sender_key is None and row.payload is None


@pytest.mark.postgres
async def test_a_message_being_claimed_by_another_worker_holds_back_the_senders_later_ones(
        harness: Harness, db_url: str) -> None:
    if not inbox(harness).postgres:
        pytest.skip("row locks are PostgreSQL's; SQLite runs one claim at a time")
    await accept(harness, ("ana", "JOIN riverside"), ("ben", "HELP"), ("ana", "YES"))
    first = await InboxItem.filter(status="pending").order_by("id").first()
    assert first is not None
    other = await asyncpg.connect(asyncpg_url(db_url))
    try:
        # Another worker's claim, caught after it locked Ana's JOIN and before it leased
        # it: SKIP LOCKED passes the JOIN over, and her YES must wait for it.
        async with other.transaction():
            await other.execute("SELECT id FROM inbox_item WHERE id = $1 FOR UPDATE",
                                first.id)
            claimed = await inbox(harness).claim(harness.clock.now(), limit=50)
            assert texts(claimed) == ["HELP"]
    finally:
        await other.close()
    assert texts(await inbox(harness).claim(harness.clock.now(), limit=50)) == [
        "JOIN riverside", "YES"]


@pytest.mark.postgres
async def test_the_queue_tables_are_vacuumed_and_analyzed_early_on_postgresql(
        harness: Harness, db_url: str) -> None:
    """Without statistics the claim read every pending row and sorted them (migration
    0014): the queue tables get autovacuum settings for their churn."""
    if not inbox(harness).postgres:
        pytest.skip("autovacuum is PostgreSQL's")
    conn = await asyncpg.connect(asyncpg_url(db_url))
    try:
        rows = await conn.fetch("SELECT relname, reloptions FROM pg_class WHERE relname IN "
                                "('inbox_item', 'outbox_item')")
    finally:
        await conn.close()
    options = {r["relname"]: set(r["reloptions"] or ()) for r in rows}
    assert set(options) == {"inbox_item", "outbox_item"}
    for table in options.values():
        assert {"autovacuum_analyze_scale_factor=0.01",
                "autovacuum_vacuum_scale_factor=0.01"} <= table
