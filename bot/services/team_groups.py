"""WhatsApp groups for core teams: creation, invite links, who may join, and removal.

A local group's core team may have one real WhatsApp group, created by the business
through the Groups API: invite-link only, join requests approved by the bot, at most
`cap` participants (8 on WhatsApp). Local groups themselves stay relayed rooms (DESIGN).

The composition root hands this service the object that speaks the Groups API (the
WhatsApp transport) together with the exception types it raises, so neither this
service nor the handlers import a transport.

Groups API calls and the processing transaction
-----------------------------------------------
A call to Meta cannot be rolled back, and an inbox item whose transaction rolls back is
processed again. So no call that changes anything at Meta is made while an inbound event
is processed. The decision is taken there and written as an intent, an outbox room action
(`team_create`, `team_approve`, `team_decline`, `team_remove`), in the same transaction as
the state it follows from. After commit the delivery worker claims the row (leased,
retried, the one worker that talks to platforms) and calls `perform`, which makes the call
and records the outcome on the row.

- Creation must not happen twice (two WhatsApp groups for one team). /teamgroup writes the
  TeamGroup row as "requested" with its `team_create` row. `perform` first moves the team
  row from "requested" to "creating" with a conditional UPDATE, committed before the call,
  so each team row is sent to Meta at most once: a second claim of the same outbox row (a
  worker died mid-call) finds it "creating" and leaves it to the webhook. The result comes
  back in Graph's answer (the group id) or later in a `group_lifecycle_update` webhook (a
  GroupUpdate event, matched by request id, or by subject for a row left "creating").
  If the call fails the row is deleted and the organizer told why: a retry is theirs to
  make, knowingly.
- Join requests are decided while the webhook is processed: opted in, not banned, a seat
  free. The seat is taken in that transaction (so the cap holds however fast requests
  come), and `perform` re-checks what is cheap (still opted in, not banned, request not
  withdrawn) before approving. Approving or declining twice is harmless, so these retry
  on network trouble and rate limits like messages do.
- A moderator's removal (or a ban) from the local group frees the person's seat and
  queues `team_remove` for the WhatsApp group, if the bot let them in.
- /teamlink only reads the link, and a reset only makes a newer one, but a call to Meta
  inside the processing transaction would hold it (and on SQLite every webhook's inbox
  write) for as long as Meta takes to answer. So it is an intent too (`team_link`), and
  `perform` answers the organizer with the link, or with why WhatsApp gave none.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from tortoise.transactions import in_transaction

from bot.messages import GroupChange, GroupUpdate, JoinRequest
from bot.services.members import MemberService
from bot.services.outbox import Claim, OutboxService, Outgoing
from bot.storage.models import Group, Member, Membership
from bot.storage.models_teams import TeamGroup, TeamSeat

log = logging.getLogger("groundwork.team_groups")

SUBJECT_MAX = 128
# Why a join request was declined; FULL is the one organizers need to act on.
NOT_A_MEMBER = "has not opted in"
BANNED = "is banned"
FULL = "team group is full"
# Outbox room actions this service performs (the delivery worker hands them over).
CREATE, APPROVE, DECLINE, REMOVE = "team_create", "team_approve", "team_decline", "team_remove"
LINK = "team_link"  # read or reset the invite link, and answer the organizer who asked
ACTIONS = (CREATE, APPROVE, DECLINE, REMOVE, LINK)
MAX_ATTEMPTS = 6  # transient failures of one call before organizers are asked to step in
SEATED = "approved"


class GroupApi(Protocol):
    async def create_group(self, subject: str, description: str = "", *,
                           require_approval: bool = True) -> str: ...

    async def get_invite_link(self, group_id: str) -> str: ...

    async def reset_invite_link(self, group_id: str) -> str: ...

    async def approve_join_requests(self, group_id: str,
                                    join_request_ids: Iterable[str]) -> list[str]: ...

    async def reject_join_requests(self, group_id: str,
                                   join_request_ids: Iterable[str]) -> list[str]: ...

    async def remove_participants(self, group_id: str, user_ids: Iterable[str]) -> None: ...


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
                 transport: str = "whatsapp", moderation: Any = None) -> None:
        self.api = api
        self.members = members
        self.outbox = outbox
        self.pending_error = pending_error
        self.api_error = api_error
        self.cap = cap
        self.transport = transport
        self.moderation = moderation  # is_banned(); None: only consent is checked

    # -- organizers' commands ------------------------------------------------------------

    async def request(self, group: Group, subject: str, organizer: Member,
                      now: datetime) -> tuple[TeamView, Outgoing]:
        """Record that `organizer` asked for a team group; returns the view and the
        `team_create` action to write in the same transaction."""
        existing = await TeamGroup.get_or_none(group_id=group.id)
        if existing is not None:
            raise TeamGroupError(f"{group.code} has a team group already ({existing.subject}). "
                                 f"/teamlink {group.code} gives its invite link.")
        subject = subject.strip()
        if not subject or len(subject) > SUBJECT_MAX:
            raise TeamGroupError(f"The group's name must be 1 to {SUBJECT_MAX} characters.")
        row = await TeamGroup.create(group=group, subject=subject, status="requested",
                                     requested_by_id=organizer.id, created_at=now)
        # The room column must name something: the team row stands in until a group exists.
        return await self._view(group, row), self._action(CREATE, f"team:{row.id}", row)

    async def link_request(self, group: Group, organizer: Member, *, reset: bool = False
                           ) -> Outgoing:
        """/teamlink: the `team_link` action to write in the processing transaction; the
        link itself is asked of WhatsApp after commit (`perform`) and sent to `organizer`.
        A reset repeated by a retry only makes a newer link, and the answer carries the
        newest."""
        row = await TeamGroup.get_or_none(group_id=group.id)
        if row is None:
            raise TeamGroupError(f"{group.code} has no team group yet: "
                                 f"/teamgroup {group.code} NAME creates one.")
        if row.platform_id is None:
            raise TeamGroupError(f"WhatsApp is still creating the {group.code} team group; "
                                 "try again in a few minutes.")
        return self._action(LINK, row.platform_id, row, member=organizer.id, reset=reset)

    async def _view(self, group: Group, row: TeamGroup, link: str = "") -> TeamView:
        return TeamView(code=group.code, subject=row.subject, pending=row.platform_id is None,
                        approved=await self._seated(row), cap=self.cap, invite_link=link)

    async def _seated(self, row: TeamGroup) -> int:
        return await TeamSeat.filter(team_id=row.id, status=SEATED).count()

    # -- inbound events (processing transaction) ----------------------------------------

    async def on_join_request(self, join: JoinRequest, services: Any) -> None:
        """Decide a join request to a team group; other rooms are not ours.

        The join request id travels in `event_id` (the sender's id when there is none).
        """
        if join.transport != self.transport:
            return
        row = await TeamGroup.get_or_none(platform_id=join.room).select_related("group")
        if row is None or row.platform_id is None:
            return
        request_id = join.event_id or join.sender
        if await TeamSeat.exists(team_id=row.id, join_request_id=request_id):
            return  # decided already
        member = await self.members.find(join.transport, join.sender)
        if member is None and join.sender_alt:
            member = await self.members.find(join.transport, join.sender_alt)
        refusal = await self._refusal(member, services, join.time)
        if refusal is None and await self._seated(row) >= self.cap:
            refusal = FULL
        if refusal is None:
            assert member is not None
            await TeamSeat.create(team=row, member=member, join_request_id=request_id,
                                  created_at=join.time)
        out = [self._action(APPROVE if refusal is None else DECLINE, row.platform_id, row,
                            request=request_id, member=member.id if member else None)]
        if refusal == FULL:
            out += await self._to_organizers(
                row, f"Declined a request to join the {row.group.code} team group: it is "
                f"full. WhatsApp allows {self.cap} people in a group besides the bot's number. "
                "Remove someone in WhatsApp, then ask them to request again.")
        await self.outbox.enqueue(out, join.time)
        log.info("team group %s: join request %s", row.group.code,
                 "to approve" if refusal is None else f"to decline ({refusal})")

    async def on_group_update(self, update: GroupUpdate, services: Any) -> None:
        """What the platform reports about a team group: created (or not), deleted, left."""
        if update.transport != self.transport:
            return
        if update.change in (GroupChange.CREATED, GroupChange.CREATE_FAILED):
            await self._created(update)
            return
        row = await TeamGroup.get_or_none(platform_id=update.room).select_related("group")
        if row is None:
            return
        if update.change is GroupChange.DELETED:
            await row.delete()
            await self.outbox.enqueue(await self._to_organizers(
                row, f"The {row.group.code} team group was deleted in WhatsApp. "
                f"/teamgroup {row.group.code} NAME creates a new one."), update.time)
        elif update.change is GroupChange.LEFT:
            for user in update.users:
                member = await self.members.find(update.transport, user)
                if member is not None:
                    await TeamSeat.filter(team_id=row.id, member_id=member.id,
                                          status=SEATED).update(status="left")
        elif update.change is GroupChange.JOIN_REVOKED:
            # A queued approval for it finds the seat gone and is not sent.
            await TeamSeat.filter(team_id=row.id, join_request_id=update.detail,
                                  status=SEATED).update(status="left")

    async def _created(self, update: GroupUpdate) -> None:
        row = None
        if update.request_id:
            row = await TeamGroup.get_or_none(request_id=update.request_id)
        if row is None and update.subject:
            # Graph's answer (with the request id) was lost to a crash, or the webhook
            # beat it here: the one row still waiting with this name is the one.
            row = await (TeamGroup.filter(status__in=["creating", "pending"],
                                          subject=update.subject)
                         .order_by("-id").first())
        if row is None:
            log.warning("group creation result %s for no team group we know of",
                        update.request_id or "without a request id")
            return
        await row.fetch_related("group")
        if update.change is GroupChange.CREATE_FAILED:
            await row.delete()
            text = (f"WhatsApp did not create the {row.group.code} team group: "
                    f"{update.detail or 'no reason given'}. /teamgroup {row.group.code} NAME "
                    "tries again.")
        elif row.platform_id is not None:
            return  # Graph's answer already finished it
        else:
            row.platform_id, row.status = update.room, "active"
            await row.save(update_fields=["platform_id", "status"])
            text = self._ready_text(row, update.detail)
        await self.outbox.enqueue(await self._to_requester(row, text), update.time)

    async def _refusal(self, member: Member | None, services: Any,
                       now: datetime) -> str | None:
        """Why this person may not join (None: they may, if a seat is free)."""
        if member is None or member.status != "active":
            return NOT_A_MEMBER
        moderation = self.moderation or getattr(services, "extra", {}).get("moderation")
        if moderation is not None and await _banned(moderation, member.id, now):
            return BANNED
        return None

    # -- moderation ---------------------------------------------------------------------

    async def on_removed(self, member: Member, group: Group) -> list[Outgoing]:
        """A moderator removed (or banned) `member` from `group`: out of its team group
        too, if the bot let them in. Written in the moderator's transaction."""
        row = await TeamGroup.get_or_none(group_id=group.id, transport=self.transport)
        if row is None or row.platform_id is None:
            return []
        seated = await TeamSeat.filter(team_id=row.id, member_id=member.id,
                                       status=SEATED).update(status="left")
        addresses = await self.members.addresses(member.id, self.transport)
        if not seated or not addresses:
            return []
        user = addresses[0][2]
        return [self._action(REMOVE, row.platform_id, row, user=user, member=member.id)]

    # -- after commit: the delivery worker hands over the room actions ---------------------

    async def perform(self, claim: Claim, now: datetime) -> None:
        """Carry out one team-group action and record the outcome on its outbox row."""
        spec = claim.extra or {}
        action = spec.get("action", "")
        try:
            if action == CREATE:
                await self._perform_create(claim, spec, now)
            elif action in (APPROVE, DECLINE):
                await self._perform_join(claim, spec, action == APPROVE, now)
            elif action == REMOVE:
                await self._perform_remove(claim, spec, now)
            elif action == LINK:
                await self._perform_link(claim, spec, now)
            else:
                await self.outbox.finish(claim.id, "failed", f"unknown action {action}")
        except Exception:  # recorded, never raised into the delivery round
            log.exception("team group action %s (outbox %s) failed", action, claim.id)
            await self.outbox.retry_at(claim.id, now + _backoff(claim.attempts),
                                       "internal error")

    async def _perform_create(self, claim: Claim, spec: dict[str, Any], now: datetime) -> None:
        claimed = await TeamGroup.filter(id=spec.get("team"), status="requested").update(
            status="creating")
        if not claimed:
            # Made (or being made) by an earlier claim of this row; its webhook finishes it.
            await self.outbox.sent(claim.id, "", now)
            return
        row = await TeamGroup.get(id=spec["team"]).select_related("group")
        description = (f"Core team of {row.group.name}. At most {self.cap} people: the bot "
                       "approves join requests from members who opted in.")
        try:
            platform_id = await self.api.create_group(row.subject, description,
                                                      require_approval=True)
        except self.pending_error as exc:
            row.request_id, row.status = getattr(exc, "request_id", None), "pending"
            await row.save(update_fields=["request_id", "status"])
            await self.outbox.sent(claim.id, "", now)
            return
        except self.api_error as exc:
            async with in_transaction():
                await row.delete()
                await self._give_up(claim, exc, await self._to_requester(
                    row, f"WhatsApp did not create the {row.group.code} team group: {exc}. "
                    f"/teamgroup {row.group.code} NAME tries again."), now)
            return
        try:
            link = await self.api.get_invite_link(platform_id)
        except self.api_error as exc:
            # The group exists: keep it, and let the organizer fetch the link again.
            log.warning("team group %s created, invite link not fetched: %s", row.group.code,
                        exc)
            link = ""
        async with in_transaction():
            row.platform_id, row.status = platform_id, "active"
            await row.save(update_fields=["platform_id", "status"])
            await self.outbox.enqueue(await self._to_requester(
                row, self._ready_text(row, link)), now)
            await self.outbox.sent(claim.id, "", now)

    async def _perform_join(self, claim: Claim, spec: dict[str, Any], approve: bool,
                            now: datetime) -> None:
        request_id = spec.get("request", "")
        row = await self._current_row(claim, spec, now)
        if row is None:
            return
        seat = None
        if approve:
            seat = await TeamSeat.get_or_none(team_id=row.id, join_request_id=request_id)
            if seat is None or seat.status != SEATED:
                await self.outbox.finish(claim.id, "suppressed", "join request withdrawn")
                return
            member = await self.members.get(seat.member_id)
            if member is None or await self._refusal(member, None, now) is not None:
                approve = False  # stopped or banned since the decision: decline after all
                await TeamSeat.filter(id=seat.id).update(status="left")
        try:
            if approve:
                done = await self.api.approve_join_requests(row.platform_id, [request_id])
            else:
                done = await self.api.reject_join_requests(row.platform_id, [request_id])
            if request_id not in done:
                raise self.api_error("the join request was not settled")
        except self.api_error as exc:
            if await self._retried(claim, exc, now):
                return
            verb = "approve" if approve else "decline"
            log.warning("team group %s: join request not %sd: %s", row.group.code, verb, exc)
            told = await self._to_organizers(
                row, f"WhatsApp did not let me {verb} a request to join the "
                f"{row.group.code} team group ({exc}). Please handle it in WhatsApp.")
            async with in_transaction():
                if seat is not None and approve:
                    await TeamSeat.filter(id=seat.id).update(status="failed")
                await self._give_up(claim, exc, told, now)
            return
        await self.outbox.sent(claim.id, "", now)

    async def _perform_remove(self, claim: Claim, spec: dict[str, Any], now: datetime) -> None:
        row = await self._current_row(claim, spec, now)
        if row is None:
            return
        try:
            await self.api.remove_participants(row.platform_id, [spec["user"]])
        except self.api_error as exc:
            if await self._retried(claim, exc, now):
                return
            member = await self.members.get(spec.get("member") or 0)
            who = f"@{member.handle}" if member is not None and member.handle else "a member"
            async with in_transaction():
                await self._give_up(claim, exc, await self._to_organizers(
                    row, f"WhatsApp did not let me remove {who} from the {row.group.code} "
                    f"team group ({exc}). Please remove them in WhatsApp."), now)
            return
        await self.outbox.sent(claim.id, "", now)

    async def _perform_link(self, claim: Claim, spec: dict[str, Any], now: datetime) -> None:
        asker = await Member.get_or_none(id=spec.get("member") or 0, status="active")
        row = await self._current_row(claim, spec, now, also=asker is not None,
                                      gone="team group or organizer gone")
        if row is None or asker is None:
            return
        reset = bool(spec.get("reset"))
        try:
            if reset:
                link = await self.api.reset_invite_link(row.platform_id)
            else:
                link = await self.api.get_invite_link(row.platform_id)
        except self.api_error as exc:
            if await self._retried(claim, exc, now):
                return
            async with in_transaction():
                await self._give_up(claim, exc, [_answer(
                    asker, row, f"WhatsApp did not give the invite link: {exc}")], now)
            return
        view = await self._view(row.group, row, link)
        code = row.group.code
        if reset:
            text = (f"New invite link for the {code} team group: {link}\n"
                    "The old link no longer works.")
        else:
            text = (f"Invite link for the {code} team group: {link}\n"
                    f"{rules_text(view)} /teamlink {code} reset makes a new one.")
        async with in_transaction():
            await self.outbox.enqueue([_answer(asker, row, text)], now)
            await self.outbox.sent(claim.id, "", now)

    # -- helpers ----------------------------------------------------------------------

    async def _current_row(self, claim: Claim, spec: dict[str, Any], now: datetime,
                           also: bool = True, gone: str = "team group gone"
                           ) -> TeamGroup | None:
        """The team group an action is for, while it is still the group the action names
        (and `also` holds); else the action is suppressed and None returned."""
        row = await TeamGroup.get_or_none(id=spec.get("team")).select_related("group")
        if row is None or row.platform_id != claim.room or not also:
            await self.outbox.finish(claim.id, "suppressed", gone)
            return None
        return row

    async def _retried(self, claim: Claim, exc: Exception, now: datetime) -> bool:
        """A transient failure with attempts left goes back to the outbox for later."""
        if getattr(exc, "transient", False) and claim.attempts + 1 < MAX_ATTEMPTS:
            await self.outbox.retry_at(claim.id, now + _backoff(claim.attempts), str(exc))
            return True
        return False

    async def _give_up(self, claim: Claim, exc: Exception, told: list[Outgoing],
                       now: datetime) -> None:
        """The action failed for good: those who must act are told, in the caller's
        transaction with the row's outcome."""
        await self.outbox.enqueue(told, now)
        await self.outbox.finish(claim.id, "failed", str(exc))

    def _action(self, action: str, room: str, row: TeamGroup, user: str | None = None,
                **fields: Any) -> Outgoing:
        out = self.outbox.room_action(self.transport, room, action, user=user)
        out.meta.update({"team": row.id, **fields})
        return out

    def _ready_text(self, row: TeamGroup, link: str) -> str:
        code = row.group.code
        where = (f"Invite link: {link}" if link else f"/teamlink {code} gives the invite link.")
        return (f"Created the WhatsApp team group '{row.subject}' for {code}. {where}\n"
                f"Share it only with the core team. WhatsApp allows {self.cap} people in it "
                "besides the bot's number. I approve join requests only from members who "
                "opted in and are not banned.")

    async def _to_requester(self, row: TeamGroup, text: str) -> list[Outgoing]:
        """The answer to /teamgroup that had to wait for WhatsApp, to the organizer who
        asked (to every organizer if they are gone)."""
        member = (await Member.get_or_none(id=row.requested_by_id, status="active")
                  if row.requested_by_id else None)
        if member is None:
            return await self._to_organizers(row, text)
        return [_answer(member, row, text, "teamgroup")]

    async def _to_organizers(self, row: TeamGroup, text: str) -> list[Outgoing]:
        organizers = await Membership.filter(group_id=row.group_id, role="organizer",
                                             status="active").values_list("member_id",
                                                                          flat=True)
        homes = await Member.filter(id__in=list(organizers), status="active").values_list(
            "id", "transport")
        # Not a direct answer: quiet hours and caps apply, as to any group message.
        return [Outgoing(text=text, transport=transport, member_id=member_id, kind="team",
                         group_id=row.group_id) for member_id, transport in homes]


def rules_text(view: TeamView) -> str:
    return (f"WhatsApp allows {view.cap} people in it besides the bot's number "
            f"({view.approved} approved so far). I approve join requests only from members "
            "who opted in and are not banned.")


def _answer(asker: Member, row: TeamGroup, text: str, command: str = "teamlink"
            ) -> Outgoing:
    """The answer to an organizer's command that had to wait for WhatsApp: a direct
    answer, sent whatever the hour."""
    return Outgoing(text=text, transport=asker.transport, member_id=asker.id,
                    command=command, group_id=row.group_id)


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(300.0, 2.0 ** (attempts + 1)))


async def _banned(moderation: Any, member_id: int, now: datetime) -> bool:
    """Ask the moderation service, whether its is_banned takes `now` or not."""
    is_banned = getattr(moderation, "is_banned", None)
    if is_banned is None:
        return False
    takes_now = len(inspect.signature(is_banned).parameters) > 1
    return bool(await (is_banned(member_id, now) if takes_now else is_banned(member_id)))
