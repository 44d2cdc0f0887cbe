"""Bulk test data: many consented members at once, written the way the services would."""

from __future__ import annotations

from datetime import datetime

from bot.services.crypto import Vault
from bot.storage.models import ConsentRecord, Group, Identity, Member, Membership


async def seed_members(vault: Vault, group_code: str, count: int, now: datetime,
                       prefix: str = "m", transport: str = "testchat",
                       notice_version: str = "test") -> list[int]:
    """`count` active, consented members of the group, named PREFIX0..; returns their ids."""
    group = await Group.get(code=group_code)
    start = await Member.all().count()
    members = [Member(status="active", transport=transport, handle=f"{prefix}{i}-h",
                      notice_version=notice_version, created_at=now) for i in range(count)]
    await Member.bulk_create(members, batch_size=2000)
    ids = await Member.filter(handle__in=[m.handle for m in members]).order_by(
        "id").values_list("id", flat=True)
    await Identity.bulk_create([
        Identity(member_id=mid, transport=transport, kind="user",
                 address_hash=vault.lookup_hash(transport, f"{prefix}{i}"),
                 address_enc=vault.encrypt(f"{prefix}{i}"), created_at=now)
        for i, mid in enumerate(ids)], batch_size=2000)
    await ConsentRecord.bulk_create([
        ConsentRecord(member_id=mid, at=now, action="granted", channel=transport,
                      method="YES", notice_version=notice_version) for mid in ids],
        batch_size=2000)
    await Membership.bulk_create([
        Membership(member_id=mid, group_id=group.id, joined_at=now) for mid in ids],
        batch_size=2000)
    assert start + count == await Member.all().count()
    return list(ids)
