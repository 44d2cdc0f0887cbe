"""Issue discussions: opening and closing issues, comments, followers, and what followers
are told. Also the member's discussion data (data rights).

Every method runs inside the caller's transaction (the processor's, for a handler).
Messages to followers are returned as `Outgoing` rows of a group message kind with the
group set, so the policy gate applies quiet hours, caps, pause and digests to them, and
they are written together with the change they tell of (the outbox pattern).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.functions import Count

from bot.footer import footer
from bot.messages import Button
from bot.services.outbox import Outgoing
from bot.storage.models import Group, OutboxItem
from bot.storage.models_discussions import Comment, Follow, Issue

MAX_TITLE = 120
MAX_COMMENT = 2000
MAX_OUTCOME = 500
MEMBERS_OPEN = "members_open_issues"  # Group.settings key: may plain members open issues?
COMMENT_KIND = "comment"
UPDATE_KIND = "issue_update"
# What auto-following did for an author: now follows, already did, or chose not to.
FOLLOWING_NOW, FOLLOWING_ALREADY, NOT_FOLLOWING = "now", "already", "unfollowed"
# Outbox states in which a comment notification has not reached anyone yet.
UNSENT = ("queued", "folded")


@dataclass(frozen=True)
class IssueView:
    """An issue as handlers see it: its group, state and how many comments it has."""

    id: int
    group_id: int
    group_code: str
    group_name: str
    timezone: str
    title: str
    status: str
    outcome: str | None
    creator_handle: str | None
    created_at: datetime
    closed_at: datetime | None
    comments: int = 0

    @property
    def closed(self) -> bool:
        return self.status == "closed"

    def when(self, moment: datetime) -> str:
        """A time as the group reads it."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        return f"{local.day} {local:%b %H:%M}"

    def footer(self, sender_role: str) -> str:
        reason = f"you follow issue #{self.id} (stop: /unfollow {self.id})"
        return footer(self.group_name, self.group_code, sender_role, reason)


@dataclass(frozen=True)
class CommentView:
    handle: str | None  # None once the author erased their data
    text: str | None
    created_at: datetime


@dataclass(frozen=True)
class CommentResult:
    comment_id: int
    following: str  # FOLLOWING_NOW | FOLLOWING_ALREADY | NOT_FOLLOWING
    notices: list[Outgoing]  # for the other followers


