"""The moderation audit log: who did what to whom, under which rule, and why.

Never what anyone wrote: a row holds the rule, the action, the moderator's reason
and the engine's machine detail. Rows are kept for `audit_retention_days`. When a
member erases their data, rows about them (or by them) keep the action but lose the
link to the member and the handle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.storage.models import Group, Member
from bot.storage.models_moderation import ModAction

ERASED = "(erased member)"
BOT = "the bot"
MAX_REASON = 300


@dataclass(frozen=True)
class Entry:
    """What one audit row says, for /modlog, /mydata and appeals."""

    id: int
    at: datetime
    group_codes: str
    actor: str
    actor_id: int | None
    target: str
    target_id: int | None
    rule_id: str | None
    action: str
    reason: str | None
    until: datetime | None
    shadow: bool
    undone: bool
    group_id: int | None
    scope: tuple[int, ...]

    @property
    def group_ids(self) -> tuple[int, ...]:
        """Every group the action applies to (a ban may span several)."""
        return self.scope or ((self.group_id,) if self.group_id is not None else ())


class AuditService:
    def __init__(self, retention_days: int) -> None:
        self.retention = timedelta(days=retention_days)

    async def log(self, now: datetime, action: str, *, group: Group | None = None,
                  groups: list[Group] | None = None, actor: Member | None = None,
                  target: Member | None = None, rule_id: str | None = None,
                  reason: str | None = None, detail: str | None = None,
                  until: datetime | None = None, shadow: bool = False,
                  source: str = "command") -> int:
        """Write one row; returns its id (the action id members appeal with)."""
        shown = groups if groups is not None else ([group] if group is not None else [])
        row = await ModAction.create(
            at=now, group=group, scope=[g.id for g in groups] if groups is not None else None,
            group_codes=",".join(g.code for g in shown)[:400], actor=actor,
            actor_handle=actor.handle if actor else None, target=target,
            target_handle=target.handle if target else None, rule_id=rule_id, action=action,
            reason=(reason or None) and reason[:MAX_REASON], detail=detail and detail[:64],
            until=until,
            shadow=shadow, source=source)
        return row.id

    async def get(self, action_id: int) -> Entry | None:
        row = await ModAction.get_or_none(id=action_id)
        return _entry(row) if row else None

    async def mark_undone(self, action_id: int, now: datetime) -> None:
        await ModAction.filter(id=action_id).update(undone_at=now)

    async def latest(self, group_id: int, limit: int = 20) -> list[Entry]:
        """The group's latest actions, including bans that span it."""
        rows = await ModAction.filter(group_id=group_id).order_by("-id").limit(limit)
        spanning = await (ModAction.filter(group_id__isnull=True, scope__isnull=False)
                          .order_by("-id").limit(200))
        rows += [r for r in spanning if group_id in (r.scope or [])]
        rows.sort(key=lambda r: r.id, reverse=True)
        return [_entry(r) for r in rows[:limit]]

    async def about(self, member_id: int) -> list[Entry]:
        rows = await ModAction.filter(target_id=member_id, shadow=False).order_by("id")
        return [_entry(r) for r in rows]

    async def export_member(self, member_id: int) -> list[dict[str, Any]]:
        """/mydata: the actions taken against the member (never shadow notes)."""
        return [{"action": f"#{e.id} {e.action}", "group": e.group_codes or "-",
                 "rule": e.rule_id or "-", "at": f"{e.at:%Y-%m-%d %H:%M} UTC",
                 "reason": e.reason or "-",
                 **({"undone": "yes (appeal)"} if e.undone else {})}
                for e in await self.about(member_id)]

    async def erase_member(self, member_id: int) -> None:
        """Keep the actions, lose the person: no link, no handle."""
        await ModAction.filter(target_id=member_id).update(target_id=None,
                                                          target_handle=ERASED)
        await ModAction.filter(actor_id=member_id).update(actor_id=None, actor_handle=ERASED)

    async def purge(self, now: datetime) -> None:
        """Forget actions older than the retention (their appeals go with them)."""
        await ModAction.filter(at__lt=now - self.retention).delete()


def _entry(row: ModAction) -> Entry:
    return Entry(row.id, row.at, row.group_codes, row.actor_handle or BOT, row.actor_id,
                 row.target_handle or "-", row.target_id, row.rule_id, row.action, row.reason,
                 row.until, row.shadow, row.undone_at is not None, row.group_id,
                 tuple(row.scope or ()))
