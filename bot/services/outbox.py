"""Outbox rows: what to send, to whom, and what became of it.

Handlers produce `Outgoing` values; the processor writes them in the same
transaction as the state change they follow from. The delivery worker claims
due rows from here and records the outcome.
"""

from __future__ import annotations

import base64
import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Q
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from bot.messages import Attachment, Button, OutboundMessage
from bot.services import sql
from bot.services.crypto import Vault
from bot.storage.models import Identity, OutboxItem

CLAIM_SECONDS = 120
# Bulk traffic waits behind direct answers: the claim orders by priority.
PRIORITY_DIRECT = 0
PRIORITY_BULK = 10
DIRECT_KINDS = frozenset({"notice", "reply", "mod_alert"})  # mod_alert: at any hour
_SENT = ("sent", "delivered", "read")
MINUTE = timedelta(seconds=60)  # the per-room window
SEALED = "enc:"
# Preferred address kinds per transport, best first.
# Meta recommends the phone number (`to`) when known, the business-scoped id otherwise.
_ADDRESS_PREFERENCE = {"whatsapp": ("wa_id", "bsuid", "user")}


@dataclass(frozen=True)
class Outgoing:
    text: str
    transport: str
    member_id: int | None = None
    room: str | None = None
    kind: str = "reply"
    command: str | None = None
    group_id: int | None = None
    buttons: tuple[Button, ...] = ()
    attachment: Attachment | None = None
    not_before: datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def priority(self) -> int:
        # Moderation actions in rooms go as fast as answers: a harmful post should vanish.
        urgent = self.kind in DIRECT_KINDS or self.kind == "room_action"
        return PRIORITY_DIRECT if urgent else PRIORITY_BULK


@dataclass
class Claim:
    """A claimed row with what the gate and the transport need."""

    id: int
    member_id: int | None
    transport: str
    kind: str
    command: str | None
    group_id: int | None
    room: str | None
    text: str
    extra: dict[str, Any] | None
    attempts: int
    created_at: datetime
    to: str = ""
    to_kind: str = "user"

    def outbound(self, text: str | None = None) -> OutboundMessage:
        extra = self.extra or {}
        buttons = tuple(Button(b["id"], b["title"]) for b in extra.get("buttons", []))
        attachment = None
        if "attachment" in extra:
            a = extra["attachment"]
            attachment = Attachment(a["filename"], a["mime_type"], base64.b64decode(a["data"]))
        return OutboundMessage(outbox_id=self.id, transport=self.transport, to=self.to,
                               to_kind=self.to_kind, text=text if text is not None else self.text,
                               buttons=buttons, attachment=attachment)


@dataclass
class Outcomes:
    """What became of a delivery round's rows, written together by `OutboxService.record`."""

    sent: list[tuple[int, str, datetime, bool]] = field(default_factory=list)
    retries: list[tuple[int, datetime, str, int]] = field(default_factory=list)
    finished: list[tuple[int, str, str]] = field(default_factory=list)

    def add_sent(self, claim_id: int, provider_id: str, at: datetime,
                 forget_address: bool = False) -> None:
        """`forget_address`: the row carried its own encrypted address (the last answer
        to /forgetme), which is not needed any more."""
        self.sent.append((claim_id, provider_id, at, forget_address))

    def add_retry(self, claim_id: int, when: datetime, reason: str,
                  count_attempt: bool = True) -> None:
        self.retries.append((claim_id, when, reason, 1 if count_attempt else 0))

    def add_finish(self, claim_id: int, status: str, reason: str) -> None:
        """A final state other than sent: failed, suppressed, folded, held."""
        self.finished.append((claim_id, status, reason))

    def __len__(self) -> int:
        return len(self.sent) + len(self.retries) + len(self.finished)


def _extra(out: Outgoing) -> dict[str, Any] | None:
    extra: dict[str, Any] = dict(out.meta)
    if out.buttons:
        extra["buttons"] = [{"id": b.id, "title": b.title} for b in out.buttons]
    if out.attachment:
        extra["attachment"] = {"filename": out.attachment.filename,
                               "mime_type": out.attachment.mime_type,
                               "data": base64.b64encode(out.attachment.data).decode()}
    return extra or None


