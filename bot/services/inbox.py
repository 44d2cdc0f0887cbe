"""The inbox: every accepted inbound event, stored before it is acknowledged.

Payloads are encrypted (they hold addresses and texts) and cleared once the
event is processed. The unique (transport, event_key) makes redelivery a no-op,
across restarts and workers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from bot.messages import InboundEvent, InboundMessage, event_from_dict, event_kind, event_to_dict
from bot.services import sql
from bot.services.crypto import Vault
from bot.storage.models import InboxItem

CLAIM_SECONDS = 60  # a worker that dies mid-batch releases its claim after this long
MAX_ATTEMPTS = 3
_INSERT = sql.Insert(InboxItem, ("transport", "event_key", "kind", "payload", "status",
                                 "attempts", "received_at"), conflict=("transport", "event_key"))


@dataclass(frozen=True)
class Claimed:
    id: int
    event: InboundEvent
    attempts: int


def event_key(event: InboundEvent) -> str:
    """Unique per event. Hashed, because provider ids can embed a chat or user id."""
    if isinstance(event, InboundMessage):
        source = f"m\x00{event.message_id}"
    else:
        source = "e\x00" + json.dumps(event_to_dict(event), sort_keys=True)
    return hashlib.sha256(source.encode()).hexdigest()


class InboxService:
    def __init__(self, vault: Vault, postgres: bool,
                 lease_seconds: float = CLAIM_SECONDS) -> None:
        self.vault = vault
        self.postgres = postgres
        self.lease_seconds = lease_seconds

    async def accept(self, events: Sequence[InboundEvent], now: datetime) -> int:
        """Store events durably in one transaction; redelivered ones are ignored."""
        if not events:
            return 0
        rows = [(e.transport, event_key(e), event_kind(e),
                 {"enc": self.vault.encrypt(json.dumps(event_to_dict(e)))}, "pending", 0, now)
                for e in events]
        async with in_transaction():  # one commit for the whole batch
            await _INSERT.run(rows)
        return len(rows)

    async def claim(self, now: datetime, limit: int = 50) -> list[Claimed]:
        """Take pending events (or ones whose claim expired) for processing."""
        async with in_transaction():
            query = (InboxItem.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
                                      status="pending")
                     .order_by("id").limit(limit))
            if self.postgres:
                # tortoise leaves FOR UPDATE out of .values() queries, so lock model rows:
                # without the lock, two workers claim (and process) the same events.
                locked = await query.select_for_update(skip_locked=True).only(
                    "id", "payload", "attempts")
                rows = [{"id": r.id, "payload": r.payload, "attempts": r.attempts}
                        for r in locked]
            else:
                rows = await query.values("id", "payload", "attempts")
            if not rows:
                return []
            await InboxItem.filter(id__in=[r["id"] for r in rows]).update(
                claimed_until=now + timedelta(seconds=self.lease_seconds))
        return [Claimed(r["id"], self._decode(r["payload"]), r["attempts"]) for r in rows]

    def _decode(self, payload: dict[str, str]) -> InboundEvent:
        return event_from_dict(json.loads(self.vault.decrypt(payload["enc"])))

    async def done(self, item_ids: Sequence[int], now: datetime) -> None:
        """Mark items processed (one statement for a whole batch); their payload goes."""
        if item_ids:
            await InboxItem.filter(id__in=list(item_ids)).update(
                status="done", payload=None, processed_at=now, claimed_until=None)

    async def still_pending(self, item_ids: Sequence[int]) -> set[int]:
        return set(await InboxItem.filter(id__in=list(item_ids), status="pending")
                   .values_list("id", flat=True))

    async def failed_attempt(self, item_id: int, attempts: int, error: str,
                             now: datetime) -> bool:
        """Count a failed attempt; after MAX_ATTEMPTS give up. Returns True if given up."""
        give_up = attempts + 1 >= MAX_ATTEMPTS
        await InboxItem.filter(id=item_id).update(
            attempts=attempts + 1, error=error[:200], claimed_until=None,
            status="failed" if give_up else "pending",
            processed_at=now if give_up else None)
        return give_up

    async def pending_count(self) -> int:
        return await InboxItem.filter(status="pending").count()
