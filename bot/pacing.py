"""Per-transport pacing: an overall rate, spacing per person, a per-room window.

The overall rate hands out evenly spaced send slots, so a burst never exceeds
the platform's rate; the spacing and room windows answer "not yet, try at T"
so the worker reschedules that row instead of blocking the others.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from bot.config import Pacing


class SharedSlots(Protocol):
    """Send slots handed out across processes (see bot.services.pacing_slots)."""

    async def reserve(self, count: int, interval: float) -> list[float]: ...

    async def hold(self, seconds: float) -> None: ...


class Pacer:
    def __init__(self, pacing: Pacing, monotonic: Callable[[], float] = time.monotonic,
                 shared: SharedSlots | None = None) -> None:
        # With several workers on one database, the overall rate is shared through it.
        self.shared = shared
        self.rate = pacing.rate_per_second
        self.interval = 1.0 / pacing.rate_per_second
        self.per_recipient = pacing.per_recipient_seconds
        self.per_room_per_minute = pacing.per_room_per_minute
        self._clock = monotonic
        self._next_slot = 0.0
        self._last_to: dict[str, float] = {}
        self._room_sends: dict[str, deque[float]] = {}
        self._penalty_until = 0.0

    async def slots(self, count: int) -> list[float]:
        """Reserve `count` evenly spaced send slots; returns how long to wait for each."""
        if self.shared is not None:
            return await self.shared.reserve(count, self.interval)
        first = self.slot(count)
        return [first + i * self.interval for i in range(count)]

    def slot(self, count: int = 1) -> float:
        """Reserve `count` slots in this process; returns the wait for the first."""
        now = self._clock()
        start = max(now, self._next_slot, self._penalty_until)
        self._next_slot = start + count * self.interval
        return start - now

    def not_before(self, recipient: str, room: bool, bulk: bool) -> float:
        """Seconds until this recipient may get another message (0: now)."""
        now = self._clock()
        if room and self.per_room_per_minute:
            window = self._room_sends.setdefault(recipient, deque())
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= self.per_room_per_minute:
                return window[0] + 60 - now
        elif bulk and self.per_recipient:
            # Direct answers are exempt: the person is in a conversation with us.
            last = self._last_to.get(recipient)
            if last is not None and now - last < self.per_recipient:
                return last + self.per_recipient - now
        return 0.0

    def record(self, recipient: str, room: bool) -> None:
        now = self._clock()
        if room and self.per_room_per_minute:
            self._room_sends.setdefault(recipient, deque()).append(now)
        else:
            self._last_to[recipient] = now
            if len(self._last_to) > 200_000:
                self._forget_old(now)

    async def penalize(self, seconds: float) -> None:
        """The platform said slow down: no sends until then (in every worker if shared)."""
        self._penalty_until = max(self._penalty_until, self._clock() + seconds)
        if self.shared is not None:
            await self.shared.hold(seconds)

    def _forget_old(self, now: float) -> None:
        horizon = now - max(self.per_recipient, 1.0)
        self._last_to = {k: v for k, v in self._last_to.items() if v > horizon}
