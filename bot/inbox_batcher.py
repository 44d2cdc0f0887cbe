"""Group commit for the inbox: concurrent webhooks share one database write.

Every webhook must be durable before it is acknowledged, and one transaction per
request caps a SQLite file at a few thousand writes a second. Here the first
request to arrive becomes the writer: it lets the event loop run once so that
requests arriving at the same moment join it, writes them all in one
transaction, and wakes each waiting request. Requests arriving during a write
form the next batch. No timers: under light load a batch is one request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from bot.messages import InboundEvent

Writer = Callable[[Sequence[InboundEvent]], Awaitable[object]]


class InboxBatcher:
    def __init__(self, write: Writer, max_batch: int = 1000) -> None:
        self._write = write
        self._max_batch = max_batch
        self._waiting: list[tuple[Sequence[InboundEvent], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    def busy(self) -> bool:
        """Events are waiting to be stored, or being stored."""
        return bool(self._waiting) or (self._writer is not None and not self._writer.done())

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
