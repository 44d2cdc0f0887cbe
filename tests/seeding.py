"""Bulk test data: many consented members at once, written the way the services would."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


@contextlib.asynccontextmanager
async def seeding_app(config: Path, environ: dict[str, str]) -> AsyncIterator[Any]:
    """The real App on the config's database, in this process, before any bot runs (a
    crash or worker test should not race its own setup)."""
    from bot.app import App  # the App only where a test runs one
    from bot.config import load_config

    app = App(load_config(config, environ=environ), environ=environ, transports=[])
    await app.start(background=False)
    try:
        yield app
    finally:
        await app.stop()


async def queue_announcements(config: Path, environ: dict[str, str], members: int,
                              prefix: str, *texts: str) -> int:
    """Seed `members` consented WhatsApp members of riverside and queue each announcement
    with the real service. Returns how many rows were queued."""
    async with seeding_app(config, environ) as app:
        now = datetime.now(UTC)
        await seed_members(app.vault, "riverside", members, now, prefix=prefix,
                           transport="whatsapp")
        group = await app.services.groups.get("riverside")
        assert group is not None
        queued = 0
        for text in texts:
            queued += await app.services.announcements.fan_out(group, text, "announcement", now)
        return queued


async def queue_to_room(config: Path, environ: dict[str, str], room: str,
                        texts: list[str]) -> None:
    """Queue posts to one WhatsApp group room with the real outbox service."""
    from bot.services.outbox import Outgoing

    async with seeding_app(config, environ) as app:
        await app.services.outbox.enqueue(
            [Outgoing(text=text, transport="whatsapp", room=room, kind="relay")
             for text in texts], datetime.now(UTC))
