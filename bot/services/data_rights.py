"""What we hold about a member (/mydata, export-member) and erasure (/forgetme)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from bot.services.crypto import Vault
from bot.storage.models import (
    ConsentRecord,
    ErasureStat,
    Identity,
    Member,
    Membership,
    OutboxItem,
)

# A feature adds its own section to the export: (title, async fn(member_id) -> list of dicts).
ExportSection = tuple[str, Callable[[int], Awaitable[list[dict[str, Any]]]]]
# A feature erases its own personal data for a member before the member row goes.
Eraser = Callable[[int], Awaitable[None]]


def mask(address: str) -> str:
    """Enough to recognise your own address, not enough to read someone else's."""
    if len(address) <= 4:
        return "•" * len(address)
    return address[:2] + "•" * (len(address) - 4) + address[-2:]


class DataRightsService:
    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.sections: list[ExportSection] = []
        self.erasers: list[Eraser] = []

    def add_section(self, title: str, fn: Callable[[int], Awaitable[list[dict[str, Any]]]]
                    ) -> None:
        self.sections.append((title, fn))

    def add_eraser(self, fn: Eraser) -> None:
        self.erasers.append(fn)

    async def export(self, member_id: int, reveal_addresses: bool = False) -> dict[str, Any]:
        """Everything stored about a member, as plain data."""
        member = await Member.get(id=member_id)
        identities = await Identity.filter(member_id=member_id).order_by("id")
        out: dict[str, Any] = {
            "profile": {
                "member_id": member.id,
                "handle": member.handle,
                "display_name": (self.vault.decrypt(member.display_name_enc)
                                 if member.display_name_enc else None),
                "status": member.status,
                "joined": member.created_at.isoformat(),
                "notice_version": member.notice_version,
                "timezone": member.timezone,
                "quiet_hours": member.quiet_hours,
                "daily_cap": member.daily_cap,
                "paused_until": member.paused_until.isoformat() if member.paused_until else None,
                "digest": member.digest,
            },
            "addresses": [
                {"transport": i.transport, "kind": i.kind,
                 "address": (self.vault.decrypt(i.address_enc) if reveal_addresses
                             else mask(self.vault.decrypt(i.address_enc)))}
                for i in identities
            ],
            "consent_history": [
                {"at": c.at.isoformat(), "action": c.action, "channel": c.channel,
                 "method": c.method, "notice_version": c.notice_version}
                for c in await ConsentRecord.filter(member_id=member_id).order_by("at", "id")
            ],
            "groups": [
                {"group": m.group.code, "role": m.role, "status": m.status,
                 "joined": m.joined_at.isoformat(),
                 "left": m.left_at.isoformat() if m.left_at else None}
                for m in await Membership.filter(member_id=member_id).select_related("group")
            ],
            "messages_sent_to_you": await OutboxItem.filter(member_id=member_id).count(),
        }
        for title, fn in self.sections:
            out[title] = await fn(member_id)
        return out

    async def forget(self, member: Member, now: datetime) -> None:
        """Erase personal data. Suppression hashes (made at STOP) and counts survive."""
        for eraser in self.erasers:
            await eraser(member.id)
        await OutboxItem.filter(member_id=member.id).delete()
        await Member.filter(id=member.id).delete()  # cascades identities, ledger, memberships
        stat = await ErasureStat.get_or_none(day=now.date())
        if stat is None:
            await ErasureStat.create(day=now.date(), erased=1)
        else:
            stat.erased += 1
            await stat.save(update_fields=["erased"])
