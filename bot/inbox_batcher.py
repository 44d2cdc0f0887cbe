"""Group commit for the inbox: concurrent webhooks share one database write.

Every webhook must be durable before it is acknowledged, and one transaction per
request caps a SQLite file at a few thousand writes a second. Here the first
request to arrive becomes the writer: it lets the event loop run once so that
requests arriving at the same moment join it, writes them all in one
transaction, and wakes each waiting request. Requests arriving during a write
form the next batch. No timers: under light load a batch is one request.

In a surge, acknowledging comes first. When webhooks arrive faster than one process can
both store and process them, one of the two must wait, and the backlog either sits in
our inbox, durable and in order, or at the platform, which holds unacknowledged webhooks
and redelivers them with decreasing frequency: each redelivery more load at the worst
moment, each message later than the one before it. So while a surge lasts, processing
in the same process (on SQLite: bot/app.py) waits for a lull before each of its
transactions (`give_way`), never longer than `floor_seconds`: it goes on at a small
share, and at full speed once the surge passes.

The surge is read from the writes themselves. Requests that queue while the loop is
busy share a write, so under a flood the writes carry tens of requests, and under a
steady load one to a few. Only writes that no processing transaction held up count
(`processing` tells): behind a 15 ms transaction even a steady 2,000 a second makes a
write of 30, and a surge read from those would starve processing exactly when it is
busiest. When processing runs back to back and no write is free of it, it waits, now
and then, for one that is (at most PROBE_SECONDS). Under a steady load processing waits
for nothing else. The total work is the same either way; what changes is where the
backlog waits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from bot.messages import InboundEvent

Writer = Callable[[Sequence[InboundEvent]], Awaitable[object]]
Processing = Callable[[], tuple[bool, int]]  # (at work on the database now?, stints begun)

# The mean requests per write, over writes no processing held up, that marks a surge.
# Measured in the bench: one to three under a steady load; under 64 connections flat out
# about 45 (single writes range from 5 to 64, which is why the mean). Either mistake is
# cheap: a false surge ends at the next lull, a false lull lets one transaction through.
SURGE_REQUESTS = 20.0
# The weight of the latest such write in the mean. High, because a flood that begins
# while processing is idle must be seen in its first free write: processing starts at
# once, and after that only probes find free writes.
SMOOTHING = 0.5
# With processing at work back to back, so that no write is free of it, and a surge's
# worth of webhooks waiting behind it, it waits for a free write (two writes: the first
# still carries what queued behind it), at most PROBE_SECONDS, once every
# PROBE_EVERY_SECONDS: a flood that begins while processing is busy is seen within a few
# of these. A moderate load, a few webhooks behind each transaction, is never probed.
PROBE_EVERY_SECONDS = 0.25
PROBE_SECONDS = 0.02
# The longest processing waits for a lull in a surge, before each transaction. A
# transaction that webhooks are waiting behind commits within processing.BATCH_SECONDS
# (15 ms), so a surge leaves processing about 7% of the process: in the bench, 90 to 150
# messages a second while the burst lasted.
FLOOR_SECONDS = 0.2


class InboxBatcher:
    def __init__(self, write: Writer, max_batch: int = 1000,
                 processing: Processing | None = None,
                 surge_requests: float | None = None,
                 floor_seconds: float | None = None,
                 probe_seconds: float | None = None) -> None:
        self._write = write
        self._max_batch = max_batch
        self._waiting: list[tuple[Sequence[InboundEvent], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        # (at work now?, stints begun): the processor in this process, if any.
        self._processing = processing or _no_processing
        self._surge_requests = SURGE_REQUESTS if surge_requests is None else surge_requests
        self._floor = FLOOR_SECONDS if floor_seconds is None else floor_seconds
        self._probe = PROBE_SECONDS if probe_seconds is None else probe_seconds
        self._mean = 0.0  # requests per write, smoothed, over writes nothing held up
        self._lull = asyncio.Event()  # the mean is below a surge's
        self._lull.set()
        self._surge_seen = float("-inf")  # loop time of the last surge write
        self._seen = (False, 0)  # processing as the previous write found it
        self._last_free = float("-inf")  # loop time of the last write free of processing
        self._held_big = False  # the last write processing held up was a surge's size
        self._free = asyncio.Event()  # set at each write free of processing

    def busy(self) -> bool:
        """Events are waiting to be stored, or being stored."""
        return bool(self._waiting) or (self._writer is not None and not self._writer.done())

    def surging(self) -> bool:
        """Writes are a surge's, the last of them within the last `floor_seconds`."""
        if self._lull.is_set():
            return False
        return asyncio.get_running_loop().time() - self._surge_seen < self._floor

    async def give_way(self) -> None:
        """Awaited by processing before each transaction: returns at once unless in a
        surge, then at the first write that is not a surge's, or after `floor_seconds`
        (at most until `floor_seconds` after the surge's last write: a surge that simply
        stopped holds nothing back)."""
        if self.surging():
            wait = min(self._floor,
                       self._surge_seen + self._floor - asyncio.get_running_loop().time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lull.wait(), wait)
        elif (self._held_big and self.busy()
              and asyncio.get_running_loop().time() - self._last_free >= PROBE_EVERY_SECONDS):
            # Processing has held up every recent write, and webhooks piled up behind it:
            # let one through on its own, to see whether they queue without it.
            self._free.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._free.wait(), self._probe)

    async def accept(self, events: Sequence[InboundEvent]) -> None:
        """Returns once `events` are durably stored; raises if the write failed."""
        if not events:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((events, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        await done

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let requests that arrived together join this batch
        while self._waiting:
            batch, self._waiting = (self._waiting[:self._max_batch],
                                    self._waiting[self._max_batch:])
            events = [e for group, _ in batch for e in group]
            self._note_write(len(batch))
            try:
                await self._write(events)
            except Exception as exc:  # every waiter learns it failed: none was acknowledged
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    def _note_write(self, requests: int) -> None:
        """Counts a write's size toward the mean if no processing held it up: none ran
        while its requests gathered (since the previous write) and none runs now."""
        now = self._processing()
        working, stints = now
        free = not working and not self._seen[0] and stints == self._seen[1]
        self._seen = now
        if not free:
            self._held_big = requests >= self._surge_requests
            return
        self._last_free = asyncio.get_running_loop().time()
        self._free.set()
        self._mean += SMOOTHING * (requests - self._mean)
        if self._mean >= self._surge_requests:
            self._lull.clear()
            self._surge_seen = asyncio.get_running_loop().time()
        else:
            self._lull.set()


def _no_processing() -> tuple[bool, int]:
    return False, 0
