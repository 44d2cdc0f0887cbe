"""Fan-out of group messages (announcements, relays) to a group's members.

One INSERT ... SELECT writes every recipient's outbox row inside the database,
so a 100,000-member announcement costs one statement, not 100,000 round trips.
It selects members who are active in the group, have not muted it, have
consented and not stopped marketing. The policy gate checks each row again at
send time (quiet hours, caps, pause, digest, and consent as it is then).
"""

from __future__ import annotations

from datetime import datetime

from bot.services.outbox import PRIORITY_BULK
from bot.storage.models import Group, Membership, OutboxItem

_FAN_OUT = """
INSERT INTO outbox_item (member_id, transport, room, kind, command, group_id, text, extra,
                         priority, status, not_before, attempts, created_at)
SELECT ms.member_id, m.transport, NULL, {p[0]}, NULL, {p[1]}, {p[2]}, NULL,
       {p[3]}, 'queued', {p[4]}, 0, {p[4]}
FROM membership ms JOIN member m ON m.id = ms.member_id
WHERE ms.group_id = {p[1]} AND ms.status = 'active' AND ms.muted = {p[5]}
  AND m.status = 'active' AND m.marketing_ok = {p[6]} AND ms.member_id <> {p[7]}
"""


class AnnouncementService:
    def __init__(self, postgres: bool) -> None:
        # asyncpg numbers its parameters $1.., SQLite's ?1.. may repeat them the same way.
        marks = [f"${i}" if postgres else f"?{i}" for i in range(1, 9)]
        self._sql = _FAN_OUT.format(p=marks)
        if postgres:
            # tortoise reads an INSERT's row count from the wrong field of asyncpg's status
            # ("INSERT 0 N"), so PostgreSQL counts the rows through a CTE instead.
            self._sql = (f"WITH queued AS ({self._sql} RETURNING 1) "
                         "SELECT count(*) AS n FROM queued")
        self.postgres = postgres

    async def fan_out(self, group: Group, text: str, kind: str, now: datetime,
                      exclude_member_id: int | None = None) -> int:
        """Queue `text` for every eligible member of the group; returns how many rows."""
        stamp = OutboxItem._meta.fields_map["created_at"].to_db_value(now, OutboxItem)
        values = [kind, group.id, text, PRIORITY_BULK, stamp, False, True,
                  exclude_member_id or 0]
        count, rows = await OutboxItem._meta.db.execute_query(self._sql, values)
        return int(rows[0]["n"]) if self.postgres else count

    async def audience_size(self, group: Group) -> int:
        return await Membership.filter(group=group, status="active", muted=False,
                                       member__status="active",
                                       member__marketing_ok=True).count()
