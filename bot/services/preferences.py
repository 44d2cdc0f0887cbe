"""How and when each member wants to hear from us, and what the gate needs to know."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from tortoise.expressions import Q
from tortoise.functions import Count

from bot.storage.models import Group, Member, Membership, OutboxItem

BULK_SENT = ("sent", "delivered", "read")


@dataclass(frozen=True)
class DeliveryFacts:
    """One member's state as the policy gate sees it at send time."""

    member_id: int
    status: str
    timezone: str | None
    quiet_hours: str | None
    paused_until: datetime | None
    daily_cap: int | None
    digest: str
    marketing_ok: bool


class PreferenceService:
    async def facts(self, member_ids: list[int]) -> dict[int, DeliveryFacts]:
        rows = await Member.filter(id__in=member_ids).values_list(
            "id", "status", "timezone", "quiet_hours", "paused_until", "daily_cap", "digest",
            "marketing_ok")
        return {r[0]: DeliveryFacts(*r) for r in rows}

    async def active_memberships(self, pairs: set[tuple[int, int]]) -> dict[tuple[int, int], bool]:
        """(member, group) -> True if active and not muted."""
        if not pairs:
            return {}
        members = list({m for m, _ in pairs})
        groups = list({g for _, g in pairs})
        rows = await Membership.filter(member_id__in=members, group_id__in=groups).values_list(
            "member_id", "group_id", "status", "muted")
        found = {(m, g): status == "active" and not muted for m, g, status, muted in rows}
        return {p: found.get(p, False) for p in pairs}

    async def group_timezones(self, group_ids: list[int]) -> dict[int, str]:
        return dict(await Group.filter(id__in=group_ids).values_list("id", "timezone"))

    async def home_timezones(self, member_ids: list[int]) -> dict[int, str]:
        """The time zone of each member's earliest group, the default for their own."""
        rows = await (Membership.filter(member_id__in=member_ids, status="active")
                      .order_by("joined_at").values_list("member_id", "group__timezone"))
        out: dict[int, str] = {}
        for member_id, tz in rows:
            out.setdefault(member_id, tz)
        return out

    async def bulk_sent_since(self, member_ids: list[int], since: dict[int, datetime],
                              deciding: Collection[int] = ()) -> dict[int, int]:
        """How many group messages each member got since their local midnight.

        Rows claimed for sending right now (by this worker's round in flight, or by
        another worker) count as sent: they go out in the next second, and the cap must
        hold however many rounds are in flight. `deciding`: the rows being decided,
        which are claimed too but not yet allowed. One statement, so a round recorded
        meanwhile is counted once, as sent or as in flight.
        """
        if not member_ids:
            return {}
        earliest = min(since.values())
        counted = Q(status__in=BULK_SENT, sent_at__gte=earliest) | Q(status="sending")
        query = OutboxItem.filter(counted, member_id__in=member_ids, priority__gt=0)
        if deciding:
            query = query.exclude(id__in=list(deciding))
        rows = await query.values_list("member_id", "status", "sent_at")
        counts: dict[int, int] = {}
        for member_id, status, sent_at in rows:
            if status == "sending" or sent_at >= since[member_id]:
                counts[member_id] = counts.get(member_id, 0) + 1
        return counts

    async def set(self, member: Member, **values: object) -> None:
        for key, value in values.items():
            setattr(member, key, value)
        await member.save(update_fields=list(values))

    async def count_by_status(self) -> dict[str, int]:
        rows = await Member.annotate(n=Count("id")).group_by("status").values_list("status", "n")
        return dict(rows)
