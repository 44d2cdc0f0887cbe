"""Local groups, memberships and roles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.filters import escape_like
from tortoise.functions import Count

from bot.config import GroupSeed
from bot.services import batch_reads, sql
from bot.storage.models import Group, Member, Membership, RoomLink

ROLES = ("member", "moderator", "organizer")
_GROUP_COLUMNS = sql.columns(Group, "g", "g_")
_MEMBERSHIP_COLUMNS = sql.columns(Membership, "ms", "ms_")
_build_group = sql.builder(Group, "g_")
_build_membership = sql.builder(Membership, "ms_")


@dataclass(frozen=True)
class GroupListing:
    code: str
    name: str
    area: str
    members: int


# Run when a member leaves a group: (member id, group id, now) -> a line for them, or None.
LeaveHook = Callable[[int, int, datetime], Awaitable[str | None]]


class GroupService:
    def __init__(self, default_timezone: str) -> None:
        self.default_timezone = default_timezone
        self.on_leave: list[LeaveHook] = []

    async def seed(self, seeds: tuple[GroupSeed, ...], now: datetime) -> None:
        """Create the config's groups that do not exist yet; never overwrite chat edits."""
        existing = set(await Group.filter(code__in=[s.code for s in seeds]).values_list(
            "code", flat=True))
        for s in seeds:
            if s.code in existing:
                continue
            try:
                await Group.create(code=s.code, name=s.name, area=s.area,
                                   description=s.description,
                                   timezone=s.timezone or self.default_timezone, created_at=now)
            except IntegrityError:
                pass  # another worker starting at the same moment seeded it first

    async def create(self, code: str, name: str, area: str, description: str,
                     timezone: str | None, now: datetime) -> Group | None:
        if await Group.exists(code=code):
            return None
        return await Group.create(code=code, name=name, area=area, description=description,
                                  timezone=timezone or self.default_timezone, created_at=now)

    async def get(self, code: str) -> Group | None:
        code = code.strip().lower()
        if len(code) > Group._meta.fields_map["code"].max_length:  # type: ignore[attr-defined]
            return None  # no such group; tortoise would raise on the too-long filter value
        return await Group.get_or_none(code=code)

    async def by_id(self, group_id: int) -> Group | None:
        return await Group.get_or_none(id=group_id)

    async def search(self, words: str, limit: int = 20) -> list[GroupListing]:
        """Groups whose name, area or code holds every word (any case), with their
        active member counts, in one hand-written query (every /groups runs it). In a
        processing batch, the same search is answered once: after a call to action, many
        of a surge's messages ask for the same list (bot/services/batch_reads.py)."""
        terms = words.split()
        reads = batch_reads.current()
        if reads is None:
            return await self._search(terms, limit)
        key = (tuple(terms), limit)
        if key not in reads.listings:
            reads.listings[key] = await self._search(terms, limit)
        return list(reads.listings[key])

    async def _search(self, terms: list[str], limit: int) -> list[GroupListing]:
        db = sql.connection(Group)
        marks = sql.marks(db, len(terms) + 1)
        # As tortoise's icontains: upper() on both sides, LIKE wildcards in the words escaped.
        where = " AND ".join(
            "(" + " OR ".join(f"upper(g.{col}) LIKE upper({m}) ESCAPE '\\'"
                              for col in ("name", "area", "code")) + ")"
            for m in marks[1:])
        query = (
            "SELECT g.code, g.name, g.area, (SELECT count(*) FROM membership ms "
            "WHERE ms.group_id = g.id AND ms.status = 'active') AS members "
            f"FROM local_group g {'WHERE ' + where if where else ''} "
            f"ORDER BY g.code LIMIT {marks[0]}")
        values: list[object] = [limit] + [f"%{escape_like(w)}%" for w in terms]
        return [GroupListing(r["code"], r["name"], r["area"], int(r["members"]))
                for r in await sql.rows(db, query, values)]

    async def member_counts(self, group_ids: list[int]) -> dict[int, int]:
        rows = await (Membership.filter(group_id__in=group_ids, status="active")
                      .annotate(n=Count("id")).group_by("group_id").values_list("group_id", "n"))
        return dict(rows)

    async def membership(self, member_id: int, group_id: int) -> Membership | None:
        return await Membership.get_or_none(member_id=member_id, group_id=group_id)

    async def role(self, member_id: int, group_id: int) -> str | None:
        """The member's role in the group, or None if they are not an active member."""
        m = await Membership.get_or_none(member_id=member_id, group_id=group_id, status="active")
        return m.role if m else None

    async def join(self, member: Member, group: Group, now: datetime) -> bool:
        """Returns False when the member was already in."""
        m = await Membership.get_or_none(member=member, group=group)
        if m and m.status == "active":
            return False
        if m and m.status == "removed":
            raise PermissionError("removed")
        if m:
            m.status, m.left_at, m.joined_at, m.muted = "active", None, now, False
            await m.save(update_fields=["status", "left_at", "joined_at", "muted"])
        else:
            await Membership.create(member=member, group=group, joined_at=now)
        return True

    async def leave(self, member: Member, group: Group, now: datetime) -> list[str] | None:
        """None if the member was not in the group; else what leaving also undid, in
        lines for the member (the leave hooks', e.g. answers to its events withdrawn)."""
        updated = await Membership.filter(member=member, group=group, status="active").update(
            status="left", left_at=now)
        if not updated:
            return None
        if member.current_group_id == group.id:
            member.current_group_id = None
            await member.save(update_fields=["current_group_id"])
        notes = [await hook(member.id, group.id, now) for hook in self.on_leave]
        return [note for note in notes if note]

    async def set_role(self, member: Member, group: Group, role: str, now: datetime) -> None:
        m = await Membership.get_or_none(member=member, group=group)
        if m is None:
            await Membership.create(member=member, group=group, role=role, joined_at=now)
        else:
            m.role = role
            if m.status != "active":
                m.status, m.left_at = "active", None
            await m.save(update_fields=["role", "status", "left_at"])

    async def set_muted(self, member: Member, group: Group, muted: bool) -> bool:
        return bool(await Membership.filter(member=member, group=group, status="active")
                    .update(muted=muted))

    async def of_member(self, member_id: int) -> list[tuple[Group, Membership]]:
        """The member's active memberships with their groups, by group code: from the
        batch's rows when it read them (bot/services/batch_reads.py), else hand-written
        (HELP, /mygroups and /settings all run it); the same objects select_related makes."""
        reads = batch_reads.current()
        if reads is not None and member_id in reads.memberships:
            rows = reads.memberships[member_id]
        else:
            rows = await self._membership_rows([member_id])
        out = []
        for row in rows:
            group, membership = _build_group(row), _build_membership(row)
            object.__setattr__(membership, "_group", group)  # as select_related leaves it
            out.append((group, membership))
        return out

    async def read_for_batch(self, member_ids: Iterable[int],
                             reads: batch_reads.BatchReads) -> None:
        """Read these members' active memberships into `reads`, in one query."""
        ids = sorted(set(member_ids))
        if not ids:
            return
        for member_id in ids:
            reads.memberships[member_id] = []
        for row in await self._membership_rows(ids):
            reads.memberships[row["_member"]].append(row)

    async def _membership_rows(self, member_ids: list[int]) -> Sequence[Any]:
        db = sql.connection(Membership)
        among, values = sql.one_of(db, "ms.member_id", 1, member_ids)
        query = (f'SELECT ms.member_id AS "_member", {_GROUP_COLUMNS}, {_MEMBERSHIP_COLUMNS} '
                 "FROM membership ms JOIN local_group g ON g.id = ms.group_id "
                 f"WHERE {among} AND ms.status = 'active' ORDER BY ms.member_id, g.code")
        return await sql.rows(db, query, values)

    async def history_of_member(self, member_id: int) -> list[Membership]:
        return await Membership.filter(member_id=member_id).select_related("group").order_by(
            "joined_at")

    async def link_room(self, group: Group, transport: str, room: str, now: datetime) -> bool:
        existing = await RoomLink.get_or_none(transport=transport, room=room)
        if existing:
            if existing.group_id == group.id:
                return False
            existing.group = group
            await existing.save(update_fields=["group_id"])
            return True
        await RoomLink.create(group=group, transport=transport, room=room, created_at=now)
        return True

    async def group_of_room(self, transport: str, room: str) -> Group | None:
        link = await RoomLink.get_or_none(transport=transport, room=room).select_related("group")
        return link.group if link else None

    async def rooms_of(self, group_id: int) -> list[tuple[str, str]]:
        return list(await RoomLink.filter(group_id=group_id).values_list("transport", "room"))
