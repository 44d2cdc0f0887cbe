"""Requests to join a group's real room (a Telegram group with join requests on).

The bot answers the requests it can judge and leaves the rest to the room's human
admins, who see pending requests in the app:

- approve: an active, consented member who joined the group with the bot (/join), so
  they have seen its rules and are not removed or banned;
- decline: someone removed from the group or banned from it (a ban would otherwise
  end at the room's door only if a human remembered it);
- leave pending: anyone else (unknown to the bot, not yet consented, stopped, or not
  in the group). Declining them would shut out people who simply have not written to
  the bot yet; approving them would let anyone past the group's rules.

Decisions are queued as room actions, so they happen after commit, once, with retries.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.messages import JoinRequest
from bot.services.audit import AuditService
from bot.services.moderation import ModerationService

log = logging.getLogger("groundwork.room_joins")


class RoomJoins:
    def __init__(self, moderation: ModerationService, audit: AuditService) -> None:
        self.moderation = moderation
        self.audit = audit

    async def on_join_request(self, join: JoinRequest, services: Any) -> None:
        group = await services.groups.group_of_room(join.transport, join.room)
        if group is None:
            return  # not a room linked to a group (a WhatsApp team group has its own hook)
        member = await services.members.find(join.transport, join.sender)
        if member is None and join.sender_alt:
            member = await services.members.find(join.transport, join.sender_alt)
        if member is None:
            log.info("join request to %s room left to its admins: unknown to the bot",
                     group.code)
            return
        now = join.time
        membership = await services.groups.membership(member.id, group.id)
        banned = await self.moderation.active_ban(member.id, group.id, now)
        if banned is not None or (membership is not None and membership.status == "removed"):
            await self.audit.log(now, "decline-join", group=group, target=member,
                                 reason="banned" if banned else "removed from the group",
                                 source="auto")
            await self._answer(services, join, "decline", now)
        elif (member.status == "active" and membership is not None
              and membership.status == "active"):
            await self._answer(services, join, "approve", now)
        else:
            log.info("join request to %s room left to its admins: member %s has not "
                     "joined the group with the bot", group.code, member.id)

    async def _answer(self, services: Any, join: JoinRequest, action: str, now: Any) -> None:
        row = services.outbox.room_action(join.transport, join.room, action, user=join.sender)
        await services.outbox.enqueue([row], now)
