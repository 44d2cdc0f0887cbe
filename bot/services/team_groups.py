"""WhatsApp groups for core teams: creation, invite links, and who may join.

A local group's core team may have one real WhatsApp group, created by the business
through the Groups API: invite-link only, join requests approved by the bot, at most
`cap` participants (8 on WhatsApp). Local groups themselves stay relayed rooms (DESIGN).

The composition root hands this service the object that speaks the Groups API (the
WhatsApp transport) together with the exception types it raises, so neither this
service nor the handlers import a transport.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.messages import JoinRequest
from bot.services.members import MemberService
from bot.services.outbox import OutboxService, Outgoing
from bot.storage.models import Group, Member, Membership
from bot.storage.models_teams import TeamGroup

log = logging.getLogger("groundwork.team_groups")

SUBJECT_MAX = 128
# Why a join request was declined; FULL is the one organizers need to act on.
NOT_A_MEMBER = "has not opted in"
BANNED = "is banned"
FULL = "team group is full"


class GroupApi(Protocol):
    async def create_group(self, subject: str, description: str = "", *,
                           require_approval: bool = True) -> str: ...

    async def get_invite_link(self, group_id: str) -> str: ...

    async def reset_invite_link(self, group_id: str) -> str: ...

    async def approve_join_requests(self, group_id: str,
                                    join_request_ids: Iterable[str]) -> list[str]: ...

    async def reject_join_requests(self, group_id: str,
                                   join_request_ids: Iterable[str]) -> list[str]: ...


class TeamGroupError(Exception):
    """A one-line explanation for the organizer who asked."""


@dataclass(frozen=True)
class TeamView:
    code: str
    subject: str
    pending: bool  # the platform is still creating it
    approved: int
    cap: int
    invite_link: str = ""


class TeamGroupService:
    def __init__(self, api: GroupApi, members: MemberService, outbox: OutboxService, *,
                 pending_error: type[Exception], api_error: type[Exception], cap: int,
                 transport: str = "whatsapp") -> None:
        self.api = api
        self.members = members
        self.outbox = outbox
        self.pending_error = pending_error
        self.api_error = api_error
        self.cap = cap
        self.transport = transport

    # -- organizers' commands ------------------------------------------------------------

    async def create(self, group: Group, subject: str, now: datetime) -> TeamView:
        existing = await TeamGroup.get_or_none(group_id=group.id)
        if existing is not None:
            raise TeamGroupError(f"{group.code} has a team group already ({existing.subject}). "
                                 f"/teamlink {group.code} gives its invite link.")
        subject = subject.strip()
        if not subject or len(subject) > SUBJECT_MAX:
            raise TeamGroupError(f"The group's name must be 1 to {SUBJECT_MAX} characters.")
        description = (f"Core team of {group.name}. At most {self.cap} people: the bot "
                       "approves join requests from members who opted in.")
        try:
            platform_id = await self.api.create_group(subject, description,
                                                      require_approval=True)
        except self.pending_error as exc:
            # The group id arrives later in a webhook; until then there is no link to give.
            row = await TeamGroup.create(group=group, subject=subject, status="pending",
                                         request_id=getattr(exc, "request_id", None),
                                         created_at=now)
            return self._view(group, row)
        except self.api_error as exc:
            raise TeamGroupError(f"WhatsApp did not create the group: {exc}") from exc
        row = await TeamGroup.create(group=group, subject=subject, platform_id=platform_id,
                                     created_at=now)
        try:
            link = await self.api.get_invite_link(platform_id)
        except self.api_error as exc:
            # The group exists: keep it, and let the organizer fetch the link again.
            log.warning("team group %s created, invite link not fetched: %s", group.code, exc)
            link = ""
        return self._view(group, row, link)

    async def invite_link(self, group: Group, *, reset: bool = False) -> TeamView:
        row = await TeamGroup.get_or_none(group_id=group.id)
        if row is None:
            raise TeamGroupError(f"{group.code} has no team group yet: "
                                 f"/teamgroup {group.code} NAME creates one.")
        if row.platform_id is None:
            raise TeamGroupError(f"WhatsApp is still creating the {group.code} team group; "
                                 "try again in a few minutes.")
        try:
            if reset:
                link = await self.api.reset_invite_link(row.platform_id)
            else:
                link = await self.api.get_invite_link(row.platform_id)
        except self.api_error as exc:
            raise TeamGroupError(f"WhatsApp did not give the invite link: {exc}") from exc
        return self._view(group, row, link)

    def _view(self, group: Group, row: TeamGroup, link: str = "") -> TeamView:
        return TeamView(code=group.code, subject=row.subject, pending=row.platform_id is None,
                        approved=row.approved, cap=self.cap, invite_link=link)

    # -- join requests ---------------------------------------------------------------------

    async def on_join_request(self, join: JoinRequest, services: Any) -> None:
        """Approve a join request to a team group, or decline it; other rooms are not ours.

        The join request id travels in `event_id` (the sender's id when there is none).
        """
        if join.transport != self.transport:
            return
        row = await TeamGroup.get_or_none(platform_id=join.room).select_related("group")
        if row is None or row.platform_id is None:
            return
        member = await self.members.find(join.transport, join.sender)
        refusal = await self._refusal(member, row, services, join.time)
        request_id = join.event_id or join.sender
        if not await self._settle(row, request_id, approve=refusal is None, now=join.time):
            return
        if refusal is None:
            row.approved += 1
            await row.save(update_fields=["approved"])
        elif refusal == FULL:
            await self._tell_organizers(
                row, f"Declined a request to join the {row.group.code} team group: it is "
                f"full. WhatsApp allows {self.cap} people in a group besides the bot's number. "
                "Remove someone in WhatsApp, then ask them to request again.", join.time)
        log.info("team group %s: join request %s", row.group.code,
                 "approved" if refusal is None else f"declined ({refusal})")

    async def _refusal(self, member: Member | None, row: TeamGroup, services: Any,
                       now: datetime) -> str | None:
        """Why this person may not join (None: they may)."""
        if member is None or member.status != "active":
            return NOT_A_MEMBER
        moderation = getattr(services, "extra", {}).get("moderation")
        if moderation is not None and await _banned(moderation, member.id, now):
            return BANNED
        if row.approved >= self.cap:
            return FULL
        return None

    async def _settle(self, row: TeamGroup, request_id: str, *, approve: bool,
                      now: datetime) -> bool:
        assert row.platform_id is not None
        try:
            if approve:
                done = await self.api.approve_join_requests(row.platform_id, [request_id])
            else:
                done = await self.api.reject_join_requests(row.platform_id, [request_id])
        except self.api_error as exc:
            log.warning("team group %s: join request not %s: %s", row.group.code,
                        "approved" if approve else "declined", exc)
            await self._tell_organizers(
                row, f"WhatsApp did not let me {'approve' if approve else 'decline'} a "
                f"request to join the {row.group.code} team group ({exc}). Please handle it "
                "in WhatsApp.", now)
            return False
        return request_id in done

    async def _tell_organizers(self, row: TeamGroup, text: str, now: datetime) -> None:
        organizers = await Membership.filter(group_id=row.group_id, role="organizer",
                                             status="active").values_list("member_id",
                                                                          flat=True)
        homes = await Member.filter(id__in=list(organizers), status="active").values_list(
            "id", "transport")
        # Not a direct answer: quiet hours and caps apply, as to any group message.
        await self.outbox.enqueue(
            [Outgoing(text=text, transport=transport, member_id=member_id, kind="team",
                      group_id=row.group_id) for member_id, transport in homes], now)


async def _banned(moderation: Any, member_id: int, now: datetime) -> bool:
    """Ask the moderation service, whether its is_banned takes `now` or not."""
    is_banned = getattr(moderation, "is_banned", None)
    if is_banned is None:
        return False
    takes_now = len(inspect.signature(is_banned).parameters) > 1
    return bool(await (is_banned(member_id, now) if takes_now else is_banned(member_id)))
