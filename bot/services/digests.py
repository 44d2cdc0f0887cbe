"""The daily digest: what caps and digest choices folded, sent as one message.

Folded rows are never lost: at the member's local digest time they are gathered,
marked "digested" and replaced by a single digest row in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.transactions import in_transaction

from bot.config import Messaging
from bot.services.outbox import PRIORITY_BULK, SEALED
from bot.storage.models import Member, Membership, OutboxItem

FOOTER_MARK = "\n— "


class DigestRace(Exception):
    """Another worker composed this member's digest at the same moment."""


class DigestService:
    def __init__(self, messaging: Messaging, default_timezone: str, org_name: str) -> None:
        self.at = messaging.digest_at
        self.default_tz = default_timezone
        self.org_name = org_name

    async def send_due(self, now: datetime) -> int:
        """Queue a digest for every member whose local digest time has come. Returns count."""
        member_ids = list(set(await OutboxItem.filter(status="folded").values_list(
            "member_id", flat=True)))
        if not member_ids:
            return 0
        sent = 0
        for member in await Member.filter(id__in=member_ids, status="active"):
            tz = await self._zone(member)
            local = now.astimezone(tz)
            if local.time() < self.at or member.last_digest_on == local.date():
                continue
            try:
                async with in_transaction():
                    sent += await self._compose(member, local.date(), now)
            except DigestRace:
                continue
        return sent

    async def _zone(self, member: Member) -> ZoneInfo:
        if member.timezone:
            return ZoneInfo(member.timezone)
        home = await (Membership.filter(member=member, status="active").order_by("joined_at")
                      .first().values_list("group__timezone", flat=True))
        return ZoneInfo(home or self.default_tz)

    async def _compose(self, member: Member, day: object, now: datetime) -> int:
        rows = await (OutboxItem.filter(member=member, status="folded").order_by("id")
                      .values_list("id", "text", "extra"))
        if not rows:
            return 0
        # A reminder for an event that has begun is stale: taken out of the fold, not shown.
        stale = [row_id for row_id, _, extra in rows if _stale(extra, now)]
        if stale:
            await OutboxItem.filter(id__in=stale, status="folded").update(
                status="suppressed", error="too late: the event has started")
            rows = [row for row in rows if row[0] not in set(stale)]
            if not rows:
                return 0
        items = [text.split(FOOTER_MARK)[0] for _, text, _ in rows
                 if not text.startswith(SEALED)]
        body = [f"Your daily digest from {self.org_name} ({len(items)} message"
                f"{'s' if len(items) != 1 else ''}):"]
        body += [f"\n{i}. {item}" for i, item in enumerate(items, 1)]
        body.append(f"{FOOTER_MARK}Sent by {self.org_name} because you chose a daily digest "
                    "or reached your daily limit. Change: /digest off, /cap N. "
                    "Stop everything: STOP")
        taken = await OutboxItem.filter(id__in=[r[0] for r in rows], status="folded").update(
            status="digested")
        if taken != len(rows):
            raise DigestRace("another worker took these rows")  # rolls back, retried later
        await OutboxItem.create(member=member, transport=member.transport, kind="digest",
                                text="\n".join(body), priority=PRIORITY_BULK,
                                status="queued", not_before=now, created_at=now)
        member.last_digest_on = day
        await member.save(update_fields=["last_digest_on"])
        return 1


def _stale(extra: dict[str, Any] | None, now: datetime) -> bool:
    expires = (extra or {}).get("expires_at")
    return bool(expires) and datetime.fromisoformat(expires) <= now
