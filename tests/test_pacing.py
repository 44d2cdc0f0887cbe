"""Pacing: evenly spaced slots, per-person spacing for bulk, room windows, shared slots."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import Pacing
from bot.pacing import Pacer
from bot.policy.gate import FOLD, SEND
from bot.services.outbox import OutboxService, Outcomes, Outgoing
from bot.services.pacing_slots import DatabaseSlots
from tests.conftest import Harness


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_slots_are_spaced_at_the_configured_rate() -> None:
    ticks = Ticks()
    pacer = Pacer(Pacing(rate_per_second=80), monotonic=ticks)
    waits = await pacer.slots(160)
    assert waits[0] == 0
    assert waits[-1] == pytest.approx(159 / 80)
    later = await pacer.slots(1)
    assert later[0] == pytest.approx(2.0)  # queued behind the first 160


async def test_a_platform_slow_down_delays_every_later_slot() -> None:
    ticks = Ticks()
    pacer = Pacer(Pacing(rate_per_second=10), monotonic=ticks)
    await pacer.penalize(5)
    assert (await pacer.slots(1))[0] == pytest.approx(5)


def test_bulk_messages_to_one_person_are_spaced_but_answers_are_not() -> None:
    ticks = Ticks()
    pacer = Pacer(Pacing(rate_per_second=80, per_recipient_seconds=3), monotonic=ticks)
    pacer.record("ana", room=False)
    assert pacer.not_before("ana", room=False, bulk=True) == pytest.approx(3)
    assert pacer.not_before("ana", room=False, bulk=False) == 0
    ticks.now += 3
    assert pacer.not_before("ana", room=False, bulk=True) == 0


def test_a_room_takes_at_most_its_messages_per_minute() -> None:
    ticks = Ticks()
    pacer = Pacer(Pacing(rate_per_second=30, per_room_per_minute=20), monotonic=ticks)
    for _ in range(20):
        assert pacer.not_before("-100", room=True, bulk=True) == 0
        pacer.record("-100", room=True)
        ticks.now += 1
    assert pacer.not_before("-100", room=True, bulk=True) == pytest.approx(40)


@pytest.mark.postgres
async def test_workers_sharing_postgres_share_one_rate(harness: Harness) -> None:
    if not harness.app.postgres:
        pytest.skip("shared slots are for several workers on PostgreSQL")
    clock = Ticks()
    first, second = DatabaseSlots("whatsapp", clock), DatabaseSlots("whatsapp", clock)
    interval = 1 / 80
    a, b = await asyncio.gather(first.reserve(40, interval), second.reserve(40, interval))
    together = sorted(a + b)
    gaps = [later - earlier for earlier, later in itertools.pairwise(together)]
    assert min(gaps) == pytest.approx(interval)
    assert together[-1] == pytest.approx(79 * interval)
    await first.hold(10)
    assert (await second.reserve(1, interval))[0] == pytest.approx(10)


async def test_the_daily_cap_counts_rows_still_being_sent_by_an_earlier_round(
        harness: Harness) -> None:
    """The worker claims its next round while one is still sending (and other workers
    send too): a member's cap must count those claimed rows as sent."""
    h = harness
    h.clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))  # not in London's quiet hours
    await h.member("ana", "riverside")
    await h.chat.say("ana", "/cap 1")
    ana = await h.app.services.members.find("testchat", "ana")
    group = await h.app.services.groups.get("riverside")
    assert ana is not None and group is not None
    now = h.clock.now()
    outbox = h.app.services.outbox
    await outbox.enqueue([Outgoing(text=f"Update {n}", transport="testchat", member_id=ana.id,
                                   kind="announcement", group_id=group.id)
                          for n in range(2)], now)
    first = await outbox.claim(now, 1)
    assert (await h.app.gate.decide(first, now))[first[0].id].action == SEND
    second = await outbox.claim(now, 1)  # the first is claimed, not yet recorded as sent
    decision = (await h.app.gate.decide(second, now))[second[0].id]
    assert (decision.action, decision.reason) == (FOLD, "daily cap reached")


@pytest.mark.postgres
async def test_spacing_per_person_counts_what_another_worker_sends(harness: Harness) -> None:
    """Each worker's pacer knows only its own sends; on PostgreSQL the spacing between
    group messages to one person also counts rows other workers claimed or sent."""
    if not harness.app.postgres:
        pytest.skip("several workers share one PostgreSQL database")
    h = harness
    await h.member("ana", "riverside")
    ana = await h.app.services.members.find("testchat", "ana")
    assert ana is not None
    h.clock.advance(seconds=10)  # well after the welcome
    now = h.clock.now()
    spacing = {"testchat": 3.0}
    # Two outbox services stand for two workers on one database.
    first, second = h.app.services.outbox, OutboxService(h.app.vault, postgres=True)
    await first.enqueue([Outgoing(text=f"Update {n}", transport="testchat", member_id=ana.id,
                                  kind="announcement") for n in range(3)], now)
    a = await first.claim(now, 1)
    b = await second.claim(now, 1)
    # Claimed at the same moment: the first claim goes, the other waits out the spacing.
    assert await first.spacing_waits(a, spacing, now) == {}
    assert await second.spacing_waits(b, spacing, now) == {b[0].id: 3.0}
    sent = Outcomes()
    sent.add_sent(a[0].id, "wamid.1", now)
    await first.record(sent)
    await second.finish(b[0].id, "suppressed", "not part of this test")
    later = now + timedelta(seconds=1)
    c = await second.claim(later, 1)
    assert await second.spacing_waits(c, spacing, later) == {c[0].id: pytest.approx(2.0)}
    answer = [replace(c[0], kind="reply")]  # direct answers are not spaced
    assert await second.spacing_waits(answer, spacing, later) == {}


@pytest.mark.postgres
async def test_a_rooms_window_counts_what_another_worker_sent_or_is_sending_there(
        harness: Harness) -> None:
    """Each worker's pacer knows only its own sends; on PostgreSQL a room's messages per
    minute also count rows other workers sent there, or claimed first."""
    if not harness.app.postgres:
        pytest.skip("several workers share one PostgreSQL database")
    h = harness
    now = h.clock.now()
    per_minute = {"testchat": 3}
    first, second = h.app.services.outbox, OutboxService(h.app.vault, postgres=True)

    def to_room(n: int, room: str = "room-1") -> Outgoing:
        return Outgoing(text=f"Post {n}", transport="testchat", room=room, kind="relay")

    await first.enqueue([to_room(n) for n in range(6)] + [to_room(9, "room-2")], now)
    sent = Outcomes()
    for claim in await first.claim(now, 2):  # the first worker sent two, 50 and 20 s ago
        sent.add_sent(claim.id, f"m{claim.id}", now - timedelta(seconds=50 - 30 * len(
            sent.sent)))
    await first.record(sent)
    sending = await first.claim(now, 1)  # and is sending a third, claimed first
    assert [c.text for c in sending] == ["Post 2"]

    later = await second.claim(now, 10)
    assert [c.text for c in later] == ["Post 3", "Post 4", "Post 5", "Post 9"]
    waits = await second.room_waits(later, per_minute, now)
    # Room 1 is full (two sent, one sending): Post 3 waits until the send of 50 s ago
    # ages out, Post 4 until the one of 20 s ago does, Post 5 until the one sending now
    # does. Room 2 is empty.
    assert waits == {later[0].id: pytest.approx(10.0), later[1].id: pytest.approx(40.0),
                     later[2].id: pytest.approx(60.0)}
    assert await second.room_waits(later, {"testchat": 0}, now) == {}  # no window set
