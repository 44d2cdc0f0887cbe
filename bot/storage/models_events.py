"""Event models: events, RSVPs (with the waitlist) and the reminders to send.
# Note: no semicolons in model docstrings. tortoise copies them into SQL comments and its
# SQLite migration runner splits statements on ";".

All datetimes are UTC. The group's time zone is applied only when showing them.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Event(Model):
    """A meeting a group's organizers called. Creator set NULL when they erase their data."""

    id = fields.IntField(primary_key=True)
    group = fields.ForeignKeyField("models.Group", related_name="events",
                                   on_delete=fields.CASCADE)
    title = fields.CharField(max_length=120)
    starts_at = fields.DatetimeField(db_index=True)
    ends_at = fields.DatetimeField(null=True)  # None: the organizer gave no end time
    place = fields.CharField(max_length=200, default="")
    capacity = fields.IntField(null=True)  # None: no limit
    status = fields.CharField(max_length=12, default="scheduled")  # scheduled|cancelled
    cancel_reason = fields.CharField(max_length=200, null=True)
    # Bumped on every change calendars should pick up (iCalendar SEQUENCE).
    sequence = fields.IntField(default=0)
    created_by = fields.ForeignKeyField("models.Member", related_name="events_created",
                                        null=True, on_delete=fields.SET_NULL)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "event"
        indexes = (("group_id", "status", "starts_at"),)


class Rsvp(Model):
    """One member's answer to one event. A yes to a full event waits in line (waitlist)."""

    id = fields.IntField(primary_key=True)
    event = fields.ForeignKeyField("models.Event", related_name="rsvps",
                                   on_delete=fields.CASCADE)
    member = fields.ForeignKeyField("models.Member", related_name="rsvps",
                                    on_delete=fields.CASCADE)
    status = fields.CharField(max_length=12)  # yes|maybe|no|waitlist
    # Reminders and notices go out where the member answered.
    transport = fields.CharField(max_length=16)
    waitlisted_at = fields.DatetimeField(null=True)  # the place in line
    checked_in_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "rsvp"
        unique_together = (("event", "member"),)
        indexes = (("event_id", "status"),)


class Reminder(Model):
    """A reminder due at a fixed instant. Stored so that it survives a restart."""

    id = fields.IntField(primary_key=True)
    event = fields.ForeignKeyField("models.Event", related_name="reminders",
                                   on_delete=fields.CASCADE)
    hours_before = fields.IntField()
    due_at = fields.DatetimeField()
    # pending|sent|dropped (event moved, cancelled or already started)
    status = fields.CharField(max_length=12, default="pending")
    sent_at = fields.DatetimeField(null=True)
    recipients = fields.IntField(default=0)

    class Meta:
        table = "event_reminder"
        indexes = (("status", "due_at"),)
