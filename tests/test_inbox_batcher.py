"""Group commit: concurrent webhooks share one inbox write, and learn if it failed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from bot.inbox_batcher import InboxBatcher
from bot.messages import InboundEvent, InboundMessage


def message(n: int) -> InboundMessage:
    return InboundMessage("testchat", "ana", "ana", str(n), "hi", datetime.now(UTC))


async def test_concurrent_accepts_are_written_in_one_batch() -> None:
    writes: list[int] = []

    async def write(events: Sequence[InboundEvent]) -> None:
        writes.append(len(events))

    batcher = InboxBatcher(write)
    await asyncio.gather(*(batcher.accept([message(i)]) for i in range(50)))
    assert writes == [50]


async def test_a_failed_write_fails_every_waiting_request_and_the_next_batch_works() -> None:
    calls = 0

    async def write(events: Sequence[InboundEvent]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk full")

    batcher = InboxBatcher(write)
    results = await asyncio.gather(*(batcher.accept([message(i)]) for i in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    await batcher.accept([message(99)])  # no exception: written
    assert calls == 2


async def test_batches_are_capped() -> None:
    sizes: list[int] = []

    async def write(events: Sequence[InboundEvent]) -> None:
        sizes.append(len(events))

    batcher = InboxBatcher(write, max_batch=10)
    await asyncio.gather(*(batcher.accept([message(i)]) for i in range(25)))
    assert sizes == [10, 10, 5]


@pytest.mark.parametrize("empty", [[], ()])
async def test_nothing_to_accept_writes_nothing(empty: Sequence[InboundEvent]) -> None:
    async def write(events: Sequence[InboundEvent]) -> None:
        raise AssertionError("must not write")

    await InboxBatcher(write).accept(empty)


async def surge(batcher: InboxBatcher, writes: int = 4, requests: int = 64) -> None:
    """Writes as a burst of 64 connections flat out makes them: each request waited
    while the loop was busy, so they share a write."""
    for w in range(writes):
        await asyncio.gather(*(batcher.accept([message(w * requests + i)])
                               for i in range(requests)))


async def ignore(events: Sequence[InboundEvent]) -> None:
    return None


async def test_a_surge_holds_processing_back_until_writes_carry_few_again() -> None:
    batcher = InboxBatcher(ignore, floor_seconds=60)
    await surge(batcher)
    assert batcher.surging()
    held = asyncio.create_task(batcher.give_way())
    await surge(batcher, writes=1)  # the surge goes on: processing still waits
    assert not held.done()
    while batcher.surging():  # webhooks one at a time again: the mean falls
        await batcher.accept([message(0)])
    await asyncio.wait_for(held, 10)


async def test_a_surge_holds_processing_back_no_longer_than_the_floor() -> None:
    batcher = InboxBatcher(ignore, floor_seconds=0.05)
    await surge(batcher)
    assert batcher.surging()
    await asyncio.wait_for(batcher.give_way(), 10)  # no write eased it: the floor did


async def test_a_steady_load_never_holds_processing_back() -> None:
    """One to three webhooks a write, and now and then thirty (those that waited behind
    a processing transaction): no surge."""
    batcher = InboxBatcher(ignore, floor_seconds=60)
    for n in range(200):
        await surge(batcher, writes=1, requests=30 if n % 10 == 9 else 1 + n % 3)
        assert not batcher.surging()
    await asyncio.wait_for(batcher.give_way(), 10)


class Processing:
    """Stands for the processor in the same process: at work or not, stints begun."""

    def __init__(self) -> None:
        self.working = False
        self.stints = 0

    def __call__(self) -> tuple[bool, int]:
        return self.working, self.stints


async def test_writes_that_waited_behind_processing_do_not_count_toward_a_surge() -> None:
    """Behind a processing transaction even a steady load makes big writes: processing
    busiest must not be mistaken for a surge of webhooks."""
    processing = Processing()
    processing.working = True
    batcher = InboxBatcher(ignore, processing=processing, floor_seconds=60)
    await surge(batcher, writes=20)
    assert not batcher.surging()


async def test_processing_at_work_back_to_back_waits_now_and_then_for_a_write_free_of_it(
        ) -> None:
    processing = Processing()
    processing.working = True
    batcher = InboxBatcher(ignore, processing=processing, floor_seconds=60,
                           probe_seconds=60)
    await surge(batcher, writes=16, requests=30)
    processing.working = False  # between two stints: it asks to give way
    waiting = asyncio.ensure_future(batcher.accept([message(1)]))  # webhooks wait
    held = asyncio.create_task(batcher.give_way())
    await waiting  # written, but it gathered while processing worked
    assert not held.done()
    await batcher.accept([message(2)])  # nothing held this one up
    await asyncio.wait_for(held, 10)
    assert not batcher.surging()  # one webhook a write: no surge


async def test_a_few_webhooks_behind_processing_never_make_it_wait() -> None:
    processing = Processing()
    processing.working = True
    batcher = InboxBatcher(ignore, processing=processing, floor_seconds=60,
                           probe_seconds=60)
    await surge(batcher, writes=16, requests=3)
    processing.working = False
    waiting = asyncio.ensure_future(batcher.accept([message(1)]))  # webhooks wait
    await asyncio.wait_for(batcher.give_way(), 10)  # at once: nothing piled up
    await waiting
