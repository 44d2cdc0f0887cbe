"""Send slots shared by every worker on one PostgreSQL database.

Each worker reserves a run of slots for a whole delivery round with a single
upsert, so the overall rate (e.g. 80 msg/s per WhatsApp number) holds however
many workers send, and costs one round trip per round rather than per message.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.storage.models import PacingSlot

# Wrapped in a CTE because tortoise drops the rows an INSERT ... RETURNING gives back.
_RESERVE = """
WITH reserved AS (
INSERT INTO pacing_slot (transport, next_at) VALUES ($1, $2::float8 + $3::float8)
ON CONFLICT (transport) DO UPDATE
    SET next_at = GREATEST(pacing_slot.next_at, $2::float8) + $3::float8
RETURNING next_at - $3::float8 AS start)
SELECT start FROM reserved
"""
_HOLD = """
INSERT INTO pacing_slot (transport, next_at) VALUES ($1, $2::float8)
ON CONFLICT (transport) DO UPDATE SET next_at = GREATEST(pacing_slot.next_at, $2::float8)
"""


class DatabaseSlots:
    def __init__(self, transport: str, wall: Callable[[], float] = time.time) -> None:
        self.transport = transport
        self._wall = wall

    async def reserve(self, count: int, interval: float) -> list[float]:
        """`count` slots `interval` apart; returns how long to wait for each (seconds)."""
        now = self._wall()
        _, rows = await PacingSlot._meta.db.execute_query(
            _RESERVE, [self.transport, now, count * interval])
        start = float(rows[0]["start"])
        return [max(0.0, start - now + i * interval) for i in range(count)]

    async def hold(self, seconds: float) -> None:
        """Nobody sends on this transport until `seconds` from now (a platform said so)."""
        await PacingSlot._meta.db.execute_query(
            _HOLD, [self.transport, self._wall() + seconds])
