"""Pacing: evenly spaced slots, per-person spacing for bulk, room windows, shared slots."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bot.config import Pacing
from bot.pacing import Pacer
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
