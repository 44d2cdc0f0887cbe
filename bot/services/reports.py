"""Reports to a group's moderators, and appeals against their actions.

A report's and an appeal's text are the member's own words, encrypted at rest, shown
only to moderators. Who reported is never shown to anyone: alerts and the queue say
"a member", and the reported member hears only of the action taken, if any.
An appeal is decided by a moderator other than the one who acted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.services.audit import ERASED, Entry
from bot.services.crypto import Vault
from bot.services.moderation import ModerationService, Result
from bot.storage.models import Group, Member
from bot.storage.models_moderation import ModAppeal, ModReport, RelayedPost

MAX_TEXT = 1000
APPEALABLE = ("warn", "mute", "remove", "ban", "hold")


class Refused(ValueError):
    """A one-line answer to the member: why this cannot be done."""


@dataclass(frozen=True)
class ReportView:
    id: int
    group_code: str
    target: str | None  # handle, or None when the report names nobody
    target_id: int | None
    post_id: int | None
    text: str
    at: datetime


@dataclass(frozen=True)
class AppealView:
    id: int
    action: Entry
    appellant: str
    text: str
    at: datetime


class ReportService:
    def __init__(self, vault: Vault, moderation: ModerationService) -> None:
        self.vault = vault
        self.moderation = moderation

    # --- reports -----------------------------------------------------------------------------

    async def post(self, post_id: int) -> RelayedPost | None:
        return await RelayedPost.get_or_none(id=post_id).select_related("group", "author")

    async def report(self, reporter: Member, group: Group, post: RelayedPost | None,
                     text: str, now: datetime) -> Result:
        target = post.author if post is not None else None
        report = await ModReport.create(
            group=group, reporter=reporter, target=target,
            target_handle=target.handle if target else None, post=post,
            text_enc=self.vault.encrypt(text[:MAX_TEXT]), created_at=now)
        about = f" about post #{post.id} by @{target.handle}" if post and target else ""
        # The reported member never sees this, even if they moderate the group.
        exclude = {reporter.id} | ({target.id} if target else set())
        alerts = await self.moderation.alert(
            [group.id], f"New report #{report.id} in {group.code}{about}: {text[:MAX_TEXT]}\n"
            f"/resolve {report.id} dismiss|warn|mute 24h|remove NOTE", exclude=exclude)
        return Result(f"Thank you — your report #{report.id} went to the moderators of "
                      f"{group.name}. Nobody else learns who sent it.", alerts)

    async def open_reports(self, group: Group, viewer_id: int) -> list[ReportView]:
        rows = await (ModReport.filter(group_id=group.id, status="open")
                      .exclude(target_id=viewer_id).order_by("id").limit(20))
        return [self._view(r, group.code) for r in rows]

    async def get_report(self, report_id: int) -> tuple[ModReport, Group] | None:
        report = await ModReport.get_or_none(id=report_id).select_related("group", "target")
        return (report, report.group) if report else None

    async def resolve(self, report: ModReport, group: Group, actor: Member, action: str,
                      duration: timedelta | None, note: str, now: datetime) -> Result:
        """dismiss, or warn / mute / remove the reported member, and close the report."""
        if report.status != "open":
            raise Refused(f"Report #{report.id} is already resolved ({report.resolution}).")
        target: Member | None = report.target
        if action != "dismiss" and target is None:
            raise Refused(f"Report #{report.id} names no post, so nobody to {action}: use "
                          f"/{action} HANDLE {group.code} ... and then /resolve {report.id} "
                          "dismiss NOTE.")
        if target is not None and target.id == actor.id:
            raise Refused("That report is about you: another moderator must resolve it.")
        result = Result("")
        reason = note or f"report #{report.id}"
        if action == "warn" and target is not None:
            result = await self.moderation.warn(actor, target, group, reason, now, "report")
        elif action == "mute" and target is not None and duration is not None:
            result = await self.moderation.mute(actor, target, group, duration, now, reason,
                                                "report")
        elif action == "remove" and target is not None:
            result = await self.moderation.remove(actor, target, group, reason, now, "report")
        else:
            await self.moderation.audit.log(now, "dismiss", group=group, actor=actor,
                                            target=target, reason=reason, source="report")
        report.status, report.resolution = "resolved", action
        report.resolved_by, report.resolved_at = actor, now
        await report.save(update_fields=["status", "resolution", "resolved_by_id",
                                         "resolved_at"])
        out = list(result.out)
        if report.reporter_id is not None:
            reporter = await Member.get_or_none(id=report.reporter_id)
            if reporter is not None:
                done = "no action was needed" if action == "dismiss" else "action was taken"
                out.append(self.moderation.tell(
                    reporter, f"Your report #{report.id} was reviewed: {done}. Thank you."))
        return Result(f"Report #{report.id} resolved: {action}. {result.text}".strip(), out,
                      result.action_id)

    def _view(self, r: ModReport, code: str) -> ReportView:
        text = self.vault.decrypt(r.text_enc) if r.text_enc else "(erased)"
        return ReportView(r.id, code, r.target_handle, r.target_id, r.post_id, text,
                          r.created_at)

    # --- appeals -------------------------------------------------------------------------------

    async def appeal(self, member: Member, action_id: int, text: str,
                     now: datetime) -> Result:
        entry = await self.moderation.audit.get(action_id)
        if entry is None or entry.target_id != member.id or entry.shadow:
            raise Refused(f"There's no action #{action_id} against you. Its number is in the "
                          "message that told you about it.")
        if entry.undone:
            raise Refused(f"Action #{action_id} was already overturned.")
        if not any(a.partition(":")[0] in APPEALABLE for a in entry.action.split("+")):
            raise Refused(f"Action #{action_id} ({entry.action}) is not something to appeal.")
        if await ModAppeal.exists(action_id=action_id, status="open"):
            raise Refused(f"Your appeal against action #{action_id} is already with the "
                          "moderators.")
        appeal = await ModAppeal.create(action_id=action_id, member=member,
                                        text_enc=self.vault.encrypt(text[:MAX_TEXT]),
                                        created_at=now)
        exclude = {member.id} | ({entry.actor_id} if entry.actor_id else set())
        alerts = await self.moderation.alert(
            list(entry.group_ids), f"Appeal #{appeal.id} against action #{action_id} "
            f"({entry.action}, @{member.handle}): {text[:MAX_TEXT]}\n"
            f"/decide {appeal.id} uphold|overturn NOTE", exclude=exclude)
        return Result(f"Your appeal #{appeal.id} went to the moderators. Someone other than "
                      "who acted will decide, and you'll be told.", alerts)

    async def open_appeals(self, group: Group) -> list[AppealView]:
        rows = await (ModAppeal.filter(status="open").select_related("member")
                      .order_by("id").limit(200))
        views = []
        for row in rows:
            entry = await self.moderation.audit.get(row.action_id)
            if entry is not None and group.id in entry.group_ids:
                text = self.vault.decrypt(row.text_enc) if row.text_enc else "(erased)"
                views.append(AppealView(row.id, entry, row.member.handle or "-", text,
                                        row.created_at))
        return views[:20]

    async def get_appeal(self, appeal_id: int) -> tuple[ModAppeal, Entry] | None:
        appeal = await ModAppeal.get_or_none(id=appeal_id).select_related("member")
        if appeal is None:
            return None
        entry = await self.moderation.audit.get(appeal.action_id)
        return (appeal, entry) if entry is not None else None

    async def decide(self, appeal: ModAppeal, entry: Entry, actor: Member, overturn: bool,
                     note: str, now: datetime) -> Result:
        if appeal.status != "open":
            raise Refused(f"Appeal #{appeal.id} was already decided ({appeal.status}).")
        if entry.actor_id == actor.id:
            raise Refused(f"You took action #{entry.id}: another moderator must decide "
                          "the appeal.")
        if appeal.member_id == actor.id:
            raise Refused("You can't decide your own appeal.")
        member = appeal.member
        out = await self.moderation.undo(entry.id, member, now) if overturn else []
        verdict = "overturned" if overturn else "upheld"
        appeal.status, appeal.decided_by, appeal.note = verdict, actor, note[:300] or None
        appeal.decided_at = now
        await appeal.save(update_fields=["status", "decided_by_id", "note", "decided_at"])
        # Logged where the action was: one group, or every group a ban spanned.
        groups = list(await Group.filter(id__in=list(entry.group_ids)).order_by("code"))
        where: dict[str, Any] = ({"groups": groups} if entry.scope
                                 else {"group": groups[0] if groups else None})
        action_id = await self.moderation.audit.log(
            now, f"appeal {verdict}", **where, actor=actor, target=member,
            rule_id=entry.rule_id, source="appeal",
            reason=f"action #{entry.id}: {note}" if note else f"action #{entry.id}")
        undone = " It no longer stands." if overturn else ""
        out.append(self.moderation.tell(
            member, f"Your appeal #{appeal.id} against action #{entry.id} was {verdict}."
            f"{undone}" + (f" The moderator's note: {note}" if note else "")))
        return Result(f"Appeal #{appeal.id} {verdict} (action #{action_id}).", out, action_id)

    # --- data rights -----------------------------------------------------------------------

    async def export_member(self, member_id: int) -> list[dict[str, Any]]:
        """/mydata: the reports and appeals the member made (their own words included)."""
        rows: list[dict[str, Any]] = []
        for r in await ModReport.filter(reporter_id=member_id).select_related("group"):
            rows.append({"report": f"#{r.id}", "group": r.group.code, "status": r.status,
                         "at": f"{r.created_at:%Y-%m-%d}",
                         "text": self.vault.decrypt(r.text_enc) if r.text_enc else "-"})
        for a in await ModAppeal.filter(member_id=member_id):
            rows.append({"appeal": f"#{a.id}", "action": f"#{a.action_id}",
                         "status": a.status, "at": f"{a.created_at:%Y-%m-%d}"})
        return rows

    async def erase_member(self, member_id: int) -> None:
        """Reports they made lose their words and their name, reports about them the link."""
        await ModReport.filter(reporter_id=member_id).update(reporter_id=None, text_enc=None)
        await ModReport.filter(target_id=member_id).update(target_id=None,
                                                          target_handle=ERASED)
