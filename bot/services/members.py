"""Members and their addresses: resolve who is speaking, without storing numbers in clear."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.messages import InboundMessage
from bot.services import batch_reads, sql
from bot.services.crypto import Vault
from bot.storage.models import Identity, Member, Suppression

_ADJECTIVES = ("brave", "calm", "bright", "kind", "steady", "quick", "warm", "bold", "green",
               "clear", "fair", "keen", "wise", "true", "glad", "able", "free", "open")
_NOUNS = ("oak", "river", "finch", "maple", "otter", "heron", "cedar", "fox", "willow", "lark",
          "badger", "aspen", "wren", "elm", "salmon", "robin", "birch", "hare")


@dataclass(frozen=True)
class Resolved:
    member: Member
    created: bool  # first time we hear from this address


_MEMBER_COLUMNS = sql.columns(Member, "m")
_ADD_IDENTITY = sql.Insert(Identity, ("member_id", "transport", "kind", "address_hash",
                                      "address_enc", "created_at"),
                           conflict=("transport", "address_hash"))
_build_member = sql.builder(Member)

# Told of each new member with the keyed hash of the address it came from (ban carry-over).
CreatedHook = Callable[[Member, str, datetime], Awaitable[None]]


class MemberService:
    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.on_created: list[CreatedHook] = []

    def address_hash(self, transport: str, address: str) -> str:
        return self.vault.lookup_hash(transport, address)

    async def find(self, transport: str, address: str) -> Member | None:
        address_hash = self.address_hash(transport, address)
        return (await self._by_hash(transport, [address_hash])).get(address_hash)

    async def _by_hash(self, transport: str, hashes: list[str]) -> dict[str, Member]:
        """The members behind these address hashes: from the batch's rows when it read
        them all (bot/services/batch_reads.py), else in one hand-written query."""
        reads = batch_reads.current()
        if reads is not None and all((transport, h) in reads.members for h in hashes):
            cached = ((h, reads.members[(transport, h)]) for h in hashes)
            return {h: _build_member(row) for h, row in cached if row is not None}
        return {row["_hash"]: _build_member(row)
                for row in await self._rows_by_hash(transport, hashes)}

    async def _rows_by_hash(self, transport: str, hashes: list[str]) -> Sequence[Any]:
        """Every message runs this; tortoise would spend several times as long building it."""
        db = sql.connection(Identity)
        among, values = sql.one_of(db, 'i."address_hash"', 2, hashes)
        query = (f'SELECT i."address_hash" AS "_hash", {_MEMBER_COLUMNS} FROM "identity" i '
                 'JOIN "member" m ON m."id" = i."member_id" '
                 f'WHERE i."transport" = {sql.marks(db, 1)[0]} AND {among}')
        return await sql.rows(db, query, [transport, *values])

    async def read_for_batch(self, messages: Iterable[InboundMessage],
                             reads: batch_reads.BatchReads) -> list[int]:
        """Read the members behind the messages' senders into `reads`, one query per
        transport; returns the ids of the members found."""
        wanted: dict[str, set[str]] = {}
        for msg in messages:
            wanted.setdefault(msg.transport, set()).update(h for _, h in self._batch_keys(msg))
        found: list[int] = []
        for transport, hashes in wanted.items():
            for h in hashes:
                reads.members[(transport, h)] = None
            for row in await self._rows_by_hash(transport, sorted(hashes)):
                reads.members[(transport, row["_hash"])] = row
                found.append(row["id"])
        return found

    def _batch_keys(self, msg: InboundMessage) -> list[tuple[str, str]]:
        """The keys of a message's sender in a batch's rows: one per address it came with."""
        addresses = [msg.sender, msg.sender_alt] if msg.sender_alt else [msg.sender]
        return [(msg.transport, self.address_hash(msg.transport, a)) for a in addresses]

    async def resolve(self, msg: InboundMessage, notice_version: str, now: datetime) -> Resolved:
        """The member behind a message, created as pending on first contact.

        A WhatsApp user may arrive by business-scoped id, by wa_id, or both; when
        both appear, the two identities are linked to one member.
        """
        sender = self.address_hash(msg.transport, msg.sender)
        spare = self.address_hash(msg.transport, msg.sender_alt) if msg.sender_alt else None
        found = await self._by_hash(msg.transport, [sender, spare] if spare else [sender])
        member = found.get(sender)
        alt = found.get(spare) if spare else None
        if member is None and alt is not None:
            member = alt
            await self._add_identity(member, msg.transport, msg.sender, msg.sender_kind, now)
        if member is not None:
            if msg.sender_alt and alt is None:
                await self._add_identity(member, msg.transport, msg.sender_alt, "wa_id", now)
            return Resolved(member, created=False)
        member = await self.create_pending(msg.transport, msg.sender, msg.sender_kind,
                                           notice_version, now, also=msg.sender_alt)
        if msg.sender_alt:
            await self._add_identity(member, msg.transport, msg.sender_alt, "wa_id", now)
            for hook in self.on_created:
                await hook(member, self.address_hash(msg.transport, msg.sender_alt), now)
        return Resolved(member, created=True)

    async def create_pending(self, transport: str, address: str, kind: str,
                             notice_version: str, now: datetime, also: str | None = None
                             ) -> Member:
        """A new member, pending consent; stopped if the address, or `also` (the other
        address the same message came with), said STOP before /forgetme."""
        address_hash = self.address_hash(transport, address)
        hashes = [address_hash] + ([self.address_hash(transport, also)] if also else [])
        suppressed = await Suppression.filter(address_hash__in=hashes).exists()
        member = await Member.create(status="stopped" if suppressed else "pending",
                                     transport=transport, notice_version=notice_version,
                                     created_at=now)
        await self._add_identity(member, transport, address, kind, now)
        for hook in self.on_created:
            await hook(member, address_hash, now)
        return member

    async def _add_identity(self, member: Member, transport: str, address: str, kind: str,
                            now: datetime) -> None:
        # Linked already by a concurrent message (another worker): skipped in the statement,
        # not caught, since on PostgreSQL a failed INSERT takes the transaction with it.
        await _ADD_IDENTITY.run([(member.id, transport, kind,
                                  self.address_hash(transport, address),
                                  self.vault.encrypt(address), now)])

    async def addresses(self, member_id: int, transport: str | None = None
                        ) -> list[tuple[str, str, str]]:
        """(transport, kind, address) of a member, decrypted, for delivery and export."""
        query = Identity.filter(member_id=member_id)
        if transport:
            query = query.filter(transport=transport)
        rows = await query.order_by("id").values_list("transport", "kind", "address_enc")
        return [(t, k, self.vault.decrypt(enc)) for t, k, enc in rows]

    async def get(self, member_id: int) -> Member | None:
        return await Member.get_or_none(id=member_id)

    async def by_handle(self, handle: str) -> Member | None:
        return await Member.get_or_none(handle=handle.strip().lstrip("@").lower())

    async def assign_handle(self, member: Member) -> str:
        if member.handle:
            return member.handle
        for _ in range(20):
            candidate = (f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-"
                         f"{secrets.randbelow(90) + 10}")
            if not await Member.exists(handle=candidate):
                member.handle = candidate
                await member.save(update_fields=["handle"])
                return candidate
        member.handle = f"member-{member.id}"
        await member.save(update_fields=["handle"])
        return member.handle

    async def set_handle(self, member: Member, handle: str) -> bool:
        if await Member.filter(handle=handle).exclude(id=member.id).exists():
            return False
        member.handle = handle
        await member.save(update_fields=["handle"])
        return True

    def display_name(self, member: Member) -> str | None:
        return self.vault.decrypt(member.display_name_enc) if member.display_name_enc else None

    async def set_display_name(self, member: Member, name: str | None) -> None:
        member.display_name_enc = self.vault.encrypt(name) if name else None
        await member.save(update_fields=["display_name_enc"])

    async def save(self, member: Member, *fields: str) -> None:
        await member.save(update_fields=list(fields))
