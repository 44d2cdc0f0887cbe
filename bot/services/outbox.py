"""Outbox rows: what to send, to whom, and what became of it.

Handlers produce `Outgoing` values; the processor writes them in the same
transaction as the state change they follow from. The delivery worker claims
due rows from here and records the outcome.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import F, Q
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from bot.messages import Attachment, Button, OutboundMessage
from bot.services.crypto import Vault
from bot.storage.models import Identity, OutboxItem

CLAIM_SECONDS = 120
# Bulk traffic waits behind direct answers: the claim orders by priority.
PRIORITY_DIRECT = 0
PRIORITY_BULK = 10
DIRECT_KINDS = frozenset({"notice", "reply", "mod_alert"})  # mod_alert: at any hour
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
_CLAIMED = ("id", "member_id", "transport", "kind", "command", "group_id", "room", "text",
            "extra", "attempts", "created_at")


class OutboxService:
    def __init__(self, vault: Vault, postgres: bool,
                 lease_seconds: float = CLAIM_SECONDS) -> None:
        self.vault = vault
        self.postgres = postgres
        self.lease_seconds = lease_seconds

    async def enqueue(self, items: Sequence[Outgoing], now: datetime) -> int:
        rows = [
            # An unknown command's name is the sender's to choose: cut to the column.
            OutboxItem(member_id=o.member_id, transport=o.transport, room=o.room, kind=o.kind,
                       command=o.command[:32] if o.command else None, group_id=o.group_id,
                       text=self._seal(o),
                       extra=_extra(o),
                       priority=o.priority, status="queued", not_before=o.not_before or now,
                       created_at=now)
            for o in items
        ]
        if rows:
            await OutboxItem.bulk_create(rows, batch_size=2000)
        return len(rows)

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
        row = await OutboxItem.filter(status="queued").order_by("not_before").first().values(
            "not_before")
        return row["not_before"] if row else None

    async def claim(self, now: datetime, limit: int) -> list[Claim]:
        """Due rows, direct answers first; rows a dead worker held are taken back."""
        due = Q(status="queued", not_before__lte=now) | Q(status="sending",
                                                            claimed_until__lt=now)
        async with in_transaction():
            query = OutboxItem.filter(due).order_by("priority", "id").limit(limit)
            if self.postgres:
                # tortoise leaves FOR UPDATE out of .values() queries, so lock model rows:
                # without the lock, two workers claim (and send) the same rows.
                locked = await query.select_for_update(skip_locked=True).only(*_CLAIMED)
                rows = [{f: getattr(r, f) for f in _CLAIMED} for r in locked]
            else:
                rows = await query.values(*_CLAIMED)
            if not rows:
                return []
            await OutboxItem.filter(id__in=[r["id"] for r in rows]).update(
                status="sending", claimed_until=now + timedelta(seconds=self.lease_seconds))
        claims = [Claim(**r) for r in rows]
        for c in claims:
            c.text = self._open(c.text)
        await self._address(claims)
        return claims

    async def _address(self, claims: list[Claim]) -> None:
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

    async def sent(self, claim_id: int, provider_id: str, now: datetime,
                   forget_address: bool = False) -> None:
        """Record a send. `forget_address`: the row carried its own encrypted address
        (the last answer to /forgetme), which is not needed any more."""
        values: dict[str, Any] = {
            "status": "sent", "provider_message_id": provider_id[:128] or None,
            "sent_at": now, "claimed_until": None, "attempts": F("attempts") + 1}
        if forget_address:
            values["extra"] = None
        await OutboxItem.filter(id=claim_id).update(**values)

    async def retry_at(self, claim_id: int, when: datetime, reason: str,
                       count_attempt: bool = True) -> None:
        await OutboxItem.filter(id=claim_id).update(
            status="queued", not_before=when, claimed_until=None, error=reason[:200],
            attempts=F("attempts") + (1 if count_attempt else 0))

    async def finish(self, claim_id: int, status: str, reason: str) -> None:
        """A final state other than sent: failed, suppressed, folded, held."""
        await OutboxItem.filter(id=claim_id).update(status=status, error=reason[:200],
                                                    claimed_until=None)

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
