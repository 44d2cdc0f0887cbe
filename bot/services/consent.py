"""The consent ledger: grants and withdrawals are records, never deletions."""

from __future__ import annotations

from datetime import datetime

from bot.services import sql
from bot.services.crypto import Vault
from bot.storage.models import ConsentRecord, Identity, Member, Membership, OutboxItem, Suppression

GRANTED = "granted"
WITHDRAWN = "withdrawn"
MARKETING_WITHDRAWN = "marketing_withdrawn"
MARKETING_RESTORED = "marketing_restored"
_SUPPRESS = sql.Insert(Suppression, ("address_hash", "created_at"), conflict=("address_hash",))


class ConsentService:
    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    async def record(self, member: Member, action: str, channel: str, method: str,
                     notice_version: str, now: datetime) -> None:
        await ConsentRecord.create(member=member, at=now, action=action, channel=channel,
                                   method=method[:64], notice_version=notice_version)

    async def grant(self, member: Member, channel: str, method: str, notice_version: str,
                    now: datetime) -> None:
        member.status = "active"
        member.notice_version = notice_version
        await member.save(update_fields=["status", "notice_version"])
        await self.record(member, GRANTED, channel, method, notice_version, now)
        await self._unsuppress(member)

    async def withdraw(self, member: Member, channel: str, method: str, now: datetime) -> int:
        """STOP: consent withdrawn, every group left, everything queued for them cancelled.

        Returns how many group memberships were ended.
        """
        member.status = "stopped"
        member.flow = None
        await member.save(update_fields=["status", "flow"])
        await self.record(member, WITHDRAWN, channel, method, member.notice_version, now)
        left = await Membership.filter(member=member, status="active").update(
            status="left", left_at=now)
        await OutboxItem.filter(member=member, status="queued").update(
            status="suppressed", error="member stopped")
        await self._suppress(member, now)
        return left

    async def history(self, member_id: int) -> list[ConsentRecord]:
        return await ConsentRecord.filter(member_id=member_id).order_by("at", "id")

    async def last(self, member_id: int) -> ConsentRecord | None:
        return await ConsentRecord.filter(member_id=member_id).order_by("-at", "-id").first()

    async def _suppress(self, member: Member, now: datetime) -> None:
        hashes = await Identity.filter(member=member).values_list("address_hash", flat=True)
        # An address may be suppressed already (stopped, erased, back with a new member).
        # Skipped in the statement, not caught: on PostgreSQL a failed INSERT would take
        # the whole transaction with it, and with it the STOP.
        await _SUPPRESS.run([(h, now) for h in hashes])

    async def _unsuppress(self, member: Member) -> None:
        hashes = await Identity.filter(member=member).values_list("address_hash", flat=True)
        await Suppression.filter(address_hash__in=list(hashes)).delete()

    async def is_suppressed(self, address_hash: str) -> bool:
        return await Suppression.exists(address_hash=address_hash)