# The columns a claim reads.
_COLUMNS = ("id, member_id, transport, kind, command, group_id, room, text, extra, attempts, "
            "created_at")
_CREATED_AT = OutboxItem._meta.fields_map["created_at"]
_NOT_BEFORE = OutboxItem._meta.fields_map["not_before"]
# What a delivery round claims, in the order it sends: direct answers before bulk, then
# the longest due first. Queued rows are read through the partial index `outbox_item_due`
# in this order, so a claim reads the rows it takes and stops: the pick as one condition
# (queued and due, or sending with a lapsed lease) read every queued row and sorted them,
# 14 ms a claim on PostgreSQL with 10,000 replies waiting their turn, growing with the
# backlog (a 100,000-member announcement). Leased rows are few: those in flight.
_ORDER = "ORDER BY priority, not_before, id"
_DUE = ("SELECT id, priority, not_before FROM outbox_item{index} "
        "WHERE status = 'queued' AND not_before <= {now} " + _ORDER + " LIMIT {limit}")
_LAPSED = ("SELECT id, priority, not_before FROM outbox_item "
           "WHERE status = 'sending' AND claimed_until < {now} " + _ORDER + " LIMIT {limit}")
# The earliest queued row of each priority (the only two), one index lookup each: ordered
# by not_before alone, the database read every queued row, 34 ms on PostgreSQL with
# 100,000 held for quiet hours, each time the worker found nothing due and slept.
_NEXT_DUE = " UNION ALL ".join(
    f"SELECT * FROM (SELECT not_before FROM outbox_item WHERE status = 'queued' AND "
    f"priority = {priority} ORDER BY not_before LIMIT 1) p{priority}"
    for priority in (PRIORITY_DIRECT, PRIORITY_BULK))
_EXTRA = OutboxItem._meta.fields_map["extra"]
_INSERT = sql.Insert(OutboxItem, ("member_id", "transport", "room", "kind", "command", "group_id",
                                  "text", "extra", "priority", "status", "not_before",
                                  "attempts", "created_at"))


