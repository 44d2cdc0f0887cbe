"""Who is speaking: the member behind a message from someone we know, in one query.

Nearly every message comes from a member whose addresses are all on file. For
them this reads the identities and the member in one hand-written query (see
bot/services/sql.py for why) and changes nothing. Anything else (a first
message, an address to link) returns None, and MemberService.resolve does the
full work, with its hooks. Read fresh for every message, never cached across
messages: an earlier message in the same batch may have changed the member.
"""

from __future__ import annotations

from bot.messages import InboundMessage
from bot.services import sql
from bot.services.members import MemberService
from bot.storage.models import Identity, Member

_build_member = sql.builder(Member)


class Speakers:
    def __init__(self, members: MemberService) -> None:
        self.members = members
        self._sql: dict[tuple[bool, int], str] = {}

    def _query(self, postgres: bool, addresses: int) -> str:
        key = (postgres, addresses)
        if key not in self._sql:
            db_marks = [f"${i}" if postgres else f"?{i}" for i in range(1, addresses + 2)]
            self._sql[key] = (
                f'SELECT i."address_hash" AS "_hash", {sql.columns(Member, "m")} '
                f'FROM "identity" i JOIN "member" m ON m."id" = i."member_id" '
                f'WHERE i."transport" = {db_marks[0]} '
                f'AND i."address_hash" IN ({", ".join(db_marks[1:])})')
        return self._sql[key]

    async def known(self, msg: InboundMessage) -> Member | None:
        """The sender's member if every address on the message is on file, else None.

        Matches MemberService.resolve for that case: the member of the primary
        address, whichever member the spare address belongs to.
        """
        sender = self.members.address_hash(msg.transport, msg.sender)
        hashes = [sender]
        if msg.sender_alt:
            hashes.append(self.members.address_hash(msg.transport, msg.sender_alt))
        db = sql.connection(Identity)
        found = {row["_hash"]: row for row in await sql.rows(
            db, self._query(sql.is_postgres(db), len(hashes)), [msg.transport, *hashes])}
        if any(h not in found for h in hashes):
            return None
        return _build_member(found[sender])
