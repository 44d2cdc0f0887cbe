"""Bans that outlive the banned member's erasure.

/forgetme deletes the member and, with them, their bans. A banned person could then
erase themselves and come straight back. So before erasure, each active ban is kept
as the keyed hash of each of the member's addresses with the groups and the end date:
no name, no address, no reason (the same kind of record that keeps a STOP in force
after erasure). When one of those addresses writes again, the new member is banned
again for the time left, the audit log says why, and the kept row is deleted. Rows
whose ban has ended are deleted by the moderation housekeeping job.
"""

from __future__ import annotations

from datetime import datetime

from bot.services.moderation import ModerationService
from bot.storage.models import Group, Identity, Member
from bot.storage.models_moderation import CarriedBan, ModBan

REASON = "a ban still running when this address erased its data"


class BanCarryover:
    def __init__(self, moderation: ModerationService) -> None:
        self.moderation = moderation

    async def keep(self, member_id: int, now: datetime) -> None:
        """The eraser: runs before the member is deleted."""
        bans = await ModBan.filter(member_id=member_id, lifted_at=None, until__gt=now)
        if not bans:
            return
        hashes = await Identity.filter(member_id=member_id).values_list("address_hash",
                                                                        flat=True)
        await CarriedBan.bulk_create([
            CarriedBan(address_hash=h, group_ids=ban.group_ids, until=ban.until,
                       created_at=now)
            for h in hashes for ban in bans
        ])

    async def reinstate(self, member: Member, address_hash: str, now: datetime) -> None:
        """Called when a new member is created for an address: ban them again if it was
        banned when it erased itself."""
        kept = await CarriedBan.filter(address_hash=address_hash)
        if not kept:
            return
        await CarriedBan.filter(id__in=[row.id for row in kept]).delete()
        for row in kept:
            if row.until <= now:
                continue
            groups = await Group.filter(id__in=row.group_ids).order_by("code")
            if groups:
                await self.moderation.impose_ban(member, groups, row.until, REASON, now)

    async def purge(self, now: datetime) -> int:
        """The scheduled job: forget kept bans that have ended. Queues nothing."""
        await CarriedBan.filter(until__lte=now).delete()
        return 0