class OutboxService:
    def __init__(self, vault: Vault, postgres: bool,
                 lease_seconds: float = CLAIM_SECONDS) -> None:
        self.vault = vault
        self.postgres = postgres
        self.lease_seconds = lease_seconds

    async def enqueue(self, items: Sequence[Outgoing], now: datetime) -> int:
        await _INSERT.run([
            # An unknown command's name is the sender's to choose: cut to the column.
            (o.member_id, o.transport, o.room, o.kind, o.command[:32] if o.command else None,
             o.group_id, self._seal(o), _extra(o), o.priority, "queued",
             o.not_before or now, 0, now)
            for o in items])
        return len(items)

    def room_action(self, transport: str, room: str, action: str, user: str | None = None,
                    message_id: str | None = None, until: datetime | None = None) -> Outgoing:
        """An outbox row that asks the delivery worker to act in a room (moderation)."""
        meta: dict[str, Any] = {"action": action}
        if user is not None:
            meta["user_enc"] = self.vault.encrypt(user)
        if message_id is not None:
            meta["message_id"] = message_id
        if until is not None:
            meta["until"] = until.isoformat()
        return Outgoing(text=f"[{action}]", transport=transport, room=room, kind="room_action",
                        meta=meta)

    def _seal(self, o: Outgoing) -> str:
        """Direct answers are about one person (their data, their name): encrypted at rest.
        Group messages go to many and are not, which keeps a large fan-out cheap."""
        if o.kind in DIRECT_KINDS:
            return SEALED + self.vault.encrypt(o.text)
        return o.text

    def _open(self, text: str) -> str:
        return self.vault.decrypt(text[len(SEALED):]) if text.startswith(SEALED) else text

    async def next_due(self) -> datetime | None:
        """When the next queued row is due (the worker sleeps until then, or until woken)."""
        found = await sql.rows(OutboxItem._meta.db, _NEXT_DUE, [])
        times = [_NOT_BEFORE.to_python_value(r["not_before"]) for r in found]
        return min(times, default=None)

    async def claim(self, now: datetime, limit: int) -> list[Claim]:
        """Due rows, direct answers first, with their addresses."""
        claims = await self.claim_rows(now, limit)
        await self.address(claims)
        return claims

    async def claim_rows(self, now: datetime, limit: int) -> list[Claim]:
        """Due rows, direct answers first; rows a dead worker held are taken back.
        Without addresses yet (`address`), so the worker can look them up meanwhile.

        One statement: it picks, leases and returns the rows. On PostgreSQL the pick
        locks them (FOR UPDATE SKIP LOCKED): two workers never claim the same row.
        """
        m_lease, m_now, m_limit = sql.marks(OutboxItem._meta.db, 3)  # numbered: reused
        lock = " FOR UPDATE SKIP LOCKED" if self.postgres else ""
        # SQLite is told the index (it has no statistics of its own unless analyzed, and
        # took the status index and sorted); PostgreSQL has no such clause (sql.claimed).
        index = "" if self.postgres else " INDEXED BY outbox_item_due"
        picks = (_DUE.format(index=index, now=m_now, limit=m_limit) + lock,
                 _LAPSED.format(now=m_now, limit=m_limit) + lock)
        if self.postgres:
            # Each CTE is evaluated once, so the rows it locked are the ones it returns.
            # tortoise drops the rows an UPDATE ... RETURNING gives back on asyncpg, not a
            # CTE's: hence the outer SELECT.
            query = (f"WITH due AS ({picks[0]}), lapsed AS ({picks[1]}), claimed AS ("
                     f"UPDATE outbox_item SET status = 'sending', claimed_until = {m_lease} "
                     f"WHERE id IN (SELECT id FROM (SELECT * FROM due UNION ALL "
                     f"SELECT * FROM lapsed) u {_ORDER} LIMIT {m_limit}) "
                     f"RETURNING priority, not_before, {_COLUMNS}) SELECT * FROM claimed")
        else:  # one writer at a time: the statement runs alone
            query = (f"UPDATE outbox_item SET status = 'sending', claimed_until = {m_lease} "
                     f"WHERE id IN (SELECT id FROM (SELECT * FROM ({picks[0]}) UNION ALL "
                     f"SELECT * FROM ({picks[1]})) {_ORDER} LIMIT {m_limit}) "
                     f"RETURNING priority, not_before, {_COLUMNS}")
        at = OutboxItem._meta.fields_map["sent_at"].to_db_value
        found = await sql.claimed(OutboxItem, query, [
            at(now + timedelta(seconds=self.lease_seconds), OutboxItem), at(now, OutboxItem),
            limit])
        rows = sorted((dict(r) for r in found),
                      key=lambda r: (r["priority"], _NOT_BEFORE.to_python_value(r["not_before"]),
                                     r["id"]))
        claims = []
        for r in rows:
            del r["priority"], r["not_before"]
            r["created_at"] = _CREATED_AT.to_python_value(r["created_at"])
            r["extra"] = _EXTRA.to_python_value(r["extra"])
            r["text"] = self._open(r["text"])
            claims.append(Claim(**r))
        return claims

    async def address(self, claims: list[Claim]) -> None:
        """Fill in each claim's address (decrypted), or leave it empty if there is none."""
        member_ids = {c.member_id for c in claims if c.member_id is not None}
        found: dict[tuple[int, str], list[tuple[str, str]]] = {}
        if member_ids:
            rows = await Identity.filter(member_id__in=list(member_ids)).values_list(
                "member_id", "transport", "kind", "address_enc")
            for member_id, transport, kind, enc in rows:
                found.setdefault((member_id, transport), []).append((kind, enc))
        for c in claims:
            if c.extra and "user_enc" in c.extra:  # a room action names a user: encrypted
                c.extra["user"] = self.vault.decrypt(c.extra["user_enc"])
            if c.room is not None:
                c.to, c.to_kind = c.room, "room"
                continue
            if c.extra and "to_enc" in c.extra:  # addressed directly (after erasure)
                c.to, c.to_kind = self.vault.decrypt(c.extra["to_enc"]), c.extra["to_kind"]
                continue
            options = found.get((c.member_id or 0, c.transport), [])
            if options:
                kind, enc = _best(c.transport, options)
                c.to, c.to_kind = self.vault.decrypt(enc), kind

    async def spacing_waits(self, claims: list[Claim], spacing: Mapping[str, float],
                            now: datetime) -> dict[int, float]:
        """Seconds each bulk message to a person must wait because of what other workers
        (or this one's earlier round) sent or are sending to that person: claim id ->
        wait. `spacing`: seconds between group messages to one person, per transport.

        A message another worker sent within the spacing delays ours until the spacing
        has passed. Of two messages claimed at once, the one claimed first goes and the
        other waits: whichever worker claimed later sees the earlier claim, because it
        looks only after its own claim is committed.
        """
        ours = [c for c in claims if c.room is None and c.member_id is not None
                and c.kind not in DIRECT_KINDS and spacing.get(c.transport, 0) > 0]
        if not ours:
            return {}
        since = now - timedelta(seconds=max(spacing.values()))
        rows = await (OutboxItem.filter(Q(status="sending") | Q(status__in=_SENT,
                                                                sent_at__gt=since),
                                        member_id__in=list({c.member_id for c in ours}),
                                        room__isnull=True)
                      .exclude(id__in=[c.id for c in claims])
                      .values_list("id", "member_id", "transport", "status", "sent_at",
                                   "claimed_until"))
        mine = now + timedelta(seconds=self.lease_seconds)  # this round's claimed_until
        waits: dict[int, float] = {}
        for c in ours:
            gap = spacing[c.transport]
            for row_id, member_id, transport, status, sent_at, claimed_until in rows:
                if member_id != c.member_id or transport != c.transport:
                    continue
                if status == "sending":
                    wait = gap if _claimed_first(claimed_until, row_id, mine, c.id) else 0.0
                else:
                    wait = (sent_at + timedelta(seconds=gap) - now).total_seconds()
                if wait > waits.get(c.id, 0.0):
                    waits[c.id] = wait
        return waits

    async def room_waits(self, claims: list[Claim], per_minute: Mapping[str, int],
                         now: datetime) -> dict[int, float]:
        """Seconds each message to a room must wait because the room's window
        (`per_minute` messages in any 60 s, per transport) is full of what every worker
        sent or is sending there: claim id -> wait. As for `spacing_waits`, a row another
        worker is sending counts if it was claimed before ours."""
        ours = sorted((c for c in claims if c.room is not None and c.kind != "room_action"
                       and per_minute.get(c.transport, 0) > 0), key=lambda c: c.id)
        if not ours:
            return {}
        rows = await (OutboxItem.filter(Q(status="sending") | Q(status__in=_SENT,
                                                                sent_at__gt=now - MINUTE),
                                        room__in=list({c.room for c in ours}))
                      .exclude(id__in=[c.id for c in claims])
                      .exclude(kind="room_action")
                      .values_list("id", "room", "transport", "status", "sent_at",
                                   "claimed_until"))
        mine = now + timedelta(seconds=self.lease_seconds)  # this round's claimed_until
        waits: dict[int, float] = {}
        window: dict[tuple[str, str | None], list[datetime]] = {}
        for c in ours:
            key = (c.transport, c.room)
            if key not in window:  # what was sent there, and what goes before ours
                window[key] = sorted(
                    sent_at if status != "sending" else now
                    for row_id, room, transport, status, sent_at, claimed_until in rows
                    if (transport, room) == key and (
                        status != "sending" or _claimed_first(claimed_until, row_id, mine,
                                                              c.id)))
            times, limit = window[key], per_minute[c.transport]
            # When it may go: now if the window has room, else once the sends that fill
            # it have aged out. Later ones of ours count it at that time.
            at = now if len(times) < limit else times[len(times) - limit] + MINUTE
            bisect.insort(times, at)
            if at > now:
                waits[c.id] = (at - now).total_seconds()
        return waits

    async def record(self, outcomes: Outcomes) -> None:
        """Write what became of a round's rows: one transaction, a few statements.

        One UPDATE per message was the worker's largest cost at 1,000 msg/s. A crash
        before this commits re-sends the round (at least once; the lease brings the
        rows back), which the in-flight bound already allows for.
        """
        if not outcomes:
            return
        p = self._params
        db_time = OutboxItem._meta.fields_map["sent_at"].to_db_value
        async with in_transaction() as conn:
            if outcomes.sent:
                await conn.execute_many(
                    "UPDATE outbox_item SET status = 'sent', provider_message_id = "
                    f"{p[0]}, sent_at = {p[1]}, claimed_until = NULL, attempts = attempts + 1, "
                    f"extra = CASE WHEN {p[2]} THEN NULL ELSE extra END WHERE id = {p[3]}",
                    [[provider[:128] or None, db_time(at, OutboxItem), forget, row_id]
                     for row_id, provider, at, forget in outcomes.sent])
            if outcomes.retries:
                await conn.execute_many(
                    f"UPDATE outbox_item SET status = 'queued', not_before = {p[0]}, "
                    f"claimed_until = NULL, error = {p[1]}, attempts = attempts + {p[2]} "
                    f"WHERE id = {p[3]}",
                    [[db_time(when, OutboxItem), reason[:200], added, row_id]
                     for row_id, when, reason, added in outcomes.retries])
            if outcomes.finished:
                await conn.execute_many(
                    f"UPDATE outbox_item SET status = {p[0]}, error = {p[1]}, "
                    f"claimed_until = NULL WHERE id = {p[2]}",
                    [[status, reason[:200], row_id]
                     for row_id, status, reason in outcomes.finished])

    # One row at a time, for code that records outside a delivery round (room actions a
    # feature performs itself).
    async def sent(self, claim_id: int, provider_id: str, now: datetime,
                   forget_address: bool = False) -> None:
        outcomes = Outcomes()
        outcomes.add_sent(claim_id, provider_id, now, forget_address)
        await self.record(outcomes)

    async def retry_at(self, claim_id: int, when: datetime, reason: str,
                       count_attempt: bool = True) -> None:
        outcomes = Outcomes()
        outcomes.add_retry(claim_id, when, reason, count_attempt)
        await self.record(outcomes)

    async def finish(self, claim_id: int, status: str, reason: str) -> None:
        """A final state other than sent: failed, suppressed, folded, held."""
        outcomes = Outcomes()
        outcomes.add_finish(claim_id, status, reason)
        await self.record(outcomes)

    @property
    def _params(self) -> tuple[str, ...]:
        """Positional placeholders of the database driver (asyncpg numbers them)."""
        return tuple(f"${i}" for i in range(1, 5)) if self.postgres else ("?",) * 4

    async def on_status(self, provider_id: str, state: str, error: str) -> int | None:
        """Match a provider's delivery report to our row; returns its member id."""
        row = await OutboxItem.filter(provider_message_id=provider_id).first()
        if row is None:
            return None
        order = ["sent", "delivered", "read"]
        if state == "failed":
            row.status, row.error = "failed", error[:200]
        elif row.status in order and order.index(state) > order.index(row.status):
            row.status = state
        await row.save(update_fields=["status", "error"])
        return row.member_id

    async def counts(self) -> dict[str, int]:
        rows = await OutboxItem.annotate(n=Count("id")).group_by("status").values_list(
            "status", "n")
        return dict(rows)

    async def queue_depth(self) -> int:
        return await OutboxItem.filter(status__in=["queued", "sending"]).count()


def _best(transport: str, options: list[tuple[str, str]]) -> tuple[str, str]:
    preference = _ADDRESS_PREFERENCE.get(transport, ())
    for wanted in preference:
        for kind, enc in options:
            if kind == wanted:
                return kind, enc
    return options[-1]


def _claimed_first(claimed_until: datetime, row_id: int, mine: datetime, claim_id: int
                   ) -> bool:
    """Was another worker's row, still being sent, claimed before our claim? Leases are
    equally long, so the earlier lease end was claimed first (the id breaks ties): of two
    rows claimed at once, that one goes and ours waits, whichever worker looks."""
    return (claimed_until, row_id) < (mine, claim_id)
