"""Tortoise models. Only `bot.services` reads or writes them.
# Note: no semicolons in model docstrings. tortoise copies them into SQL comments and its
# SQLite migration runner splits statements on ";".

Personal data is kept in `*_enc` columns (AES-GCM ciphertext) and looked up by
keyed hashes (`*_hash`); see `bot.services.crypto`.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import PartialIndex
from tortoise.models import Model


class Member(Model):
    id = fields.IntField(primary_key=True)
    # pending|active|stopped. A pending member has nothing but an identity and a notice version.
    status = fields.CharField(max_length=16, default="pending", db_index=True)
    transport = fields.CharField(max_length=16, default="testchat")  # where they first wrote
    handle = fields.CharField(max_length=40, unique=True, null=True)
    display_name_enc = fields.TextField(null=True)
    notice_version = fields.CharField(max_length=16)
    notice_sent_at = fields.DatetimeField(null=True)
    timezone = fields.CharField(max_length=64, null=True)
    quiet_hours = fields.CharField(max_length=16, null=True)  # "22:00-07:00", "off", None=default
    daily_cap = fields.IntField(null=True)
    paused_until = fields.DatetimeField(null=True)
    digest = fields.CharField(max_length=8, default="off")  # off|daily
    # False once the platform tells us the user stopped marketing (WhatsApp user_preferences):
    # then only direct answers reach them.
    marketing_ok = fields.BooleanField(default=True)
    current_group_id = fields.IntField(null=True)  # set by /use CODE
    last_digest_on = fields.DateField(null=True)  # the member's local date of the last digest
    flow = fields.JSONField(null=True)  # a guided conversation in progress
    created_at = fields.DatetimeField()

    class Meta:
        table = "member"


class Identity(Model):
    """One address of a member on one transport (a member may have several)."""

    id = fields.IntField(primary_key=True)
    member = fields.ForeignKeyField("models.Member", related_name="identities",
                                    on_delete=fields.CASCADE)
    transport = fields.CharField(max_length=16)
    kind = fields.CharField(max_length=16, default="user")  # user|bsuid|wa_id
    address_hash = fields.CharField(max_length=64)
    address_enc = fields.TextField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "identity"
        unique_together = (("transport", "address_hash"),)
        indexes = (("member_id",),)


class ConsentRecord(Model):
    """The consent ledger: every grant and withdrawal, never deleted while the member exists."""

    id = fields.IntField(primary_key=True)
    member = fields.ForeignKeyField("models.Member", related_name="consents",
                                    on_delete=fields.CASCADE)
    at = fields.DatetimeField()
    action = fields.CharField(max_length=24)  # granted|withdrawn|marketing_withdrawn|...
    channel = fields.CharField(max_length=16)
    method = fields.CharField(max_length=64)  # the keyword or source, e.g. "YES", "STOP"
    notice_version = fields.CharField(max_length=16)

    class Meta:
        table = "consent_record"


class Suppression(Model):
    """Keyed hashes of addresses that said STOP, kept after /forgetme so they stay stopped."""

    id = fields.IntField(primary_key=True)
    address_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "suppression"


class ErasureStat(Model):
    """Anonymous counts kept after erasure (no link to anyone)."""

    id = fields.IntField(primary_key=True)
    day = fields.DateField()
    erased = fields.IntField(default=0)

    class Meta:
        table = "erasure_stat"


class InboxItem(Model):
    """Every accepted inbound event. A unique (transport, event_key) makes redelivery harmless."""

    id = fields.BigIntField(primary_key=True)
    transport = fields.CharField(max_length=16)
    event_key = fields.CharField(max_length=160)
    kind = fields.CharField(max_length=16)  # message|status|preference|join
    payload = fields.JSONField(null=True)  # cleared once processed: texts are personal data
    # Not indexed: what reads by status reads the pending items (inbox_item_pending).
    status = fields.CharField(max_length=12, default="pending")
    attempts = fields.IntField(default=0)
    claimed_until = fields.DatetimeField(null=True)
    received_at = fields.DatetimeField()
    processed_at = fields.DatetimeField(null=True)
    error = fields.CharField(max_length=200, null=True)
    # Who the event is from, as a keyed hash (bot/services/inbox.py: sender_key), while it
    # is pending: a claim leaves a person's later items to whoever holds their earlier one,
    # so several workers keep each person's messages in order. Cleared with the payload.
    sender_key = fields.CharField(max_length=32, null=True)

    class Meta:
        table = "inbox_item"
        unique_together = (("transport", "event_key"),)
        # What every claim reads: the pending items in order. On PostgreSQL each update of
        # an item leaves its old index entries behind until vacuum; the status index held
        # 37,630 entries for 0 pending rows after a bench run, and each claim read them all
        # (6.5 ms). This one holds pending items only, and is read in order, so an index
        # scan skips the dead entries and marks them for the next.
        # It also finds the items a claim passes over (leased or locked by other workers),
        # whose senders wait (bot/services/inbox.py).
        indexes = (PartialIndex(fields=("id",), name="inbox_item_pending",
                                condition={"status": "pending"}),)


class OutboxItem(Model):
    """A message to send. Written in the same transaction as the state it follows from."""

    id = fields.BigIntField(primary_key=True)
    member = fields.ForeignKeyField("models.Member", related_name="outbox", null=True,
                                    on_delete=fields.CASCADE)
    transport = fields.CharField(max_length=16)
    room = fields.CharField(max_length=128, null=True)  # a group room instead of a person
    kind = fields.CharField(max_length=16)  # notice|reply|announcement|relay|reminder|digest|...
    command = fields.CharField(max_length=32, null=True)  # the command this answers
    group_id = fields.IntField(null=True)
    text = fields.TextField()
    extra = fields.JSONField(null=True)  # buttons, attachment
    priority = fields.SmallIntField(default=0)  # 0: a direct answer; higher: bulk
    status = fields.CharField(max_length=12, default="queued")
    not_before = fields.DatetimeField()
    attempts = fields.IntField(default=0)
    claimed_until = fields.DatetimeField(null=True)
    provider_message_id = fields.CharField(max_length=128, null=True, db_index=True)
    error = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "outbox_item"
        indexes = (
            # Rows by status (folded, sending ...), and the leases that lapsed.
            ("status", "claimed_until"), ("member_id", "status"),
            # What a delivery round claims, in the order it sends them
            # (bot/services/outbox.py: _DUE): it reads the rows it takes and stops. No other
            # index may give part of that order: with the queue's statistics out of date,
            # the planner read one that did and sorted the rest of every queued row.
            PartialIndex(fields=("priority", "not_before", "id"), name="outbox_item_due",
                         condition={"status": "queued"}))


class Group(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=120)
    area = fields.CharField(max_length=120, default="")
    description = fields.TextField(default="")
    timezone = fields.CharField(max_length=64)
    settings = fields.JSONField(default=dict)  # reminder hours, rule overrides, ...
    created_at = fields.DatetimeField()

    class Meta:
        table = "local_group"


class Membership(Model):
    id = fields.IntField(primary_key=True)
    member = fields.ForeignKeyField("models.Member", related_name="memberships",
                                    on_delete=fields.CASCADE)
    group = fields.ForeignKeyField("models.Group", related_name="memberships",
                                   on_delete=fields.CASCADE)
    role = fields.CharField(max_length=12, default="member")  # member|moderator|organizer
    status = fields.CharField(max_length=12, default="active")  # active|left|removed
    muted = fields.BooleanField(default=False)  # the member muted this group
    joined_at = fields.DatetimeField()
    left_at = fields.DatetimeField(null=True)

    class Meta:
        table = "membership"
        unique_together = (("member", "group"),)
        indexes = (("group_id", "status"),)


class RoomLink(Model):
    """A real group room (test chat room, Telegram group) linked to a group."""

    id = fields.IntField(primary_key=True)
    group = fields.ForeignKeyField("models.Group", related_name="rooms",
                                   on_delete=fields.CASCADE)
    transport = fields.CharField(max_length=16)
    room = fields.CharField(max_length=128)
    created_at = fields.DatetimeField()

    class Meta:
        table = "room_link"
        unique_together = (("transport", "room"),)


class PacingSlot(Model):
    """The next free send slot per transport, shared by every worker on one database."""

    transport = fields.CharField(max_length=16, primary_key=True)
    next_at = fields.FloatField()  # unix time, seconds

    class Meta:
        table = "pacing_slot"
