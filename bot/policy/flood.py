"""Flood control: at most N messages in T seconds per member, per group.

The caller passes the clock in (`now`, seconds as a float), so tests and
replays are deterministic and nothing here reads the time itself.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

__all__ = ["FloodTracker"]

DEFAULT_MAX_MEMBERS = 10_000


class FloodTracker:
    """Sliding-window message counts for the members of one group.

    Memory stays bounded three ways: each member keeps at most N+1 timestamps
    (older ones cannot change the answer), members idle for a whole window are
    dropped as time moves on, and at most `max_members` are tracked at once
    (the least recently active are forgotten first, which at worst gives them
    a fresh window).
    """

    def __init__(
        self, max_messages: int, per_seconds: float, max_members: int = DEFAULT_MAX_MEMBERS
    ) -> None:
        if max_messages < 1 or per_seconds <= 0 or max_members < 1:
            raise ValueError("max_messages, per_seconds and max_members must be positive")
        self.max_messages = max_messages
        self.per_seconds = per_seconds
        self.max_members = max_members
        # Ordered by last activity, least recent first, so idle members are
        # always at the front and can be dropped without scanning.
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._last_now = 0.0

    def __len__(self) -> int:
        return len(self._seen)

    def hit(self, member_key: str, now: float) -> bool:
        """Count one message from `member_key`; True when it is over the limit.

        Messages over the limit count too: someone who keeps posting stays
        limited until they pause for a full window.
        """
        if not math.isfinite(now):
            # A broken clock must neither wipe nor wedge the counts.
            now = self._last_now
        self._last_now = now
        self._forget_idle(now)
        times = self._seen.get(member_key)
        if times is None:
            times = deque(maxlen=self.max_messages + 1)
            self._seen[member_key] = times
            if len(self._seen) > self.max_members:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end(member_key)
            # An injected clock may step back (replays, a corrected clock);
            # keeping each member's times sorted keeps the pruning correct.
            now = max(now, times[-1])
        times.append(now)
        horizon = now - self.per_seconds
        # The message just counted always stays, even where float precision
        # makes `now - per_seconds == now` (clocks near 1e300).
        while len(times) > 1 and times[0] <= horizon:
            times.popleft()
        return len(times) > self.max_messages

    def _forget_idle(self, now: float) -> None:
        horizon = now - self.per_seconds
        while self._seen:
            times = next(iter(self._seen.values()))
            if times[-1] > horizon:
                break
            self._seen.popitem(last=False)