class DiscussionService:
    # --- reading -----------------------------------------------------------------------------

    async def get(self, issue_id: int) -> IssueView | None:
        issue = await Issue.get_or_none(id=issue_id).select_related("group", "created_by")
        if issue is None:
            return None
        return (await self._views([issue]))[0]

    async def open_issues(self, group_id: int, limit: int = 20) -> list[IssueView]:
        """The newest open issues of a group."""
        issues = await (Issue.filter(group_id=group_id, status="open")
                        .select_related("group", "created_by").order_by("-id").limit(limit))
        return await self._views(issues)

    async def latest_comments(self, issue_id: int, limit: int = 5) -> list[CommentView]:
        rows = await (Comment.filter(issue_id=issue_id).order_by("-id").limit(limit)
                      .values_list("author__handle", "text", "created_at"))
        return [CommentView(handle, text, at) for handle, text, at in reversed(rows)]

    async def is_following(self, issue_id: int, member_id: int) -> bool:
        return await Follow.exists(issue_id=issue_id, member_id=member_id, following=True)

    def members_may_open(self, group: Group) -> bool:
        return bool((group.settings or {}).get(MEMBERS_OPEN, False))

    async def _views(self, issues: Sequence[Issue]) -> list[IssueView]:
        ids = [i.id for i in issues]
        counts: dict[int, int] = {}
        if ids:
            rows = await (Comment.filter(issue_id__in=ids).annotate(n=Count("id"))
                          .group_by("issue_id").values_list("issue_id", "n"))
            counts = dict(rows)
        return [_view(i, counts.get(i.id, 0)) for i in issues]

    # --- changing ----------------------------------------------------------------------------

    async def set_members_open(self, group_id: int, allowed: bool) -> None:
        """Let plain members open issues in the group, or not. The settings hold other
        features' keys too, so the row is locked while it is rewritten (PostgreSQL)."""
        group = await Group.filter(id=group_id).select_for_update().get()
        group.settings = {**(group.settings or {}), MEMBERS_OPEN: allowed}
        await group.save(update_fields=["settings"])

    async def create(self, group: Group, creator_id: int, title: str, now: datetime
                     ) -> IssueView:
        """Open an issue. Its creator follows it from the start."""
        issue = await Issue.create(group=group, title=title.strip()[:MAX_TITLE],
                                   created_by_id=creator_id, created_at=now)
        await Follow.create(issue=issue, member_id=creator_id, created_at=now)
        issue = await Issue.get(id=issue.id).select_related("group", "created_by")
        return _view(issue, 0)

    async def comment(self, issue_id: int, author_id: int, handle: str, text: str,
                      now: datetime, post_ref: str | None = None) -> CommentResult | None:
        """Store a comment and tell the other followers. None if the issue closed meanwhile
        (the row is locked, so a comment and a close cannot cross). `post_ref` is the number
        moderation gave the text ("#12"), by which followers can report it."""
        issue = await self._locked(issue_id)
        if issue.status != "open":
            return None
        comment = await Comment.create(issue_id=issue_id, author_id=author_id,
                                       text=text.strip()[:MAX_COMMENT], created_at=now)
        following = await self._auto_follow(issue_id, author_id, now)
        view = (await self._views([issue]))[0]
        report = f" · Report it: /report {post_ref} WHAT'S WRONG" if post_ref else ""
        body = (f"💬 @{handle} on issue #{view.id} ({view.title}):\n{comment.text}\n"
                f"Reply: /comment {view.id} TEXT{report}\n")
        notices = await self.tell_followers(
            view, body + view.footer(f"a member (@{handle})"), COMMENT_KIND,
            exclude_member_id=author_id, meta={"comment_id": comment.id})
        return CommentResult(comment.id, following, notices)

    async def _auto_follow(self, issue_id: int, member_id: int, now: datetime) -> str:
        row = await Follow.get_or_none(issue_id=issue_id, member_id=member_id)
        if row is None:
            await Follow.create(issue_id=issue_id, member_id=member_id, created_at=now)
            return FOLLOWING_NOW
        return FOLLOWING_ALREADY if row.following else NOT_FOLLOWING

    async def follow(self, issue_id: int, member_id: int, now: datetime) -> bool:
        """Returns False when the member already followed the issue."""
        row = await Follow.get_or_none(issue_id=issue_id, member_id=member_id)
        if row is None:
            await Follow.create(issue_id=issue_id, member_id=member_id, created_at=now)
            return True
        if row.following:
            return False
        row.following = True
        await row.save(update_fields=["following"])
        return True

    async def unfollow(self, issue_id: int, member_id: int) -> bool:
        """Returns False when the member did not follow the issue."""
        return bool(await Follow.filter(issue_id=issue_id, member_id=member_id,
                                        following=True).update(following=False))

    async def close(self, issue_id: int, outcome: str, now: datetime) -> IssueView | None:
        """Close the issue with its outcome. None if it was closed already."""
        issue = await self._locked(issue_id)
        if issue.status != "open":
            return None
        issue.status, issue.outcome, issue.closed_at = "closed", outcome.strip()[:MAX_OUTCOME], now
        await issue.save(update_fields=["status", "outcome", "closed_at"])
        return (await self._views([issue]))[0]

    async def _locked(self, issue_id: int) -> Issue:
        """The issue row, locked until the transaction ends (PostgreSQL). SQLite serializes
        writers by itself."""
        # Locked on its own: PostgreSQL refuses FOR UPDATE across the outer join to a
        # creator who may be gone, so the related rows are read after the lock is held.
        # .only, not .values_list: tortoise leaves FOR UPDATE out of values queries.
        await Issue.filter(id=issue_id).select_for_update().only("id")
        return await Issue.get(id=issue_id).select_related("group", "created_by")

    # --- telling followers -------------------------------------------------------------------

    async def tell_followers(self, view: IssueView, text: str, kind: str, *,
                             exclude_member_id: int | None = None,
                             buttons: Callable[[str], tuple[Button, ...]] | None = None,
                             meta: dict[str, Any] | None = None) -> list[Outgoing]:
        """One outbox row per follower who can hear it now: following, active, and an
        active, unmuted member of the issue's group. The gate checks each row again when it
        is sent. `buttons(transport)` gives the buttons a transport can show."""
        rows = await self._audience(view, exclude_member_id)
        extra = {"issue_id": view.id, **(meta or {})}
        by_transport: dict[str, tuple[Button, ...]] = {}
        for transport in {t for _, t in rows}:  # asked once per transport, not per follower
            by_transport[transport] = buttons(transport) if buttons else ()
        return [Outgoing(text=text, transport=transport, member_id=member_id, kind=kind,
                         group_id=view.group_id, buttons=by_transport[transport], meta=extra)
                for member_id, transport in rows]

    async def tell_outcome(self, view: IssueView, poll_results: list[str],
                           closer_id: int) -> list[Outgoing]:
        """Tell the followers (but the organizer who closed it) how the issue ended."""
        lines = [f"✅ Issue #{view.id} closed: {view.title}", f"Outcome: {view.outcome}",
                 *poll_results, f"Details: /issue {view.id}"]
        text = "\n".join(lines) + "\n" + view.footer(f"the organizers of {view.group_name}")
        return await self.tell_followers(view, text, UPDATE_KIND, exclude_member_id=closer_id)

    async def _audience(self, view: IssueView, exclude_member_id: int | None
                        ) -> list[tuple[int, str]]:
        # Ids and transports only, joined in the database: a popular issue may have
        # thousands of followers, and model objects would cost five times as much.
        query = Follow.filter(issue_id=view.id, following=True, member__status="active",
                              member__marketing_ok=True,
                              member__memberships__group_id=view.group_id,
                              member__memberships__status="active",
                              member__memberships__muted=False)
        if exclude_member_id is not None:
            query = query.exclude(member_id=exclude_member_id)
        return list(await query.values_list("member_id", "member__transport"))

    # --- data rights -------------------------------------------------------------------------

    async def export_comments(self, member_id: int) -> list[dict[str, Any]]:
        rows = await (Comment.filter(author_id=member_id).order_by("id")
                      .values_list("issue_id", "issue__title", "issue__group__code",
                                   "created_at", "text"))
        return [{"issue": f"#{issue_id} {title}", "group": code,
                 "at": at.isoformat(timespec="minutes"),
                 "text": text}
                for issue_id, title, code, at, text in rows]

    async def export_issues(self, member_id: int) -> list[dict[str, Any]]:
        """Issues the member opened or follows (or chose to stop following)."""
        opened = set(await Issue.filter(created_by_id=member_id).values_list("id", flat=True))
        follows = dict(await Follow.filter(member_id=member_id).values_list("issue_id",
                                                                            "following"))
        ids = sorted(opened | set(follows))
        titles = dict(await Issue.filter(id__in=ids).values_list("id", "title")) if ids else {}
        return [{"issue": f"#{i} {titles[i]}", "you": _relation(i in opened, follows.get(i))}
                for i in ids]

    async def erase_member(self, member_id: int) -> None:
        """Erase the member's comment texts (placeholders keep the thread in order), the
        notifications of them not yet delivered, and their follows. Issues they opened stay,
        without a creator."""
        ids = set(await Comment.filter(author_id=member_id).values_list("id", flat=True))
        if ids:
            await self._withdraw_notifications(ids)
            await Comment.filter(id__in=list(ids)).update(text=None, author_id=None)
        await Follow.filter(member_id=member_id).delete()
        await Issue.filter(created_by_id=member_id).update(created_by_id=None)

    async def _withdraw_notifications(self, comment_ids: set[int]) -> None:
        # Followers' queued or folded copies carry the comment's text: they go too. The
        # comment id sits in the row's JSON, read here rather than queried, because JSON
        # lookups differ between SQLite and PostgreSQL and erasures are rare.
        rows = await OutboxItem.filter(kind=COMMENT_KIND, status__in=UNSENT).values_list(
            "id", "extra")
        doomed = [row_id for row_id, extra in rows
                  if (extra or {}).get("comment_id") in comment_ids]
        if doomed:
            await OutboxItem.filter(id__in=doomed).delete()


def _view(issue: Issue, comments: int) -> IssueView:
    group = issue.group
    creator = issue.created_by
    return IssueView(issue.id, group.id, group.code, group.name, group.timezone, issue.title,
                     issue.status, issue.outcome, creator.handle if creator else None,
                     issue.created_at, issue.closed_at, comments)


def _relation(opened: bool, following: bool | None) -> str:
    said = ["opened it"] if opened else []
    if following is not None:
        said.append("follow it" if following else "stopped following it")
    return ", ".join(said)
