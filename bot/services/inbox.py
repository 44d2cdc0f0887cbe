"""The inbox: every accepted inbound event, stored before it is acknowledged.

Payloads are encrypted (they hold addresses and texts) and cleared once the
event is processed. The unique (transport, event_key) makes redelivery a no-op,
across restarts and workers.

Each person's events are processed in the order they arrived, however many workers
claim from the inbox: an item is claimed only if no earlier item from the same sender
is still pending outside the claim (being processed by another worker, or being claimed
by one at this moment). "JOIN riverside" then "YES" a millisecond later must not be
answered the other way round.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.messages import (
    InboundEvent,
    InboundMessage,
    JoinRequest,
    PreferenceChange,
    event_from_dict,
    event_kind,
    event_to_dict,
)
from bot.services import sql
from bot.services.crypto import Vault
from bot.storage.models import InboxItem

CLAIM_SECONDS = 60  # a worker that dies mid-batch releases its claim after this long
MAX_ATTEMPTS = 3
_TIME = InboxItem._meta.fields_map["claimed_until"].to_db_value
_PAYLOAD = InboxItem._meta.fields_map["payload"].to_python_value
# The payload goes in as the JSON text accept() makes, and the time as the driver takes
# it: one conversion a batch, not one per row (every webhook pays for these before its 200).
_INSERT = sql.Insert(InboxItem, ("transport", "event_key", "kind", "payload", "status",
                                 "attempts", "received_at", "sender_key"),
                     conflict=("transport", "event_key"), as_given=("payload", "received_at"))
# The first `limit` claimable items in order, less those whose sender has an earlier
# pending item among the others: that one is leased by another worker, or is being
# claimed by one right now (on PostgreSQL, locked: SKIP LOCKED passed it over, but it is
# still pending to this read). Events with no sender (delivery reports) are never held.
# The candidates are the oldest claimable items, so every pending item before the last
# of them and not among them is such an other: few (what the workers have in hand), read
# once, by the pending index from its start ("held", MATERIALIZED: or SQLite reads them
# again for each candidate). An index of pending items by sender would find them per
# candidate, at the cost of a random page for every insert.
_CANDIDATES = ("SELECT id, sender_key FROM inbox_item WHERE status = 'pending' AND "
               "(claimed_until IS NULL OR claimed_until < {now}) ORDER BY id LIMIT {limit}")
_HELD = ("SELECT e.id, e.sender_key FROM inbox_item e WHERE e.status = 'pending' AND "
         "e.id < (SELECT max(id) FROM c) AND e.sender_key IS NOT NULL AND "
         "e.id NOT IN (SELECT id FROM c)")
_IN_ORDER = ("SELECT c.id FROM c WHERE c.sender_key IS NULL OR NOT EXISTS (SELECT 1 FROM "
             "held h WHERE h.sender_key = c.sender_key AND h.id < c.id)")


@dataclass(frozen=True)
class Claimed:
    id: int
    event: InboundEvent
    attempts: int


def sender_address(event: InboundEvent) -> str | None:
    """Whose event it is, for keeping each person's events in order; None if nobody's."""
    if isinstance(event, InboundMessage | PreferenceChange | JoinRequest):
        return event.sender
    return None


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
        received = _TIME(now, InboxItem)
        rows = [(e.transport, event_key(e), event_kind(e), self._sealed(e), "pending", 0,
                 received, self.sender_key(e))
                for e in events]
        await _INSERT.run_atomic(rows)  # one commit for the whole batch
        return len(rows)

    def _sealed(self, event: InboundEvent) -> str:
        """The payload column's JSON text: {"enc": the event, encrypted}. The token is
        base64 with a prefix (crypto.py), so it needs no escaping."""
        return '{"enc": "' + self.vault.encrypt(json.dumps(event_to_dict(event))) + '"}'

    def sender_key(self, event: InboundEvent) -> str | None:
        """The sender as a keyed hash (no address is stored in the clear), short: it only
        has to tell one pending sender from another."""
        address = sender_address(event)
        if address is None:
            return None
        return self.vault.lookup_hash(event.transport, address)[:32]

    async def claim(self, now: datetime, limit: int = 50) -> list[Claimed]:
        """Take pending events (or ones whose claim expired) for processing, in order.

        One hand-written statement picks, leases and returns them (every batch runs it).
        On PostgreSQL the pick locks the rows (FOR UPDATE SKIP LOCKED): two workers never
        claim the same event. A sender's item waits while an earlier one of theirs is
        pending outside this claim (see the module's docstring); their consecutive items
        are claimed together and processed in order.
        """
        db = sql.connection(InboxItem)
        p = sql.marks(db, 3)
        candidates = _CANDIDATES.format(now=p[1], limit=p[2])
        if self.postgres:
            # The CTE is evaluated once, so the rows it locked are the ones checked.
            # tortoise drops the rows an UPDATE ... RETURNING gives back on asyncpg, not a
            # CTE's: hence the outer SELECT.
            query = (f"WITH c AS ({candidates} FOR UPDATE SKIP LOCKED), "
                     f"held AS MATERIALIZED ({_HELD}), "
                     f"claimed AS (UPDATE inbox_item SET claimed_until = {p[0]} "
                     f"WHERE id IN ({_IN_ORDER}) RETURNING id, payload, attempts) "
                     "SELECT * FROM claimed")
        else:  # one writer at a time: the statement runs alone
            query = (f"UPDATE inbox_item SET claimed_until = {p[0]} WHERE id IN "
                     f"(WITH c AS ({candidates}), held AS MATERIALIZED ({_HELD}) {_IN_ORDER}) "
                     "RETURNING id, payload, attempts")
        lease = now + timedelta(seconds=self.lease_seconds)
        found = await sql.claimed(InboxItem, query, [_TIME(lease, InboxItem),
                                                      _TIME(now, InboxItem), limit])
        rows = sorted(found, key=lambda r: r["id"])  # RETURNING keeps no order
        return [Claimed(r["id"], self._decode(_PAYLOAD(r["payload"])), r["attempts"])
                for r in rows]

    def _decode(self, payload: dict[str, str]) -> InboundEvent:
        return event_from_dict(json.loads(self.vault.decrypt(payload["enc"])))

    async def done(self, item_ids: Sequence[int], now: datetime) -> None:
        """Mark items processed (one statement for a whole batch); their payload goes."""
        if not item_ids:
            return
        db = sql.connection(InboxItem)
        among, ids = sql.one_of(db, "id", 2, item_ids)
        await db.execute_query(
            "UPDATE inbox_item SET status = 'done', payload = NULL, sender_key = NULL, "
            f"processed_at = {sql.marks(db, 1)[0]}, claimed_until = NULL WHERE {among}",
            [_TIME(now, InboxItem), *ids])

    async def still_pending(self, item_ids: Sequence[int]) -> set[int]:
        return set(await InboxItem.filter(id__in=list(item_ids), status="pending")
                   .values_list("id", flat=True))

    async def failed_attempt(self, item_id: int, attempts: int, error: str,
                             now: datetime) -> bool:
        """Count a failed attempt; after MAX_ATTEMPTS give up. Returns True if given up."""
        give_up = attempts + 1 >= MAX_ATTEMPTS
        changes: dict[str, object] = {"attempts": attempts + 1, "error": error[:200],
                                      "claimed_until": None, "status": "pending"}
        if give_up:  # no longer pending, so it holds back none of the sender's later items
            changes.update(status="failed", processed_at=now, sender_key=None)
        await InboxItem.filter(id=item_id).update(**changes)
        return give_up

    async def pending_count(self) -> int:
        return await InboxItem.filter(status="pending").count()
