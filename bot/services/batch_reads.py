"""The reads nearly every message makes, done once for a whole processing batch.

Every message asks who is speaking (the member behind the address) and most ask that
member's groups (HELP, /mygroups, /settings). On PostgreSQL each is a round trip to
the server, and the two were most of what a message cost there. The processor now
reads both for all the batch's senders in two queries before it handles the first
item, and MemberService / GroupService answer from those rows while they hold. The group
listing /groups sends is kept the same way once one item has asked for it.

They hold until an item writes to a table they came from: after such an item the
processor forgets them, and the next items read afresh, as before. What it forgets
depends on what was written. A message whose writes touch only the member and identity
tables (a newcomer's first message creates them; HELP from someone who has not said YES
yet records the notice it answers with) wrote its own sender's rows: only the sender's
rows are forgotten. A message that creates or changes another member's rows touches
memberships too (a join, a removal, STOP leaving every group) and a DELETE can cascade
into them, and then everything is forgotten, as after any other item (a delivery
report's). Without this, a surge of newcomers, the bot's busiest moment, read one member
at a time: on PostgreSQL half the rate of known members. The rows are kept, not model
objects, so no handler sees another's changes to an object. On SQLite
the batch holds the write lock from its first statement, so nothing else writes in
between; on PostgreSQL another worker may commit meanwhile, as it may between any two
statements: what is sent is checked again at send time by the policy gate.

The rows are found through a context variable that the processor sets for its own
task only: code running elsewhere (webhooks, delivery, jobs) always reads afresh.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

# The tables the rows come from; a write naming any of them makes them stale.
SOURCES = re.compile(r"\b(member|identity|membership|local_group)\b", re.IGNORECASE)
# Writes that may change rows of members other than the one who wrote (see above).
SHARED = re.compile(r'\b(membership|local_group)\b|^\s*DELETE\s+FROM\s+"?(member|identity)\b',
                    re.IGNORECASE)

Row = Any  # a database row, indexable by column name


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

    def forget_written(self, statements: list[str] | None,
                       sender: list[tuple[str, str]] | None) -> None:
        """After an item wrote: forget what its `statements` may have changed (None: they
        were not seen, so anything may have). `sender`: the keys of the member's message
        the item was, or None for any other item (see the module's docstring)."""
        if statements is not None and not stale_after(statements):
            return
        if statements is not None and sender is not None and own_rows_only(statements):
            self.forget_sender(sender)
        else:
            self.forget()

    def forget_sender(self, keys: Iterable[tuple[str, str]]) -> None:
        """Forget one sender's rows: under their addresses `keys`, and their member's
        under any other address and their memberships."""
        keys = list(keys)
        ids = {row["id"] for key in keys if (row := self.members.get(key)) is not None}
        for key in keys:
            self.members.pop(key, None)
        for key in [k for k, row in self.members.items() if row is not None and row["id"] in ids]:
            del self.members[key]
        for member_id in ids:
            self.memberships.pop(member_id, None)


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


def stale_after(statements: Iterable[str]) -> bool:
    """Do these written statements touch a table the rows came from?"""
    return any(SOURCES.search(statement) for statement in statements)


def own_rows_only(statements: Iterable[str]) -> bool:
    """Could a message's written statements have changed only its own sender's rows?"""
    return not any(SHARED.search(statement) for statement in statements)
