"""What a delivery round claims from the outbox, and in which order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.services.outbox import CLAIM_SECONDS, Outgoing
from bot.storage.models import OutboxItem
from tests.conftest import Harness

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


async def _ana(h: Harness) -> int:
    """Ana, a member, and an outbox emptied of what her joining queued."""
    await h.member("ana", "riverside")
    member = await h.app.services.members.find("testchat", "ana")
    assert member is not None
    await OutboxItem.all().delete()
    return member.id


async def _queue(h: Harness, member_id: int, text: str, kind: str, not_before: datetime,
                 now: datetime) -> None:
    await h.app.services.outbox.enqueue(
        [Outgoing(text=text, transport="testchat", member_id=member_id, kind=kind,
                  not_before=not_before)], now)


async def test_a_claim_takes_direct_answers_first_then_what_was_due_longest(
        harness: Harness) -> None:
    h = harness
    ana = await _ana(h)
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
    ana = await _ana(h)
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
    ana = await _ana(h)
    outbox = h.app.services.outbox
    await _queue(h, ana, "held by a worker that died", "reply", NOON, NOON)
    assert len(await outbox.claim_rows(NOON, 10)) == 1
    assert await outbox.claim_rows(NOON + timedelta(seconds=1), 10) == []  # still leased
    await _queue(h, ana, "bulk", "announcement", NOON - timedelta(minutes=5), NOON)

    later = NOON + timedelta(seconds=CLAIM_SECONDS + 1)
    taken_back = await outbox.claim_rows(later, 10)

    # In the claim's order: the answer taken back goes before the bulk row.
    assert [c.text for c in taken_back] == ["held by a worker that died", "bulk"]
    assert await outbox.claim_rows(later, 10) == []


async def test_the_worker_sleeps_until_the_earliest_queued_row_of_any_priority(
        harness: Harness) -> None:
    h = harness
    ana = await _ana(h)
    outbox = h.app.services.outbox
    assert await outbox.next_due() is None
    await _queue(h, ana, "bulk at seven", "announcement", NOON + timedelta(hours=7), NOON)
    await _queue(h, ana, "answer held till eight", "reply", NOON + timedelta(hours=8), NOON)
    assert await outbox.next_due() == NOON + timedelta(hours=7)

    await _queue(h, ana, "bulk at six", "announcement", NOON + timedelta(hours=6), NOON)
    await _queue(h, ana, "answer now", "reply", NOON, NOON)
    assert await outbox.next_due() == NOON
    assert len(await outbox.claim_rows(NOON, 10)) == 1  # claimed rows are not waited for
    assert await outbox.next_due() == NOON + timedelta(hours=6)
