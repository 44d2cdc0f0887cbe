"""What a delivery round claims from the outbox, and in which order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.services.outbox import CLAIM_SECONDS, Outgoing
from bot.storage.models import OutboxItem
from tests.conftest import Harness

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


async def _member_id(h: Harness, name: str) -> int:
    await h.member(name, "riverside")
    member = await h.app.services.members.find("testchat", name)
    assert member is not None
    return member.id


async def _queue(h: Harness, member_id: int, text: str, kind: str, not_before: datetime,
                 now: datetime) -> None:
    await h.app.services.outbox.enqueue(
        [Outgoing(text=text, transport="testchat", member_id=member_id, kind=kind,
                  not_before=not_before)], now)


async def test_a_claim_takes_direct_answers_first_then_what_was_due_longest(
        harness: Harness) -> None:
    h = harness
    ana = await _member_id(h, "ana")
    await OutboxItem.all().delete()  # what joining the group queued
    await _queue(h, ana, "bulk, due in an hour", "announcement", NOON + timedelta(hours=1), NOON)
    await _queue(h, ana, "bulk, due a minute ago", "announcement", NOON - timedelta(minutes=1),
                 NOON)
    await _queue(h, ana, "bulk, due ten minutes ago", "announcement",
                 NOON - timedelta(minutes=10), NOON)
    await _queue(h, ana, "answer", "reply", NOON, NOON)

    claimed = await h.app.services.outbox.claim_rows(NOON, 10)

    assert [c.text for c in claimed] == ["answer", "bulk, due ten minutes ago",
                                         "bulk, due a minute ago"]
    assert await OutboxItem.filter(status="queued").values_list("text", flat=True) == [
        "bulk, due in an hour"]


async def test_a_claim_takes_no_more_than_its_limit_and_leaves_the_rest_queued(
        harness: Harness) -> None:
    h = harness
    ana = await _member_id(h, "ana")
    await OutboxItem.all().delete()
    for n in range(5):
        await _queue(h, ana, f"answer {n}", "reply", NOON, NOON)

    first = await h.app.services.outbox.claim_rows(NOON, 3)
    second = await h.app.services.outbox.claim_rows(NOON, 3)

    assert [c.text for c in first] == ["answer 0", "answer 1", "answer 2"]
    assert [c.text for c in second] == ["answer 3", "answer 4"]
    assert await h.app.services.outbox.claim_rows(NOON, 3) == []


async def test_rows_a_dead_worker_held_are_claimed_again_once_its_lease_lapses(
        harness: Harness) -> None:
    h = harness
    outbox = h.app.services.outbox
    ana = await _member_id(h, "ana")
    await OutboxItem.all().delete()
    await _queue(h, ana, "held by a worker that died", "reply", NOON, NOON)
    assert len(await outbox.claim_rows(NOON, 10)) == 1
    assert await outbox.claim_rows(NOON + timedelta(seconds=1), 10) == []  # still leased
    await _queue(h, ana, "bulk", "announcement", NOON - timedelta(minutes=5), NOON)

    later = NOON + timedelta(seconds=CLAIM_SECONDS + 1)
    taken_back = await outbox.claim_rows(later, 10)

    # In the claim's order: the answer taken back goes before the bulk row.
    assert [c.text for c in taken_back] == ["held by a worker that died", "bulk"]
    assert await outbox.claim_rows(later, 10) == []
