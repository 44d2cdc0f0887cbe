"""The reads nearly every message makes, done once for a whole processing batch.

Every message asks who is speaking (the member behind the address) and most ask that
member's groups (HELP, /mygroups, /settings). On PostgreSQL each is a round trip to
the server, and the two were most of what a message cost there. The processor now
reads both for all the batch's senders in two queries before it handles the first
item, and MemberService / GroupService answer from those rows while they hold. The group
listing /groups sends is kept the same way once one item has asked for it.

They hold until an item writes to a table they came from; then the processor forgets
what the write may have changed, and the next items read that afresh. The writes are
seen as sent, with their values (bot/savepoints.py), so most are told exactly: a member
row updated by its id (a pending member shown the notice, a YES) forgets that member's
rows; an identity added (a newcomer's first message, a second address linked) forgets
the rows under its address and its member's; a new member row forgets nothing (no
address leads to it until its identity is added). Any other write to those tables (a
join, a removal, STOP leaving every group, a DELETE that cascades, an update by anything
but the id) forgets everything, as does an item whose writes were not seen. Without
this, a surge of newcomers, the bot's busiest moment, read one member at a time: on
PostgreSQL half the rate of known members. Whose row was written is read from the
values, not assumed to be the sender's: a write to another member's row forgets theirs.

The rows are kept, not model objects, so no handler sees another's changes to an
object. On SQLite the batch holds the write lock from its first statement, so nothing
else writes in between; on PostgreSQL another worker may commit meanwhile, as it may
between any two statements: what is sent is checked again at send time by the policy
gate.

The rows are found through a context variable that the processor sets for its own
task only: code running elsewhere (webhooks, delivery, jobs) always reads afresh.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

# The tables the rows come from; a write naming any of them makes them stale.
SOURCES = re.compile(r"\b(member|identity|membership|local_group)\b", re.IGNORECASE)
# A member row updated by its id, the id being the last value (tortoise's save() and
# filter(id=...).update() both write it so).
MEMBER_BY_ID = re.compile(
    r'^\s*UPDATE\s+"member"\s+SET\s.*\sWHERE\s+"id"\s*=\s*(\$\d+|\?\d*)\s*$',
    re.IGNORECASE | re.DOTALL)
# New rows: the columns named, then the values row after row. An upsert that updates
# (ON CONFLICT ... DO UPDATE) changes rows that exist: not this.
INSERT = re.compile(r'^\s*INSERT\s+INTO\s+"(member|identity)"\s*\(([^)]*)\)\s*VALUES',
                    re.IGNORECASE)
UPSERT = re.compile(r"\bDO\s+UPDATE\b", re.IGNORECASE)

Row = Any  # a database row, indexable by column name
# A statement that may have written, and its values (None: not seen, as a script's).
Write = tuple[str, Sequence[Any] | None]


@dataclass
class BatchReads:
    # (transport, address hash) -> the member's row, or None: no member has that address.
    members: dict[tuple[str, str], Row | None] = field(default_factory=dict)
    # member id -> the rows of their active memberships with their groups.
    memberships: dict[int, list[Row]] = field(default_factory=dict)
    # (search words, limit) -> /groups' answer: groups and their active member counts.
    # Read on first ask, not up front: most batches have no /groups.
    listings: dict[tuple[tuple[str, ...], int], list[Any]] = field(default_factory=dict)

    def forget(self) -> None:
        self.members.clear()
        self.memberships.clear()
        self.listings.clear()

    def forget_written(self, writes: list[Write] | None) -> None:
        """After an item wrote: forget what its `writes` may have changed (None: they
        were not seen, so anything may have). See the module's docstring."""
        if writes is None:
            self.forget()
            return
        member_ids: set[int] = set()
        keys: set[tuple[str, str]] = set()
        for query, values in writes:
            if not SOURCES.search(query):
                continue
            touched = rows_touched(query, values)
            if touched is None:
                self.forget()
                return
            member_ids |= touched[0]
            keys |= touched[1]
        self.forget_members(member_ids, keys)

    def forget_members(self, member_ids: Iterable[int], keys: Iterable[tuple[str, str]] = ()
                       ) -> None:
        """Forget members' rows, under whatever address they were read, their memberships,
        and whatever is held under `keys` (an address that led nowhere may now)."""
        ids = set(member_ids)
        for key in keys:
            self.members.pop(key, None)
        for key in [k for k, row in self.members.items() if row is not None and row["id"] in ids]:
            del self.members[key]
        for member_id in ids:
            self.memberships.pop(member_id, None)


def rows_touched(query: str, values: Sequence[Any] | None
                 ) -> tuple[set[int], set[tuple[str, str]]] | None:
    """The member ids and the (transport, address hash) keys whose rows a write to the
    member or identity table may have changed; None if it cannot be told."""
    if (found := INSERT.match(query)) is not None and not UPSERT.search(query):
        if found.group(1).lower() == "member":
            return set(), set()
        return _identities_added(found.group(2), values)
    if (found := MEMBER_BY_ID.match(query)) is not None and values:
        number = found.group(1)[1:]  # $3 or ?3 numbered; a bare ? is the last
        if number and int(number) != len(values):
            return None  # the id is not the last value: not a shape we know
        return {values[-1]}, set()
    return None


def _identities_added(columns: str, values: Sequence[Any] | None
                      ) -> tuple[set[int], set[tuple[str, str]]] | None:
    names = [c.strip().strip('"') for c in columns.split(",")]
    width = len(names)
    if (values is None or not {"member_id", "transport", "address_hash"} <= set(names)
            or len(values) % width):
        return None
    member, transport, address = (names.index(n) for n in ("member_id", "transport",
                                                            "address_hash"))
    rows = [values[i:i + width] for i in range(0, len(values), width)]
    return ({row[member] for row in rows}, {(row[transport], row[address]) for row in rows})


_current: ContextVar[BatchReads | None] = ContextVar("batch_reads", default=None)


def current() -> BatchReads | None:
    return _current.get()


@contextmanager
def sharing(reads: BatchReads) -> Iterator[BatchReads]:
    """Services answer from `reads` inside the block (in this task and those it starts;
    a task that outlives the block finds them forgotten and reads afresh)."""
    token = _current.set(reads)
    try:
        yield reads
    finally:
        _current.reset(token)
        reads.forget()
